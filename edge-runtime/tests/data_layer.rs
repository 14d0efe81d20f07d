//! The data layer on the real fixtures: loading, kind inference, stratified splits, transform
//! round trips, and the errors bad input gets.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers fail loudly too; clippy.toml's allow-unwrap-in-tests covers #[test] fns only"
)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use edge_runtime::data::{DataOptions, read_dataset};
use models::split::{SplitSpec, partition};
use models::table::{ColumnKind, MissingPolicy};
use models::transform::{Encoder, Value};
use models::{ColumnData, Dataset, ImageShape};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures").join(name)
}

/// Every fixture with how it is read.
fn fixtures() -> Vec<(&'static str, DataOptions)> {
    let label = |name: &str| DataOptions { label: Some(name.to_owned()), ..DataOptions::default() };
    vec![
        ("breast_cancer.csv", label("diagnosis")),
        ("wine.csv", label("cultivar")),
        ("wheat_splitsplit.csv", label("gen")),
        ("barley.csv", label("site")),
        ("penguins.csv", label("species")),
        (
            "digits.csv",
            DataOptions {
                image_shape: Some(ImageShape { channels: 1, height: 8, width: 8 }),
                ..label("digit")
            },
        ),
        ("nuclei32", DataOptions::default()),
    ]
}

fn load(name: &str, options: &DataOptions) -> Dataset {
    read_dataset(&fixture(name), options).unwrap_or_else(|err| panic!("{name}: {err}"))
}

#[test]
fn fixtures_load_with_their_documented_sizes() {
    let expected: BTreeMap<&str, (usize, Vec<usize>)> = BTreeMap::from([
        ("breast_cancer.csv", (569, vec![357, 212])), // benign, malignant
        ("wine.csv", (178, vec![59, 71, 48])),
        ("wheat_splitsplit.csv", (160, vec![80, 80])),
        ("barley.csv", (120, vec![20; 6])),
        ("penguins.csv", (344, vec![152, 68, 124])), // Adelie, Chinstrap, Gentoo
        ("digits.csv", (1797, vec![178, 182, 177, 183, 181, 182, 181, 179, 174, 180])),
        ("nuclei32", (206, vec![103, 103])),
    ]);
    for (name, options) in fixtures() {
        let dataset = load(name, &options);
        let (rows, counts) = &expected[name];
        assert_eq!(dataset.n_rows(), *rows, "{name}");
        assert_eq!(&dataset.class_counts(), counts, "{name}: {:?}", dataset.classes());
        assert_eq!(dataset.fingerprint().len(), 64);
    }
}

#[test]
fn split_is_reproducible_stratified_and_nested_on_every_fixture() {
    for (name, options) in fixtures() {
        let dataset = load(name, &options);
        let labels = dataset.labels();
        let n_classes = dataset.classes().len();
        let counts = dataset.class_counts();
        for seed in [0, 7] {
            let full =
                partition(labels, n_classes, &SplitSpec { seed, holdout: 0.2, fraction: 1.0 })
                    .unwrap();
            let again =
                partition(labels, n_classes, &SplitSpec { seed, holdout: 0.2, fraction: 1.0 })
                    .unwrap();
            assert_eq!(full, again, "{name}: same inputs, same partition");
            assert_eq!(full.train, full.train_full);

            // Disjoint and covering.
            let mut all: Vec<usize> = full.train.iter().chain(&full.holdout).copied().collect();
            all.sort_unstable();
            assert_eq!(all, (0..dataset.n_rows()).collect::<Vec<_>>(), "{name}");

            // Stratified: each class's hold-out share is 0.2 up to rounding.
            for (class, &n_class) in counts.iter().enumerate() {
                let held =
                    full.holdout.iter().filter(|&&row| labels[row] as usize == class).count();
                assert!(
                    (held as f64 - 0.2 * n_class as f64).abs() <= 0.5,
                    "{name} class {class}: {held} of {n_class}"
                );
            }

            let mut previous = full.train.clone();
            for fraction in [0.5, 0.25, 0.1, 0.01] {
                let scarce =
                    partition(labels, n_classes, &SplitSpec { seed, holdout: 0.2, fraction })
                        .unwrap();
                assert_eq!(
                    scarce.holdout, full.holdout,
                    "{name}: the hold-out does not depend on the fraction"
                );
                assert!(
                    scarce.train.iter().all(|row| previous.contains(row)),
                    "{name}: fractions are nested"
                );
                for (class, &n_class) in counts.iter().enumerate() {
                    let n_train =
                        full.train.iter().filter(|&&row| labels[row] as usize == class).count();
                    let kept =
                        scarce.train.iter().filter(|&&row| labels[row] as usize == class).count();
                    let target = (fraction * n_train as f64).round().max(1.0) as usize;
                    assert_eq!(kept, target, "{name} class {class} of {n_class} at {fraction}");
                }
                previous = scarce.train;
            }
        }
        let other =
            partition(labels, n_classes, &SplitSpec { seed: 1, holdout: 0.2, fraction: 1.0 })
                .unwrap();
        let base =
            partition(labels, n_classes, &SplitSpec { seed: 0, holdout: 0.2, fraction: 1.0 })
                .unwrap();
        assert_ne!(other.holdout, base.holdout, "{name}: another seed gives another split");
    }
}

/// A golden partition: this exact hold-out must come out on every machine and every build. If it
/// changes, every bundle's recorded split has changed meaning.
#[test]
fn split_is_the_same_on_every_machine() {
    let dataset =
        load("wine.csv", &DataOptions { label: Some("cultivar".into()), ..DataOptions::default() });
    let part = partition(dataset.labels(), 3, &SplitSpec { seed: 42, holdout: 0.1, fraction: 0.5 })
        .unwrap();
    assert_eq!(part.holdout.len(), 18);
    assert_eq!(part.train.len(), 81); // 27 + 32 + 22: halves of 53, 64, 43 rounded half away from zero
    assert_eq!(
        part.holdout,
        GOLDEN_WINE_HOLDOUT.to_vec(),
        "the seeded split changed: bundles made before this change re-derive a different hold-out"
    );
}

const GOLDEN_WINE_HOLDOUT: [usize; 18] =
    [1, 5, 9, 21, 44, 45, 59, 68, 72, 95, 102, 121, 124, 140, 148, 167, 168, 172];

#[test]
fn transform_round_trips_on_every_fixture() {
    for (name, options) in fixtures() {
        let dataset = load(name, &options);
        let all_rows: Vec<usize> = (0..dataset.n_rows()).collect();
        let encoder = Encoder::fit(&dataset, &all_rows).unwrap_or_else(|e| panic!("{name}: {e}"));
        let encoded = encoder.encode(&dataset).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(encoded.len(), dataset.n_rows() * encoder.width(), "{name}");
        match (&dataset, &encoder) {
            (Dataset::Table(table), Encoder::Tabular(tabular)) => {
                let decoded = tabular.decode(&encoded);
                for (col_idx, column) in table.features.iter().enumerate() {
                    for (row, cells) in decoded.iter().enumerate() {
                        match (&column.data, cells[col_idx]) {
                            // An empty cell (penguins) decodes as empty: its column models it.
                            (ColumnData::Numeric { values, .. }, Value::Missing) => {
                                assert_eq!(values[row], None, "{name} `{}` row {row}", column.name);
                            }
                            (ColumnData::Categorical { codes, .. }, Value::Missing) => {
                                assert_eq!(codes[row], None, "{name} `{}` row {row}", column.name);
                            }
                            (ColumnData::Numeric { values, .. }, Value::Number(got)) => {
                                let want = values[row].unwrap_or_else(|| {
                                    panic!(
                                        "{name} `{}` row {row}: empty, decoded {got}",
                                        column.name
                                    )
                                });
                                assert!(
                                    (got - want).abs() <= 1e-9 * want.abs().max(1.0),
                                    "{name} `{}` row {row}: {got} vs {want}",
                                    column.name
                                );
                            }
                            (ColumnData::Categorical { codes, .. }, Value::Category(got)) => {
                                assert_eq!(
                                    Some(got),
                                    codes[row],
                                    "{name} `{}` row {row}",
                                    column.name
                                );
                            }
                            other => panic!("{name}: kind mismatch {other:?}"),
                        }
                    }
                }
            }
            (Dataset::Images(images), Encoder::Image(pixels)) => {
                assert!(
                    encoded.iter().all(|x| (-1.0..=1.0).contains(x)),
                    "{name}: pixels in [-1, 1]"
                );
                assert_eq!(pixels.decode(&encoded), images.pixels, "{name}");
            }
            _ => panic!("{name}: encoder of the wrong modality"),
        }

        // Fitted on a train part: train rows still round-trip, the statistics are the train's.
        let part = partition(
            dataset.labels(),
            dataset.classes().len(),
            &SplitSpec { seed: 3, holdout: 0.25, fraction: 1.0 },
        )
        .unwrap();
        let train = dataset.select(&part.train);
        let fitted = Encoder::fit(&dataset, &part.train).unwrap();
        let train_encoded = fitted.encode(&train).unwrap();
        let width = fitted.width();
        for block in fitted.blocks().iter().filter(|block| !block.categorical) {
            for col in block.start..block.start + block.width {
                let column: Vec<f64> =
                    train_encoded.chunks_exact(width).map(|row| f64::from(row[col])).collect();
                let n = column.len() as f64;
                let mean = column.iter().sum::<f64>() / n;
                let var = column.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
                // Empty cells (penguins) encode as the mean, 0, which shrinks the variance of
                // their column; the models crate tests that encoding on a worked example.
                let has_gaps = matches!(&train, Dataset::Table(table)
                    if table.features.iter().any(|column| column.missing_count() > 0));
                if matches!(fitted, Encoder::Tabular(_)) && !has_gaps {
                    assert!(mean.abs() < 1e-5, "{name} feature {col}: train mean {mean}");
                    assert!(
                        var.abs() < 1e-9 || (var - 1.0).abs() < 1e-4,
                        "{name} feature {col}: train variance {var} (ddof 0)"
                    );
                }
            }
        }
    }
}

#[test]
fn one_hot_blocks_decode_by_argmax() {
    let dataset = load(
        "wheat_splitsplit.csv",
        &DataOptions { label: Some("gen".into()), ..DataOptions::default() },
    );
    let Dataset::Table(table) = &dataset else { panic!("a table") };
    let encoder =
        models::transform::TabularEncoder::fit(table, &(0..table.n_rows()).collect::<Vec<_>>())
            .unwrap();
    // A "generated" row: noisy scores everywhere, the largest score at a known place per block.
    let mut row = vec![0.1_f32; encoder.width()];
    let mut expected = Vec::new();
    for (block_idx, block) in
        encoder.blocks().iter().enumerate().filter(|(_, block)| block.categorical)
    {
        let pick = block_idx % block.width;
        row[block.start + (pick + 1) % block.width] = 0.65;
        row[block.start + pick] = 0.7;
        expected.push((block_idx, Value::Category(pick as u32)));
    }
    assert_eq!(expected.len(), 6, "row, inoc, trt, dry, dust and block are categorical");
    let decoded = encoder.decode(&row);
    for (block_idx, want) in expected {
        assert_eq!(decoded[0][block_idx], want, "block {block_idx}");
    }
}

#[test]
fn kind_inference_on_the_mixed_wheat_trial() {
    let dataset = load(
        "wheat_splitsplit.csv",
        &DataOptions { label: Some("gen".into()), ..DataOptions::default() },
    );
    let Dataset::Table(table) = dataset else { panic!("a table") };
    let kinds: Vec<(&str, ColumnKind)> =
        table.features.iter().map(|column| (column.name.as_str(), column.kind())).collect();
    use ColumnKind::{Categorical, Numeric};
    assert_eq!(
        kinds,
        vec![
            ("row", Categorical), // 8 integer codes: plot rows of the trial
            ("col", Numeric),     // 20 distinct integers
            ("yield", Numeric),
            ("inoc", Categorical),
            ("trt", Categorical), // 10 integer treatment codes
            ("dry", Categorical),
            ("dust", Categorical),
            ("block", Categorical),
        ]
    );
    assert_eq!(table.classes, ["Marquis", "Mindum"]);
}

#[test]
fn a_schema_file_overrides_inference() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("trial.csv");
    std::fs::write(&csv, "plot,yield,variety\n1,3.5,a\n2,4.0,b\n1,3.9,a\n2,4.4,b\n1,3.1,a\n")
        .unwrap();
    std::fs::write(
        dir.path().join("trial.schema.toml"),
        "label = \"variety\"\n[columns]\nplot = \"numeric\"\n",
    )
    .unwrap();
    let Dataset::Table(table) = read_dataset(&csv, &DataOptions::default()).unwrap() else {
        panic!("a table")
    };
    assert_eq!(table.features[0].kind(), ColumnKind::Numeric);
    assert_eq!(table.label_name(), "variety");
}

#[test]
fn image_folder_loader_on_nuclei() {
    let Dataset::Images(images) = load("nuclei32", &DataOptions::default()) else {
        panic!("images")
    };
    assert_eq!(images.shape, ImageShape { channels: 1, height: 32, width: 32 });
    assert_eq!(images.classes, ["background", "nucleus"]);
    assert_eq!(images.pixel_max, 255.0);
    assert_eq!(images.pixels.len(), 206 * 1024);
    // The dataset README: intensities are the original values, all ≤ 235.
    let brightest = images.pixels.iter().copied().fold(0.0_f32, f32::max);
    assert!(brightest <= 235.0 && brightest > 100.0, "{brightest}");
}

/// Pixels written by an independent encoder come back in channel-major order.
#[test]
fn image_folder_loader_reads_known_pixels() {
    let dir = tempfile::tempdir().unwrap();
    for (class, value) in [("a", 10_u8), ("b", 200)] {
        std::fs::create_dir(dir.path().join(class)).unwrap();
        // 2×3 RGB: pixel p has (value + p, value + 10 + p, value + 20 + p).
        let interleaved: Vec<u8> =
            (0..6_u8).flat_map(|p| [value + p, value + 10 + p, value + 20 + p]).collect();
        write_png(&dir.path().join(class).join("x.png"), 3, 2, png::ColorType::Rgb, &interleaved);
    }
    let Dataset::Images(images) = read_dataset(dir.path(), &DataOptions::default()).unwrap() else {
        panic!("images")
    };
    assert_eq!(images.shape, ImageShape { channels: 3, height: 2, width: 3 });
    let expected: Vec<f32> =
        (0..3_u8).flat_map(|c| (0..6_u8).map(move |p| f32::from(10 + 10 * c + p))).collect();
    assert_eq!(images.image(0), expected.as_slice());
}

fn write_png(path: &Path, width: u32, height: u32, colour: png::ColorType, data: &[u8]) {
    let file = std::fs::File::create(path).unwrap();
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), width, height);
    encoder.set_color(colour);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().unwrap();
    writer.write_image_data(data).unwrap();
}

/// Reads `text` written to a file named `file_name` and expects an error containing every part.
fn check_error(file_name: &str, text: &str, options: &DataOptions, expected: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(file_name);
    std::fs::write(&path, text).unwrap();
    let message = match read_dataset(&path, options) {
        Ok(_) => panic!("{file_name}: expected an error"),
        Err(err) => err.to_string(),
    };
    assert!(message.contains(&path.display().to_string()), "the message names the file: {message}");
    for part in expected {
        assert!(message.contains(part), "`{message}` should contain `{part}`");
    }
}

#[test]
fn bad_tables_get_clear_errors() {
    let label = DataOptions { label: Some("y".into()), ..DataOptions::default() };
    check_error("empty.csv", "", &label, &["the file is empty", "expected a header line"]);
    check_error("blank.csv", "\n\n", &label, &["the file is empty"]);
    check_error(
        "header.csv",
        "a,b,y\n",
        &label,
        &["header but no data rows", "expected at least one"],
    );
    check_error("ragged.csv", "a,b,y\n1,2,p\n3,q\n", &label, &["line 3 has 2 fields, expected 3"]);
    check_error("nolabel.csv", "a,b,c\n1,2,3\n", &label, &["no label column `y`", "a, b, c"]);
    let refuse = DataOptions { missing: Some(MissingPolicy::Refuse), ..label.clone() };
    check_error(
        "nan.csv",
        "a,b,y\n1,2,p\nNaN,3,q\n",
        &refuse,
        &["column `a`, line 3", "missing value (`NaN`)", "policy is `refuse`"],
    );
    check_error(
        "empty_cell.csv",
        "a,b,y\n1,,p\n",
        &refuse,
        &["column `b`, line 2", "an empty cell"],
    );
    check_error("dup.csv", "a,a,y\n1,2,p\n", &label, &["names column `a` twice"]);
    check_error(
        "schema.csv",
        "a,y\n1,p\n",
        &DataOptions {
            image_shape: Some(ImageShape { channels: 1, height: 2, width: 2 }),
            ..label.clone()
        },
        &["has 1 pixel columns, expected 4 for images of 2×2 grayscale"],
    );
}

#[test]
fn inf_in_a_numeric_column_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inf.csv");
    std::fs::write(&path, "a,b,y\n1.5,2,p\n2.5,3,q\n1e999,3,q\n").unwrap();
    let options = DataOptions { label: Some("y".into()), ..DataOptions::default() };
    let message = read_dataset(&path, &options).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(message.contains("column `a`, line 4: `1e999` is not a finite number"), "{message}");
}

#[test]
fn images_of_two_sizes_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("a")).unwrap();
    write_png(&dir.path().join("a/one.png"), 4, 4, png::ColorType::Grayscale, &[0; 16]);
    write_png(&dir.path().join("a/two.png"), 2, 2, png::ColorType::Grayscale, &[0; 4]);
    let message = read_dataset(dir.path(), &DataOptions::default())
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(message.contains("a/two.png"), "{message}");
    assert!(
        message.contains("is 2×2 grayscale at 8 bits; expected 4×4 grayscale at 8 bits"),
        "{message}"
    );
    assert!(message.contains("one size"), "{message}");
}

#[test]
fn fractions_outside_the_unit_interval_are_refused() {
    for fraction in [0.0, -0.1, 1.01, f64::NAN] {
        let message = partition(&[0, 0, 1, 1], 2, &SplitSpec { seed: 0, holdout: 0.2, fraction })
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            message.contains("invalid scarcity fraction")
                && message.contains("expected a number in (0, 1]"),
            "{message}"
        );
    }
}
