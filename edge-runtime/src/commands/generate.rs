//! `synth-edge generate`: verify the bundle, sample, decode, (optionally) pass the release gate,
//! write.

use std::process::ExitCode;

use anyhow::Context;

use crate::assess::{assess, real_for_bundle};
use crate::bundle::Bundle;
use crate::cli::GenerateArgs;
use crate::gate::Policy;
use crate::metrics::EvalSettings;
use crate::output::{synthetic_dataset, write_samples};
use crate::sampler::{ClassChoice, Generator, SampleSettings};

/// Exit status when the release gate refuses a batch.
pub const GATE_REFUSED: u8 = 3;

pub fn run(args: &GenerateArgs) -> anyhow::Result<ExitCode> {
    if args.n == 0 {
        anyhow::bail!("invalid --n 0: expected at least 1 sample");
    }
    let policy = args.gate.as_deref().map(Policy::read).transpose()?;
    let bundle = Bundle::open(&args.model)?;
    let real = match (&policy, &args.real) {
        (Some(_), Some(real)) => Some(real_for_bundle(&bundle, real)?),
        _ => None,
    };
    let mut generator = Generator::new(&bundle, args.engine.engine, args.engine.threads)?;
    let classes = match (&args.class, args.balanced) {
        (Some(name), _) => ClassChoice::Single(generator.class_index(name)?),
        (None, true) => ClassChoice::Balanced,
        (None, false) => ClassChoice::Proportional,
    };
    let settings = SampleSettings { n: args.n, seed: args.seed, classes, steps: args.steps, sampler: args.sampler, batch: args.batch };
    let samples = generator.generate(&settings)?;

    if let (Some(policy), Some(real)) = (&policy, &real) {
        let synthetic = synthetic_dataset(&bundle.manifest, &samples)?;
        let eval_settings = EvalSettings { seed: args.seed, axes: policy.axes(), ..EvalSettings::default() };
        let (assessment, _) = assess(real, &synthetic, &eval_settings)?;
        let verdict = policy.judge(&assessment);
        if !verdict.allows_release() {
            eprintln!("release gate: refused; nothing was written to {}", args.out.display());
            for line in &verdict.failed {
                eprintln!("  FAIL {line}");
            }
            for line in &verdict.passed {
                eprintln!("  pass {line}");
            }
            return Ok(ExitCode::from(GATE_REFUSED));
        }
        println!("release gate: passed ({})", verdict.passed.join("; "));
    }

    write_samples(&bundle.manifest, &samples, &args.out).with_context(|| format!("writing {}", args.out.display()))?;
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
