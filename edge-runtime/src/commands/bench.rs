//! `synth-edge bench`: samples per second and latency percentiles of end-to-end generation at
//! batch 1 and batch 256 (and, for diffusion, per sampling-step count), peak resident memory and
//! bundle size; printed as a table and optionally written as JSON.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::bundle::Bundle;
use crate::cli::BenchArgs;
use crate::data::write_atomically;
use crate::memory::peak_rss_mb;
use crate::sampler::{ClassChoice, Generator, SampleSettings, SamplerKind};

pub const BATCH_SIZES: [usize; 2] = [1, 256];

#[derive(Debug, Clone, Serialize)]
pub struct BenchResult {
    pub batch: usize,
    /// Diffusion sampling steps; `None` for one-pass families.
    pub steps: Option<usize>,
    pub sampler: Option<String>,
    pub samples_per_second: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub peak_rss_mb: Option<f64>,
    pub repeats: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub engine: String,
    pub family: String,
    pub threads: usize,
    pub bundle_size_bytes: u64,
    pub results: Vec<BenchResult>,
}

/// Runs the benchmark grid on an opened generator.
pub fn bench(bundle: &Bundle, generator: &mut Generator, repeats: usize, steps: Option<&[usize]>, threads: usize) -> crate::Result<BenchReport> {
    let mut configs: Vec<(usize, Option<usize>, SamplerKind)> = Vec::new();
    match bundle.manifest.schedule {
        None => configs.extend(BATCH_SIZES.iter().map(|&batch| (batch, None, SamplerKind::Ddpm))),
        Some(schedule) => {
            let default_steps = [10, 50, schedule.steps];
            let mut step_counts: Vec<usize> = steps.unwrap_or(&default_steps).iter().map(|&k| k.clamp(1, schedule.steps)).collect();
            step_counts.sort_unstable();
            step_counts.dedup();
            for &batch in &BATCH_SIZES {
                for &k in &step_counts {
                    let sampler = if k == schedule.steps { SamplerKind::Ddpm } else { SamplerKind::Ddim };
                    configs.push((batch, Some(k), sampler));
                }
            }
        }
    }
    let mut results = Vec::with_capacity(configs.len());
    for (batch, steps, sampler) in configs {
        let settings = SampleSettings { n: batch, seed: 0, classes: ClassChoice::Proportional, steps, sampler, batch };
        // Two warm-up runs, then timed runs until `repeats` or about two seconds.
        for _ in 0..2 {
            generator.generate(&settings)?;
        }
        let mut times: Vec<Duration> = Vec::with_capacity(repeats);
        let started = Instant::now();
        while times.len() < repeats.max(3) && (times.len() < 3 || started.elapsed() < Duration::from_secs(2)) {
            let run = Instant::now();
            generator.generate(&settings)?;
            times.push(run.elapsed());
        }
        times.sort_unstable();
        let p50 = percentile(&times, 0.50);
        let p95 = percentile(&times, 0.95);
        results.push(BenchResult {
            batch,
            steps,
            sampler: steps.map(|_| sampler.to_string()),
            samples_per_second: batch as f64 / p50.as_secs_f64().max(1e-12),
            p50_ms: p50.as_secs_f64() * 1e3,
            p95_ms: p95.as_secs_f64() * 1e3,
            peak_rss_mb: peak_rss_mb(),
            repeats: times.len(),
        });
    }
    Ok(BenchReport {
        engine: generator.engine_kind().to_string(),
        family: bundle.manifest.family.to_string(),
        threads,
        bundle_size_bytes: bundle.size_bytes,
        results,
    })
}

/// Nearest-rank percentile of sorted durations.
fn percentile(sorted: &[Duration], q: f64) -> Duration {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

pub fn run(args: &BenchArgs) -> anyhow::Result<ExitCode> {
    let bundle = Bundle::open(&args.model)?;
    let mut generator = Generator::new(&bundle, args.engine.engine, args.engine.threads)?;
    let threads = crate::engine::resolve_threads(args.engine.threads);
    let report = bench(&bundle, &mut generator, args.repeats, args.steps.as_deref(), threads)?;
    println!(
        "{} {} on {} thread(s), bundle {:.1} KiB",
        report.family,
        report.engine,
        threads,
        report.bundle_size_bytes as f64 / 1024.0
    );
    println!("{:>6} {:>6} {:>8} {:>14} {:>10} {:>10} {:>10}", "batch", "steps", "sampler", "samples/s", "p50 ms", "p95 ms", "peak MiB");
    for result in &report.results {
        println!(
            "{:>6} {:>6} {:>8} {:>14.1} {:>10.3} {:>10.3} {:>10.1}",
            result.batch,
            result.steps.map_or_else(|| "-".to_owned(), |s| s.to_string()),
            result.sampler.as_deref().unwrap_or("-"),
            result.samples_per_second,
            result.p50_ms,
            result.p95_ms,
            result.peak_rss_mb.unwrap_or(f64::NAN)
        );
    }
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report)?;
        write_atomically(path, text.as_bytes())?;
    }
    Ok(ExitCode::SUCCESS)
}
