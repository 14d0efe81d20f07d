//! The study as the report sees it: the logbook's study runs (their params read as the study's
//! [`CellParams`]) grouped by dataset, then by (family, scarcity fraction), each metric
//! aggregated over the seeds of its group.
//!
//! With one seed a figure is that run's value and interval. With several, the value is the mean
//! over seeds, the interval is the envelope of the seeds' intervals (lowest low, highest high),
//! so it covers both the within-run and the between-seed uncertainty, and the standard deviation
//! across seeds is kept beside it.

use std::collections::BTreeMap;
use std::path::Path;

use edge_runtime::logbook::{RunRecord, RunStatus};
use edge_runtime::metrics::{Axis, Metric, catalogue};
use models::Modality;
use models::manifest::Family;

use crate::cell::{CellParams, STUDY_RUN_KIND};
use crate::error::{Error, Result};

/// One study run, whatever its status: the appendix lists them all.
#[derive(Debug, Clone)]
pub struct CellRun {
    pub run_id: String,
    pub status: RunStatus,
    pub message: Option<String>,
    pub params: CellParams,
    pub n_metrics: usize,
}

/// A metric of one (family, fraction) group, aggregated over its seeds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Figure {
    pub value: f64,
    pub low: f64,
    pub high: f64,
    /// The sample count behind the figure (the smallest over seeds).
    pub n: u64,
    pub n_seeds: usize,
    /// Standard deviation of the value across seeds (sample, n − 1); `None` with one seed.
    pub seed_sd: Option<f64>,
}

impl Figure {
    /// Aggregates one metric over the runs (seeds) of a group; `metrics` must not be empty.
    fn over_seeds(metrics: &[&Metric]) -> Option<Figure> {
        let n_seeds = metrics.len();
        if n_seeds == 0 {
            return None;
        }
        let value = metrics.iter().map(|metric| metric.value).sum::<f64>() / n_seeds as f64;
        let seed_sd = (n_seeds > 1).then(|| {
            let squares: f64 = metrics.iter().map(|metric| (metric.value - value).powi(2)).sum();
            (squares / (n_seeds - 1) as f64).sqrt()
        });
        Some(Figure {
            value,
            low: metrics.iter().map(|metric| metric.ci_low).fold(f64::INFINITY, f64::min),
            high: metrics.iter().map(|metric| metric.ci_high).fold(f64::NEG_INFINITY, f64::max),
            n: metrics.iter().map(|metric| metric.n).min().unwrap_or(0),
            n_seeds,
            seed_sd,
        })
    }
}

/// The done runs of one dataset × family × fraction.
#[derive(Debug, Clone)]
pub struct Group {
    pub family: Family,
    pub fraction: f64,
    /// Seeds in increasing order, one per done run.
    pub seeds: Vec<u64>,
    /// The samples file of each seed, relative to the study folder, in `seeds` order.
    pub samples: Vec<String>,
    /// By metric name.
    pub figures: BTreeMap<String, Figure>,
}

/// Everything the study measured on one dataset.
#[derive(Debug, Clone)]
pub struct DatasetResults {
    pub name: String,
    pub modality: Modality,
    /// The real data, relative to the folder the study ran from (as the study recorded it).
    pub data_path: String,
    pub label: String,
    /// Families with at least one done run, in report order (vae, gan, ddpm).
    pub families: Vec<Family>,
    /// Fractions with at least one done run, increasing.
    pub fractions: Vec<f64>,
    pub groups: Vec<Group>,
    /// Every metric seen on this dataset as (axis, name), axes in report order.
    pub metrics: Vec<(Axis, String)>,
}

impl DatasetResults {
    pub fn group(&self, family: Family, fraction: f64) -> Option<&Group> {
        self.groups.iter().find(|group| group.family == family && group.fraction == fraction)
    }

    pub fn figure(&self, family: Family, fraction: f64, name: &str) -> Option<&Figure> {
        self.group(family, fraction).and_then(|group| group.figures.get(name))
    }
}

/// The whole study.
#[derive(Debug, Clone)]
pub struct Study {
    pub datasets: Vec<DatasetResults>,
    /// Every study run in the logbook, oldest first.
    pub runs: Vec<CellRun>,
}

impl Study {
    /// Builds the study from a logbook's runs; runs of other kinds are ignored. `db` names the
    /// logbook in errors.
    pub fn from_runs(db: &Path, runs: Vec<RunRecord>) -> Result<Study> {
        let mut cell_runs = Vec::new();
        let mut done: Vec<(CellParams, Vec<Metric>)> = Vec::new();
        for run in runs.into_iter().filter(|run| run.kind == STUDY_RUN_KIND) {
            let params: CellParams = serde_json::from_value(run.params).map_err(|source| {
                Error::CellParams { path: db.to_owned(), run_id: run.id.clone(), source }
            })?;
            if !params.fraction.is_finite() {
                return Err(Error::Report {
                    path: db.to_owned(),
                    message: format!(
                        "study run {}: fraction {} is not a number",
                        run.id, params.fraction
                    ),
                });
            }
            cell_runs.push(CellRun {
                run_id: run.id,
                status: run.status,
                message: run.message,
                params: params.clone(),
                n_metrics: run.metrics.len(),
            });
            if run.status == RunStatus::Done {
                // A cell run twice (the study was reset) counts once: the later run wins.
                done.retain(|(earlier, _)| earlier.cell != params.cell);
                done.push((params, run.metrics));
            }
        }
        if cell_runs.is_empty() {
            return Err(Error::Report {
                path: db.to_owned(),
                message: format!(
                    "holds no study runs (kind `{STUDY_RUN_KIND}`); expected the logbook `synth-train study` writes (DIR/study.sqlite)"
                ),
            });
        }
        let mut dataset_names: Vec<String> = Vec::new();
        for run in &cell_runs {
            if !dataset_names.contains(&run.params.dataset) {
                dataset_names.push(run.params.dataset.clone());
            }
        }
        let datasets = dataset_names
            .iter()
            .map(|name| dataset_results(name, &done))
            .filter(|dataset| !dataset.groups.is_empty())
            .collect();
        Ok(Study { datasets, runs: cell_runs })
    }
}

fn dataset_results(name: &str, done: &[(CellParams, Vec<Metric>)]) -> DatasetResults {
    let runs: Vec<&(CellParams, Vec<Metric>)> =
        done.iter().filter(|(params, _)| params.dataset == name).collect();
    let mut families: Vec<Family> = Vec::new();
    let mut fractions: Vec<f64> = Vec::new();
    for (params, _) in &runs {
        if !families.contains(&params.family) {
            families.push(params.family);
        }
        if !fractions.contains(&params.fraction) {
            fractions.push(params.fraction);
        }
    }
    // Family's order is the report's: vae, gan, ddpm.
    families.sort();
    fractions.sort_by(f64::total_cmp);

    let mut metrics: Vec<(Axis, String)> = Vec::new();
    let mut groups = Vec::new();
    for &family in &families {
        for &fraction in &fractions {
            let mut members: Vec<&(CellParams, Vec<Metric>)> = runs
                .iter()
                .copied()
                .filter(|(params, _)| params.family == family && params.fraction == fraction)
                .collect();
            if members.is_empty() {
                continue;
            }
            members.sort_by_key(|(params, _)| params.seed);
            let mut by_name: BTreeMap<String, Vec<&Metric>> = BTreeMap::new();
            for (_, run_metrics) in &members {
                for metric in run_metrics {
                    let key = (metric.axis, metric.name.clone());
                    if !metrics.contains(&key) {
                        metrics.push(key);
                    }
                    by_name.entry(metric.name.clone()).or_default().push(metric);
                }
            }
            groups.push(Group {
                family,
                fraction,
                seeds: members.iter().map(|(params, _)| params.seed).collect(),
                samples: members.iter().map(|(params, _)| params.samples.clone()).collect(),
                figures: by_name
                    .into_iter()
                    .filter_map(|(name, seeds)| {
                        Figure::over_seeds(&seeds).map(|figure| (name, figure))
                    })
                    .collect(),
            });
        }
    }
    metrics.sort_by(|a, b| metric_rank(a).cmp(&metric_rank(b)).then_with(|| a.1.cmp(&b.1)));

    let first = runs.first().map(|(params, _)| params);
    DatasetResults {
        name: name.to_owned(),
        modality: first.map_or(Modality::Tabular, |params| params.modality),
        data_path: first.map(|params| params.data_path.clone()).unwrap_or_default(),
        label: first.map(|params| params.label.clone()).unwrap_or_default(),
        families,
        fractions,
        groups,
        metrics,
    }
}

/// The order of metrics within the full table: axes in report order, then `training`; within
/// an axis, the catalogue's order, then names it does not know; a perturbation's row
/// (`tstr_perturbed_accuracy_ratio/gaussian_0.1`) ranks with the figure it details, and ties are
/// broken by name, which puts it right after that figure.
fn metric_rank((axis, name): &(Axis, String)) -> (usize, usize) {
    (
        axis.rank(),
        catalogue::lookup(name).map_or(catalogue::CATALOGUE.len(), |spec| spec.id as usize),
    )
}
