//! `synth-train study`: the grid with a progress display, then the report.

use std::path::{Path, PathBuf};

use anyhow::Context;
use edge_runtime::data::DataOptions;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use crate::cli::{MAX_DATASETS, MAX_FRACTIONS, StudyArgs};
use crate::report::{HTML_FILE, write_report};
use crate::study::{
    Budget, CellOutcome, DATABASE, StudyDataset, StudyObserver, StudySettings, default_datasets,
    run_study,
};
use crate::train::EpochStats;

pub fn run(args: StudyArgs) -> anyhow::Result<()> {
    if args.fractions.len() > MAX_FRACTIONS {
        anyhow::bail!(
            "invalid --fractions: {} fractions; expected at most {MAX_FRACTIONS}",
            args.fractions.len()
        );
    }
    if args.data.len() > MAX_DATASETS {
        anyhow::bail!(
            "invalid --data: given {} times; expected at most {MAX_DATASETS} datasets",
            args.data.len()
        );
    }
    let datasets = if args.data.is_empty() {
        default_datasets(&fixtures_dir()?, args.budget)
    } else {
        if !args.label.is_empty() && args.label.len() != args.data.len() {
            anyhow::bail!(
                "give one --label per --data ({} --data, {} --label), or none to use each file's schema",
                args.data.len(),
                args.label.len()
            );
        }
        args.data
            .iter()
            .enumerate()
            .map(|(idx, path)| {
                StudyDataset::new(
                    path,
                    DataOptions { label: args.label.get(idx).cloned(), ..DataOptions::default() },
                )
            })
            .collect()
    };
    let settings = StudySettings {
        datasets,
        families: args.families.clone(),
        fractions: args.fractions.clone(),
        seeds: args.seeds,
        out: args.out.clone(),
        device: args.device,
        holdout: args.holdout,
        budget: args.budget,
        size: args.size,
        n_synthetic: args.n,
        bootstrap: args.bootstrap,
        epochs: args.epochs,
        // On the GPU, one training at a time and in this process.
        trainer: if args.device == crate::device::DeviceChoice::Cpu && args.jobs > 1 {
            Some(
                std::env::current_exe()
                    .context("locating synth-train to train cells in child processes")?,
            )
        } else {
            None
        },
        jobs: args.jobs,
    };
    edge_runtime::logbook::settle_runs_on_signals()?;
    let mut display = Display::new(args.quiet);
    let summary = run_study(&settings, &mut display).context("study")?;
    display.finish();
    println!(
        "study: {} cells ({} run now, {} already done) in {:.0} s; logbook {}",
        summary.cells,
        summary.done,
        summary.skipped,
        summary.wall_seconds,
        settings.out.join(DATABASE).display()
    );
    let report_dir = settings.out.join("report");
    write_report(&settings.out.join(DATABASE), &report_dir).context("writing the report")?;
    println!("report: {}", report_dir.join(HTML_FILE).display());
    Ok(())
}

/// The bundled fixtures: beside the executable's workspace when run from the repository.
fn fixtures_dir() -> anyhow::Result<PathBuf> {
    let candidates =
        [PathBuf::from("fixtures"), Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures")];
    candidates
        .into_iter()
        .find(|dir| dir.join("breast_cancer.csv").is_file())
        .context("the default study needs the bundled fixtures (run it from the repository root, or give --data)")
}

/// An overall bar over cells and a bar over the current cell's epochs.
struct Display {
    overall: ProgressBar,
    cell: ProgressBar,
    _multi: MultiProgress,
    quiet: bool,
}

impl Display {
    fn new(quiet: bool) -> Display {
        let multi = MultiProgress::new();
        if quiet {
            multi.set_draw_target(indicatif::ProgressDrawTarget::hidden());
        }
        let overall = multi.add(ProgressBar::new(0));
        overall.set_style(
            ProgressStyle::with_template(
                "study [{bar:30}] {pos}/{len} cells  {elapsed_precise}  {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        let cell = multi.add(ProgressBar::new(0));
        cell.set_style(
            ProgressStyle::with_template("  {prefix} [{bar:30}] {pos}/{len} epochs  loss {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        Display { overall, cell, _multi: multi, quiet }
    }

    fn finish(&self) {
        self.cell.finish_and_clear();
        self.overall.finish_and_clear();
    }
}

impl StudyObserver for Display {
    fn cell_started(&mut self, _index: usize, total: usize, key: &str, epochs: Option<usize>) {
        self.overall.set_length(total as u64);
        self.overall.set_message(key.to_owned());
        self.cell.reset();
        self.cell.set_prefix(key.to_owned());
        self.cell.set_length(epochs.unwrap_or(0) as u64);
    }

    fn epoch(&mut self, stats: &EpochStats) {
        self.cell.set_message(format!("{:.4}", stats.loss));
        self.cell.inc(1);
    }

    fn cell_finished(&mut self, _index: usize, key: &str, outcome: &CellOutcome) {
        self.overall.inc(1);
        let line = match outcome {
            CellOutcome::Skipped => format!("{key}: done earlier, skipped"),
            CellOutcome::Done { train_seconds, evaluate_seconds, trained } => format!(
                "{key}: {} {train_seconds:.1} s, evaluated in {evaluate_seconds:.1} s",
                if *trained { "trained in" } else { "bundle reused, trained earlier in" }
            ),
        };
        if self.quiet {
            eprintln!("{line}");
        } else {
            self.overall.println(line);
        }
    }
}

pub fn parse_budget(text: &str) -> Result<Budget, String> {
    text.parse().map_err(|err: crate::Error| err.to_string())
}
