//! `synth-edge generate`: verify the bundle, sample, decode, write; with `--db`, log the run and
//! its throughput.

use std::process::ExitCode;

use anyhow::Context;

use crate::bundle::Bundle;
use crate::cli::GenerateArgs;
use crate::commands::record::run_recorded;
use crate::metrics::Metric;
use crate::output::write_samples;
use crate::sampler::{ClassChoice, Generator, SampleSettings};

pub fn run(args: &GenerateArgs) -> anyhow::Result<ExitCode> {
    if args.n == 0 {
        anyhow::bail!("invalid --n 0: expected at least 1 sample");
    }
    let bundle = Bundle::open(&args.model)?;
    let mut generator = Generator::new(&bundle, args.engine.engine, args.engine.threads)?;
    let classes = match (&args.class, args.balanced) {
        (Some(name), _) => ClassChoice::Single(generator.class_index(name)?),
        (None, true) => ClassChoice::Balanced,
        (None, false) => ClassChoice::Proportional,
    };
    let settings = SampleSettings { n: args.n, seed: args.seed, classes, steps: args.steps, sampler: args.sampler, batch: args.batch };
    let params = serde_json::json!({
        "model": args.model.display().to_string(),
        "n": args.n,
        "out": args.out.display().to_string(),
        "seed": args.seed,
        "class": args.class,
        "balanced": args.balanced,
        "steps": args.steps,
        "sampler": args.sampler.to_string(),
        "batch": args.batch,
        "engine": generator.engine_kind().to_string(),
        "threads": crate::engine::resolve_threads(args.engine.threads),
    });
    let samples = run_recorded(args.db.as_deref(), "generate", &bundle, &params, || {
        let samples = generator.generate(&settings)?;
        write_samples(&bundle.manifest, &samples, &args.out).with_context(|| format!("writing {}", args.out.display()))?;
        let metrics = throughput_metrics(args.n, samples.elapsed.as_secs_f64());
        Ok((samples, metrics))
    })?;
    let seconds = samples.elapsed.as_secs_f64();
    println!(
        "wrote {} {} samples to {} ({} engine, {} network evaluations each, {:.0} samples/s)",
        args.n,
        bundle.manifest.family,
        args.out.display(),
        generator.engine_kind(),
        samples.steps,
        args.n as f64 / seconds.max(1e-9)
    );
    Ok(ExitCode::SUCCESS)
}

/// Throughput of one timed generation. A single timing has no spread to estimate an interval
/// from, so each interval is the measured value itself; `synth-edge bench` gives real intervals
/// from repeated timings.
fn throughput_metrics(n_samples: usize, seconds: f64) -> Vec<Metric> {
    let seconds = seconds.max(1e-9);
    let samples_per_second = n_samples as f64 / seconds;
    let ms_per_sample = seconds * 1e3 / n_samples as f64;
    [("samples_per_second", samples_per_second), ("ms_per_sample", ms_per_sample)]
        .into_iter()
        .map(|(name, value)| Metric { axis: "efficiency".to_owned(), name: name.to_owned(), value, ci_low: value, ci_high: value, n: n_samples as u64 })
        .collect()
}
