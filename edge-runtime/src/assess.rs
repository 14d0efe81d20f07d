//! From files to an assessment: read the real data (re-deriving a bundle's exact partition, or
//! taking a site's own train and hold-out files), encode real and synthetic rows in one feature
//! space fitted on the real train part, and run the metrics.

use std::path::Path;

use models::split::partition;
use models::table::sort_categories;
use models::transform::{ColumnEncoder, Encoder, TabularEncoder};
use models::{ColumnData, Dataset, ImageShape, MissingPolicy, Table};
use serde::Serialize;

use crate::bundle::Bundle;
use crate::data::{DataOptions, read_dataset};
use crate::error::{Error, Result};
use crate::metrics::fidelity::{MissingMask, missing_rate_metrics};
use crate::metrics::knn::Rows;
use crate::metrics::{
    Assessment, Axis, EvalInput, EvalSettings, Labelled, MetricId, Skipped, evaluate, sort_by_axis,
};
use crate::output::align_classes;

/// The real side of an assessment.
#[derive(Debug, Clone)]
pub struct RealData {
    /// The records the model was trained on (for a bundle: its scarce train subset).
    pub train: Dataset,
    pub holdout: Dataset,
    /// Fitted on `train`; categories cover train and hold-out.
    pub encoder: Encoder,
    pub classes: Vec<String>,
}

/// Sizes, as the JSON report's `data` section has them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DataSummary {
    pub n_real_train: usize,
    pub n_real_holdout: usize,
    pub n_synthetic: usize,
    pub n_features: usize,
}

/// Reads `real` as the bundle's trainer did, checks that it is the same data (fingerprint), and
/// re-derives the exact train / hold-out partition from the manifest. With `holdout`, that file
/// is the hold-out instead of the re-derived one (read like the train part); a bundle trained on
/// every row (`fit --holdout 0`) needs it.
pub fn real_for_bundle(bundle: &Bundle, real: &Path, holdout: Option<&Path>) -> Result<RealData> {
    let manifest = &bundle.manifest;
    let options = DataOptions {
        label: Some(manifest.schema.label.clone()),
        image_shape: manifest.schema.image.filter(|_| !real.is_dir()),
        missing: Some(manifest.schema.missing),
        ..DataOptions::default()
    };
    let dataset = read_dataset(real, &options)?;
    if dataset.fingerprint() != manifest.provenance.dataset_fingerprint {
        return Err(Error::Invalid(format!(
            "{}: this is not the data the model was trained on (SHA-256 of the parsed data is {}, the manifest records {} for {}); \
             the train / hold-out partition can only be re-derived from the same data",
            real.display(),
            dataset.fingerprint(),
            manifest.provenance.dataset_fingerprint,
            manifest.provenance.dataset_name
        )));
    }
    if dataset.classes() != manifest.schema.classes.as_slice() {
        return Err(Error::Invalid(format!(
            "{}: classes are {}, the model's are {}",
            real.display(),
            dataset.classes().join(", "),
            manifest.schema.classes.join(", ")
        )));
    }
    let part = partition(dataset.labels(), dataset.classes().len(), &manifest.provenance.split)?;
    if part.train.len() != manifest.provenance.n_train
        || part.holdout.len() != manifest.provenance.n_holdout
    {
        return Err(Error::Invalid(format!(
            "{}: the re-derived partition has {} train and {} hold-out rows, the manifest {} and {}",
            real.display(),
            part.train.len(),
            part.holdout.len(),
            manifest.provenance.n_train,
            manifest.provenance.n_holdout
        )));
    }
    let mut encoder = Encoder::fit(&dataset, &part.train)?;
    let train = dataset.select(&part.train);
    let holdout = match holdout {
        Some(path) => {
            let mut holdout = read_like(&train, path)?;
            relabel(&mut holdout, &manifest.schema.classes, path)?;
            if let (Encoder::Tabular(tabular), Dataset::Table(table)) = (&mut encoder, &holdout) {
                widen_categories(tabular, table);
            }
            holdout
        }
        None if part.holdout.is_empty() => {
            return Err(Error::Invalid(format!(
                "the bundle {} was trained on every row of {} (hold-out share {}); give the real \
                 hold-out it never saw with --real-holdout FILE",
                bundle.dir.display(),
                manifest.provenance.dataset_name,
                manifest.provenance.split.holdout
            )));
        }
        None => dataset.select(&part.holdout),
    };
    Ok(RealData { train, holdout, encoder, classes: dataset.classes().to_vec() })
}

/// Reads a site's own real train and hold-out files (tables or images).
pub fn real_from_files(
    train_path: &Path,
    holdout_path: &Path,
    label: &str,
    image_shape: Option<ImageShape>,
) -> Result<RealData> {
    let options =
        DataOptions { label: Some(label.to_owned()), image_shape, ..DataOptions::default() };
    let mut train = read_dataset(train_path, &options)?;
    let mut holdout = match &train {
        Dataset::Table(table) => {
            read_dataset(holdout_path, &DataOptions::like_table(table, table.missing))?
        }
        Dataset::Images(_) => read_dataset(holdout_path, &options)?,
    };
    let mut classes: Vec<String> =
        train.classes().iter().chain(holdout.classes()).cloned().collect();
    sort_categories(&mut classes);
    classes.dedup();
    relabel(&mut train, &classes, train_path)?;
    relabel(&mut holdout, &classes, holdout_path)?;
    let all_train: Vec<usize> = (0..train.n_rows()).collect();
    let mut encoder = Encoder::fit(&train, &all_train)?;
    if let (Encoder::Tabular(tabular), Dataset::Table(table)) = (&mut encoder, &holdout) {
        widen_categories(tabular, table);
    }
    Ok(RealData { train, holdout, encoder, classes })
}

/// Re-indexes a dataset's labels to `classes`.
fn relabel(dataset: &mut Dataset, classes: &[String], path: &Path) -> Result<()> {
    let source = path.display().to_string();
    match dataset {
        Dataset::Table(table) => {
            align_classes(&mut table.labels, &mut table.classes, classes, &source)
        }
        Dataset::Images(images) => {
            align_classes(&mut images.labels, &mut images.classes, classes, &source)
        }
    }
}

/// Adds categories that only the hold-out has (real values, just rare) to the encoder's.
fn widen_categories(encoder: &mut TabularEncoder, table: &Table) {
    for (column_encoder, column) in encoder.columns.iter_mut().zip(&table.features) {
        if let (
            ColumnEncoder::Categorical { categories, mode, .. },
            ColumnData::Categorical { categories: more, .. },
        ) = (column_encoder, &column.data)
        {
            let mode_name = categories[*mode as usize].clone();
            for name in more {
                if !categories.contains(name) {
                    categories.push(name.clone());
                }
            }
            sort_categories(categories);
            *mode =
                categories.iter().position(|name| *name == mode_name).unwrap_or_default() as u32;
        }
    }
}

/// Reads synthetic data made by anything, exactly like the real train part.
pub fn read_synthetic(path: &Path, real: &RealData) -> Result<Dataset> {
    let mut synthetic = read_like(&real.train, path)?;
    relabel(&mut synthetic, &real.classes, path)?;
    Ok(synthetic)
}

/// Reads another file exactly like `reference`: the same header and column kinds (empty cells
/// kept), or images of the same shape and label.
fn read_like(reference: &Dataset, path: &Path) -> Result<Dataset> {
    Ok(match reference {
        Dataset::Table(table) => {
            read_dataset(path, &DataOptions::like_table(table, MissingPolicy::Model))?
        }
        Dataset::Images(images) => {
            let options = DataOptions {
                label: Some(images.label_name.clone()),
                image_shape: (!path.is_dir()).then_some(images.shape),
                ..DataOptions::default()
            };
            read_dataset(path, &options)?
        }
    })
}

/// Encodes the three sets and computes the assessment. A table column with an empty cell on any
/// side is encoded with its missingness indicator on every side (an empty cell is then a value
/// like any other), and `missing_rate_difference` compares the sides' shares of empty cells.
pub fn assess(
    real: &RealData,
    synthetic: &Dataset,
    settings: &EvalSettings,
) -> Result<(Assessment, DataSummary)> {
    let encoder = match (&real.encoder, &real.train, &real.holdout, synthetic) {
        (
            Encoder::Tabular(tabular),
            Dataset::Table(train),
            Dataset::Table(holdout),
            Dataset::Table(synthetic),
        ) => {
            Encoder::Tabular(tabular.clone().with_missing_indicators(&[train, holdout, synthetic]))
        }
        _ => real.encoder.clone(),
    };
    let train_x = encoder.encode(&real.train)?;
    let holdout_x = encoder.encode(&real.holdout)?;
    let synthetic_x = encoder.encode(synthetic)?;
    let dim = encoder.width();
    let blocks = encoder.blocks();
    let feature_names = match &encoder {
        Encoder::Tabular(tabular) => tabular.feature_names(),
        Encoder::Image(_) => (0..dim).map(|idx| format!("pixel {idx}")).collect(),
    };
    let image = match &encoder {
        Encoder::Image(pixels) => Some(pixels.shape),
        Encoder::Tabular(_) => None,
    };
    let input = EvalInput {
        train: Labelled { x: Rows::new(&train_x, dim), labels: real.train.labels() },
        holdout: Labelled { x: Rows::new(&holdout_x, dim), labels: real.holdout.labels() },
        synthetic: Labelled { x: Rows::new(&synthetic_x, dim), labels: synthetic.labels() },
        n_classes: real.classes.len(),
        blocks: &blocks,
        feature_names: &feature_names,
        image,
    };
    let mut assessment = evaluate(&input, settings)?;
    if settings.axes.contains(&Axis::Fidelity) {
        match (&real.train, synthetic) {
            (Dataset::Table(train), Dataset::Table(synthetic)) => {
                let masks: Vec<(Vec<bool>, Vec<bool>)> = train
                    .features
                    .iter()
                    .zip(&synthetic.features)
                    .map(|(real, synthetic)| (real.missing_mask(), synthetic.missing_mask()))
                    .collect();
                let columns: Vec<MissingMask<'_>> = train
                    .features
                    .iter()
                    .zip(&masks)
                    .map(|(column, (real, synthetic))| MissingMask {
                        column: &column.name,
                        real,
                        synthetic,
                    })
                    .collect();
                assessment.metrics.extend(missing_rate_metrics(
                    &columns,
                    settings.seed,
                    settings.replicates,
                ));
                sort_by_axis(&mut assessment.metrics);
            }
            _ => assessment.skipped.push(Skipped {
                name: MetricId::MissingRateDifference.name().to_owned(),
                reason: "images have no empty cells; the figure is for tables".to_owned(),
            }),
        }
    }
    let summary = DataSummary {
        n_real_train: real.train.n_rows(),
        n_real_holdout: real.holdout.n_rows(),
        n_synthetic: synthetic.n_rows(),
        n_features: dim,
    };
    Ok((assessment, summary))
}
