//! `synth-edge generate`: verify the bundle, sample, decode, write.

use std::process::ExitCode;

use anyhow::Context;

use crate::bundle::Bundle;
use crate::cli::GenerateArgs;
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
    let samples = generator.generate(&settings)?;
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
