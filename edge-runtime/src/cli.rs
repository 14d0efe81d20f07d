//! The command line of `synth-edge`, as clap types; each subcommand's logic is in `commands/`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::commands;
use crate::engine::EngineKind;
use crate::metrics::{intervals, knn};
use crate::sampler::SamplerKind;

#[derive(Debug, Parser)]
#[command(
    name = "synth-edge",
    version,
    about = "Generate, assess, log and sync synthetic data on the device, offline"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate samples from a bundle and write them as CSV (tables) or PNGs (images).
    Generate(GenerateArgs),
    /// Measure sampling speed and memory of a bundle at batch 1 and 256.
    Bench(BenchArgs),
    /// Assess synthetic data against real data on six axes (fidelity, diversity, efficiency,
    /// utility, robustness, privacy), with 95 % intervals.
    Evaluate(EvaluateArgs),
    /// Push unsynced logbook rows to a hub over HTTP, or write them as batch files to a folder.
    Sync(commands::sync::SyncArgs),
    /// Run a hub (serve devices' syncs over HTTP) or import batch files into one.
    Hub(commands::hub::HubArgs),
    /// List recent runs and their headline figures from a logbook.
    Log(commands::log::LogArgs),
    /// List every figure the assessment, generation, bench and study report: axis, direction,
    /// whether a release policy may bound it, what it measures.
    Metrics(commands::metrics::MetricsArgs),
    /// Moved: the study report is `synth-train report` on the workstation.
    #[command(hide = true)]
    Report(MovedArgs),
}

/// Whatever was given to a command that moved.
#[derive(Debug, Args)]
pub struct MovedArgs {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    pub args: Vec<String>,
}

/// How to run a bundle.
#[derive(Debug, Args, Clone)]
pub struct EngineArgs {
    /// Inference engine: tract (built in), or ONNX Runtime on its CPU, CUDA or TensorRT provider:
    /// ort, ort-cuda, ort-tensorrt (needs --features ort and ORT_DYLIB_PATH naming a library
    /// with that provider).
    #[arg(long, default_value = "tract", value_parser = parse_engine)]
    pub engine: EngineKind,
    /// Worker threads for inference, 0 to 1024 (0: all cores).
    #[arg(long, default_value_t = 0, value_parser = count_in::<0, MAX_THREADS>)]
    pub threads: usize,
}

/// How to sample from a bundle.
#[derive(Debug, Args, Clone)]
pub struct SamplingArgs {
    /// Diffusion sampling steps, at most the bundle's training steps (default: all training
    /// steps for ddpm, 50 for ddim).
    #[arg(long, value_parser = count_in::<1, MAX_STEPS>)]
    pub steps: Option<usize>,
    /// Diffusion sampler.
    #[arg(long, default_value = "ddpm", value_parser = parse_sampler)]
    pub sampler: SamplerKind,
    /// Samples per engine call, 1 to 65536.
    #[arg(long, default_value_t = 256, value_parser = count_in::<1, MAX_BATCH>)]
    pub batch: usize,
    /// Classifier-free guidance scale w, 0 to 20, for image diffusion bundles trained for it
    /// (default: the bundle's own, 1): higher follows the class more closely, at some cost in
    /// diversity; 0 is the conditional prediction alone.
    #[arg(long, value_parser = parse_guidance)]
    pub guidance: Option<f64>,
    #[command(flatten)]
    pub engine: EngineArgs,
}

/// Which bundles to accept.
#[derive(Debug, Args, Clone, Default)]
pub struct TrustArgs {
    /// Accept only bundles signed by this public key (`trainer.pub` from `synth-train keygen`);
    /// repeat to trust several, e.g. the old and the new key while rotating. Without it, any
    /// bundle with an intact seal is accepted.
    #[arg(long = "trust", value_name = "FILE", requires = "model")]
    pub trust: Vec<PathBuf>,
}

impl TrustArgs {
    /// What a bundle must show: the keys read from their files, or an intact seal alone.
    pub fn to_trust(&self) -> crate::Result<crate::bundle::Trust> {
        if self.trust.is_empty() {
            return Ok(crate::bundle::Trust::Sealed);
        }
        let keys = self
            .trust
            .iter()
            .map(|path| crate::keys::PublicKey::read(path))
            .collect::<crate::Result<_>>()?;
        Ok(crate::bundle::Trust::SignedBy(keys))
    }
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// The bundle folder (model.onnx + manifest.json).
    #[arg(long)]
    pub model: PathBuf,
    /// Number of samples, 1 to 10,000,000 (and as many as fit the memory budget).
    #[arg(long, value_parser = count_in::<1, MAX_SAMPLES>)]
    pub n: usize,
    /// Output: a CSV for tables; for images a folder of PNGs (or a .csv of pixels).
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Generate only this class (by name).
    #[arg(long, conflicts_with = "balanced")]
    pub class: Option<String>,
    /// Equal counts per class (default: the train part's class proportions).
    #[arg(long)]
    pub balanced: bool,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    #[command(flatten)]
    pub trust: TrustArgs,
    /// Release gate: a policy (TOML, e.g. `max_mia_auc = 0.6`) the batch must pass against the
    /// real data given with --real; otherwise nothing is written and the exit code is 3.
    #[arg(long, requires = "real")]
    pub gate: Option<PathBuf>,
    /// The real data the model was trained on (for --gate): the bundle's split is re-derived.
    #[arg(long)]
    pub real: Option<PathBuf>,
    /// The real hold-out, instead of the one re-derived from --real; needed for a bundle trained
    /// on every row (`synth-train fit --holdout 0`).
    #[arg(long, requires = "real")]
    pub real_holdout: Option<PathBuf>,
    /// Log the run, its throughput and any gate figures in this logbook (created if missing).
    #[arg(long)]
    pub db: Option<PathBuf>,
    /// Also write the samples in the model's encoded space, before decoding and rounding, as JSON
    /// (`{"width": W, "labels": [...], "rows": [[...], ...]}`): to compare builds or engines.
    #[arg(long)]
    pub encoded_out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct EvaluateArgs {
    /// Generate from this bundle (with --real).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// The real data the bundle was trained on; its train / hold-out split is re-derived.
    #[arg(long)]
    pub real: Option<PathBuf>,
    /// Samples to generate (with --model), 1 to 10,000,000.
    #[arg(long, default_value_t = 1000, value_parser = count_in::<1, MAX_SAMPLES>)]
    pub n: usize,
    /// The real train part (what the generator learnt from).
    #[arg(long)]
    pub real_train: Option<PathBuf>,
    /// The real hold-out (never trained on). With --model --real: instead of the hold-out
    /// re-derived from --real (needed for a bundle trained with `synth-train fit --holdout 0`).
    #[arg(long)]
    pub real_holdout: Option<PathBuf>,
    /// Synthetic data made by anything: a CSV like the real ones, or an image folder.
    #[arg(long)]
    pub synthetic: Option<PathBuf>,
    /// The label column of the CSVs.
    #[arg(long)]
    pub label: Option<String>,
    /// Read CSVs as flattened images of this shape (HxW or HxWxC).
    #[arg(long, value_parser = parse_image_shape)]
    pub image_shape: Option<models::ImageShape>,
    /// Seed of generation, bootstrap resampling and every randomised figure.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Neighbours of the k-NN figures, 1 to 16 (and fewer than the rows of each set).
    #[arg(long, default_value_t = 5, value_parser = count_in::<1, { knn::MAX_K }>)]
    pub k: usize,
    /// Bootstrap replicates per interval, 1 to 100,000.
    #[arg(
        long,
        default_value_t = 200,
        value_parser = count_in::<1, { intervals::MAX_REPLICATES }>
    )]
    pub bootstrap: usize,
    /// Write the figures as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Log the run and its figures in this logbook (created if missing).
    #[arg(long)]
    pub db: Option<PathBuf>,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    #[command(flatten)]
    pub trust: TrustArgs,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[arg(long)]
    pub model: PathBuf,
    #[command(flatten)]
    pub engine: EngineArgs,
    #[command(flatten)]
    pub trust: TrustArgs,
    /// Write the results as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Timed repetitions per configuration, 1 to 10,000 (timing stops after about two seconds
    /// once three are done).
    #[arg(long, default_value_t = 50, value_parser = count_in::<1, MAX_REPEATS>)]
    pub repeats: usize,
    /// Diffusion step counts to measure, at most 16 of them (default: 10, 50 and all training
    /// steps; each is capped at the training steps).
    #[arg(long, value_delimiter = ',', value_parser = count_in::<1, MAX_STEPS>)]
    pub steps: Option<Vec<usize>>,
    /// Log the run and its figures in this logbook (created if missing).
    #[arg(long)]
    pub db: Option<PathBuf>,
}

/// The most samples one command generates; the sampler also bounds them by memory.
pub const MAX_SAMPLES: usize = 10_000_000;
/// The most inference worker threads.
pub const MAX_THREADS: usize = 1024;
/// The most samples per engine call.
pub const MAX_BATCH: usize = 65_536;
/// The most diffusion sampling steps a flag may ask for: the most a manifest may hold (a
/// bundle's own count bounds it further).
pub use models::schedule::MAX_STEPS;
/// The most timed repetitions per benchmark configuration.
pub const MAX_REPEATS: usize = 10_000;
/// The most step counts one benchmark measures.
pub const MAX_BENCH_STEP_COUNTS: usize = 16;

/// A whole-number flag value in `MIN..=MAX`. clap names the flag and the value in its message;
/// this says what it accepts.
pub fn count_in<const MIN: usize, const MAX: usize>(text: &str) -> Result<usize, String> {
    let expected = || format!("expected a whole number from {MIN} to {MAX}");
    let value: usize = text.trim().parse().map_err(|_| expected())?;
    if (MIN..=MAX).contains(&value) { Ok(value) } else { Err(expected()) }
}

fn parse_engine(text: &str) -> Result<EngineKind, String> {
    text.parse().map_err(|err: crate::Error| err.to_string())
}

/// `HxW` or `HxWxC`, each side from 1 to [`MAX_IMAGE_SIDE`](models::image::MAX_IMAGE_SIDE).
pub fn parse_image_shape(text: &str) -> Result<models::ImageShape, String> {
    text.parse().map_err(|err: models::Error| err.to_string())
}

fn parse_guidance(text: &str) -> Result<f64, String> {
    let max = models::manifest::MAX_GUIDANCE;
    match text.trim().parse::<f64>() {
        Ok(scale) if (0.0..=max).contains(&scale) => Ok(scale),
        _ => Err(format!("expected a number from 0 to {max}")),
    }
}

fn parse_sampler(text: &str) -> Result<SamplerKind, String> {
    text.parse().map_err(|err: crate::Error| err.to_string())
}

pub fn run() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    match cli.command {
        Command::Generate(args) => commands::generate::run(&args),
        Command::Bench(args) => commands::bench::run(&args),
        Command::Evaluate(args) => commands::evaluate::run(&args),
        Command::Sync(args) => commands::sync::run(&args),
        Command::Hub(args) => commands::hub::run(&args),
        Command::Log(args) => commands::log::run(&args),
        Command::Metrics(args) => commands::metrics::run(&args),
        Command::Report(_) => anyhow::bail!(
            "the study report is built on the workstation now (it draws charts the field binary \
             does not carry): run `synth-train report --db DIR/study.sqlite --out DIR/report`"
        ),
    }
}
