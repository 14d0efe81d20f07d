//! The bundle manifest (`manifest.json`): everything the edge needs to run and decode a model,
//! and nothing it has to guess. Versioned: a manifest from a newer format is refused with a
//! clear message rather than half-understood. A manifest is data from outside: every value is
//! checked against its bounds and the parts against each other ([`Manifest::validate`]) before
//! anything sizes a buffer, a loop or a file name by it.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result, Source};
use crate::image::ImageShape;
use crate::schedule::NoiseSchedule;
use crate::split::SplitSpec;
use crate::table::{ColumnKind, MissingPolicy};
use crate::transform::{ColumnEncoder, Encoder};

/// The manifest format this build writes and the newest it reads.
pub const FORMAT_VERSION: u32 = 1;

pub const MANIFEST_FILE: &str = "manifest.json";
pub const MODEL_FILE: &str = "model.onnx";
pub const WEIGHTS_FILE: &str = "weights.safetensors";
/// The seal: the SHA-256 of every other file of the bundle, one digest over them, and an
/// optional ed25519 signature of that digest (see `edge_runtime::bundle`).
pub const SEAL_FILE: &str = "seal.json";

/// The ONNX operators (default domain, opset 17) that synth-train's exporter writes into
/// `model.onnx`, and so the only ones a bundle's graph needs. The edge runtime refuses a graph
/// using any other operator or domain before an engine sees it: operators that build tensors from
/// tiny constants or run-time shapes (`Expand`, `Tile`, `Range`, `ConstantOfShape`, `Shape`) and
/// control flow (`If`, `Loop`, `Scan`) are how a small file asks an engine for gigabytes. The
/// trainer's tests check that every node it exports is listed here; add an operator here when
/// the exporter starts writing it.
pub const EXPORTED_OPS: &[&str] = &[
    "Add",
    "Concat",
    "Conv",
    "Cos",
    "Flatten",
    "Gemm",
    "LeakyRelu",
    "Mul",
    "ReduceSum",
    "Reshape",
    "Resize",
    "Sigmoid",
    "Sin",
    "Slice",
    "Softmax",
    "Tanh",
];

/// Operators a bundle's graph may use besides [`EXPORTED_OPS`]: synth-train does not write them,
/// but they only pass values through or combine tensors that already exist, and hand-built test
/// graphs use them. A `Constant`'s value counts against the constants' memory budget like an
/// initialiser.
pub const ACCEPTED_EXTRA_OPS: &[&str] = &["Constant", "Identity", "MatMul"];

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

    /// Checks every value against its bounds and the parts against each other, so that nothing
    /// downstream (sampling, decoding, writing files) can be driven out of range by a manifest.
    /// Errors name `source` and the field path, e.g. `transform.columns[3].categories`.
    pub fn validate(&self, source: &Source) -> Result<()> {
        let fail = |field: &str, message: String| Err(field_error(source, field, message));
        if self.schema.classes.is_empty() {
            return fail("schema.classes", "is empty; expected at least one class".to_owned());
        }
        validate_names(source, "schema.classes", self.schema.classes.iter(), MAX_CLASSES)?;
        if self.schema.label.is_empty() {
            return fail("schema.label", "is empty; expected the label column's name".to_owned());
        }
        match (self.modality, &self.transform, self.schema.image) {
            (Modality::Tabular, Encoder::Tabular(_), None)
            | (Modality::Image, Encoder::Image(_), Some(_)) => {}
            _ => {
                return fail(
                    "modality",
                    format!("{:?} does not match the transform and schema", self.modality),
                );
            }
        }
        self.transform.validate(source, "transform")?;
        if let Some(shape) = self.schema.image {
            shape.validate(source, "schema.image")?;
        }
        self.validate_schema_columns(source)?;
        let n_classes = self.n_classes();
        let counts = &self.provenance.train_class_counts;
        if counts.len() != n_classes {
            return fail(
                "provenance.train_class_counts",
                format!("has {} entries; expected one per class ({n_classes})", counts.len()),
            );
        }
        let split = &self.provenance.split;
        if let Err(err) = SplitSpec::new(split.seed, split.holdout, split.fraction) {
            return fail("provenance.split", format!("is out of range: {err}"));
        }
        match (self.family, &self.schedule) {
            (Family::Ddpm, Some(schedule)) => schedule.validate(source, "schedule")?,
            (Family::Ddpm, None) | (Family::Vae | Family::Gan, Some(_)) => {
                return fail(
                    "schedule",
                    "a noise schedule is required for ddpm and only for ddpm".to_owned(),
                );
            }
            (Family::Vae | Family::Gan, None) => {}
        }
        self.validate_graph(source)?;
        if self.model_sha256.len() != 64
            || !self.model_sha256.bytes().all(|byte| byte.is_ascii_hexdigit())
        {
            return fail("model_sha256", "is not a 64-digit hex SHA-256".to_owned());
        }
        Ok(())
    }

    /// The schema's columns: names unique; for a table, the transform's columns in order with
    /// one label column in between; for a pixel CSV, one column per pixel plus the label.
    fn validate_schema_columns(&self, source: &Source) -> Result<()> {
        let field = "schema.columns";
        let columns = &self.schema.columns;
        validate_names(source, field, columns.iter().map(|column| &column.name), usize::MAX)?;
        let labels: Vec<usize> = columns
            .iter()
            .enumerate()
            .filter(|(_, column)| column.kind == SchemaKind::Label)
            .map(|(idx, _)| idx)
            .collect();
        let label_is_named =
            |idx: &usize| columns.get(*idx).is_some_and(|column| column.name == self.schema.label);
        let one_label = labels.len() == 1 && labels.first().is_some_and(label_is_named);
        match &self.transform {
            Encoder::Tabular(encoder) => {
                if !one_label {
                    return Err(field_error(
                        source,
                        field,
                        format!(
                            "expected exactly one column of kind `label`, named `{}` like schema.label",
                            self.schema.label
                        ),
                    ));
                }
                let features: Vec<(&str, SchemaKind)> = columns
                    .iter()
                    .filter(|column| column.kind != SchemaKind::Label)
                    .map(|column| (column.name.as_str(), column.kind))
                    .collect();
                let expected: Vec<(&str, SchemaKind)> = encoder
                    .columns
                    .iter()
                    .map(|column| match column {
                        ColumnEncoder::Numeric { name, .. } => (name.as_str(), SchemaKind::Numeric),
                        ColumnEncoder::Categorical { name, .. } => {
                            (name.as_str(), SchemaKind::Categorical)
                        }
                    })
                    .collect();
                if features != expected {
                    return Err(field_error(
                        source,
                        field,
                        "the feature columns (names and kinds, in order) differ from transform.columns"
                            .to_owned(),
                    ));
                }
            }
            Encoder::Image(encoder) => {
                if self.schema.image != Some(encoder.shape) {
                    return Err(field_error(
                        source,
                        "schema.image",
                        format!("differs from transform.shape ({})", encoder.shape),
                    ));
                }
                let n_values = encoder.shape.n_values();
                if !columns.is_empty() && (columns.len() != n_values + 1 || !one_label) {
                    return Err(field_error(
                        source,
                        field,
                        format!(
                            "has {} entries; expected none (an image folder) or {n_values} pixel columns and one label column named `{}` (a pixel CSV)",
                            columns.len(),
                            self.schema.label
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The graph's inputs and outputs have the shapes the sampler feeds and reads: `(z, y) → x`
    /// for VAE and GAN, `(x_t, t, y) → eps` for DDPM, the batch dimension symbolic.
    fn validate_graph(&self, source: &Source) -> Result<()> {
        let graph = &self.graph;
        let n_classes = self.n_classes();
        if !(1..=MAX_OPSET).contains(&graph.opset) {
            return Err(field_error(
                source,
                "graph.opset",
                format!("is {}; expected 1 to {MAX_OPSET}", graph.opset),
            ));
        }
        let [output] = graph.outputs.as_slice() else {
            return Err(field_error(
                source,
                "graph.outputs",
                format!("has {} entries; expected exactly one", graph.outputs.len()),
            ));
        };
        let sample_dims = self.valid_sample_dims(&output.shape).ok_or_else(|| {
            field_error(
                source,
                "graph.outputs[0].shape",
                format!(
                    "is {}; expected [N, {}]{}",
                    describe_shape(&output.shape),
                    self.transform.width(),
                    match &self.transform {
                        Encoder::Image(encoder) => format!(
                            " or [N, {}, {}, {}]",
                            encoder.shape.channels, encoder.shape.height, encoder.shape.width
                        ),
                        Encoder::Tabular(_) => String::new(),
                    }
                ),
            )
        })?;
        let mut x_shape = vec![None];
        x_shape.extend(sample_dims.iter().map(|&dim| Some(dim)));
        let expected_inputs: Vec<Vec<Option<usize>>> = match self.family {
            Family::Vae | Family::Gan => {
                let latent = match graph.latent_dim {
                    Some(latent) if (1..=MAX_LATENT_DIM).contains(&latent) => latent,
                    Some(latent) => {
                        return Err(field_error(
                            source,
                            "graph.latent_dim",
                            format!("is {latent}; expected 1 to {MAX_LATENT_DIM}"),
                        ));
                    }
                    None => {
                        return Err(field_error(
                            source,
                            "graph.latent_dim",
                            format!("is missing; it is required for {}", self.family),
                        ));
                    }
                };
                vec![vec![None, Some(latent)], vec![None, Some(n_classes)]]
            }
            Family::Ddpm => {
                if let Some(latent) = graph.latent_dim {
                    return Err(field_error(
                        source,
                        "graph.latent_dim",
                        format!("is {latent}; expected none for ddpm"),
                    ));
                }
                vec![x_shape, vec![None, Some(1)], vec![None, Some(n_classes)]]
            }
        };
        if graph.inputs.len() != expected_inputs.len() {
            return Err(field_error(
                source,
                "graph.inputs",
                format!(
                    "has {} entries; expected {} for {}",
                    graph.inputs.len(),
                    expected_inputs.len(),
                    self.family
                ),
            ));
        }
        validate_names(
            source,
            "graph.inputs",
            graph.inputs.iter().chain(&graph.outputs).map(|spec| &spec.name),
            usize::MAX,
        )?;
        for (idx, (input, expected)) in graph.inputs.iter().zip(&expected_inputs).enumerate() {
            if input.shape != *expected {
                return Err(field_error(
                    source,
                    &format!("graph.inputs[{idx}].shape"),
                    format!(
                        "is {}; expected {} for {}",
                        describe_shape(&input.shape),
                        describe_shape(expected),
                        self.family
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The per-sample dimensions of `shape` (`[N, ...]`) when they fit the transform: `[width]`,
    /// or for images also `[C, H, W]`.
    fn valid_sample_dims(&self, shape: &[Option<usize>]) -> Option<Vec<usize>> {
        let (None, rest) = shape.split_first()? else {
            return None;
        };
        let dims: Vec<usize> = rest.iter().copied().collect::<Option<_>>()?;
        let width = self.transform.width();
        let fits = match &self.transform {
            Encoder::Tabular(_) => dims == [width],
            Encoder::Image(encoder) => {
                let image = encoder.shape;
                dims == [width] || dims == [image.channels, image.height, image.width]
            }
        };
        fits.then_some(dims)
    }
}

/// The most classes a manifest may name.
pub const MAX_CLASSES: usize = 65_536;
/// The widest latent input a VAE or GAN manifest may declare.
pub const MAX_LATENT_DIM: usize = 65_536;
/// The newest ONNX opset a manifest may name (ONNX is at 23 in 2025).
pub const MAX_OPSET: i64 = 100;
/// The longest class, column or category name, in bytes.
pub const MAX_NAME_BYTES: usize = 1024;

/// An [`Error::Format`] for the manifest `source` at `field`.
pub(crate) fn field_error(source: &Source, field: &str, message: impl fmt::Display) -> Error {
    Error::Format { at: source.clone(), message: format!("{field} {message}") }
}

/// Names (classes, columns, categories) must be non-empty, at most [`MAX_NAME_BYTES`] long and
/// unique; at most `max_count` of them.
pub(crate) fn validate_names<'a>(
    source: &Source,
    field: &str,
    names: impl Iterator<Item = &'a String>,
    max_count: usize,
) -> Result<()> {
    let mut seen = std::collections::HashSet::new();
    for (idx, name) in names.enumerate() {
        if idx >= max_count {
            return Err(field_error(source, field, format!("has more than {max_count} entries")));
        }
        let at = format!("{field}[{idx}]");
        if name.is_empty() {
            return Err(field_error(source, &at, "is empty; expected a name"));
        }
        if name.len() > MAX_NAME_BYTES {
            return Err(field_error(
                source,
                &at,
                format!("is {} bytes long; expected at most {MAX_NAME_BYTES}", name.len()),
            ));
        }
        if !seen.insert(name.as_str()) {
            return Err(field_error(
                source,
                &at,
                format!("`{name}` appears twice; expected unique names"),
            ));
        }
    }
    Ok(())
}

fn describe_shape(shape: &[Option<usize>]) -> String {
    let dims: Vec<String> =
        shape.iter().map(|dim| dim.map_or_else(|| "N".to_owned(), |dim| dim.to_string())).collect();
    format!("[{}]", dims.join(", "))
}
