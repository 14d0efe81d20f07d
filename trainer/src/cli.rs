//! The command line of `synth-train`, as clap types; each subcommand's logic is in `commands/`.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use edge_runtime::cli::{MAX_SAMPLES, count_in};
use edge_runtime::data::DataOptions;
use edge_runtime::metrics::intervals::MAX_REPLICATES;
use models::manifest::{Family, SizePreset};
use models::split::SplitSpec;
use models::table::ColumnKind;
use models::{ImageShape, MissingPolicy};

use crate::commands;
use crate::device::DeviceChoice;
use crate::fit::FitSettings;

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
    /// Write the study report (report.html, report.md and plots) of a study logbook.
    Report(ReportArgs),
    /// Make a signing key pair: DIR/trainer.key (secret, 0600) and DIR/trainer.pub (for
    /// `synth-edge --trust`).
    Keygen(commands::keygen::KeygenArgs),
    /// (Re)write the seal of a bundle after checking its model against its manifest: for bundles
    /// exported before seals, or to sign with a new key.
    Seal(commands::seal::SealArgs),
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The study logbook (`DIR/study.sqlite`, written by `synth-train study`).
    #[arg(long)]
    pub db: PathBuf,
    /// The report folder: created, or replaced when it holds an earlier report.
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct StudyArgs {
    /// A dataset of the grid (repeat for several; default: breast_cancer.csv, wheat_splitsplit.csv
    /// and digits.csv from fixtures/, and with --budget full the nuclei32 image folder). Its
    /// schema file supplies the label unless --label does.
    #[arg(long)]
    pub data: Vec<PathBuf>,
    /// The label column of each --data, in order.
    #[arg(long)]
    pub label: Vec<String>,
    #[arg(long, value_delimiter = ',', default_value = "vae,gan,ddpm,ldm", value_parser = parse_family)]
    pub families: Vec<Family>,
    /// Scarcity fractions, each in (0, 1]; at most 32 of them.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1,0.5,0.25,0.1",
        value_parser = parse_fraction
    )]
    pub fractions: Vec<f64>,
    /// Seeds per cell (0, 1, ... N-1), 1 to 1000.
    #[arg(long, default_value_t = 1, value_parser = seed_count)]
    pub seeds: u64,
    #[arg(long, default_value = "study")]
    pub out: PathBuf,
    #[arg(long, default_value = "cpu", value_parser = parse_device)]
    pub device: DeviceChoice,
    /// Share of each class held out, in (0, 1).
    #[arg(long, default_value_t = 0.2, value_parser = parse_holdout)]
    pub holdout: f64,
    /// Training per cell: quick (a third of fit's default steps) or full (fit's defaults; with
    /// --device cuda also the base networks).
    #[arg(long, default_value = "quick", value_parser = crate::commands::study::parse_budget)]
    pub budget: crate::study::Budget,
    /// Network size of every cell: tiny, small or base (default: base for --budget full on
    /// CUDA, tiny otherwise).
    #[arg(long, value_parser = parse_size)]
    pub size: Option<SizePreset>,
    /// Epochs for every cell (overrides --budget), 1 to 1,000,000.
    #[arg(long, value_parser = count_in::<1, MAX_EPOCHS>)]
    pub epochs: Option<usize>,
    /// Synthetic samples per evaluation, 1 to 10,000,000 (default: 1,000 for tables, 500 for
    /// images).
    #[arg(long, value_parser = count_in::<1, MAX_SAMPLES>)]
    pub n: Option<usize>,
    /// Bootstrap replicates per interval, 1 to 100,000.
    #[arg(long, default_value_t = 200, value_parser = count_in::<1, MAX_REPLICATES>)]
    pub bootstrap: usize,
    /// Cells trained at once, each in its own single-threaded process (1: in this process,
    /// with all cores and a per-epoch progress bar), 1 to 256. Default: the number of cores.
    #[arg(long, default_value_t = default_jobs(), value_parser = count_in::<1, MAX_JOBS>)]
    pub jobs: usize,
    /// No progress display.
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct FitArgs {
    /// A CSV with a header, or an image folder (root/CLASS/*.png).
    #[arg(long)]
    pub data: PathBuf,
    /// The label column (CSV); image folders use their class folders.
    #[arg(long)]
    pub label: Option<String>,
    #[arg(long, value_parser = parse_family)]
    pub family: Family,
    /// Network size: tiny (CPU tests, the default study), small, or base (a CUDA workstation,
    /// images of 64×64 and above). Recorded in the manifest.
    #[arg(long, default_value = "tiny", value_parser = parse_size)]
    pub size: SizePreset,
    /// The bundle folder to write.
    #[arg(long)]
    pub out: PathBuf,
    /// Scarcity fraction: the share of the train part used for training, in (0, 1].
    #[arg(long, default_value_t = 1.0, value_parser = parse_fraction)]
    pub fraction: f64,
    /// Share of each class held out (never trained on), in [0, 1); 0 trains on every row of a
    /// prepared train file (evaluate then takes the hold-out with --real-holdout).
    #[arg(long, default_value_t = 0.2, value_parser = parse_fit_holdout)]
    pub holdout: f64,
    /// Seed of the split, the initialisation and all training noise.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Epochs, 1 to 1,000,000 (default: chosen from the data size for a useful model in a few
    /// minutes).
    #[arg(long, value_parser = count_in::<1, MAX_EPOCHS>)]
    pub epochs: Option<usize>,
    #[arg(long, default_value = "cpu", value_parser = parse_device)]
    pub device: DeviceChoice,
    /// Read a CSV as flattened images of this shape, e.g. 8x8 (HxW, or HxWxC for RGB).
    #[arg(long, value_parser = edge_runtime::cli::parse_image_shape)]
    pub image_shape: Option<ImageShape>,
    /// Missing values: model (default: a missingness indicator per column is learnt with the
    /// row, and generated cells are empty at the learnt rate), impute with the train part's
    /// mean / most frequent category (no empty cells generated), or refuse (the error names
    /// column and line).
    #[arg(long, value_parser = parse_missing)]
    pub missing: Option<MissingPolicy>,
    /// Fix a CSV column's kind instead of inferring it: COLUMN=numeric or COLUMN=categorical
    /// (repeat for several; overrides the schema file).
    #[arg(long = "kind", value_name = "COLUMN=KIND", value_parser = parse_column_kind)]
    pub kinds: Vec<(String, ColumnKind)>,
    /// Require the CSV header to be exactly these columns, in order (repeat once per column).
    #[arg(long = "expect-column", value_name = "NAME")]
    pub expect_columns: Vec<String>,
    /// Seed of initialisation, batching and training noise (default: --seed).
    #[arg(long)]
    pub train_seed: Option<u64>,
    /// Replace --out if it already exists.
    #[arg(long)]
    pub force: bool,
    /// Sign the bundle with this secret key (`trainer.key` from `synth-train keygen`).
    #[arg(long, value_name = "FILE")]
    pub sign_key: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

impl FitArgs {
    /// The settings `fit` runs on, validated (the split fractions here; the rest in `fit`).
    pub fn to_settings(&self) -> crate::Result<FitSettings> {
        Ok(FitSettings {
            data: self.data.clone(),
            data_options: DataOptions {
                label: self.label.clone(),
                image_shape: self.image_shape,
                missing: self.missing,
                kinds: self.kinds.iter().cloned().collect(),
                expect_header: (!self.expect_columns.is_empty())
                    .then(|| self.expect_columns.clone()),
            },
            family: self.family,
            size: self.size,
            split: SplitSpec::new(self.seed, self.holdout, self.fraction)?,
            train_seed: self.train_seed.unwrap_or(self.seed),
            epochs: self.epochs,
            device: self.device,
            out: self.out.clone(),
            replace: self.force,
            sign_key: self.sign_key.clone(),
        })
    }

    /// The arguments that give back `settings`: `FitArgs::from_settings(s).to_settings() == s`
    /// (an expected header of no columns, which no CSV can match, reads back as none).
    pub fn from_settings(settings: &FitSettings) -> FitArgs {
        let options = &settings.data_options;
        FitArgs {
            data: settings.data.clone(),
            label: options.label.clone(),
            family: settings.family,
            size: settings.size,
            out: settings.out.clone(),
            fraction: settings.split.fraction,
            holdout: settings.split.holdout,
            seed: settings.split.seed,
            epochs: settings.epochs,
            device: settings.device,
            image_shape: options.image_shape,
            missing: options.missing,
            kinds: options.kinds.iter().map(|(column, kind)| (column.clone(), *kind)).collect(),
            expect_columns: options.expect_header.clone().unwrap_or_default(),
            train_seed: (settings.train_seed != settings.split.seed).then_some(settings.train_seed),
            force: settings.replace,
            sign_key: settings.sign_key.clone(),
            quiet: false,
        }
    }

    /// These arguments as a `synth-train fit` command line (without the program name), for the
    /// study's training processes. Every value is joined to its flag (`--label=-dose`), so one
    /// that starts with `-` is not taken for a flag; paths stay `OsString`s; numbers are written
    /// in Rust's shortest round-trip form, so they parse back to the same value.
    pub fn to_command_line(&self) -> Vec<OsString> {
        let joined = |name: &str, value: &std::path::Path| {
            let mut arg = OsString::from(format!("--{name}="));
            arg.push(value);
            arg
        };
        let mut line: Vec<OsString> = vec!["fit".into(), joined("data", &self.data)];
        let mut flag = |name: &str, value: String| line.push(format!("--{name}={value}").into());
        if let Some(label) = &self.label {
            flag("label", label.clone());
        }
        flag("family", self.family.as_str().to_owned());
        flag("size", self.size.as_str().to_owned());
        flag("fraction", self.fraction.to_string());
        flag("holdout", self.holdout.to_string());
        flag("seed", self.seed.to_string());
        if let Some(epochs) = self.epochs {
            flag("epochs", epochs.to_string());
        }
        flag("device", self.device.to_string());
        if let Some(shape) = self.image_shape {
            flag("image-shape", format!("{}x{}x{}", shape.height, shape.width, shape.channels));
        }
        if let Some(missing) = self.missing {
            flag("missing", missing.as_str().to_owned());
        }
        for (column, kind) in &self.kinds {
            flag("kind", format!("{column}={}", kind_text(*kind)));
        }
        for column in &self.expect_columns {
            flag("expect-column", column.clone());
        }
        if let Some(train_seed) = self.train_seed {
            flag("train-seed", train_seed.to_string());
        }
        line.push(joined("out", &self.out));
        if let Some(key) = &self.sign_key {
            line.push(joined("sign-key", key));
        }
        if self.force {
            line.push("--force".into());
        }
        if self.quiet {
            line.push("--quiet".into());
        }
        line
    }
}

pub use crate::fit::MAX_EPOCHS;
/// The most cells trained at once.
pub const MAX_JOBS: usize = 256;
/// The most seeds per study cell.
pub const MAX_SEEDS: usize = 1000;
/// The most scarcity fractions of one study.
pub const MAX_FRACTIONS: usize = 32;
/// The most datasets of one study.
pub const MAX_DATASETS: usize = 64;

/// One training process per core, up to [`MAX_JOBS`].
fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get).min(MAX_JOBS)
}

fn seed_count(text: &str) -> Result<u64, String> {
    count_in::<1, MAX_SEEDS>(text).map(|seeds| seeds as u64)
}

/// A scarcity fraction, in (0, 1].
fn parse_fraction(text: &str) -> Result<f64, String> {
    share(text, true).ok_or_else(|| "expected a number in (0, 1], e.g. 0.25".to_owned())
}

/// A study's hold-out share, in (0, 1): every cell is measured against it.
fn parse_holdout(text: &str) -> Result<f64, String> {
    share(text, false).ok_or_else(|| "expected a number in (0, 1), e.g. 0.2".to_owned())
}

/// `fit`'s hold-out share, in [0, 1): 0 trains on every row of a prepared train file.
fn parse_fit_holdout(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(0.0) => Ok(0.0),
        _ => share(text, false).ok_or_else(|| {
            "expected a number in [0, 1), e.g. 0.2 (0: train on every row; evaluate then needs \
             --real-holdout)"
                .to_owned()
        }),
    }
}

/// `text` as a number above 0 and below 1 (or equal to 1, when `one` is allowed).
fn share(text: &str, one: bool) -> Option<f64> {
    let value: f64 = text.trim().parse().ok()?;
    (value > 0.0 && (value < 1.0 || (one && value == 1.0))).then_some(value)
}

fn kind_text(kind: ColumnKind) -> &'static str {
    match kind {
        ColumnKind::Numeric => "numeric",
        ColumnKind::Categorical => "categorical",
    }
}

/// `COLUMN=numeric` or `COLUMN=categorical`; the column name may itself hold `=` (the last one
/// splits).
fn parse_column_kind(text: &str) -> Result<(String, ColumnKind), String> {
    let (column, kind) = text
        .rsplit_once('=')
        .ok_or_else(|| format!("`{text}`: expected COLUMN=numeric or COLUMN=categorical"))?;
    let kind = [ColumnKind::Numeric, ColumnKind::Categorical]
        .into_iter()
        .find(|known| kind_text(*known) == kind)
        .ok_or_else(|| {
            format!("`{text}`: unknown kind `{kind}`; expected numeric or categorical")
        })?;
    if column.is_empty() {
        return Err(format!("`{text}`: the column name is empty; expected COLUMN=KIND"));
    }
    Ok((column.to_owned(), kind))
}

fn parse_family(text: &str) -> Result<Family, String> {
    text.parse().map_err(|err: models::Error| err.to_string())
}

fn parse_size(text: &str) -> Result<SizePreset, String> {
    text.parse().map_err(|err: models::Error| err.to_string())
}

fn parse_device(text: &str) -> Result<DeviceChoice, String> {
    text.parse().map_err(|err: crate::Error| err.to_string())
}

fn parse_missing(text: &str) -> Result<MissingPolicy, String> {
    text.parse().map_err(|err: models::Error| err.to_string())
}

pub fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Fit(args) => commands::fit::run(args),
        Command::Study(args) => commands::study::run(args),
        Command::Report(args) => commands::report::run(&args),
        Command::Keygen(args) => commands::keygen::run(&args),
        Command::Seal(args) => commands::seal::run(&args),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    use clap::Parser;

    use super::*;

    /// Settings → arguments → command line → clap → settings gives back every field.
    fn check_round_trip(settings: &FitSettings) {
        let line = FitArgs::from_settings(settings).to_command_line();
        let parsed =
            Cli::try_parse_from(std::iter::once(OsString::from("synth-train")).chain(line))
                .unwrap();
        let Command::Fit(args) = parsed.command else { panic!("not a fit command") };
        assert_eq!(&args.to_settings().unwrap(), settings);
    }

    #[test]
    fn fit_settings_survive_the_command_line() {
        let plain = FitSettings {
            data: PathBuf::from("fixtures/wheat_splitsplit.csv"),
            data_options: DataOptions::default(),
            family: Family::Vae,
            size: SizePreset::Tiny,
            split: SplitSpec::new(0, 0.2, 1.0).unwrap(),
            train_seed: 0,
            epochs: None,
            device: DeviceChoice::Cpu,
            out: PathBuf::from("models/wheat-vae"),
            replace: false,
            sign_key: None,
        };
        check_round_trip(&plain);
        // Every optional field set, awkward numbers and names included.
        let full = FitSettings {
            data: PathBuf::from("-data dir/breast cancer.csv"),
            data_options: DataOptions {
                label: Some("-diagnosis".to_owned()),
                image_shape: Some(ImageShape { channels: 3, height: 32, width: 16 }),
                missing: Some(MissingPolicy::Impute),
                kinds: BTreeMap::from([
                    ("plot=id".to_owned(), ColumnKind::Categorical),
                    ("-1".to_owned(), ColumnKind::Numeric),
                    ("yield".to_owned(), ColumnKind::Numeric),
                ]),
                expect_header: Some(vec!["a, b".to_owned(), "-diagnosis".to_owned()]),
            },
            family: Family::Ddpm,
            size: SizePreset::Base,
            split: SplitSpec::new(7, 0.1 + 0.2, 1.0 / 3.0).unwrap(),
            train_seed: 11,
            epochs: Some(40),
            device: DeviceChoice::Cuda,
            out: PathBuf::from("out/cell"),
            replace: true,
            sign_key: Some(PathBuf::from("-keys/trainer 2.key")),
        };
        check_round_trip(&full);
        check_round_trip(&FitSettings {
            data_options: DataOptions {
                missing: Some(MissingPolicy::Refuse),
                ..DataOptions::default()
            },
            family: Family::Gan,
            size: SizePreset::Small,
            ..plain
        });
    }

    #[test]
    fn numeric_flags_take_their_ranges_and_nothing_else() {
        assert_eq!(parse_fraction("1"), Ok(1.0));
        assert_eq!(parse_fraction(&(1.0_f64 / 3.0).to_string()), Ok(1.0 / 3.0));
        assert_eq!(parse_holdout("0.2"), Ok(0.2));
        for bad in ["0", "1.0000001", "-0.5", "NaN", "inf", "1e308", "", "half"] {
            assert!(parse_fraction(bad).is_err(), "fraction {bad}");
        }
        for bad in ["0", "1", "NaN", "-inf"] {
            assert!(parse_holdout(bad).is_err(), "holdout {bad}");
        }
        assert_eq!(parse_fit_holdout("0"), Ok(0.0));
        assert_eq!(parse_fit_holdout("0.25"), Ok(0.25));
        for bad in ["1", "-0.1", "NaN", "1e-400x", ""] {
            assert!(parse_fit_holdout(bad).is_err(), "fit holdout {bad}");
        }
        assert_eq!(seed_count("1000"), Ok(1000));
        assert!(seed_count("1001").is_err() && seed_count("0").is_err());
        assert_eq!(count_in::<1, MAX_EPOCHS>("1000000"), Ok(1_000_000));
        assert_eq!(
            count_in::<1, MAX_EPOCHS>("1000001"),
            Err("expected a whole number from 1 to 1000000".to_owned())
        );
        assert!((1..=MAX_JOBS).contains(&default_jobs()));
    }

    #[test]
    fn column_kinds_are_checked() {
        assert_eq!(parse_column_kind("a=b=numeric"), Ok(("a=b".to_owned(), ColumnKind::Numeric)));
        for bad in ["yield", "yield=number", "=numeric"] {
            assert!(parse_column_kind(bad).is_err(), "{bad}");
        }
    }
}
