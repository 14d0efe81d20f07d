//! Missing values modelled end to end, on the real penguins table with empty cells added at a
//! rate that depends on the class: train (`model` policy, the default) → sample → the generated
//! rows are empty at the real rates, per column and per class, and `evaluate`'s
//! `missing_rate_difference` says so.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers fail loudly too; clippy.toml's allow-unwrap-in-tests covers #[test] fns only"
)]

use std::path::Path;

use edge_runtime::assess::{assess, real_for_bundle};
use edge_runtime::bundle::Bundle;
use edge_runtime::data::DataOptions;
use edge_runtime::engine::EngineKind;
use edge_runtime::metrics::{EvalSettings, MetricId};
use edge_runtime::output::synthetic_dataset;
use edge_runtime::sampler::{Generator, SampleSettings};
use models::manifest::Family;
use models::split::SplitSpec;
use models::{Dataset, Table};
use trainer::device::DeviceChoice;
use trainer::fit::{FitSettings, Quiet, fit};

/// penguins.csv with `body_mass_g` emptied in every second Adelie row and every fifth
/// Chinstrap row (Gentoo keeps its one natural gap), and `island` in every fourth row.
fn penguins_with_gaps() -> String {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/penguins.csv"),
    )
    .unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    let mut out = format!("{header}\n");
    let mut seen = std::collections::HashMap::<String, usize>::new();
    for (row, line) in lines.enumerate() {
        let mut cells: Vec<String> = line.split(',').map(str::to_owned).collect();
        let count = seen.entry(cells[0].clone()).or_default();
        *count += 1;
        let every = match cells[0].as_str() {
            "Adelie" => 2,
            "Chinstrap" => 5,
            _ => usize::MAX,
        };
        if count.is_multiple_of(every) {
            cells[5] = String::new();
        }
        if row % 4 == 3 {
            cells[1] = String::new();
        }
        out.push_str(&cells.join(","));
        out.push('\n');
    }
    out
}

/// Per class, the share of empty cells of feature column `column`.
fn rates(table: &Table, column: usize) -> Vec<f64> {
    let mask = table.features[column].missing_mask();
    (0..table.classes.len() as u32)
        .map(|class| {
            let rows: Vec<usize> =
                (0..table.n_rows()).filter(|&row| table.labels[row] == class).collect();
            rows.iter().filter(|&&row| mask[row]).count() as f64 / rows.len().max(1) as f64
        })
        .collect()
}

fn overall(table: &Table, column: usize) -> f64 {
    table.features[column].missing_count() as f64 / table.n_rows() as f64
}

#[test]
fn generated_rows_are_empty_at_the_learnt_rates() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("penguins-gaps.csv");
    std::fs::write(&data, penguins_with_gaps()).unwrap();
    let bundle_dir = dir.path().join("penguins-ddpm");
    let settings = FitSettings {
        data: data.clone(),
        data_options: DataOptions { label: Some("species".to_owned()), ..DataOptions::default() },
        family: Family::Ddpm,
        size: models::manifest::SizePreset::Tiny,
        split: SplitSpec { seed: 0, holdout: 0.2, fraction: 1.0 },
        train_seed: 0,
        epochs: None,
        device: DeviceChoice::Cpu,
        out: bundle_dir.clone(),
        replace: false,
        sign_key: None,
    };
    fit(&settings, &mut Quiet).unwrap();
    let bundle = Bundle::open(&bundle_dir).unwrap();
    assert_eq!(bundle.manifest.schema.missing, models::MissingPolicy::Model);

    let real = real_for_bundle(&bundle, &data, None).unwrap();
    let mut generator = Generator::new(&bundle, EngineKind::Tract, 0).unwrap();
    let samples = generator
        .generate(&SampleSettings { n: 3000, seed: 1, ..SampleSettings::default() })
        .unwrap();
    let synthetic = synthetic_dataset(&bundle.manifest, &samples).unwrap();
    let (Dataset::Table(train), Dataset::Table(generated)) = (&real.train, &synthetic) else {
        panic!("penguins is a table")
    };
    // Features: island 0, bill_length 1, bill_depth 2, flipper 3, body_mass_g 4, sex 5, year 6.
    for column in [0, 4] {
        let (want, got) = (overall(train, column), overall(generated, column));
        assert!(
            (want - got).abs() <= 0.05,
            "column {}: {got:.3} of generated cells empty, {want:.3} of real ones",
            train.features[column].name
        );
    }
    // body_mass_g's gaps depend on the class (Adelie ~0.5, Chinstrap ~0.2, Gentoo ~0.01): the
    // generated rows follow the class, not the average.
    let (want, got) = (rates(train, 4), rates(generated, 4));
    for ((class, want), got) in train.classes.iter().zip(&want).zip(&got) {
        assert!(
            (want - got).abs() <= 0.1,
            "body_mass_g, {class}: {got:.3} generated vs {want:.3} real"
        );
    }
    assert!(got[0] > got[1] && got[1] > got[2], "{got:?}");

    let (assessment, _) =
        assess(&real, &synthetic, &EvalSettings { replicates: 30, ..EvalSettings::default() })
            .unwrap();
    let figure = |name: &str| assessment.get(name).map(|metric| metric.value);
    let difference = figure(MetricId::MissingRateDifference.name()).unwrap();
    assert!(difference <= 0.05, "{difference}");
    // The per-column figure is the gap between the rates above, computed independently here.
    let body = figure(&MetricId::MissingRateDifference.detailed("body_mass_g")).unwrap();
    assert!((body - (overall(train, 4) - overall(generated, 4)).abs()).abs() < 1e-12, "{body}");
}
