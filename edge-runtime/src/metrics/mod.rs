//! The six assessment axes. Every figure is a [`Metric`]: a value with a 95 % interval and the
//! number of samples behind it. Metric functions are pure: encoded matrices in, numbers out.
//!
//! Features are the encoded space (numeric columns standardised with the real train part's mean
//! and population standard deviation, categoricals one-hot, pixels in [-1, 1]); the label is not
//! a feature. The real set for k-NN figures is the real train part (the records the model saw).

pub mod augment;
pub mod catalogue;
pub mod fidelity;
pub mod intervals;
pub mod knn;
pub mod neighbours;
pub mod utility;

use std::time::Duration;

use models::ImageShape;
use models::transform::Block;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
pub use catalogue::{Axis, Direction, MetricId, MetricSpec, Source};
use intervals::{bootstrap, wilson};
pub use utility::Labelled;

/// One figure of an assessment, as printed, written to JSON and stored in the logbook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    /// One of the six assessment axes, or `training`; JSON and the logbook hold its lowercase
    /// name.
    pub axis: Axis,
    pub name: String,
    pub value: f64,
    pub ci_low: f64,
    pub ci_high: f64,
    /// The sample count behind the figure.
    pub n: u64,
}

impl Metric {
    /// The figure `id` (its axis and name from the catalogue).
    pub fn new(id: MetricId, value: f64, ci_low: f64, ci_high: f64, n: u64) -> Metric {
        Metric { axis: id.axis(), name: id.name().to_owned(), value, ci_low, ci_high, n }
    }

    /// A share of `n` with its Wilson interval.
    pub fn proportion(id: MetricId, successes: u64, n: u64) -> Metric {
        let (low, high) = wilson(successes, n);
        let value = if n == 0 { f64::NAN } else { successes as f64 / n as f64 };
        Metric::new(id, value, low, high, n)
    }

    /// The same figure for one of its parts, named `name/detail`.
    pub fn detail(mut self, detail: &str) -> Metric {
        self.name = format!("{}/{detail}", self.name);
        self
    }

    /// The same figure at one benchmark configuration, named `name.configuration`.
    pub fn at_configuration(mut self, configuration: &str) -> Metric {
        self.name = format!("{}.{configuration}", self.name);
        self
    }

    /// The catalogue entry of this figure; `None` for a name the catalogue does not know (a
    /// row synced from a newer version).
    pub fn spec(&self) -> Option<&'static MetricSpec> {
        catalogue::lookup(&self.name)
    }
}

/// A figure that could not be computed, and why (reported, never silently dropped).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Skipped {
    pub name: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Assessment {
    pub metrics: Vec<Metric>,
    pub skipped: Vec<Skipped>,
}

impl Assessment {
    pub fn get(&self, name: &str) -> Option<&Metric> {
        self.metrics.iter().find(|metric| metric.name == name)
    }
}

/// The three encoded sets and what the figures need to know about the features.
#[derive(Debug, Clone, Copy)]
pub struct EvalInput<'a> {
    pub train: Labelled<'a>,
    pub holdout: Labelled<'a>,
    pub synthetic: Labelled<'a>,
    pub n_classes: usize,
    pub blocks: &'a [Block],
    /// Encoded feature names, for error messages.
    pub feature_names: &'a [String],
    pub image: Option<ImageShape>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EvalSettings {
    /// Neighbours of the k-NN figures (5 as in Naeem et al.).
    pub k: usize,
    pub seed: u64,
    /// Bootstrap replicates per interval.
    pub replicates: usize,
    pub forest_trees: u16,
    /// The axes to compute (efficiency comes from generation timings, see [`efficiency_metrics`]).
    pub axes: Vec<Axis>,
}

impl Default for EvalSettings {
    fn default() -> Self {
        EvalSettings { k: 5, seed: 0, replicates: 200, forest_trees: 50, axes: Axis::ALL.to_vec() }
    }
}

fn check(input: &EvalInput<'_>, k: usize) -> Result<()> {
    let dim = input.train.x.dim;
    for (set, data) in [
        ("real train", &input.train),
        ("real hold-out", &input.holdout),
        ("synthetic", &input.synthetic),
    ] {
        if data.x.dim != dim {
            return Err(Error::Invalid(format!(
                "the {set} data has {} features, the real train part {dim}",
                data.x.dim
            )));
        }
        if data.labels.len() != data.x.n_rows {
            return Err(Error::Invalid(format!(
                "the {set} data has {} rows but {} labels",
                data.x.n_rows,
                data.labels.len()
            )));
        }
        if let Some(position) = data.x.data.iter().position(|value| !value.is_finite()) {
            let (row, col) = (position / dim.max(1), position % dim.max(1));
            let feature = input
                .feature_names
                .get(col)
                .map_or_else(|| format!("feature {col}"), |name| format!("`{name}`"));
            return Err(Error::Invalid(format!(
                "the {set} data has a non-finite value ({}) in row {}, {feature}; every value must be a finite number",
                data.x.data[position],
                row + 1
            )));
        }
        if let Some(label) = data.labels.iter().find(|&&label| label as usize >= input.n_classes) {
            return Err(Error::Invalid(format!(
                "the {set} data has label index {label}, but there are {} classes",
                input.n_classes
            )));
        }
    }
    knn::check_k(
        k,
        &[("real train", input.train.x.n_rows), ("synthetic", input.synthetic.x.n_rows)],
    )?;
    if input.holdout.x.n_rows == 0 {
        return Err(Error::Invalid(
            "the real hold-out is empty; utility and privacy need held-out rows".to_owned(),
        ));
    }
    Ok(())
}

fn distinct_classes(labels: &[u32]) -> usize {
    let mut seen: Vec<u32> = labels.to_vec();
    seen.sort_unstable();
    seen.dedup();
    seen.len()
}

/// Computes every figure of the requested axes (except efficiency).
pub fn evaluate(input: &EvalInput<'_>, settings: &EvalSettings) -> Result<Assessment> {
    check(input, settings.k)?;
    intervals::check_replicates(settings.replicates)?;
    let wants = |axis: Axis| settings.axes.contains(&axis);
    let mut assessment = Assessment::default();
    let (seed, replicates) = (settings.seed, settings.replicates);
    if wants(Axis::Fidelity) || wants(Axis::Diversity) || wants(Axis::Privacy) {
        let metrics = neighbours::neighbour_metrics(
            input.train.x,
            input.holdout.x,
            input.synthetic.x,
            settings.k,
            seed,
            replicates,
        )?;
        assessment
            .metrics
            .extend(metrics.into_iter().filter(|metric| settings.axes.contains(&metric.axis)));
    }
    if wants(Axis::Fidelity) {
        assessment.metrics.extend(fidelity::fidelity_metrics(
            input.train.x,
            input.synthetic.x,
            input.blocks,
            seed,
            replicates,
        )?);
    }
    if wants(Axis::Diversity) {
        assessment.metrics.push(fidelity::class_balance_metric(
            input.train.labels,
            input.synthetic.labels,
            input.n_classes,
            seed,
            replicates,
        ));
    }
    let (real_classes, synthetic_classes) =
        (distinct_classes(input.train.labels), distinct_classes(input.synthetic.labels));
    let utility_runs = (wants(Axis::Utility) || wants(Axis::Robustness))
        && real_classes >= 2
        && synthetic_classes >= 2;
    if wants(Axis::Fidelity) && !utility_runs {
        // conditional_accuracy needs only the TRTR classifier, which utility_metrics would fit.
        if real_classes < 2 {
            assessment.skipped.push(Skipped {
                name: MetricId::ConditionalAccuracy.name().to_owned(),
                reason: format!(
                    "a classifier needs two classes or more; the real train part has {real_classes}"
                ),
            });
        } else {
            let trtr_model = utility::fit_logistic(&input.train, input.n_classes)?;
            assessment.metrics.push(utility::conditional_accuracy(&trtr_model, &input.synthetic));
        }
    }
    if wants(Axis::Utility) || wants(Axis::Robustness) {
        if !utility_runs {
            let reason = format!(
                "a classifier needs two classes or more; the real train part has {real_classes} and the synthetic set {synthetic_classes}"
            );
            for id in [
                MetricId::TstrAccuracy,
                MetricId::TrtrAccuracy,
                MetricId::TstrPerturbedAccuracyRatio,
                MetricId::TstrAdversarialAccuracy,
            ] {
                assessment
                    .skipped
                    .push(Skipped { name: id.name().to_owned(), reason: reason.clone() });
            }
        } else {
            let utility_settings = utility::UtilitySettings {
                seed,
                replicates,
                forest_trees: settings.forest_trees,
                image: input.image,
                blocks: input.blocks,
                augmentation_strength: 1.0,
            };
            let metrics = utility::utility_metrics(
                input.train,
                input.holdout,
                input.synthetic,
                input.n_classes,
                &utility_settings,
            )?;
            assessment
                .metrics
                .extend(metrics.into_iter().filter(|metric| settings.axes.contains(&metric.axis)));
        }
    }
    set_aside_undefined(&mut assessment);
    sort_by_axis(&mut assessment.metrics);
    Ok(assessment)
}

/// Moves figures whose value or interval is not a finite number (a ratio over an accuracy of 0,
/// an AUC whose resamples lack a class) to `skipped`, saying why: they are reported, not stored
/// as numbers that mean nothing.
pub fn set_aside_undefined(assessment: &mut Assessment) {
    let (kept, undefined): (Vec<Metric>, Vec<Metric>) = std::mem::take(&mut assessment.metrics)
        .into_iter()
        .partition(|m| m.value.is_finite() && m.ci_low.is_finite() && m.ci_high.is_finite());
    assessment.metrics = kept;
    for metric in undefined {
        assessment.skipped.push(Skipped {
            name: metric.name,
            reason: format!(
                "undefined on this data (value {}, interval [{}, {}])",
                metric.value, metric.ci_low, metric.ci_high
            ),
        });
    }
}

/// Stable order: by axis as in [`Axis::ALL`], then as computed.
pub fn sort_by_axis(metrics: &mut [Metric]) {
    metrics.sort_by_key(|metric| metric.axis.rank());
}

/// `samples_per_second` and `ms_per_sample` of a generation run from its per-batch timings
/// (samples, duration), with bootstrap intervals over batches. `replicates` must pass
/// [`intervals::check_replicates`] (the precondition of [`bootstrap`]).
pub fn efficiency_metrics(
    batches: &[(usize, Duration)],
    seed: u64,
    replicates: usize,
) -> Vec<Metric> {
    let rate = |idx: &[usize]| {
        let samples: usize = idx.iter().map(|&i| batches[i].0).sum();
        let seconds: f64 = idx.iter().map(|&i| batches[i].1.as_secs_f64()).sum();
        samples as f64 / seconds.max(1e-12)
    };
    let all: Vec<usize> = (0..batches.len()).collect();
    let n: u64 = batches.iter().map(|(samples, _)| *samples as u64).sum();
    let value = rate(&all);
    let (low, high) = bootstrap(
        &[batches.len()],
        replicates,
        seed,
        MetricId::SamplesPerSecond.name(),
        value,
        |idx| rate(&idx[0]),
    );
    vec![
        Metric::new(MetricId::SamplesPerSecond, value, low, high, n),
        Metric::new(MetricId::MsPerSample, 1e3 / value, 1e3 / high, 1e3 / low, n),
    ]
}

/// A plain-text table of the metrics, grouped by axis.
pub fn format_table(metrics: &[Metric], skipped: &[Skipped]) -> String {
    let width = metrics.iter().map(|metric| metric.name.len()).max().unwrap_or(10).max(10);
    let mut out = format!(
        "{:<11} {:<width$} {:>12}  {:>27}  {:>7}\n",
        "axis", "metric", "value", "95% interval", "n"
    );
    let mut last_axis = None;
    for metric in metrics {
        let axis = if last_axis == Some(metric.axis) { "" } else { metric.axis.as_str() };
        last_axis = Some(metric.axis);
        out.push_str(&format!(
            "{axis:<11} {:<width$} {:>12.4}  [{:>11.4}, {:>11.4}]  {:>7}\n",
            metric.name, metric.value, metric.ci_low, metric.ci_high, metric.n
        ));
    }
    for skip in skipped {
        out.push_str(&format!("skipped: {} ({})\n", skip.name, skip.reason));
    }
    out
}
