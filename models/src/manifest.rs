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
/// Latent diffusion's second graph: the autoencoder's decoder, `z → x`.
pub const DECODER_FILE: &str = "decoder.onnx";
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
    "Div",
    "Flatten",
    "Gemm",
    "LeakyRelu",
    "MatMul",
    "Mul",
    "ReduceMean",
    "ReduceSum",
    "Reshape",
    "Resize",
    "Sigmoid",
    "Sin",
    "Slice",
    "Softmax",
    "Sqrt",
    "Sub",
    "Tanh",
    "Transpose",
];

/// Operators a bundle's graph may use besides [`EXPORTED_OPS`]: synth-train does not write them,
/// but they only pass values through or combine tensors that already exist, and hand-built test
/// graphs use them. A `Constant`'s value counts against the constants' memory budget like an
/// initialiser.
pub const ACCEPTED_EXTRA_OPS: &[&str] = &["Constant", "Identity"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    Vae,
    Gan,
    Ddpm,
    /// Latent diffusion (images only): an autoencoder, and a DDPM in its latent space.
    Ldm,
}

impl Family {
    pub const ALL: [Family; 4] = [Family::Vae, Family::Gan, Family::Ddpm, Family::Ldm];

    pub fn as_str(self) -> &'static str {
        match self {
            Family::Vae => "vae",
            Family::Gan => "gan",
            Family::Ddpm => "ddpm",
            Family::Ldm => "ldm",
        }
    }

    /// Whether the family samples by diffusion (and so needs a noise schedule).
    pub fn is_diffusion(self) -> bool {
        matches!(self, Family::Ddpm | Family::Ldm)
    }

    /// Whether the family can model `modality` (latent diffusion is for images).
    pub fn supports(self, modality: Modality) -> bool {
        self != Family::Ldm || modality == Modality::Image
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
            "ldm" => Ok(Family::Ldm),
            other => {
                Err(Error::parameter("family", format!("`{other}`"), "one of vae, gan, ddpm, ldm"))
            }
        }
    }
}

/// How large the networks are, chosen with `synth-train fit --size` and recorded in the
/// manifest: `tiny` fits the CPU tests and the default study, `small` a laptop's afternoon,
/// `base` a CUDA workstation (images of 64×64 and above).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SizePreset {
    #[default]
    Tiny,
    Small,
    Base,
}

impl SizePreset {
    pub const ALL: [SizePreset; 3] = [SizePreset::Tiny, SizePreset::Small, SizePreset::Base];

    pub fn as_str(self) -> &'static str {
        match self {
            SizePreset::Tiny => "tiny",
            SizePreset::Small => "small",
            SizePreset::Base => "base",
        }
    }
}

impl fmt::Display for SizePreset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for SizePreset {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        SizePreset::ALL.into_iter().find(|size| size.as_str() == text).ok_or_else(|| {
            Error::parameter("size", format!("`{text}`"), "one of tiny, small, base")
        })
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

/// Latent diffusion's latent space and decoder (`ldm` only). The denoiser (`graph`) works on
/// standardised latents of width `dim`; `decoder.onnx` maps one back to an image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatentSpec {
    pub dim: usize,
    /// Per-dimension range of the train part's standardised latents: the sampler clips its
    /// prediction of the clean latent to it, as it clips pixels to [-1, 1].
    pub low: Vec<f32>,
    pub high: Vec<f32>,
    /// The decoder's inputs (`z [N, dim]`) and output (the image, as `graph.outputs` for the
    /// other families).
    pub decoder: GraphSpec,
    /// SHA-256 (hex) of `decoder.onnx`, checked before the model is loaded.
    pub decoder_sha256: String,
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
    /// The network size preset (`tiny` in bundles written before presets existed).
    #[serde(default)]
    pub size: SizePreset,
    pub modality: Modality,
    pub schema: Schema,
    /// The fitted transform, so samples decode exactly as the trainer encoded rows.
    pub transform: Encoder,
    pub graph: GraphSpec,
    /// The diffusion schedule (`ddpm` and `ldm`).
    pub schedule: Option<NoiseSchedule>,
    /// Classifier-free guidance scale `w` of a diffusion model trained with label dropout:
    /// the sampler uses `ε̂ = (1 + w) ε̂(x, y) − w ε̂(x, ∅)`, where `∅` is the all-zero label.
    /// `None` (or 0): the conditional prediction alone.
    #[serde(default)]
    pub guidance: Option<f64>,
    /// Latent diffusion's latent space and decoder (`ldm` only).
    #[serde(default)]
    pub latent: Option<LatentSpec>,
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
        match (self.family.is_diffusion(), &self.schedule) {
            (true, Some(schedule)) => schedule.validate(source, "schedule")?,
            (true, None) | (false, Some(_)) => {
                return fail(
                    "schedule",
                    "a noise schedule is required for ddpm and ldm, and only for them".to_owned(),
                );
            }
            (false, None) => {}
        }
        match self.guidance {
            Some(_) if !self.family.is_diffusion() => {
                return fail("guidance", "is only for ddpm and ldm".to_owned());
            }
            Some(scale) if !(0.0..=MAX_GUIDANCE).contains(&scale) => {
                return fail("guidance", format!("is {scale}; expected 0 to {MAX_GUIDANCE}"));
            }
            _ => {}
        }
        if !self.family.supports(self.modality) {
            return fail("family", format!("{} is for images only", self.family));
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
        match (self.family, &self.latent) {
            (Family::Ldm, Some(latent)) => return self.validate_latent(source, latent),
            (Family::Ldm, None) => {
                return Err(field_error(source, "latent", "is missing; it is required for ldm"));
            }
            (_, Some(_)) => {
                return Err(field_error(source, "latent", "is only for ldm"));
            }
            (_, None) => {}
        }
        let graph = &self.graph;
        let n_classes = self.n_classes();
        let output = single_output(source, "graph", graph)?;
        let sample_dims = self.sample_dims_of(source, "graph", output)?;
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
            Family::Ddpm | Family::Ldm => {
                if let Some(latent) = graph.latent_dim {
                    return Err(field_error(
                        source,
                        "graph.latent_dim",
                        format!("is {latent}; expected none for {}", self.family),
                    ));
                }
                vec![x_shape, vec![None, Some(1)], vec![None, Some(n_classes)]]
            }
        };
        self.check_inputs(source, "graph", graph, &expected_inputs)
    }

    /// Latent diffusion: the denoiser `(x_t [N, L], t, y) → eps [N, L]`, the decoder
    /// `z [N, L] → x` with the image's shape, a clip range per latent dimension.
    fn validate_latent(&self, source: &Source, latent: &LatentSpec) -> Result<()> {
        let dim = latent.dim;
        if !(1..=MAX_LATENT_DIM).contains(&dim) {
            return Err(field_error(
                source,
                "latent.dim",
                format!("is {dim}; expected 1 to {MAX_LATENT_DIM}"),
            ));
        }
        for (field, values) in [("latent.low", &latent.low), ("latent.high", &latent.high)] {
            if values.len() != dim {
                return Err(field_error(
                    source,
                    field,
                    format!("has {} entries; expected latent.dim = {dim}", values.len()),
                ));
            }
        }
        if let Some(idx) = (0..dim).find(|&idx| {
            let (low, high) = (latent.low[idx], latent.high[idx]);
            !(low.is_finite() && high.is_finite() && low < high && high - low <= MAX_LATENT_RANGE)
        }) {
            return Err(field_error(
                source,
                &format!("latent.low[{idx}]"),
                format!(
                    "and latent.high[{idx}] are {} and {}; expected finite numbers with low < high, at most {MAX_LATENT_RANGE} apart",
                    latent.low[idx], latent.high[idx]
                ),
            ));
        }
        if latent.decoder_sha256.len() != 64
            || !latent.decoder_sha256.bytes().all(|byte| byte.is_ascii_hexdigit())
        {
            return Err(field_error(
                source,
                "latent.decoder_sha256",
                "is not a 64-digit hex SHA-256",
            ));
        }
        let n_classes = self.n_classes();
        let graph = &self.graph;
        let output = single_output(source, "graph", graph)?;
        if output.shape != [None, Some(dim)] || graph.latent_dim.is_some() {
            return Err(field_error(
                source,
                "graph.outputs[0].shape",
                format!(
                    "is {}; expected [N, {dim}] (the latent noise prediction) and no graph.latent_dim",
                    describe_shape(&output.shape)
                ),
            ));
        }
        let latent_shape = vec![None, Some(dim)];
        self.check_inputs(
            source,
            "graph",
            graph,
            &[latent_shape.clone(), vec![None, Some(1)], vec![None, Some(n_classes)]],
        )?;
        let decoder = &latent.decoder;
        let decoded = single_output(source, "latent.decoder", decoder)?;
        self.sample_dims_of(source, "latent.decoder", decoded)?;
        if decoder.latent_dim.is_some_and(|latent_dim| latent_dim != dim) {
            return Err(field_error(
                source,
                "latent.decoder.latent_dim",
                format!("differs from latent.dim ({dim})"),
            ));
        }
        self.check_inputs(source, "latent.decoder", decoder, &[latent_shape])
    }

    /// The graph's inputs, in order, have the `expected` shapes; every input and output name
    /// is unique; the opset is in range.
    fn check_inputs(
        &self,
        source: &Source,
        field: &str,
        graph: &GraphSpec,
        expected_inputs: &[Vec<Option<usize>>],
    ) -> Result<()> {
        if !(1..=MAX_OPSET).contains(&graph.opset) {
            return Err(field_error(
                source,
                &format!("{field}.opset"),
                format!("is {}; expected 1 to {MAX_OPSET}", graph.opset),
            ));
        }
        if graph.inputs.len() != expected_inputs.len() {
            return Err(field_error(
                source,
                &format!("{field}.inputs"),
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
            &format!("{field}.inputs"),
            graph.inputs.iter().chain(&graph.outputs).map(|spec| &spec.name),
            usize::MAX,
        )?;
        for (idx, (input, expected)) in graph.inputs.iter().zip(expected_inputs).enumerate() {
            if input.shape != *expected {
                return Err(field_error(
                    source,
                    &format!("{field}.inputs[{idx}].shape"),
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

    /// The per-sample dimensions of a graph's output that is the sample itself.
    fn sample_dims_of(
        &self,
        source: &Source,
        field: &str,
        output: &TensorSpec,
    ) -> Result<Vec<usize>> {
        self.valid_sample_dims(&output.shape).ok_or_else(|| {
            field_error(
                source,
                &format!("{field}.outputs[0].shape"),
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
        })
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
/// The widest latent input a VAE or GAN manifest may declare, and the widest latent space of
/// latent diffusion.
pub const MAX_LATENT_DIM: usize = 65_536;
/// The largest classifier-free guidance scale a manifest may ask for.
pub const MAX_GUIDANCE: f64 = 20.0;
/// The widest clip range of one standardised latent dimension.
pub const MAX_LATENT_RANGE: f32 = 1.0e4;
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

/// The one output of a graph.
fn single_output<'a>(source: &Source, field: &str, graph: &'a GraphSpec) -> Result<&'a TensorSpec> {
    match graph.outputs.as_slice() {
        [output] => Ok(output),
        outputs => Err(field_error(
            source,
            &format!("{field}.outputs"),
            format!("has {} entries; expected exactly one", outputs.len()),
        )),
    }
}

fn describe_shape(shape: &[Option<usize>]) -> String {
    let dims: Vec<String> =
        shape.iter().map(|dim| dim.map_or_else(|| "N".to_owned(), |dim| dim.to_string())).collect();
    format!("[{}]", dims.join(", "))
}
