//! The command line of `synth-train`, as clap types; each subcommand's logic is in `commands/`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use models::manifest::Family;
use models::{ImageShape, MissingPolicy};

use crate::commands;
use crate::device::DeviceChoice;

#[derive(Debug, Parser)]
#[command(
    name = "synth-train",
    version,
    about = "Train class-conditional VAE, GAN and DDPM models and export them as ONNX bundles"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train one model on one dataset and write its bundle (model.onnx + manifest.json).
    Fit(FitArgs),
    /// Run the grid datasets × families × scarcity fractions × seeds: fit, export, evaluate with
    /// the edge runtime, log to DIR/study.sqlite, and write DIR/report/report.html.
    Study(StudyArgs),
}

#[derive(Debug, Args)]
pub struct StudyArgs {
    /// A dataset of the grid (repeat for several; default: breast_cancer.csv, wheat_splitsplit.csv
    /// and digits.csv from fixtures/). Its schema file supplies the label unless --label does.
    #[arg(long)]
    pub data: Vec<PathBuf>,
    /// The label column of each --data, in order.
    #[arg(long)]
    pub label: Vec<String>,
    #[arg(long, value_delimiter = ',', default_value = "vae,gan,ddpm", value_parser = parse_family)]
    pub families: Vec<Family>,
    #[arg(long, value_delimiter = ',', default_value = "1,0.5,0.25,0.1")]
    pub fractions: Vec<f64>,
    /// Seeds per cell (0, 1, ... N-1).
    #[arg(long, default_value_t = 1)]
    pub seeds: u64,
    #[arg(long, default_value = "study")]
    pub out: PathBuf,
    #[arg(long, default_value = "cpu", value_parser = parse_device)]
    pub device: DeviceChoice,
    #[arg(long, default_value_t = 0.2)]
    pub holdout: f64,
    /// Training per cell: quick (a third of fit's default steps for tables, the defaults for
    /// images) or full (fit's defaults everywhere).
    #[arg(long, default_value = "quick", value_parser = crate::commands::study::parse_budget)]
    pub budget: crate::study::Budget,
    /// Epochs for every cell (overrides --budget).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Synthetic samples per evaluation (default: 1,000 for tables, 500 for images).
    #[arg(long)]
    pub n: Option<usize>,
    /// Bootstrap replicates per interval.
    #[arg(long, default_value_t = 200)]
    pub bootstrap: usize,
    /// Cells trained at once, each in its own single-threaded process (1: in this process,
    /// with all cores and a per-epoch progress bar). Default: the number of cores.
    #[arg(long, default_value_t = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get))]
    pub jobs: usize,
    /// No progress display.
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct FitArgs {
    /// A CSV with a header, or an image folder (root/<class>/*.png).
    #[arg(long)]
    pub data: PathBuf,
    /// The label column (CSV); image folders use their class folders.
    #[arg(long)]
    pub label: Option<String>,
    #[arg(long, value_parser = parse_family)]
    pub family: Family,
    /// The bundle folder to write.
    #[arg(long)]
    pub out: PathBuf,
    /// Scarcity fraction: the share of the train part used for training, in (0, 1].
    #[arg(long, default_value_t = 1.0)]
    pub fraction: f64,
    /// Share of each class held out (never trained on), in (0, 1).
    #[arg(long, default_value_t = 0.2)]
    pub holdout: f64,
    /// Seed of the split, the initialisation and all training noise.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Epochs (default: chosen from the data size for a useful model in a few minutes).
    #[arg(long)]
    pub epochs: Option<usize>,
    #[arg(long, default_value = "cpu", value_parser = parse_device)]
    pub device: DeviceChoice,
    /// Read a CSV as flattened images of this shape, e.g. 8x8 (HxW, or HxWxC for RGB).
    #[arg(long, value_parser = parse_image_shape)]
    pub image_shape: Option<ImageShape>,
    /// Missing values: refuse (default; the error names column and line) or impute with the
    /// train part's mean / most frequent category.
    #[arg(long, value_parser = parse_missing)]
    pub missing: Option<MissingPolicy>,
    /// Replace --out if it already exists.
    #[arg(long)]
    pub force: bool,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

fn parse_family(text: &str) -> Result<Family, String> {
    text.parse().map_err(|err: models::Error| err.to_string())
}

fn parse_device(text: &str) -> Result<DeviceChoice, String> {
    text.parse().map_err(|err: crate::Error| err.to_string())
}

fn parse_image_shape(text: &str) -> Result<ImageShape, String> {
    text.parse().map_err(|err: models::Error| err.to_string())
}

fn parse_missing(text: &str) -> Result<MissingPolicy, String> {
    text.parse().map_err(|err: models::Error| err.to_string())
}

pub fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Fit(args) => commands::fit::run(args),
        Command::Study(args) => commands::study::run(args),
    }
}
