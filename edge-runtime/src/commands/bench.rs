//! `synth-edge bench`: samples per second and latency percentiles of end-to-end generation at
//! batch 1 and batch 256 (and, for diffusion, per sampling-step count), peak resident memory and
//! bundle size; printed as a table and optionally written as JSON, and with `--db` logged as a
//! run with efficiency metrics. Latency and throughput carry 95 % bootstrap intervals over the
//! timed repetitions.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::bundle::Bundle;
use crate::cli::BenchArgs;
use crate::commands::record::run_recorded;
use crate::data::write_atomically;
use crate::memory::peak_rss_mb;
use crate::metrics::intervals::{bootstrap, nearest_rank};
use crate::metrics::{Metric, MetricId};
use crate::sampler::{ClassChoice, Generator, SampleSettings, SamplerKind};

pub const BATCH_SIZES: [usize; 2] = [1, 256];

/// The seed of the bootstrap intervals, logged with a recorded run.
pub const BOOTSTRAP_SEED: u64 = 0;

#[derive(Debug, Clone, Serialize)]
pub struct BenchResult {
    pub batch: usize,
    /// Diffusion sampling steps; `None` for one-pass families.
    pub steps: Option<usize>,
    pub sampler: Option<String>,
    pub samples_per_second: f64,
    /// 95 % bootstrap interval of `samples_per_second`.
    pub samples_per_second_ci95: (f64, f64),
    pub p50_ms: f64,
    /// 95 % bootstrap interval of `p50_ms`.
    pub p50_ms_ci95: (f64, f64),
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
pub fn bench(
    bundle: &Bundle,
    generator: &mut Generator,
    repeats: usize,
    steps: Option<&[usize]>,
    threads: usize,
) -> crate::Result<BenchReport> {
    let mut configs: Vec<(usize, Option<usize>, SamplerKind)> = Vec::new();
    match bundle.manifest.schedule {
        None => configs.extend(BATCH_SIZES.iter().map(|&batch| (batch, None, SamplerKind::Ddpm))),
        Some(schedule) => {
            let default_steps = [10, 50, schedule.steps];
            let mut step_counts: Vec<usize> = steps
                .unwrap_or(&default_steps)
                .iter()
                .map(|&k| k.clamp(1, schedule.steps))
                .collect();
            step_counts.sort_unstable();
            step_counts.dedup();
            for &batch in &BATCH_SIZES {
                for &k in &step_counts {
                    let sampler =
                        if k == schedule.steps { SamplerKind::Ddpm } else { SamplerKind::Ddim };
                    configs.push((batch, Some(k), sampler));
                }
            }
        }
    }
    let mut results = Vec::with_capacity(configs.len());
    for (batch, steps, sampler) in configs {
        let settings = SampleSettings {
            n: batch,
            seed: 0,
            classes: ClassChoice::Proportional,
            steps,
            sampler,
            batch,
            guidance: None,
        };
        // Two warm-up runs, then timed runs until `repeats` or about two seconds.
        for _ in 0..2 {
            generator.generate(&settings)?;
        }
        let mut times: Vec<Duration> = Vec::with_capacity(repeats);
        let started = Instant::now();
        while times.len() < repeats.max(3)
            && (times.len() < 3 || started.elapsed() < Duration::from_secs(2))
        {
            let run = Instant::now();
            generator.generate(&settings)?;
            times.push(run.elapsed());
        }
        let mut times_ms: Vec<f64> = times.iter().map(|time| time.as_secs_f64() * 1e3).collect();
        times_ms.sort_by(f64::total_cmp);
        let (p50_ms, p95_ms) = (nearest_rank(&times_ms, 0.50), nearest_rank(&times_ms, 0.95));
        let purpose = format!("bench/batch{batch}/steps{steps:?}/{sampler}");
        let (p50_ms_low, p50_ms_high) =
            bootstrap(&[times_ms.len()], 1000, BOOTSTRAP_SEED, &purpose, p50_ms, |idx| {
                let mut resample: Vec<f64> = idx[0].iter().map(|&i| times_ms[i]).collect();
                resample.sort_by(f64::total_cmp);
                nearest_rank(&resample, 0.5)
            });
        results.push(BenchResult {
            batch,
            steps,
            sampler: steps.map(|_| sampler.to_string()),
            samples_per_second: batch as f64 * 1e3 / p50_ms.max(1e-9),
            samples_per_second_ci95: (
                batch as f64 * 1e3 / p50_ms_high.max(1e-9),
                batch as f64 * 1e3 / p50_ms_low.max(1e-9),
            ),
            p50_ms,
            p50_ms_ci95: (p50_ms_low, p50_ms_high),
            p95_ms,
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

/// The report as logbook metrics on the efficiency axis, named by configuration
/// (`samples_per_second.batch256`, `p50_ms.batch1.steps50.ddim`, ...). Peak memory and bundle
/// size are measured, not estimated: their interval is the value itself.
pub fn bench_metrics(report: &BenchReport) -> Vec<Metric> {
    let measured = |id: MetricId, value: f64| Metric::new(id, value, value, value, 1);
    let mut metrics = Vec::new();
    for result in &report.results {
        let mut config = format!("batch{}", result.batch);
        if let (Some(steps), Some(sampler)) = (result.steps, &result.sampler) {
            config.push_str(&format!(".steps{steps}.{sampler}"));
        }
        let repeats = result.repeats as u64;
        let (low, high) = result.samples_per_second_ci95;
        metrics.push(
            Metric::new(MetricId::SamplesPerSecond, result.samples_per_second, low, high, repeats)
                .at_configuration(&config),
        );
        let (low, high) = result.p50_ms_ci95;
        metrics.push(
            Metric::new(MetricId::P50Ms, result.p50_ms, low, high, repeats)
                .at_configuration(&config),
        );
    }
    if let Some(peak) =
        report.results.iter().filter_map(|result| result.peak_rss_mb).reduce(f64::max)
    {
        metrics.push(measured(MetricId::PeakRssMb, peak));
    }
    let size_kib = report.bundle_size_bytes as f64 / 1024.0;
    metrics.push(measured(MetricId::BundleSizeKib, size_kib));
    metrics
}

pub fn run(args: &BenchArgs) -> anyhow::Result<ExitCode> {
    if let Some(steps) = &args.steps
        && steps.len() > crate::cli::MAX_BENCH_STEP_COUNTS
    {
        anyhow::bail!(
            "invalid --steps: {} step counts; expected at most {}",
            steps.len(),
            crate::cli::MAX_BENCH_STEP_COUNTS
        );
    }
    let bundle = Bundle::open_with(&args.model, &args.trust.to_trust()?)?;
    let mut generator = Generator::new(&bundle, args.engine.engine, args.engine.threads)?;
    let threads = crate::engine::resolve_threads(args.engine.threads);
    let params = serde_json::json!({
        "model": args.model.display().to_string(),
        "engine": generator.engine_kind().to_string(),
        "threads": threads,
        "repeats": args.repeats,
        "steps": args.steps,
        "bootstrap_seed": BOOTSTRAP_SEED,
    });
    let report = run_recorded(args.db.as_deref(), "bench", Some(&bundle), &params, || {
        let report = bench(&bundle, &mut generator, args.repeats, args.steps.as_deref(), threads)?;
        // Inside the recorded run, so a write that fails (a full disk) fails the run.
        if let Some(path) = &args.json {
            let text = serde_json::to_string_pretty(&report)?;
            write_atomically(path, text.as_bytes())?;
        }
        let metrics = bench_metrics(&report);
        Ok((report, metrics))
    })?;
    println!(
        "{} {} on {} thread(s), bundle {:.1} KiB",
        report.family,
        report.engine,
        threads,
        report.bundle_size_bytes as f64 / 1024.0
    );
    println!(
        "{:>6} {:>6} {:>8} {:>14} {:>10} {:>10} {:>10}",
        "batch", "steps", "sampler", "samples/s", "p50 ms", "p95 ms", "peak MiB"
    );
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
    Ok(ExitCode::SUCCESS)
}
