//! The bundle manifest (`manifest.json`): everything the edge needs to run and decode a model,
//! and nothing it has to guess. Versioned: a manifest from a newer format is refused with a
//! clear message rather than half-understood.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result, Source};
use crate::image::ImageShape;
use crate::schedule::NoiseSchedule;
use crate::split::SplitSpec;
use crate::table::{ColumnKind, MissingPolicy};
use crate::transform::Encoder;

/// The manifest format this build writes and the newest it reads.
pub const FORMAT_VERSION: u32 = 1;

pub const MANIFEST_FILE: &str = "manifest.json";
pub const MODEL_FILE: &str = "model.onnx";
pub const WEIGHTS_FILE: &str = "weights.safetensors";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    Vae,
    Gan,
    Ddpm,
}

impl Family {
    pub const ALL: [Family; 3] = [Family::Vae, Family::Gan, Family::Ddpm];

    pub fn as_str(self) -> &'static str {
        match self {
            Family::Vae => "vae",
            Family::Gan => "gan",
            Family::Ddpm => "ddpm",
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Family {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        match text {
            "vae" => Ok(Family::Vae),
            "gan" => Ok(Family::Gan),
            "ddpm" => Ok(Family::Ddpm),
            other => Err(Error::parameter("family", format!("`{other}`"), "one of vae, gan, ddpm")),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Modality {
    Tabular,
    Image,
}

/// The data schema: the original columns (label included, in file order) or the image shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Schema {
    pub label: String,
    pub classes: Vec<String>,
    /// Tabular: every column of the original header, in order; the label has `kind: "label"`.
    pub columns: Vec<SchemaColumn>,
    pub image: Option<ImageShape>,
    pub missing: MissingPolicy,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SchemaColumn {
    pub name: String,
    pub kind: SchemaKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SchemaKind {
    Numeric,
    Categorical,
    Label,
}

impl From<ColumnKind> for SchemaKind {
    fn from(kind: ColumnKind) -> Self {
        match kind {
            ColumnKind::Numeric => SchemaKind::Numeric,
            ColumnKind::Categorical => SchemaKind::Categorical,
        }
    }
}

/// A graph input or output: name and shape, `None` for the symbolic batch dimension `N`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TensorSpec {
    pub name: String,
    pub shape: Vec<Option<usize>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GraphSpec {
    pub inputs: Vec<TensorSpec>,
    pub outputs: Vec<TensorSpec>,
    /// Width of the latent noise `z` (VAE, GAN); `None` for diffusion.
    pub latent_dim: Option<usize>,
    pub opset: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// SHA-256 of the whole source dataset as parsed.
    pub dataset_fingerprint: String,
    /// File or folder name of the source dataset (no directory: paths differ between machines).
    pub dataset_name: String,
    pub split: SplitSpec,
    pub n_train: usize,
    pub n_holdout: usize,
    /// Rows per class in the train part the model saw, in class order: the proportions
    /// `generate` reproduces unless asked for one class or a balanced batch.
    pub train_class_counts: Vec<usize>,
    /// Seed of weight initialisation, batching and training noise.
    pub train_seed: u64,
    pub epochs: usize,
    pub final_loss: f64,
    pub wall_time_s: f64,
    pub device: String,
    pub trainer_version: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format_version: u32,
    pub family: Family,
    pub modality: Modality,
    pub schema: Schema,
    /// The fitted transform, so samples decode exactly as the trainer encoded rows.
    pub transform: Encoder,
    pub graph: GraphSpec,
    /// The diffusion schedule (`ddpm` only).
    pub schedule: Option<NoiseSchedule>,
    pub provenance: Provenance,
    /// SHA-256 (hex) of `model.onnx`, checked before the model is loaded.
    pub model_sha256: String,
    /// Free-form description of the network (layer widths), for people.
    pub architecture: String,
}

impl Manifest {
    pub fn n_classes(&self) -> usize {
        self.schema.classes.len()
    }

    pub fn to_json(&self) -> String {
        // Serialising plain data with string keys cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Parses a manifest, refusing one from a newer format version before reading further.
    pub fn from_json(text: &str, source: impl Into<Source>) -> Result<Manifest> {
        let source = source.into();
        let value: serde_json::Value = serde_json::from_str(text)
            .map_err(|err| Error::parse(source.clone(), "not valid JSON", err))?;
        let version =
            value.get("format_version").and_then(serde_json::Value::as_u64).ok_or_else(|| {
                Error::Format {
                    at: source.clone(),
                    message:
                        "has no numeric `format_version`; expected a fieldsynth bundle manifest"
                            .to_owned(),
                }
            })?;
        if version > u64::from(FORMAT_VERSION) {
            return Err(Error::NewerManifest {
                at: source,
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        let manifest: Manifest = serde_json::from_value(value)
            .map_err(|err| Error::parse(source.clone(), "invalid manifest", err))?;
        manifest.validate(&source)?;
        Ok(manifest)
    }

    /// Checks that the parts agree with each other.
    fn validate(&self, source: &Source) -> Result<()> {
        let fail = |message: String| Err(Error::Format { at: source.clone(), message });
        if self.schema.classes.is_empty() {
            return fail("schema.classes is empty; expected at least one class".to_owned());
        }
        match (self.modality, &self.transform, self.schema.image) {
            (Modality::Tabular, Encoder::Tabular(_), None)
            | (Modality::Image, Encoder::Image(_), Some(_)) => {}
            _ => {
                return fail(format!(
                    "modality {:?} does not match the transform and schema",
                    self.modality
                ));
            }
        }
        if (self.family == Family::Ddpm) != self.schedule.is_some() {
            return fail("a noise schedule is required for ddpm and only for ddpm".to_owned());
        }
        if self.family != Family::Ddpm && self.graph.latent_dim.is_none() {
            return fail(format!("graph.latent_dim is required for {}", self.family));
        }
        if self.model_sha256.len() != 64
            || !self.model_sha256.bytes().all(|byte| byte.is_ascii_hexdigit())
        {
            return fail("model_sha256 is not a 64-digit hex SHA-256".to_owned());
        }
        Ok(())
    }
}
