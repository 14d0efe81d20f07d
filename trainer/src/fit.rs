//! `fit`: read a dataset, split it, fit the transform, train one family, export the bundle.
//!
//! Settings are checked before anything slow happens: the split fractions, the device, that the
//! bundle folder can be written, that the label has two classes or more.

use std::path::{Path, PathBuf};
use std::time::Instant;

use edge_runtime::data::{DataOptions, read_dataset};
use models::manifest::{
    FORMAT_VERSION, Family, GraphSpec, LatentSpec, Manifest, Provenance, Schema, SchemaColumn,
    SchemaKind, SizePreset, TensorSpec,
};
use models::split::{Partition, SplitSpec, partition};
use models::transform::{Encoder, one_hot};
use models::{Dataset, Modality};

use crate::bundle::Staging;
use crate::device::DeviceChoice;
use crate::error::{Error, Result};
use crate::graph::Graph;
use crate::nets::DataSpec;
use crate::onnx;
use crate::train::{EpochStats, Hyper, TrainData, Trained, train};

/// Everything `fit` needs, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct FitSettings {
    pub data: PathBuf,
    pub data_options: DataOptions,
    pub family: Family,
    /// The network size preset (recorded in the manifest).
    pub size: SizePreset,
    pub split: SplitSpec,
    /// Seed of initialisation, batching and training noise (the CLI uses the split seed).
    pub train_seed: u64,
    pub epochs: Option<usize>,
    pub device: DeviceChoice,
    pub out: PathBuf,
    pub replace: bool,
    /// The secret key file that signs the bundle's seal (`None`: sealed, unsigned).
    pub sign_key: Option<PathBuf>,
}

/// What a finished fit reports.
#[derive(Debug)]
pub struct FitOutcome {
    pub manifest: Manifest,
    pub history: Vec<EpochStats>,
    pub hyper: Hyper,
    pub wall_time_s: f64,
}

/// Observes training: told the epoch count once, then each epoch's figures.
pub trait FitObserver {
    fn start(&mut self, _epochs: usize) {}
    fn epoch(&mut self, _stats: &EpochStats) {}
}

/// An observer that ignores everything.
#[derive(Debug, Default)]
pub struct Quiet;

impl FitObserver for Quiet {}

/// A dataset prepared for training: the split, the fitted transform, the encoded train part.
#[derive(Debug)]
pub struct Prepared {
    pub dataset: Dataset,
    pub partition: Partition,
    pub encoder: Encoder,
    pub data: TrainData,
}

/// Splits `dataset`, fits the transform on the scarce train part and encodes it.
pub fn prepare(dataset: Dataset, split: &SplitSpec) -> Result<Prepared> {
    let classes = dataset.classes();
    if classes.len() < 2 {
        return Err(Error::Invalid(format!(
            "{}: the label column `{}` has only one class ({}); a class-conditional model needs at least two",
            dataset.source(),
            dataset.label_name(),
            classes.first().map_or("none", String::as_str)
        )));
    }
    let partition = partition(dataset.labels(), classes.len(), split)?;
    let encoder = Encoder::fit(&dataset, &partition.train)?;
    let train_part = dataset.select(&partition.train);
    let x = encoder.encode(&train_part)?;
    let y = one_hot(train_part.labels(), classes.len());
    let image = match &dataset {
        Dataset::Images(images) => Some(images.shape),
        Dataset::Table(_) => None,
    };
    let spec = DataSpec {
        width: encoder.width(),
        n_classes: classes.len(),
        blocks: encoder.blocks(),
        image,
    };
    let data = TrainData { x, y, n_rows: partition.train.len(), spec };
    Ok(Prepared { dataset, partition, encoder, data })
}

/// The most epochs one fit may run (a history entry is kept per epoch).
pub const MAX_EPOCHS: usize = 1_000_000;

/// Refuses an epoch count outside 1 to [`MAX_EPOCHS`]: the one check of a fit's epochs, and of
/// a study's epochs per cell.
pub fn check_epochs(epochs: usize) -> Result<()> {
    if (1..=MAX_EPOCHS).contains(&epochs) {
        Ok(())
    } else {
        Err(Error::Invalid(format!("epochs is {epochs}; expected 1 to {MAX_EPOCHS}")))
    }
}

pub fn fit(settings: &FitSettings, observer: &mut dyn FitObserver) -> Result<FitOutcome> {
    SplitSpec::new(settings.split.seed, settings.split.holdout, settings.split.fraction)?;
    settings.device.check_available()?;
    if let Some(epochs) = settings.epochs {
        check_epochs(epochs)?;
    }
    let sign_key =
        settings.sign_key.as_deref().map(edge_runtime::keys::SecretKey::read).transpose()?;
    let staging = Staging::new(&settings.out, settings.replace)?;
    let device = settings.device.open()?;
    let dataset = read_dataset(&settings.data, &settings.data_options)?;
    let prepared = prepare(dataset, &settings.split)?;

    let mut hyper =
        Hyper::defaults(settings.family, settings.size, &prepared.data.spec, prepared.data.n_rows);
    if let Some(epochs) = settings.epochs {
        hyper.epochs = epochs;
    }
    observer.start(crate::train::epochs_in_all(settings.family, hyper.epochs));
    let started = Instant::now();
    let trained = train(
        settings.family,
        &prepared.data,
        &hyper,
        settings.train_seed,
        &device,
        &mut |stats| observer.epoch(stats),
    )?;
    let wall_time_s = started.elapsed().as_secs_f64();

    let onnx_bytes = onnx::export(
        &trained.graph,
        &trained.params.to_host()?,
        &format!("fieldsynth-{}", settings.family),
    )?;
    let decoder_bytes = trained
        .latent
        .as_ref()
        .map(|latent| {
            onnx::export(
                &latent.decoder,
                &latent.decoder_params.to_host()?,
                "fieldsynth-ldm-decoder",
            )
        })
        .transpose()?;
    let manifest = manifest(settings, &prepared, &trained, &hyper, wall_time_s);
    let mut weights = trained.params.named_tensors(generator_role(settings.family));
    if let Some((_, companion)) = &trained.companion {
        weights.extend(companion.named_tensors(companion_role(settings.family)));
    }
    if let Some(latent) = &trained.latent {
        weights.extend(latent.decoder_params.named_tensors("decoder"));
    }
    let manifest = staging.commit(
        manifest,
        &onnx_bytes,
        decoder_bytes.as_deref(),
        &weights,
        sign_key.as_ref(),
    )?;
    Ok(FitOutcome { manifest, history: trained.history, hyper, wall_time_s })
}

fn generator_role(family: Family) -> &'static str {
    match family {
        Family::Vae => "decoder",
        Family::Gan => "generator",
        Family::Ddpm | Family::Ldm => "denoiser",
    }
}

fn companion_role(family: Family) -> &'static str {
    match family {
        Family::Vae | Family::Ldm => "encoder",
        Family::Gan | Family::Ddpm => "discriminator",
    }
}

fn tensor_specs(entries: impl Iterator<Item = (String, Vec<usize>)>) -> Vec<TensorSpec> {
    entries
        .map(|(name, dims)| {
            let mut shape = vec![None];
            shape.extend(dims.into_iter().map(Some));
            TensorSpec { name, shape }
        })
        .collect()
}

pub fn graph_spec(graph: &Graph, latent_dim: Option<usize>) -> GraphSpec {
    GraphSpec {
        inputs: tensor_specs(
            graph.inputs.iter().map(|input| (input.name.clone(), input.dims.clone())),
        ),
        outputs: tensor_specs(graph.outputs.iter().cloned()),
        latent_dim,
        opset: onnx::OPSET,
    }
}

/// The data schema as the manifest records it.
pub fn schema(dataset: &Dataset, missing: models::MissingPolicy) -> Schema {
    match dataset {
        Dataset::Table(table) => {
            let mut columns: Vec<SchemaColumn> = table
                .features
                .iter()
                .map(|column| SchemaColumn {
                    name: column.name.clone(),
                    kind: SchemaKind::from(column.kind()),
                })
                .collect();
            columns.insert(
                table.label_position,
                SchemaColumn { name: table.label_name().to_owned(), kind: SchemaKind::Label },
            );
            Schema {
                label: table.label_name().to_owned(),
                classes: table.classes.clone(),
                columns,
                image: None,
                missing,
            }
        }
        Dataset::Images(images) => {
            let columns = images
                .header
                .iter()
                .flatten()
                .map(|name| SchemaColumn {
                    name: name.clone(),
                    kind: if *name == images.label_name {
                        SchemaKind::Label
                    } else {
                        SchemaKind::Numeric
                    },
                })
                .collect();
            Schema {
                label: images.label_name.clone(),
                classes: images.classes.clone(),
                columns,
                image: Some(images.shape),
                missing,
            }
        }
    }
}

fn manifest(
    settings: &FitSettings,
    prepared: &Prepared,
    trained: &Trained,
    hyper: &Hyper,
    wall_time_s: f64,
) -> Manifest {
    let dataset = &prepared.dataset;
    let missing = match dataset {
        Dataset::Table(table) => table.missing,
        Dataset::Images(_) => models::MissingPolicy::Refuse,
    };
    let latent_dim = (!settings.family.is_diffusion()).then_some(hyper.widths.latent_dim);
    let latent = trained.latent.as_ref().map(|latent| LatentSpec {
        dim: hyper.widths.latent_dim,
        low: latent.low.clone(),
        high: latent.high.clone(),
        decoder: graph_spec(&latent.decoder, None),
        decoder_sha256: String::new(),
    });
    Manifest {
        format_version: FORMAT_VERSION,
        family: settings.family,
        size: settings.size,
        modality: dataset.modality(),
        schema: schema(dataset, missing),
        transform: prepared.encoder.clone(),
        graph: graph_spec(&trained.graph, latent_dim),
        schedule: trained.schedule,
        guidance: hyper.guidance.filter(|_| settings.family.is_diffusion()),
        latent,
        provenance: Provenance {
            dataset_fingerprint: dataset.fingerprint().to_owned(),
            dataset_name: file_name(&settings.data),
            split: settings.split,
            n_train: prepared.partition.train.len(),
            n_holdout: prepared.partition.holdout.len(),
            train_class_counts: dataset.select(&prepared.partition.train).class_counts(),
            train_seed: settings.train_seed,
            epochs: hyper.epochs,
            final_loss: trained.history.last().map_or(f64::NAN, |stats| stats.loss),
            wall_time_s,
            device: settings.device.to_string(),
            trainer_version: env!("CARGO_PKG_VERSION").to_owned(),
        },
        model_sha256: String::new(),
        architecture: format!(
            "{} ({} parameters): {}",
            match (settings.family, dataset.modality()) {
                (Family::Vae, _) => "conditional VAE decoder",
                (Family::Gan, _) =>
                    "conditional GAN generator (hinge loss, spectrally normalised critic)",
                (Family::Ddpm, Modality::Tabular) => "conditional DDPM denoiser, MLP",
                (Family::Ddpm, Modality::Image) =>
                    "conditional DDPM denoiser, classifier-free guidance",
                (Family::Ldm, _) =>
                    "conditional latent DDPM denoiser (MLP, classifier-free guidance) and autoencoder decoder",
            },
            trained.graph.n_parameters(),
            hyper.widths.describe(settings.family, &prepared.data.spec)
        ),
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}
