//! The whole path a site's data takes, on a real fixture: train → export → load (verified) →
//! sample → evaluate on six axes → log → sync to a folder → import at the hub.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers fail loudly too; clippy.toml's allow-unwrap-in-tests covers #[test] fns only"
)]

use std::path::Path;
use std::sync::atomic::AtomicBool;

use edge_runtime::assess::{assess, real_for_bundle};
use edge_runtime::bundle::Bundle;
use edge_runtime::data::DataOptions;
use edge_runtime::engine::EngineKind;
use edge_runtime::logbook::{Logbook, RunStatus};
use edge_runtime::metrics::{Axis, EvalSettings, MetricId, efficiency_metrics};
use edge_runtime::output::synthetic_dataset;
use edge_runtime::sampler::{Generator, SampleSettings};
use models::manifest::Family;
use models::split::SplitSpec;
use trainer::device::DeviceChoice;
use trainer::fit::{FitSettings, Quiet, fit};

#[test]
fn train_export_sample_evaluate_log_sync_import() {
    let dir = tempfile::tempdir().unwrap();
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/wine.csv");
    let bundle_dir = dir.path().join("wine-ddpm");
    let settings = FitSettings {
        data: data.clone(),
        data_options: DataOptions::default(),
        family: Family::Ddpm,
        size: models::manifest::SizePreset::Tiny,
        split: SplitSpec { seed: 3, holdout: 0.25, fraction: 0.5 },
        train_seed: 3,
        epochs: Some(40),
        device: DeviceChoice::Cpu,
        out: bundle_dir.clone(),
        replace: false,
        sign_key: None,
    };
    let outcome = fit(&settings, &mut Quiet).unwrap();
    assert!(
        outcome.history.last().map(|s| s.loss) < outcome.history.first().map(|s| s.loss),
        "the loss falls"
    );

    let bundle = Bundle::open(&bundle_dir).unwrap();
    assert_eq!(bundle.manifest.provenance.split, settings.split);
    let real = real_for_bundle(&bundle, &data, None).unwrap();
    assert_eq!(real.train.n_rows(), bundle.manifest.provenance.n_train);
    let mut generator = Generator::new(&bundle, EngineKind::Tract, 0).unwrap();
    let samples = generator
        .generate(&SampleSettings { n: 300, seed: 1, steps: Some(50), ..SampleSettings::default() })
        .unwrap();
    let synthetic = synthetic_dataset(&bundle.manifest, &samples).unwrap();
    let (mut assessment, summary) =
        assess(&real, &synthetic, &EvalSettings { replicates: 30, ..EvalSettings::default() })
            .unwrap();
    assessment.metrics.extend(efficiency_metrics(&samples.batch_times, 1, 30));
    assert_eq!(summary.n_synthetic, 300);
    for axis in Axis::ALL {
        assert!(assessment.metrics.iter().any(|m| m.axis == axis), "no {axis:?} figure");
    }
    // Even a briefly trained diffusion model beats chance on three cultivars.
    let tstr = assessment.get(MetricId::TstrAccuracy.name()).map_or(0.0, |m| m.value);
    assert!(tstr > 0.5, "{} {tstr}", MetricId::TstrAccuracy);

    let edge = Logbook::open(&dir.path().join("edge.sqlite")).unwrap();
    edge.register_model(&bundle.manifest.model_sha256, &bundle.manifest.to_json()).unwrap();
    let params = serde_json::json!({"n": 300, "seed": 1});
    let run = edge.start_run("evaluate", Some(&bundle.manifest.model_sha256), &params).unwrap();
    edge.finish_run(&run, &assessment.metrics).unwrap();

    let stick = dir.path().join("stick");
    std::fs::create_dir(&stick).unwrap();
    // The device is enrolled at the hub first; its batch files are signed with its key.
    let hub = Logbook::open(&dir.path().join("hub.sqlite")).unwrap();
    let device_key = edge_runtime::keys::SecretKey::generate().unwrap();
    hub.enroll_device("field-1", &device_key.public(), None, false, || Ok(())).unwrap();
    let report =
        edge_runtime::sync::write_to_dir(&edge, &device_key, &stick, 100, &AtomicBool::new(false))
            .unwrap();
    assert_eq!(report.settled_runs, 1);
    edge_runtime::sync::import_files(&hub, &report.files).unwrap();
    let runs = hub.runs().unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].status, RunStatus::Done);
    assert_eq!(
        runs[0].metrics, assessment.metrics,
        "the hub holds exactly the figures measured on the edge"
    );
}

/// A prepared train file is trained on whole (`--holdout 0`) and evaluated against the site's
/// own hold-out file; without one, evaluation says what is missing instead of measuring against
/// nothing.
#[test]
fn a_bundle_trained_on_every_row_is_evaluated_against_a_holdout_file() {
    let dir = tempfile::tempdir().unwrap();
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/wine.csv"))
            .unwrap();
    let lines: Vec<&str> = text.lines().collect();
    // Every fourth row is the hold-out file (wine is sorted by cultivar: each keeps a quarter).
    let pick = |keep: fn(usize) -> bool| {
        let rows: Vec<&str> =
            lines[1..].iter().enumerate().filter(|(row, _)| keep(*row)).map(|(_, l)| *l).collect();
        format!("{}\n{}\n", lines[0], rows.join("\n"))
    };
    let (train, holdout) = (dir.path().join("train.csv"), dir.path().join("holdout.csv"));
    std::fs::write(&train, pick(|row| row % 4 != 3)).unwrap();
    std::fs::write(&holdout, pick(|row| row % 4 == 3)).unwrap();
    let bundle_dir = dir.path().join("wine-vae");
    let settings = FitSettings {
        data: train.clone(),
        data_options: DataOptions { label: Some("cultivar".to_owned()), ..DataOptions::default() },
        family: Family::Vae,
        size: models::manifest::SizePreset::Tiny,
        split: SplitSpec::new(0, 0.0, 1.0).unwrap(),
        train_seed: 0,
        epochs: Some(20),
        device: DeviceChoice::Cpu,
        out: bundle_dir.clone(),
        replace: false,
        sign_key: None,
    };
    fit(&settings, &mut Quiet).unwrap();
    let bundle = Bundle::open(&bundle_dir).unwrap();
    assert_eq!(
        (bundle.manifest.provenance.n_train, bundle.manifest.provenance.n_holdout),
        (134, 0)
    );

    let err = real_for_bundle(&bundle, &train, None).err().map(|err| err.to_string());
    assert!(
        err.as_deref().is_some_and(
            |err| err.contains("trained on every row") && err.contains("--real-holdout")
        ),
        "{err:?}"
    );
    let real = real_for_bundle(&bundle, &train, Some(&holdout)).unwrap();
    assert_eq!((real.train.n_rows(), real.holdout.n_rows()), (134, 44));
    let mut generator = Generator::new(&bundle, EngineKind::Tract, 0).unwrap();
    let samples = generator
        .generate(&SampleSettings { n: 200, seed: 1, ..SampleSettings::default() })
        .unwrap();
    let synthetic = synthetic_dataset(&bundle.manifest, &samples).unwrap();
    let (assessment, summary) =
        assess(&real, &synthetic, &EvalSettings { replicates: 20, ..EvalSettings::default() })
            .unwrap();
    assert_eq!(summary.n_real_holdout, 44);
    // TRTR on the hold-out file: wine's cultivars separate well.
    let trtr = assessment.get(MetricId::TrtrAccuracy.name()).map_or(0.0, |m| m.value);
    assert!(trtr > 0.85, "{trtr}");
}
