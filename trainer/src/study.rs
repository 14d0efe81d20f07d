//! The study: every dataset × family × scarcity fraction × seed is fitted, exported, evaluated by
//! the edge runtime's library in process (the same code as the field binary), and logged to
//! `DIR/study.sqlite` through the logbook, with bundles under `DIR/models/` and the samples each
//! cell was judged on under `DIR/samples/`. Re-running skips cells whose run is done; a bundle
//! already on disk is evaluated without retraining.

use std::path::{Path, PathBuf};
use std::time::Instant;

use edge_runtime::assess::{assess, real_for_bundle};
use edge_runtime::bundle::Bundle;
use edge_runtime::data::{DataOptions, write_atomically};
use edge_runtime::engine::EngineKind;
use edge_runtime::logbook::Logbook;
use edge_runtime::metrics::{EvalSettings, Metric, MetricId, efficiency_metrics, sort_by_axis};
use edge_runtime::output::{csv_bytes, grid_png, synthetic_dataset};
use edge_runtime::sampler::{ClassChoice, Generator, SampleSettings, SamplerKind};
use models::manifest::{Family, SizePreset};
use models::split::SplitSpec;
use models::transform::Encoder;
use serde::{Deserialize, Serialize};

pub use crate::cell::{CellParams, STUDY_RUN_KIND};
use crate::cli::FitArgs;
use crate::device::DeviceChoice;
use crate::error::{Error, Result};
use crate::fit::{FitObserver, FitSettings, fit};
use crate::train::EpochStats;

/// One dataset of the grid.
#[derive(Debug, Clone)]
pub struct StudyDataset {
    pub path: PathBuf,
    pub options: DataOptions,
    /// A short name for tables and folders: the file or folder stem.
    pub name: String,
}

impl StudyDataset {
    pub fn new(path: &Path, options: DataOptions) -> StudyDataset {
        let name = path
            .file_stem()
            .map(|stem| stem.to_string_lossy().into_owned())
            .unwrap_or_else(|| "data".to_owned());
        StudyDataset { path: path.to_owned(), options, name }
    }
}

/// How much training each cell gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Budget {
    /// A third of `fit`'s default optimiser steps (at least 5 epochs), the `tiny` networks:
    /// the whole default grid in minutes on a CPU.
    Quick,
    /// `fit`'s defaults.
    Full,
}

impl std::str::FromStr for Budget {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        match text {
            "quick" => Ok(Budget::Quick),
            "full" => Ok(Budget::Full),
            other => {
                Err(Error::Invalid(format!("invalid budget `{other}`: expected `quick` or `full`")))
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct StudySettings {
    pub datasets: Vec<StudyDataset>,
    pub families: Vec<Family>,
    pub fractions: Vec<f64>,
    pub seeds: u64,
    pub out: PathBuf,
    pub device: DeviceChoice,
    pub holdout: f64,
    pub budget: Budget,
    /// Network size of every cell (`None`: `base` for the full budget on CUDA, else `tiny`).
    pub size: Option<SizePreset>,
    /// Synthetic samples per evaluation (`None`: 1,000 for tables, 500 for images).
    pub n_synthetic: Option<usize>,
    pub bootstrap: usize,
    /// Explicit epochs for every cell (tests); `None` follows the budget.
    pub epochs: Option<usize>,
    /// Train cells in child processes of this `synth-train` executable, `jobs` at a time, each
    /// on one thread. Small networks gain little from a second thread, and candle's worker
    /// threads spin while they wait: two single-threaded trainings finish well before two
    /// two-threaded ones. `None` trains in this process, one cell after another.
    pub trainer: Option<PathBuf>,
    pub jobs: usize,
}

impl StudySettings {
    /// The network size every cell trains at.
    pub fn size(&self) -> SizePreset {
        self.size.unwrap_or(match (self.budget, self.device) {
            (Budget::Full, DeviceChoice::Cuda) => SizePreset::Base,
            _ => SizePreset::Tiny,
        })
    }
}

/// One cell of the grid.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    pub dataset: usize,
    pub family: Family,
    pub fraction: f64,
    pub seed: u64,
}

impl Cell {
    /// `breast_cancer/vae/f0.25/s0`: the cell's identity in the logbook.
    pub fn key(&self, settings: &StudySettings) -> String {
        format!(
            "{}/{}/f{}/s{}",
            settings.datasets[self.dataset].name, self.family, self.fraction, self.seed
        )
    }

    /// The cell's file name stem: `breast_cancer-vae-f0.25-s0`.
    pub fn file_stem(&self, settings: &StudySettings) -> String {
        self.key(settings).replace('/', "-")
    }
}

/// Observes the grid.
pub trait StudyObserver {
    fn cell_started(&mut self, _index: usize, _total: usize, _key: &str, _epochs: Option<usize>) {}
    fn epoch(&mut self, _stats: &EpochStats) {}
    fn cell_finished(&mut self, _index: usize, _key: &str, _outcome: &CellOutcome) {}
}

#[derive(Debug, Clone, PartialEq)]
pub enum CellOutcome {
    /// Already done in an earlier run of the study.
    Skipped,
    Done {
        train_seconds: f64,
        evaluate_seconds: f64,
        trained: bool,
    },
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct StudySummary {
    pub cells: usize,
    pub skipped: usize,
    pub done: usize,
    pub wall_seconds: f64,
}

pub const DATABASE: &str = "study.sqlite";

/// The grid's cells, in order; a family that cannot model a dataset (latent diffusion on a
/// table) has no cells there. `modalities` holds each dataset's.
pub fn cells(settings: &StudySettings, modalities: &[models::Modality]) -> Vec<Cell> {
    let mut cells = Vec::new();
    for (dataset, modality) in modalities.iter().enumerate().take(settings.datasets.len()) {
        for &family in settings.families.iter().filter(|family| family.supports(*modality)) {
            for &fraction in &settings.fractions {
                for seed in 0..settings.seeds {
                    cells.push(Cell { dataset, family, fraction, seed });
                }
            }
        }
    }
    cells
}

/// The most cells one study runs.
pub const MAX_CELLS: u64 = 10_000;

fn check(settings: &StudySettings) -> Result<()> {
    if settings.datasets.is_empty()
        || settings.families.is_empty()
        || settings.fractions.is_empty()
        || settings.seeds == 0
    {
        return Err(Error::Invalid(
            "the study grid is empty: give at least one dataset, family, fraction and seed"
                .to_owned(),
        ));
    }
    let n_cells = [settings.datasets.len(), settings.families.len(), settings.fractions.len()]
        .into_iter()
        .try_fold(settings.seeds, |cells, count| cells.checked_mul(count as u64))
        .unwrap_or(u64::MAX);
    if n_cells > MAX_CELLS {
        return Err(Error::Invalid(format!(
            "the study grid has {n_cells} cells (datasets × families × fractions × seeds); expected at most {MAX_CELLS}"
        )));
    }
    if let Some(epochs) = settings.epochs {
        crate::fit::check_epochs(epochs)?;
    }
    edge_runtime::metrics::intervals::check_replicates(settings.bootstrap)?;
    for &fraction in &settings.fractions {
        SplitSpec::new(0, settings.holdout, fraction)?;
    }
    settings.device.check_available()?;
    for dataset in &settings.datasets {
        if !dataset.path.exists() {
            return Err(Error::Invalid(format!(
                "{}: no such file or folder",
                dataset.path.display()
            )));
        }
    }
    Ok(())
}

/// Runs (or resumes) the grid.
pub fn run_study(
    settings: &StudySettings,
    observer: &mut dyn StudyObserver,
) -> Result<StudySummary> {
    check(settings)?;
    // Each dataset read once before anything is written: a bad file fails the study here, and
    // the grid leaves out families that cannot model a dataset.
    let modalities = settings
        .datasets
        .iter()
        .map(|dataset| {
            Ok(edge_runtime::data::read_dataset(&dataset.path, &dataset.options)?.modality())
        })
        .collect::<Result<Vec<_>>>()?;
    let started = Instant::now();
    std::fs::create_dir_all(settings.out.join("models"))
        .map_err(|err| Error::io(&settings.out, err))?;
    std::fs::create_dir_all(settings.out.join("samples"))
        .map_err(|err| Error::io(&settings.out, err))?;
    let logbook = Logbook::open(&settings.out.join(DATABASE))?;
    let done: Vec<String> = logbook
        .runs()?
        .into_iter()
        .filter(|run| {
            run.kind == STUDY_RUN_KIND && run.status == edge_runtime::logbook::RunStatus::Done
        })
        .filter_map(|run| serde_json::from_value::<CellParams>(run.params).ok())
        // A cell done at another size (an earlier run with another --size) is run again; the
        // report takes the later run.
        .filter(|params| params.size == settings.size())
        .map(|params| params.cell)
        .collect();
    let grid = cells(settings, &modalities);
    if grid.is_empty() {
        return Err(Error::Invalid(format!(
            "the study grid is empty: no family of {} can model these datasets (ldm is for images)",
            settings.families.iter().map(|family| family.as_str()).collect::<Vec<_>>().join(", ")
        )));
    }
    let mut summary = StudySummary { cells: grid.len(), ..StudySummary::default() };
    let mut pending = Vec::new();
    for (index, cell) in grid.iter().enumerate() {
        let key = cell.key(settings);
        if done.contains(&key) {
            observer.cell_finished(index, &key, &CellOutcome::Skipped);
            summary.skipped += 1;
        } else {
            pending.push(index);
        }
    }
    let fail = |index: usize, err: Error| Error::StudyCell {
        cell: grid[index].key(settings),
        source: Box::new(err),
    };
    match &settings.trainer {
        Some(trainer) => {
            let mut plans = Vec::new();
            for &index in &pending {
                plans.push((
                    index,
                    training_plan(settings, &grid[index]).map_err(|err| fail(index, err))?,
                ));
            }
            let (ready, to_train): (Vec<_>, Vec<_>) =
                plans.into_iter().partition(|(_, plan)| plan.is_none());
            let queue = std::sync::Mutex::new(
                to_train
                    .into_iter()
                    .filter_map(|(index, plan)| plan.map(|plan| (index, plan)))
                    .collect::<std::collections::VecDeque<_>>(),
            );
            let stop = std::sync::atomic::AtomicBool::new(false);
            let (sender, receiver) = std::sync::mpsc::channel::<(usize, Result<()>)>();
            std::thread::scope(|scope| -> Result<()> {
                for _ in 0..settings.jobs.max(1) {
                    let sender = sender.clone();
                    let (queue, stop) = (&queue, &stop);
                    scope.spawn(move || {
                        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                            let Some((index, plan)) =
                                queue.lock().ok().and_then(|mut queue| queue.pop_front())
                            else {
                                break;
                            };
                            if sender.send((index, train_in_child(trainer, &plan))).is_err() {
                                break;
                            }
                        }
                    });
                }
                drop(sender);
                let outcome = (|| {
                    for (index, _) in &ready {
                        let outcome = evaluate_and_log(settings, &grid[*index], &logbook, false)
                            .map_err(|err| fail(*index, err))?;
                        observer.cell_finished(*index, &grid[*index].key(settings), &outcome);
                        summary.done += 1;
                    }
                    for (index, trained) in receiver {
                        trained.map_err(|err| fail(index, err))?;
                        let outcome = evaluate_and_log(settings, &grid[index], &logbook, true)
                            .map_err(|err| fail(index, err))?;
                        observer.cell_finished(index, &grid[index].key(settings), &outcome);
                        summary.done += 1;
                    }
                    Ok(())
                })();
                stop.store(true, std::sync::atomic::Ordering::Relaxed);
                outcome
            })?;
        }
        None => {
            for index in pending {
                let cell = &grid[index];
                let trained = match training_plan(settings, cell).map_err(|err| fail(index, err))? {
                    Some(plan) => {
                        observer.cell_started(index, grid.len(), &cell.key(settings), plan.epochs);
                        fit(&plan, &mut Forward { observer }).map_err(|err| fail(index, err))?;
                        true
                    }
                    None => false,
                };
                let outcome = evaluate_and_log(settings, cell, &logbook, trained)
                    .map_err(|err| fail(index, err))?;
                observer.cell_finished(index, &cell.key(settings), &outcome);
                summary.done += 1;
            }
        }
    }
    summary.wall_seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

/// How to train a cell, or `None` when a complete bundle from an earlier run is there.
fn training_plan(settings: &StudySettings, cell: &Cell) -> Result<Option<FitSettings>> {
    let bundle_dir = settings.out.join("models").join(cell.file_stem(settings));
    // A bundle of another size (an earlier run with another --size) is trained again.
    if Bundle::open(&bundle_dir).is_ok_and(|bundle| bundle.manifest.size == settings.size()) {
        return Ok(None);
    }
    let dataset = &settings.datasets[cell.dataset];
    let split = SplitSpec::new(cell.seed, settings.holdout, cell.fraction)?;
    let data = edge_runtime::data::read_dataset(&dataset.path, &dataset.options)?;
    let prepared = crate::fit::prepare(data, &split)?;
    let size = settings.size();
    let defaults =
        crate::train::Hyper::defaults(cell.family, size, &prepared.data.spec, prepared.data.n_rows);
    let epochs = budget_epochs(settings, cell.family, prepared.data.n_rows, &prepared.data.spec)
        .unwrap_or(defaults.epochs);
    Ok(Some(FitSettings {
        data: dataset.path.clone(),
        data_options: dataset.options.clone(),
        family: cell.family,
        size,
        split,
        train_seed: cell.seed,
        epochs: Some(epochs),
        device: settings.device,
        out: bundle_dir,
        replace: true,
        // A study's bundles stay on the workstation; a bundle is signed when it is released.
        sign_key: None,
    }))
}

/// Runs `synth-train fit` for `plan` in a child process on one thread; every field of `plan`
/// travels on the command line ([`FitArgs::from_settings`]).
fn train_in_child(trainer: &Path, plan: &FitSettings) -> Result<()> {
    let args = FitArgs { quiet: true, ..FitArgs::from_settings(plan) };
    let mut command = std::process::Command::new(trainer);
    command
        .args(args.to_command_line())
        .env("RAYON_NUM_THREADS", "1")
        .env("CANDLE_NUM_THREADS", "1");
    let output = command.output().map_err(|err| Error::io(trainer, err))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "training failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )))
    }
}

struct Forward<'a> {
    observer: &'a mut dyn StudyObserver,
}

impl FitObserver for Forward<'_> {
    fn epoch(&mut self, stats: &EpochStats) {
        self.observer.epoch(stats);
    }
}

/// Epochs for a cell under the budget (`None`: the trainer's defaults).
fn budget_epochs(
    settings: &StudySettings,
    family: Family,
    n_train: usize,
    spec: &crate::nets::DataSpec,
) -> Option<usize> {
    if let Some(epochs) = settings.epochs {
        return Some(epochs);
    }
    match settings.budget {
        Budget::Full => None,
        Budget::Quick => {
            let defaults = crate::train::Hyper::defaults(family, settings.size(), spec, n_train);
            Some((defaults.epochs / 3).max(5))
        }
    }
}

/// How the study samples a bundle, and with how many steps: tables by ancestral DDPM over every
/// training step, image diffusion by DDIM on 50 steps (the sampler a field device would use: a
/// guided U-Net step costs as much as many table steps).
fn study_sampler(manifest: &models::Manifest) -> (SamplerKind, usize) {
    match (manifest.schedule, manifest.modality) {
        (None, _) => (SamplerKind::Ddpm, 1),
        (Some(schedule), models::Modality::Tabular) => (SamplerKind::Ddpm, schedule.steps),
        (Some(schedule), models::Modality::Image) => {
            (SamplerKind::Ddim, edge_runtime::sampler::DEFAULT_DDIM_STEPS.min(schedule.steps))
        }
    }
}

/// Evaluates a trained cell and logs it as one run.
fn evaluate_and_log(
    settings: &StudySettings,
    cell: &Cell,
    logbook: &Logbook,
    trained: bool,
) -> Result<CellOutcome> {
    let dataset = &settings.datasets[cell.dataset];
    let key = cell.key(settings);
    let stem = cell.file_stem(settings);
    let bundle_dir = settings.out.join("models").join(&stem);
    let evaluate_started = Instant::now();
    let bundle = Bundle::open(&bundle_dir)?;
    let manifest = &bundle.manifest;
    let (train_seconds, final_loss) =
        (manifest.provenance.wall_time_s, manifest.provenance.final_loss);
    let n_synthetic =
        settings.n_synthetic.unwrap_or(if manifest.schema.image.is_some() { 500 } else { 1000 });
    let samples_file =
        format!("samples/{stem}.{}", if manifest.schema.image.is_some() { "png" } else { "csv" });
    let params = CellParams {
        cell: key.clone(),
        dataset: dataset.name.clone(),
        data_path: dataset.path.display().to_string(),
        label: manifest.schema.label.clone(),
        family: cell.family,
        fraction: cell.fraction,
        seed: cell.seed,
        holdout: settings.holdout,
        n_synthetic,
        budget: settings.budget,
        size: manifest.size,
        device: settings.device.to_string(),
        bundle: format!("models/{stem}"),
        samples: samples_file.clone(),
        modality: manifest.modality,
        sampler: study_sampler(manifest).0.to_string(),
        sampling_steps: study_sampler(manifest).1,
    };
    logbook.register_model(
        &manifest.model_sha256,
        &serde_json::to_string(manifest)
            .map_err(|source| Error::Json { what: "the manifest", source })?,
    )?;
    // The guard fails the run if anything below returns early or panics; a panic in the
    // evaluation is caught here so the run records its message, then resumes.
    let run = logbook.begin_run(
        STUDY_RUN_KIND,
        Some(&manifest.model_sha256),
        &serde_json::to_value(&params)
            .map_err(|source| Error::Json { what: "the cell parameters", source })?,
    )?;
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        evaluate_cell(
            settings,
            cell,
            &bundle,
            dataset,
            n_synthetic,
            &settings.out.join(&samples_file),
        )
    }));
    let result = match result {
        Ok(result) => result,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|text| (*text).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "(no message)".to_owned());
            let _ = run.fail(&format!("the program panicked: {what}"));
            std::panic::resume_unwind(panic);
        }
    };
    match result {
        Ok(mut metrics) => {
            // Training figures are single measurements on a side axis, not assessment figures:
            // their "interval" is the value itself.
            let n_train = manifest.provenance.n_train as u64;
            for (id, value) in
                [(MetricId::TrainSeconds, train_seconds), (MetricId::FinalLoss, final_loss)]
            {
                metrics.push(Metric::new(id, value, value, value, n_train));
            }
            run.finish(&metrics)?;
            Ok(CellOutcome::Done {
                train_seconds,
                evaluate_seconds: evaluate_started.elapsed().as_secs_f64(),
                trained,
            })
        }
        Err(err) => {
            run.fail(&edge_runtime::error::chain(&err))?;
            Err(err)
        }
    }
}

/// Generates with the tract engine, evaluates on the six axes, and keeps the samples.
fn evaluate_cell(
    settings: &StudySettings,
    cell: &Cell,
    bundle: &Bundle,
    dataset: &StudyDataset,
    n: usize,
    samples_path: &Path,
) -> Result<Vec<Metric>> {
    let real = real_for_bundle(bundle, &dataset.path, None)?;
    let mut generator = Generator::new(bundle, EngineKind::Tract, 0)?;
    let (sampler, steps) = study_sampler(&bundle.manifest);
    let sample_settings = SampleSettings {
        n,
        seed: cell.seed,
        classes: ClassChoice::Proportional,
        steps: Some(steps),
        sampler,
        batch: 256,
        guidance: None,
    };
    let samples = generator.generate(&sample_settings)?;
    let synthetic = synthetic_dataset(&bundle.manifest, &samples)?;
    match &bundle.manifest.transform {
        Encoder::Image(pixels) => {
            let mut per_class: Vec<Vec<usize>> = vec![Vec::new(); bundle.manifest.n_classes()];
            for (idx, &label) in samples.labels.iter().enumerate() {
                per_class[label as usize].push(idx);
            }
            write_atomically(
                samples_path,
                &grid_png(pixels.shape, pixels, &samples, &per_class, 10)?,
            )?;
        }
        Encoder::Tabular(_) => {
            write_atomically(samples_path, &csv_bytes(&bundle.manifest, &samples)?)?
        }
    }
    let eval_settings =
        EvalSettings { seed: cell.seed, replicates: settings.bootstrap, ..EvalSettings::default() };
    let (assessment, _) = assess(&real, &synthetic, &eval_settings)?;
    for skipped in &assessment.skipped {
        eprintln!("{}: {} skipped: {}", dataset.name, skipped.name, skipped.reason);
    }
    let mut metrics = assessment.metrics;
    metrics.extend(efficiency_metrics(&samples.batch_times, cell.seed, settings.bootstrap));
    sort_by_axis(&mut metrics);
    Ok(metrics)
}

/// The default grid: a medical table, an agricultural table and the 8×8 digits from `fixtures`,
/// and with the full budget also the 32×32 nuclei of fluorescence microscopy. A training step of
/// the image networks on 32×32 costs some 30 times one on 8×8 (2.6 s against 0.08 s for the
/// tiny U-Net at batch 64 on one core): the nuclei's sixteen cells alone would take the quick
/// study on a two-core CPU from minutes to hours.
pub fn default_datasets(fixtures: &Path, budget: Budget) -> Vec<StudyDataset> {
    let mut names = vec!["breast_cancer.csv", "wheat_splitsplit.csv", "digits.csv"];
    if budget == Budget::Full {
        names.push("nuclei32");
    }
    names
        .iter()
        .map(|name| StudyDataset::new(&fixtures.join(name), DataOptions::default()))
        .collect()
}
