//! The command line of `synth-edge`, as clap types; each subcommand's logic is in `commands/`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::commands;
use crate::engine::EngineKind;
use crate::sampler::SamplerKind;

#[derive(Debug, Parser)]
#[command(name = "synth-edge", version, about = "Generate, assess, log and sync synthetic data on the device, offline")]
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
    /// Push unsynced logbook rows to a hub over HTTP, or write them as batch files to a folder.
    Sync(commands::sync::SyncArgs),
    /// Run a hub (serve devices' syncs over HTTP) or import batch files into one.
    Hub(commands::hub::HubArgs),
    /// List recent runs and their headline figures from a logbook.
    Log(commands::log::LogArgs),
}

/// How to run a bundle.
#[derive(Debug, Args, Clone)]
pub struct EngineArgs {
    /// Inference engine: tract (built in) or ort (ONNX Runtime, needs --features ort and ORT_DYLIB_PATH).
    #[arg(long, default_value = "tract", value_parser = parse_engine)]
    pub engine: EngineKind,
    /// Worker threads for inference (0: all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// The bundle folder (model.onnx + manifest.json).
    #[arg(long)]
    pub model: PathBuf,
    /// Number of samples.
    #[arg(long)]
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
    /// Diffusion sampling steps (default: all training steps for ddpm, 50 for ddim).
    #[arg(long)]
    pub steps: Option<usize>,
    /// Diffusion sampler.
    #[arg(long, default_value = "ddpm", value_parser = parse_sampler)]
    pub sampler: SamplerKind,
    /// Samples per engine call.
    #[arg(long, default_value_t = 256)]
    pub batch: usize,
    #[command(flatten)]
    pub engine: EngineArgs,
    /// Log the run and its throughput in this logbook (created if missing).
    #[arg(long)]
    pub db: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[arg(long)]
    pub model: PathBuf,
    #[command(flatten)]
    pub engine: EngineArgs,
    /// Write the results as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Timed repetitions per configuration.
    #[arg(long, default_value_t = 50)]
    pub repeats: usize,
    /// Diffusion step counts to measure (default: 10, 50 and all training steps).
    #[arg(long, value_delimiter = ',')]
    pub steps: Option<Vec<usize>>,
    /// Log the run and its figures in this logbook (created if missing).
    #[arg(long)]
    pub db: Option<PathBuf>,
}

fn parse_engine(text: &str) -> Result<EngineKind, String> {
    text.parse().map_err(|err: crate::Error| err.to_string())
}

fn parse_sampler(text: &str) -> Result<SamplerKind, String> {
    text.parse().map_err(|err: crate::Error| err.to_string())
}

pub fn run() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    match cli.command {
        Command::Generate(args) => commands::generate::run(&args),
        Command::Bench(args) => commands::bench::run(&args),
        Command::Sync(args) => commands::sync::run(&args),
        Command::Hub(args) => commands::hub::run(&args),
        Command::Log(args) => commands::log::run(&args),
    }
}
