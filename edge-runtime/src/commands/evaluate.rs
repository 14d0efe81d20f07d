//! `synth-edge evaluate`: assess synthetic data against the site's real data on the six axes,
//! either generating it from a bundle (`--model --real`) or reading it from a file made by
//! anything (`--real-train --real-holdout --synthetic --label`).

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};
use serde::Serialize;

use crate::assess::{DataSummary, assess, read_synthetic, real_for_bundle, real_from_files};
use crate::bundle::Bundle;
use crate::cli::EvaluateArgs;
use crate::commands::record::run_recorded;
use crate::data::write_atomically;
use crate::metrics::{
    Assessment, EvalSettings, Metric, Skipped, efficiency_metrics, format_table, sort_by_axis,
};
use crate::output::synthetic_dataset;
use crate::sampler::{ClassChoice, Generator, SampleSettings};

/// The JSON report: `{"data": {...}, "metrics": [...], "skipped": [...]}`.
#[derive(Debug, Serialize)]
pub struct Report<'a> {
    pub data: DataSummary,
    pub metrics: &'a [Metric],
    pub skipped: &'a [Skipped],
}

pub fn run(args: &EvaluateArgs) -> anyhow::Result<ExitCode> {
    let settings = EvalSettings {
        k: args.k,
        seed: args.seed,
        replicates: args.bootstrap,
        ..EvalSettings::default()
    };
    let path = |path: &Option<std::path::PathBuf>| path.as_ref().map(|p| p.display().to_string());
    let params = serde_json::json!({
        "model": path(&args.model),
        "real": path(&args.real),
        "real_train": path(&args.real_train),
        "real_holdout": path(&args.real_holdout),
        "synthetic": path(&args.synthetic),
        "n": args.n,
        "seed": args.seed,
        "k": args.k,
        "bootstrap": args.bootstrap,
        "steps": args.sampling.steps,
        "sampler": args.sampling.sampler.to_string(),
        "guidance": args.sampling.guidance,
        "engine": args.sampling.engine.engine.to_string(),
    });
    let (assessment, summary) = match (
        &args.model,
        &args.real,
        &args.real_train,
        &args.real_holdout,
        &args.synthetic,
    ) {
        (Some(model), Some(real), None, holdout, None) => {
            let bundle = Bundle::open_with(model, &args.trust.to_trust()?)?;
            run_recorded(args.db.as_deref(), "evaluate", Some(&bundle), &params, || {
                let (assessment, summary) =
                    evaluate_bundle(&bundle, real, holdout.as_deref(), args, &settings)?;
                write_json(args.json.as_deref(), &assessment, summary)?;
                let metrics = assessment.metrics.clone();
                Ok(((assessment, summary), metrics))
            })?
        }
        (None, None, Some(train), Some(holdout), Some(synthetic)) => {
            let label = args
                .label
                .as_deref()
                .context("--label is required with --real-train / --real-holdout / --synthetic")?;
            run_recorded(args.db.as_deref(), "evaluate", None, &params, || {
                let real = real_from_files(train, holdout, label, args.image_shape)?;
                let synthetic_data = read_synthetic(synthetic, &real)?;
                let (assessment, summary) = assess(&real, &synthetic_data, &settings)?;
                write_json(args.json.as_deref(), &assessment, summary)?;
                let metrics = assessment.metrics.clone();
                Ok(((assessment, summary), metrics))
            })?
        }
        _ => bail!(
            "evaluate takes either --model DIR --real DATA [--real-holdout H.csv], or --real-train R.csv --real-holdout H.csv --synthetic S.csv --label COLUMN"
        ),
    };
    println!(
        "{} real train, {} real hold-out, {} synthetic rows; {} features",
        summary.n_real_train, summary.n_real_holdout, summary.n_synthetic, summary.n_features
    );
    print!("{}", format_table(&assessment.metrics, &assessment.skipped));
    Ok(ExitCode::SUCCESS)
}

/// `--json`: written inside the recorded run, so a write that fails (a full disk) fails the run.
fn write_json(
    path: Option<&Path>,
    assessment: &Assessment,
    summary: DataSummary,
) -> anyhow::Result<()> {
    let Some(path) = path else {
        return Ok(());
    };
    let report =
        Report { data: summary, metrics: &assessment.metrics, skipped: &assessment.skipped };
    write_atomically(path, serde_json::to_string_pretty(&report)?.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

fn evaluate_bundle(
    bundle: &Bundle,
    real: &Path,
    holdout: Option<&Path>,
    args: &EvaluateArgs,
    settings: &EvalSettings,
) -> anyhow::Result<(Assessment, DataSummary)> {
    let real_data = real_for_bundle(bundle, real, holdout)?;
    let mut generator =
        Generator::new(bundle, args.sampling.engine.engine, args.sampling.engine.threads)?;
    let sample_settings = SampleSettings {
        n: args.n,
        seed: args.seed,
        classes: ClassChoice::Proportional,
        steps: args.sampling.steps,
        sampler: args.sampling.sampler,
        batch: args.sampling.batch,
        guidance: args.sampling.guidance,
    };
    let samples = generator.generate(&sample_settings)?;
    let synthetic = synthetic_dataset(&bundle.manifest, &samples)?;
    let (mut assessment, summary) = assess(&real_data, &synthetic, settings)?;
    assessment.metrics.extend(efficiency_metrics(
        &samples.batch_times,
        settings.seed,
        settings.replicates,
    ));
    sort_by_axis(&mut assessment.metrics);
    Ok((assessment, summary))
}
