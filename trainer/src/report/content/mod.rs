//! What the report says: the findings, the recommendation, and per dataset the six-axis table,
//! the trade-off chart, the metric-against-fraction charts, the samples (grids for images,
//! marginals for tables) and every metric; then the runs and the method. Builds the document
//! and the files beside it (plots, sample grids) from the study and its [`Assets`] alone: it
//! reads and writes nothing.
//!
//! One module per part of the report: [`findings`], [`augmentation`] (synthetic or classical
//! augmentation, per dataset and fraction), [`recommendation`], [`dataset`] (its tables,
//! with [`charts`] and [`samples`]), [`runs`] and [`method`]; the introduction is here.

mod augmentation;
mod charts;
mod dataset;
mod findings;
mod method;
mod recommendation;
mod runs;
mod samples;

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;

use edge_runtime::logbook::RunStatus;

use crate::error::Result;
use edge_runtime::metrics::catalogue::{CATALOGUE, MetricSpec, Shown};

use crate::report::assets::Assets;
use crate::report::doc::{Block, Document, anchor, code, text};
use crate::report::format::list;
use crate::report::score::{self, AxisScores};
use crate::report::study::Study;

/// The metrics charted against the fraction: the catalogue's [`Shown::SummaryAndChart`] figures
/// (the full table has every metric).
fn charted() -> impl Iterator<Item = &'static MetricSpec> {
    CATALOGUE.iter().filter(|spec| spec.shown == Shown::SummaryAndChart)
}

/// The columns of the six-axis table: the catalogue's figures shown in the summary.
fn summary() -> impl Iterator<Item = &'static MetricSpec> {
    CATALOGUE.iter().filter(|spec| matches!(spec.shown, Shown::Summary | Shown::SummaryAndChart))
}

pub const PLOTS_DIR: &str = "plots";
pub const SAMPLES_DIR: &str = "samples";

/// The report's document and the files it shows, by path relative to the report folder.
#[derive(Debug, Clone)]
pub struct Report {
    pub document: Document,
    pub files: BTreeMap<String, Vec<u8>>,
}

/// Builds the report of `study` with the files `assets` holds (loaded for this study). `db` is
/// named in the introduction; `out` only names files in error messages.
pub fn build(
    study: &Study,
    assets: &Assets,
    db: &Path,
    out: &Path,
    written_at: &str,
) -> Result<Report> {
    let mut report = Report {
        document: Document { title: "fieldsynth study report".to_owned(), blocks: Vec::new() },
        files: BTreeMap::new(),
    };
    let scores: Vec<Vec<AxisScores>> = study.datasets.iter().map(score::axis_scores).collect();

    let mut contents = vec![("Headline findings".to_owned(), "findings".to_owned())];
    if augmentation::has_gains(study) {
        contents
            .push(("Synthetic or classical augmentation".to_owned(), "augmentation".to_owned()));
    }
    contents.push(("Recommendation".to_owned(), "recommendation".to_owned()));
    for dataset in &study.datasets {
        contents.push((format!("Dataset {}", dataset.name), anchor(&["dataset", &dataset.name])));
    }
    contents.extend([
        ("Runs".to_owned(), "runs".to_owned()),
        ("Method".to_owned(), "method".to_owned()),
    ]);

    introduction(&mut report.document, study, db, written_at);
    report.document.blocks.push(Block::Contents(contents));
    findings::findings(&mut report.document, study, &scores);
    augmentation::augmentation(&mut report.document, study);
    recommendation::recommendation(&mut report.document, study, &scores);
    for ((dataset, dataset_scores), dataset_assets) in
        study.datasets.iter().zip(&scores).zip(&assets.datasets)
    {
        dataset::dataset_section(&mut report, dataset, dataset_scores, dataset_assets, out)?;
    }
    runs::runs_section(&mut report.document, study);
    method::method(&mut report.document);
    Ok(report)
}

fn introduction(document: &mut Document, study: &Study, db: &Path, written_at: &str) {
    let count = |status: RunStatus| study.runs.iter().filter(|run| run.status == status).count();
    let (done, failed, running) =
        (count(RunStatus::Done), count(RunStatus::Failed), count(RunStatus::Running));
    let mut families: Vec<&str> = Vec::new();
    let mut fractions: Vec<f64> = Vec::new();
    let mut seeds: Vec<u64> = Vec::new();
    for run in &study.runs {
        if !families.contains(&run.params.family.as_str()) {
            families.push(run.params.family.as_str());
        }
        if !fractions.contains(&run.params.fraction) {
            fractions.push(run.params.fraction);
        }
        if !seeds.contains(&run.params.seed) {
            seeds.push(run.params.seed);
        }
    }
    fractions.sort_by(f64::total_cmp);
    let datasets: Vec<&str> = study.datasets.iter().map(|dataset| dataset.name.as_str()).collect();
    let mut status = format!("{done} done");
    if failed > 0 {
        let _ = write!(status, ", {failed} failed");
    }
    if running > 0 {
        let _ = write!(status, ", {running} not finished");
    }
    document.paragraph(vec![
        text(format!(
            "{} cells ({status}): datasets {}; families {}; scarcity fractions {}; {} per cell. Logbook ",
            study.runs.len(),
            list(&datasets),
            list(&families),
            list(&fractions.iter().map(|fraction| fraction.to_string()).collect::<Vec<_>>()),
            if seeds.len() == 1 { "1 seed".to_owned() } else { format!("{} seeds", seeds.len()) },
        )),
        code(db.display().to_string()),
        text(format!(", report written {written_at}.")),
    ]);
    document.paragraph(vec![text(
        "Every figure is shown as value [95 % interval]; the scarcity fraction is the share of the train part a model was trained on. \
         Arrows in table headers say which way is better (↑ higher, ↓ lower, →0.5 closest to 0.5); the best family at each fraction is highlighted.",
    )]);
}
