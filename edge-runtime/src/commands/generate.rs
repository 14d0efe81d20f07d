//! `synth-edge generate`: verify the bundle, sample, decode, (optionally) pass the release gate,
//! write (with `--encoded-out`, the encoded samples too); with `--db`, log the run, its
//! throughput and the gate's figures.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use serde::Serialize;

use crate::assess::{assess, real_for_bundle};
use crate::bundle::Bundle;
use crate::cli::GenerateArgs;
use crate::commands::record::run_recorded;
use crate::data::write_atomically;
use crate::gate::Policy;
use crate::metrics::{EvalSettings, efficiency_metrics};
use crate::output::{synthetic_dataset, write_samples};
use crate::sampler::{ClassChoice, Generator, SampleSettings, Samples};

/// Exit status when the release gate refuses a batch.
pub const GATE_REFUSED: u8 = 3;

/// The gate's refusal, carried through the error chain so the exit status can say so.
#[derive(Debug, thiserror::Error)]
#[error("release gate refused the batch; nothing was written:\n{0}")]
pub struct GateRefused(pub String);

pub fn run(args: &GenerateArgs) -> anyhow::Result<ExitCode> {
    let policy = args.gate.as_deref().map(Policy::read).transpose()?;
    let bundle = Bundle::open_with(&args.model, &args.trust.to_trust()?)?;
    let real = match (&policy, &args.real) {
        (Some(_), Some(real)) => {
            Some(real_for_bundle(&bundle, real, args.real_holdout.as_deref())?)
        }
        _ => None,
    };
    let mut generator =
        Generator::new(&bundle, args.sampling.engine.engine, args.sampling.engine.threads)?;
    let classes = match (&args.class, args.balanced) {
        (Some(name), _) => ClassChoice::Single(generator.class_index(name)?),
        (None, true) => ClassChoice::Balanced,
        (None, false) => ClassChoice::Proportional,
    };
    let settings = SampleSettings {
        n: args.n,
        seed: args.seed,
        classes,
        steps: args.sampling.steps,
        sampler: args.sampling.sampler,
        batch: args.sampling.batch,
        guidance: args.sampling.guidance,
    };
    let params = serde_json::json!({
        "model": args.model.display().to_string(),
        "n": args.n,
        "out": args.out.display().to_string(),
        "seed": args.seed,
        "class": args.class,
        "balanced": args.balanced,
        "steps": args.sampling.steps,
        "sampler": args.sampling.sampler.to_string(),
        "batch": args.sampling.batch,
        "guidance": args.sampling.guidance,
        "engine": generator.engine_kind().to_string(),
        "threads": crate::engine::resolve_threads(args.sampling.engine.threads),
        "gate": args.gate.as_ref().map(|path| path.display().to_string()),
        "encoded_out": args.encoded_out.as_ref().map(|path| path.display().to_string()),
    });
    let outcome = run_recorded(args.db.as_deref(), "generate", Some(&bundle), &params, || {
        let samples = generator.generate(&settings)?;
        let mut metrics = efficiency_metrics(&samples.batch_times, args.seed, 200);
        if let (Some(policy), Some(real)) = (&policy, &real) {
            let synthetic = synthetic_dataset(&bundle.manifest, &samples)?;
            let eval_settings =
                EvalSettings { seed: args.seed, axes: policy.axes(), ..EvalSettings::default() };
            let (assessment, _) = assess(real, &synthetic, &eval_settings)?;
            let verdict = policy.judge(&assessment);
            let lines: Vec<String> = verdict
                .failed
                .iter()
                .map(|line| format!("  FAIL {line}"))
                .chain(verdict.passed.iter().map(|line| format!("  pass {line}")))
                .collect();
            if !verdict.allows_release() {
                return Err(GateRefused(lines.join("\n")).into());
            }
            println!("release gate: passed\n{}", lines.join("\n"));
            metrics.extend(assessment.metrics);
        }
        write_samples(&bundle.manifest, &samples, &args.out)
            .with_context(|| format!("writing {}", args.out.display()))?;
        if let Some(path) = &args.encoded_out {
            write_encoded(&samples, path).with_context(|| format!("writing {}", path.display()))?;
        }
        Ok((samples, metrics))
    });
    let samples = match outcome {
        Ok(samples) => samples,
        Err(err) if err.downcast_ref::<GateRefused>().is_some() => {
            eprintln!("error: {err:#}");
            return Ok(ExitCode::from(GATE_REFUSED));
        }
        Err(err) => return Err(err),
    };
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

/// `--encoded-out`: the samples as the engine produced them, one row of `width` encoded values
/// (standardised numbers, one-hot categories, pixels in [-1, 1]) per sample.
#[derive(Debug, Serialize)]
struct EncodedSamples<'a> {
    width: usize,
    labels: &'a [u32],
    rows: Vec<&'a [f32]>,
}

fn write_encoded(samples: &Samples, path: &Path) -> anyhow::Result<()> {
    let encoded = EncodedSamples {
        width: samples.width,
        labels: &samples.labels,
        rows: samples.x.chunks_exact(samples.width).collect(),
    };
    write_atomically(path, serde_json::to_string(&encoded)?.as_bytes())?;
    Ok(())
}
