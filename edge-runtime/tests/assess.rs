//! The assessment engine against independent implementations (prdc, scikit-learn, scipy), the
//! memorising canary and the release gate, the two `evaluate` forms, and bad input.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers fail loudly too; clippy.toml's allow-unwrap-in-tests covers #[test] fns only"
)]

#[path = "../../tests/support/python.rs"]
mod python;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use edge_runtime::data::{DataOptions, read_dataset};
use edge_runtime::gate::Policy;
use edge_runtime::metrics::augment::{Augmentation, augment};
use edge_runtime::metrics::catalogue::{CATALOGUE, MetricId, Source, markdown_table};
use edge_runtime::metrics::knn::Rows;
use edge_runtime::metrics::utility::{
    UtilitySettings, fit_logistic, perturbations, utility_metrics,
};
use edge_runtime::metrics::{
    Assessment, Axis, EvalInput, EvalSettings, Labelled, Metric, evaluate,
};
use models::split::{SplitSpec, partition};
use models::transform::Encoder;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures").join(name)
}

/// breast_cancer.csv encoded, split three ways: train (what a model saw), hold-out, and a fresh
/// real draw from the same population.
struct Parts {
    dim: usize,
    blocks: Vec<models::transform::Block>,
    names: Vec<String>,
    train: (Vec<f32>, Vec<u32>),
    holdout: (Vec<f32>, Vec<u32>),
    fresh: (Vec<f32>, Vec<u32>),
}

fn breast_cancer() -> Parts {
    let options = DataOptions { label: Some("diagnosis".into()), ..DataOptions::default() };
    let dataset = read_dataset(&fixture("breast_cancer.csv"), &options).unwrap();
    let outer = partition(dataset.labels(), 2, &SplitSpec { seed: 3, holdout: 0.3, fraction: 1.0 })
        .unwrap();
    let rest = dataset.select(&outer.train);
    let inner =
        partition(rest.labels(), 2, &SplitSpec { seed: 4, holdout: 0.43, fraction: 1.0 }).unwrap();
    let train = rest.select(&inner.train);
    let holdout = rest.select(&inner.holdout);
    let fresh = dataset.select(&outer.holdout);
    let encoder = Encoder::fit(&train, &(0..train.n_rows()).collect::<Vec<_>>()).unwrap();
    let encode = |set: &models::Dataset| (encoder.encode(set).unwrap(), set.labels().to_vec());
    let names = match &encoder {
        Encoder::Tabular(tabular) => tabular.feature_names(),
        Encoder::Image(_) => Vec::new(),
    };
    Parts {
        dim: encoder.width(),
        blocks: encoder.blocks(),
        names,
        train: encode(&train),
        holdout: encode(&holdout),
        fresh: encode(&fresh),
    }
}

fn noisy_copy(rows: &[f32], sigma: f32, seed: u64) -> Vec<f32> {
    let noise = models::rng::normal_f32(&mut models::rng::stream(seed, "test/noise"), rows.len());
    rows.iter().zip(noise).map(|(x, e)| x + sigma * e).collect()
}

fn run(parts: &Parts, synthetic: &[f32], synthetic_labels: &[u32], axes: &[Axis]) -> Assessment {
    let input = EvalInput {
        train: Labelled { x: Rows::new(&parts.train.0, parts.dim), labels: &parts.train.1 },
        holdout: Labelled { x: Rows::new(&parts.holdout.0, parts.dim), labels: &parts.holdout.1 },
        synthetic: Labelled { x: Rows::new(synthetic, parts.dim), labels: synthetic_labels },
        n_classes: 2,
        blocks: &parts.blocks,
        feature_names: &parts.names,
        image: None,
    };
    evaluate(
        &input,
        &EvalSettings { axes: axes.to_vec(), replicates: 100, ..EvalSettings::default() },
    )
    .unwrap()
}

/// The value of a figure by its stored name (a [`MetricId`] or a `name/detail` string).
fn value(assessment: &Assessment, name: impl AsRef<str>) -> f64 {
    let name = name.as_ref();
    assessment
        .get(name)
        .unwrap_or_else(|| {
            panic!(
                "no {name} in {:?}",
                assessment.metrics.iter().map(|m| &m.name).collect::<Vec<_>>()
            )
        })
        .value
}

fn rows_json(data: &[f32], dim: usize) -> serde_json::Value {
    serde_json::json!(
        data.chunks_exact(dim)
            .map(|row| row.iter().map(|&x| f64::from(x)).collect::<Vec<f64>>())
            .collect::<Vec<_>>()
    )
}

#[test]
fn nearest_neighbour_and_distribution_figures_match_the_reference_implementations() {
    let Some(python) = python::python() else { return };
    let parts = breast_cancer();
    // A generator that adds noise to the records it saw, and an honest one (a fresh real draw).
    for (label, synthetic, labels) in [
        ("noisy copies", noisy_copy(&parts.train.0, 0.5, 1), parts.train.1.clone()),
        ("fresh draw", parts.fresh.0.clone(), parts.fresh.1.clone()),
    ] {
        let ours =
            run(&parts, &synthetic, &labels, &[Axis::Fidelity, Axis::Diversity, Axis::Privacy]);
        let dir = tempfile::tempdir().unwrap();
        let arrays = dir.path().join("arrays.json");
        let spec = serde_json::json!({
            "train": rows_json(&parts.train.0, parts.dim),
            "holdout": rows_json(&parts.holdout.0, parts.dim),
            "synthetic": rows_json(&synthetic, parts.dim),
            "k": 5,
            "train_labels": parts.train.1,
            "synthetic_labels": labels,
        });
        std::fs::write(&arrays, spec.to_string()).unwrap();
        let reply: serde_json::Value = serde_json::from_str(&python::run(
            &python,
            "metrics_reference.py",
            &[&arrays.to_string_lossy()],
        ))
        .unwrap();
        // Counts of strict comparisons: equal (no float ties in continuous data).
        for id in [
            MetricId::Precision,
            MetricId::Recall,
            MetricId::Density,
            MetricId::Coverage,
            MetricId::ExactCopyRate,
        ] {
            let name = id.name();
            let reference = reply[name].as_f64().unwrap_or(f64::NAN);
            assert!(
                (value(&ours, name) - reference).abs() < 1e-12,
                "{label}: {name} {} vs prdc/sklearn {reference}",
                value(&ours, name)
            );
        }
        // Distances: ours are exact f64 from the coordinates, the references' likewise.
        for id in [
            MetricId::DcrTrainMedian,
            MetricId::DcrHoldoutMedian,
            MetricId::DcrTrainP05,
            MetricId::NndrMean,
            MetricId::MiaAuc,
        ] {
            let name = id.name();
            let reference = reply[name].as_f64().unwrap_or(f64::NAN);
            assert!(
                (value(&ours, name) - reference).abs() < 1e-9,
                "{label}: {name} {} vs reference {reference}",
                value(&ours, name)
            );
        }
        // The same L2 logistic regression fitted by linfa (200 iterations) and scikit-learn
        // (lbfgs to 1e-10): rows within the solvers' difference of the boundary may fall either
        // way, so the shares agree to 1 % of the synthetic rows, not exactly.
        let name = MetricId::ConditionalAccuracy.name();
        let reference = reply[name].as_f64().unwrap_or(f64::NAN);
        assert!(
            (value(&ours, name) - reference).abs() <= 0.01,
            "{label}: {name} {} vs scikit-learn {reference}",
            value(&ours, name)
        );
        let reference = reply[MetricId::FrechetDistance.name()].as_f64().unwrap_or(f64::NAN);
        let fd = value(&ours, MetricId::FrechetDistance);
        assert!(
            (fd - reference).abs() < 1e-6 * reference.abs().max(1.0),
            "{label}: frechet {fd} vs scipy {reference}"
        );
        for metric in &ours.metrics {
            assert!(
                metric.ci_low <= metric.value && metric.value <= metric.ci_high,
                "{label}: {metric:?}"
            );
        }
    }
}

#[test]
fn a_memorising_generator_is_caught_and_refused_and_an_honest_one_passes() {
    let parts = breast_cancer();
    let (copy_rate, mia, closer) =
        (MetricId::ExactCopyRate, MetricId::MiaAuc, MetricId::CloserToTrainShare);
    let text = format!("max_{copy_rate} = 0.0\nmax_{mia} = 0.6\nmax_{closer} = 0.65\n");
    let policy = Policy::parse(&text, Path::new("policy.toml")).unwrap();
    let axes = policy.axes();

    let copies = run(&parts, &parts.train.0, &parts.train.1, &axes);
    assert_eq!(value(&copies, MetricId::ExactCopyRate), 1.0);
    assert!(!policy.judge(&copies).allows_release());

    let nearly = noisy_copy(&parts.train.0, 0.01, 2);
    let nearly = run(&parts, &nearly, &parts.train.1, &axes);
    assert_eq!(value(&nearly, MetricId::ExactCopyRate), 0.0);
    assert!(value(&nearly, MetricId::MiaAuc) > 0.95, "{mia} {}", value(&nearly, MetricId::MiaAuc));
    assert!(
        value(&nearly, MetricId::CloserToTrainShare) > 0.95,
        "{}",
        value(&nearly, MetricId::CloserToTrainShare)
    );
    let verdict = policy.judge(&nearly);
    assert!(verdict.failed.iter().any(|line| line.starts_with(mia.name())), "{verdict:?}");

    let fresh = run(&parts, &parts.fresh.0, &parts.fresh.1, &axes);
    assert!(
        (value(&fresh, MetricId::MiaAuc) - 0.5).abs() < 0.1,
        "{mia} {}",
        value(&fresh, MetricId::MiaAuc)
    );
    assert!(policy.judge(&fresh).allows_release(), "{:?}", policy.judge(&fresh));
}

#[test]
fn utility_and_robustness_figures_are_sane_on_real_data() {
    let parts = breast_cancer();
    let fresh = run(&parts, &parts.fresh.0, &parts.fresh.1, &[Axis::Utility, Axis::Robustness]);
    // A fresh real draw is as useful as the train part: ~95 % accuracy, ratio near 1.
    assert!(
        value(&fresh, MetricId::TrtrAccuracy) > 0.9 && value(&fresh, MetricId::TstrAccuracy) > 0.9
    );
    assert!((value(&fresh, MetricId::TstrTrtrRatio) - 1.0).abs() < 0.08);
    // Noise hurts more than none; adversarial moves hurt at least as much as nothing.
    assert!(
        value(&fresh, MetricId::TrtrPerturbedAccuracyRatio.detailed("gaussian_0.5"))
            <= value(&fresh, MetricId::TrtrPerturbedAccuracyRatio.detailed("gaussian_0.1")) + 1e-9
    );
    assert!(
        value(&fresh, MetricId::TrtrAdversarialAccuracy) <= value(&fresh, MetricId::TrtrAccuracy)
    );
    // Labels scrambled: a classifier trained on them is no better than a coin.
    let scrambled: Vec<u32> =
        parts.fresh.1.iter().enumerate().map(|(i, _)| (i % 2) as u32).collect();
    let noise = run(&parts, &parts.fresh.0, &scrambled, &[Axis::Utility]);
    assert!(
        value(&noise, MetricId::TstrAccuracy) < 0.75,
        "{}",
        value(&noise, MetricId::TstrAccuracy)
    );
}

/// The utility figures of `synthetic` (train labels) with the classical augmentation at
/// `strength`, computed directly.
fn gains(parts: &Parts, synthetic: &[f32], strength: f32, seed: u64) -> Vec<Metric> {
    let settings = UtilitySettings {
        seed,
        replicates: 50,
        forest_trees: 10,
        image: None,
        blocks: &parts.blocks,
        augmentation_strength: strength,
    };
    utility_metrics(
        Labelled { x: Rows::new(&parts.train.0, parts.dim), labels: &parts.train.1 },
        Labelled { x: Rows::new(&parts.holdout.0, parts.dim), labels: &parts.holdout.1 },
        Labelled { x: Rows::new(synthetic, parts.dim), labels: &parts.train.1 },
        2,
        &settings,
    )
    .unwrap()
}

fn gain(metrics: &[Metric], id: MetricId) -> f64 {
    metrics.iter().find(|metric| metric.name == id.name()).map_or(f64::NAN, |m| m.value)
}

/// Synthetic rows that copy the train part, and a classical augmentation of strength 0 (a copy
/// too), add nothing a classifier can use: every gain is about 0. Not exactly 0: the logistic
/// regression's L2 penalty is fixed while the data doubles, which is the same fit with half the
/// penalty; on this hold-out that moves at most a few of its rows (3 rows ≈ 0.03).
#[test]
fn augmentations_that_copy_the_train_part_gain_nothing() {
    let parts = breast_cancer();
    let n_holdout = parts.holdout.1.len() as f64;
    let metrics = gains(&parts, &parts.train.0, 0.0, 3);
    let tolerance = 3.0 / n_holdout + 1e-12;
    for id in [
        MetricId::AugmentationGain,
        MetricId::ClassicalAugmentationGain,
        MetricId::CombinedAugmentationGain,
    ] {
        assert!(gain(&metrics, id).abs() <= tolerance, "{id}: {}", gain(&metrics, id));
    }
    // As many copies as train rows, cycling through them: the same rows in another order, so
    // the same fit up to the solver's rounding (at most one hold-out row apart).
    let (synthetic, classical) = (
        gain(&metrics, MetricId::AugmentationGain),
        gain(&metrics, MetricId::ClassicalAugmentationGain),
    );
    assert!((synthetic - classical).abs() <= 1.0 / n_holdout + 1e-12, "{synthetic} vs {classical}");
    // conditional_accuracy of copies is the TRTR classifier's accuracy on its own train part.
    let model = fit_logistic(
        &Labelled { x: Rows::new(&parts.train.0, parts.dim), labels: &parts.train.1 },
        2,
    )
    .unwrap();
    let train = Rows::new(&parts.train.0, parts.dim);
    let right = (0..train.n_rows)
        .filter(|&row| model.predict(train.row(row)) == parts.train.1[row])
        .count();
    assert_eq!(gain(&metrics, MetricId::ConditionalAccuracy), right as f64 / train.n_rows as f64);
}

#[test]
fn augmentation_gains_are_the_same_for_the_same_seed() {
    let parts = breast_cancer();
    let synthetic = noisy_copy(&parts.train.0, 0.3, 8);
    let first = gains(&parts, &synthetic, 1.0, 5);
    assert_eq!(first, gains(&parts, &synthetic, 1.0, 5), "bit-identical figures");
    for id in [MetricId::ClassicalAugmentationGain, MetricId::CombinedAugmentationGain] {
        let metric = first.iter().find(|metric| metric.name == id.name()).unwrap();
        assert!(metric.ci_low <= metric.value && metric.value <= metric.ci_high, "{metric:?}");
        assert!(metric.value.abs() < 0.2, "{metric:?}");
    }
    // Another seed draws other augmented rows.
    let train = Labelled { x: Rows::new(&parts.train.0, parts.dim), labels: &parts.train.1 };
    let augmentation = Augmentation { image: None, blocks: &parts.blocks, strength: 1.0 };
    let rows = |seed| augment(&train, 100, &augmentation, seed);
    assert_eq!(rows(5), rows(5));
    assert_ne!(rows(5).0, rows(6).0);
}

/// The adversarial move of a binary linear model is the exact worst case: accuracy under it
/// equals the share of rows whose margin exceeds ε‖w‖₁.
#[test]
fn adversarial_accuracy_of_a_linear_model_is_exact() {
    use edge_runtime::metrics::utility::ADVERSARIAL_EPSILON;
    let parts = breast_cancer();
    let train = Labelled { x: Rows::new(&parts.train.0, parts.dim), labels: &parts.train.1 };
    let model = fit_logistic(&train, 2).unwrap();
    let w: Vec<f64> =
        (0..parts.dim).map(|j| model.weights[parts.dim + j] - model.weights[j]).collect();
    let l1: f64 = w.iter().map(|x| x.abs()).sum();
    let holdout = Rows::new(&parts.holdout.0, parts.dim);
    for row in 0..holdout.n_rows {
        let label = parts.holdout.1[row];
        let logits = model.logits(holdout.row(row));
        let margin = (logits[1] - logits[0]) * if label == 1 { 1.0 } else { -1.0 };
        let attacked = model.adversarial(holdout.row(row), label, ADVERSARIAL_EPSILON);
        let survived = model.predict(&attacked) == label;
        let expected = margin > f64::from(ADVERSARIAL_EPSILON) * l1;
        // Rows within rounding of the boundary are not decided by either side.
        if (margin - f64::from(ADVERSARIAL_EPSILON) * l1).abs() > 1e-6 {
            assert_eq!(
                survived,
                expected,
                "row {row}: margin {margin}, ε‖w‖₁ {}",
                f64::from(ADVERSARIAL_EPSILON) * l1
            );
        }
    }
}

fn synth_edge(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_synth-edge")).args(args).output().unwrap()
}

/// Every figure `evaluate --model` must report: the catalogue's assessment and generation
/// figures, and each perturbation's part of the perturbed-accuracy ratios.
fn required_figures() -> Vec<String> {
    let mut names: Vec<String> = CATALOGUE
        .iter()
        .filter(|spec| matches!(spec.source, Source::Assessment | Source::Generation))
        .map(|spec| spec.name.to_owned())
        .collect();
    for perturbation in perturbations(None) {
        for id in [MetricId::TstrPerturbedAccuracyRatio, MetricId::TrtrPerturbedAccuracyRatio] {
            names.push(id.detailed(&perturbation.name()));
        }
    }
    names
}

#[test]
fn evaluate_a_bundle_against_its_real_data() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("figures.json");
    let model = fixture("bundles/wheat-gan");
    let real = fixture("wheat_splitsplit.csv");
    let output = synth_edge(&[
        "evaluate",
        "--model",
        &model.to_string_lossy(),
        "--real",
        &real.to_string_lossy(),
        "--n",
        "300",
        "--json",
        &json.to_string_lossy(),
        "--bootstrap",
        "50",
    ]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap_or_default()).unwrap();
    // The manifest's split: 160 rows, hold-out 0.2 per class → 128 train, 32 held out.
    assert_eq!(
        report["data"],
        serde_json::json!({"n_real_train": 128, "n_real_holdout": 32, "n_synthetic": 300, "n_features": 33})
    );
    let metrics = report["metrics"].as_array().cloned().unwrap_or_default();
    for name in required_figures() {
        let metric =
            metrics.iter().find(|m| m["name"] == name).unwrap_or_else(|| panic!("{name} missing"));
        let (v, low, high) = (
            metric["value"].as_f64().unwrap_or(f64::NAN),
            metric["ci_low"].as_f64().unwrap_or(f64::NAN),
            metric["ci_high"].as_f64().unwrap_or(f64::NAN),
        );
        assert!(low <= v && v <= high, "{name}: {v} outside [{low}, {high}]");
        assert!(metric["n"].as_u64().unwrap_or(0) > 0, "{name}");
        assert!(Axis::ALL.iter().any(|axis| metric["axis"] == axis.as_str()), "{name}");
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("privacy") && stdout.contains(MetricId::MiaAuc.name()), "{stdout}");

    // Other data than the model was trained on cannot give back its split.
    let output = synth_edge(&[
        "evaluate",
        "--model",
        &model.to_string_lossy(),
        "--real",
        &fixture("wine.csv").to_string_lossy(),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success() && stderr.contains("wine.csv"), "{stderr}");
}

#[test]
fn the_gate_refuses_a_failing_batch_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let strict = dir.path().join("strict.toml");
    let (mia, copy_rate) = (MetricId::MiaAuc, MetricId::ExactCopyRate);
    std::fs::write(&strict, format!("max_{mia} = 0.0\n")).unwrap();
    let lenient = dir.path().join("lenient.toml");
    std::fs::write(&lenient, format!("max_{copy_rate} = 0.5\nmax_{mia} = 1.0\n")).unwrap();
    let model = fixture("bundles/wheat-vae").to_string_lossy().into_owned();
    let real = fixture("wheat_splitsplit.csv").to_string_lossy().into_owned();
    let out = dir.path().join("out.csv");
    let out_str = out.to_string_lossy().into_owned();
    let refused = synth_edge(&[
        "generate",
        "--model",
        &model,
        "--n",
        "100",
        "--out",
        &out_str,
        "--gate",
        &strict.to_string_lossy(),
        "--real",
        &real,
    ]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains(&format!("FAIL {mia}")) && stderr.contains("must be ≤ 0"), "{stderr}");
    assert!(!out.exists());
    let passed = synth_edge(&[
        "generate",
        "--model",
        &model,
        "--n",
        "100",
        "--out",
        &out_str,
        "--gate",
        &lenient.to_string_lossy(),
        "--real",
        &real,
    ]);
    assert!(passed.status.success(), "{}", String::from_utf8_lossy(&passed.stderr));
    assert!(String::from_utf8_lossy(&passed.stdout).contains("release gate: passed"));
    assert!(out.is_file());
}

/// Writes the real train and hold-out parts of the wheat trial and a synthetic file, runs the
/// file form of evaluate and returns its stderr (the run must fail).
fn evaluate_files_error(synthetic: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(fixture("wheat_splitsplit.csv")).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let (header, rows) = (lines[0], &lines[1..]);
    let join = |rows: &[&str]| format!("{header}\n{}\n", rows.join("\n"));
    let (train, holdout, syn) = (
        dir.path().join("train.csv"),
        dir.path().join("holdout.csv"),
        dir.path().join("synthetic.csv"),
    );
    std::fs::write(&train, join(&rows[..120])).unwrap_or_default();
    std::fs::write(&holdout, join(&rows[120..])).unwrap_or_default();
    std::fs::write(&syn, synthetic.replace("HEADER", header)).unwrap_or_default();
    let output = synth_edge(&[
        "evaluate",
        "--real-train",
        &train.to_string_lossy(),
        "--real-holdout",
        &holdout.to_string_lossy(),
        "--synthetic",
        &syn.to_string_lossy(),
        "--label",
        "gen",
    ]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

#[test]
fn bad_synthetic_files_get_clear_errors() {
    let good_rows = "1,1,64,Uninoc,5,Marquis,Dry,DuBay,B1\n1,10,69,Uninoc,7,Mindum,Dry,Check,B1\n";
    let many = good_rows.repeat(4);
    let cases: [(String, &[&str]); 4] = [
        (
            format!(
                "row,col,yield,inoc,trt,gen,dry,block\n{}",
                "1,1,64,Uninoc,5,Marquis,Dry,B1\n".repeat(8)
            ),
            &[
                "synthetic.csv",
                "header is [row, col, yield, inoc, trt, gen, dry, block]",
                "expected the columns",
            ],
        ),
        (
            format!("HEADER\n{many}1,1,64,Uninoc,5,Spelt,Dry,DuBay,B1\n"),
            &["synthetic.csv", "label `Spelt` is not a class of the real data", "Marquis, Mindum"],
        ),
        (format!("HEADER\n{good_rows}"), &["need at least 6 rows", "the synthetic set has 2"]),
        // An empty cell (`NaN`) is a value the assessment compares (missing_rate_difference);
        // an infinite one is not a number.
        (
            format!("HEADER\n{many}1,1,inf,Uninoc,5,Marquis,Dry,DuBay,B1\n"),
            &["synthetic.csv", "column `yield`, line 10", "`inf` is not a finite number"],
        ),
    ];
    for (synthetic, expected) in cases {
        let stderr = evaluate_files_error(&synthetic);
        for part in expected {
            assert!(stderr.contains(part), "`{stderr}` should contain `{part}`");
        }
    }
}

#[test]
fn the_file_form_gives_the_bundle_form_figures_on_the_same_data() {
    // The bundle form re-derives the split and generates; the file form gets the same train and
    // hold-out rows as files and the same samples as a CSV: the figures must agree.
    let dir = tempfile::tempdir().unwrap();
    let model = fixture("bundles/wheat-ddpm");
    let real = fixture("wheat_splitsplit.csv");
    let bundle = edge_runtime::bundle::Bundle::open(&model).unwrap();
    let text = std::fs::read_to_string(&real).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let dataset =
        read_dataset(&real, &DataOptions { label: Some("gen".into()), ..DataOptions::default() })
            .unwrap();
    let part = partition(dataset.labels(), 2, &bundle.manifest.provenance.split).unwrap();
    let write = |rows: &[usize], name: &str| {
        let body: Vec<&str> = rows.iter().map(|&row| lines[row + 1]).collect();
        let path = dir.path().join(name);
        std::fs::write(&path, format!("{}\n{}\n", lines[0], body.join("\n"))).unwrap_or_default();
        path.to_string_lossy().into_owned()
    };
    let (train, holdout) = (write(&part.train, "train.csv"), write(&part.holdout, "holdout.csv"));
    let synthetic = dir.path().join("synthetic.csv").to_string_lossy().into_owned();
    let model = model.to_string_lossy().into_owned();
    let generated = synth_edge(&[
        "generate", "--model", &model, "--n", "200", "--seed", "5", "--steps", "40", "--out",
        &synthetic,
    ]);
    assert!(generated.status.success(), "{}", String::from_utf8_lossy(&generated.stderr));
    let figures = |args: &[&str]| -> serde_json::Value {
        let json = dir.path().join("figures.json");
        let mut all = vec![
            "evaluate",
            "--seed",
            "5",
            "--bootstrap",
            "20",
            "--json",
            json.to_str().unwrap_or_default(),
        ];
        all.extend_from_slice(args);
        let output = synth_edge(&all);
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap_or_default())
            .unwrap_or_default()
    };
    let from_bundle = figures(&[
        "--model",
        &model,
        "--real",
        &real.to_string_lossy(),
        "--n",
        "200",
        "--steps",
        "40",
    ]);
    let from_files = figures(&[
        "--real-train",
        &train,
        "--real-holdout",
        &holdout,
        "--synthetic",
        &synthetic,
        "--label",
        "gen",
    ]);
    assert_eq!(from_bundle["data"], from_files["data"]);
    let assessment_figures = CATALOGUE.iter().filter(|spec| spec.source == Source::Assessment);
    for name in assessment_figures.map(|spec| spec.name) {
        let find = |report: &serde_json::Value| {
            report["metrics"]
                .as_array()
                .and_then(|m| m.iter().find(|m| m["name"] == name))
                .map(|m| m["value"].as_f64().unwrap_or(f64::NAN))
        };
        let (a, b) = (find(&from_bundle), find(&from_files));
        assert!(a.is_some() && a == b, "{name}: bundle form {a:?}, file form {b:?}");
    }
}

#[test]
fn the_metrics_command_prints_the_catalogue() {
    let markdown = synth_edge(&["metrics", "--markdown"]);
    assert!(markdown.status.success());
    assert_eq!(String::from_utf8_lossy(&markdown.stdout), markdown_table());
    let json = synth_edge(&["metrics", "--json"]);
    let listed: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let names: Vec<&str> =
        listed.as_array().unwrap().iter().filter_map(|line| line["name"].as_str()).collect();
    let expected: Vec<&str> = CATALOGUE.iter().map(|spec| spec.name).collect();
    assert_eq!(names, expected);
    let gateable: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .filter(|line| line["gateable"] == true)
        .filter_map(|line| line["name"].as_str())
        .collect();
    // Every figure the policy accepts is listed as gateable, and no other.
    for spec in CATALOGUE {
        let policy = Policy::parse(&format!("max_{} = 1", spec.name), Path::new("p.toml"));
        assert_eq!(policy.is_ok(), gateable.contains(&spec.name), "{}", spec.name);
    }
    let table = synth_edge(&["metrics"]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(CATALOGUE.iter().all(|spec| text.contains(spec.name)), "{text}");
}

#[test]
fn the_moved_report_command_says_where_it_went() {
    let output = synth_edge(&["report", "--db", "study/study.sqlite", "--out", "study/report"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success() && stderr.contains("synth-train report"), "{stderr}");
}
