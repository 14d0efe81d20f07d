//! The metric catalogue: every figure the program computes, stores, gates, scores or charts, each
//! named once, here, with its axis, which way is better, where it comes from, what the gate and
//! the report do with it and what it means.
//!
//! Everything else derives from this table: the metric functions build their [`Metric`]s from a
//! [`MetricId`], the gate accepts `max_`/`min_` bounds on the [`MetricSpec::gateable`] figures
//! only, the logbook's headline figures follow [`Axis`] order, the study report orients, scores
//! and charts by [`MetricSpec::direction`], [`MetricSpec::scored`] and [`MetricSpec::shown`],
//! the README's metric table is [`markdown_table`] (a test keeps them equal) and the tests'
//! list of required figures is [`MetricSpec::source`].
//!
//! A stored name is a catalogue name, optionally followed by a detail: `name/detail` for the
//! parts a figure is averaged over (`tstr_perturbed_accuracy_ratio/gaussian_0.1`) and
//! `name.configuration` for a benchmark's figure at one configuration
//! (`samples_per_second.batch256`). [`lookup`] finds the entry of either.
//!
//! [`Metric`]: super::Metric

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What a figure is about: the six assessment axes, in report order, and the side axis of
/// training measurements (a study's training time and final loss).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Axis {
    Fidelity,
    Diversity,
    Efficiency,
    Utility,
    Robustness,
    Privacy,
    /// Not an assessment axis: measurements of the training run behind a bundle.
    Training,
}

impl Axis {
    /// The six assessment axes, in the order tables and reports list them.
    pub const ALL: [Axis; 6] = [
        Axis::Fidelity,
        Axis::Diversity,
        Axis::Efficiency,
        Axis::Utility,
        Axis::Robustness,
        Axis::Privacy,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Axis::Fidelity => "fidelity",
            Axis::Diversity => "diversity",
            Axis::Efficiency => "efficiency",
            Axis::Utility => "utility",
            Axis::Robustness => "robustness",
            Axis::Privacy => "privacy",
            Axis::Training => "training",
        }
    }

    /// Position in report order: the six axes, then `training`.
    pub fn rank(self) -> usize {
        Axis::ALL.iter().position(|axis| *axis == self).unwrap_or(Axis::ALL.len())
    }
}

impl fmt::Display for Axis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Axis {
    type Err = UnknownAxis;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Axis::ALL
            .into_iter()
            .chain([Axis::Training])
            .find(|axis| axis.as_str() == text)
            .ok_or_else(|| UnknownAxis(text.to_owned()))
    }
}

/// A text that names no [`Axis`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown axis `{0}`; expected fidelity, diversity, efficiency, utility, robustness, privacy \
     or training"
)]
pub struct UnknownAxis(pub String);

/// Which values of a metric are better.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Direction {
    Higher,
    Lower,
    /// Best at this value: the distance to it is what counts.
    Target(f64),
    /// Not comparable across families (a training loss).
    Unranked,
}

impl Direction {
    /// The value oriented so that higher is better; `None` when unranked or not finite.
    pub fn goodness(self, value: f64) -> Option<f64> {
        if !value.is_finite() {
            return None;
        }
        match self {
            Direction::Higher => Some(value),
            Direction::Lower => Some(-value),
            Direction::Target(ideal) => Some(-(value - ideal).abs()),
            Direction::Unranked => None,
        }
    }

    /// An interval `[low, high]` of the value mapped to goodness, as `(low, high)`.
    pub fn goodness_interval(self, low: f64, high: f64) -> Option<(f64, f64)> {
        match self {
            Direction::Higher => Some((low, high)),
            Direction::Lower => Some((-high, -low)),
            Direction::Target(ideal) => {
                let far = (low - ideal).abs().max((high - ideal).abs());
                let near = if low <= ideal && ideal <= high {
                    0.0
                } else {
                    (low - ideal).abs().min((high - ideal).abs())
                };
                Some((-far, -near))
            }
            Direction::Unranked => None,
        }
    }

    /// A short mark for table headers.
    pub fn mark(self) -> String {
        match self {
            Direction::Higher => "↑".to_owned(),
            Direction::Lower => "↓".to_owned(),
            Direction::Target(ideal) => format!("→{ideal}"),
            Direction::Unranked => String::new(),
        }
    }

    pub fn describe(self) -> String {
        match self {
            Direction::Higher => "higher is better".to_owned(),
            Direction::Lower => "lower is better".to_owned(),
            Direction::Target(ideal) => format!("best at {ideal}"),
            Direction::Unranked => "not ranked".to_owned(),
        }
    }
}

/// Which computation produces a figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The assessment of a synthetic set against real data (`evaluate`, the gate, the study).
    Assessment,
    /// The timings of a generation run (`evaluate --model`, the study).
    Generation,
    /// `synth-edge bench`, per configuration.
    Bench,
    /// The training run behind a study cell.
    Training,
}

/// Where the study report shows a figure (every figure is in its full per-dataset table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shown {
    /// Only in the full table.
    Table,
    /// Also a column of the six-axis summary table.
    Summary,
    /// Also a column of the summary and a chart against the scarcity fraction.
    SummaryAndChart,
}

/// One entry of the catalogue.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MetricSpec {
    pub id: MetricId,
    /// The name in JSON, the logbook, policies and reports.
    pub name: &'static str,
    pub axis: Axis,
    pub direction: Direction,
    pub source: Source,
    /// A release policy may bound it (`max_<name>` / `min_<name>`).
    pub gateable: bool,
    /// Part of its axis's trade-off score in the study report.
    pub scored: bool,
    /// Compared on a log scale (it spans orders of magnitude across families).
    pub log_scale: bool,
    pub shown: Shown,
    /// What it measures, in one line.
    pub description: &'static str,
}

/// Flags of a catalogue line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flag {
    Gate,
    Score,
    Log,
    Summary,
    Chart,
}

const fn has(flags: &[Flag], wanted: Flag) -> bool {
    let mut idx = 0;
    while idx < flags.len() {
        if flags[idx] as u8 == wanted as u8 {
            return true;
        }
        idx += 1;
    }
    false
}

const fn shown(flags: &[Flag]) -> Shown {
    if has(flags, Flag::Chart) {
        Shown::SummaryAndChart
    } else if has(flags, Flag::Summary) {
        Shown::Summary
    } else {
        Shown::Table
    }
}

/// One line per metric: `Id: "name", Axis, direction, Source, [flags], "description";`. The
/// order is the study report's (its full tables, summary columns and charts) and the README's;
/// `evaluate` lists figures as it computes them, grouped by axis.
macro_rules! catalogue {
    ($($id:ident: $name:literal, $axis:ident, $direction:expr, $source:ident,
       [$($flag:ident),*], $description:literal;)+) => {
        /// A metric of the catalogue. `id.spec()` is its entry.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum MetricId {
            $($id),+
        }

        /// Every metric, in report order; `CATALOGUE[id as usize].id == id`.
        pub const CATALOGUE: &[MetricSpec] = &[
            $(MetricSpec {
                id: MetricId::$id,
                name: $name,
                axis: Axis::$axis,
                direction: $direction,
                source: Source::$source,
                gateable: has(&[$(Flag::$flag),*], Flag::Gate),
                scored: has(&[$(Flag::$flag),*], Flag::Score),
                log_scale: has(&[$(Flag::$flag),*], Flag::Log),
                shown: shown(&[$(Flag::$flag),*]),
                description: $description,
            }),+
        ];
    };
}

use Direction::{Higher, Lower, Target, Unranked};

catalogue! {
    Precision: "precision", Fidelity, Higher, Assessment, [Gate, Score, Chart],
        "share of synthetic samples inside the k-NN ball of some real train sample (Naeem et al. 2020)";
    Density: "density", Fidelity, Target(1.0), Assessment, [Gate, Score],
        "real k-NN balls holding a synthetic sample, averaged and divided by k (1: densities match)";
    FrechetDistance: "frechet_distance", Fidelity, Lower, Assessment, [Gate, Score, Chart],
        "Fréchet distance between Gaussians fitted to the real train and synthetic features";
    ColumnShapeSimilarity: "column_shape_similarity", Fidelity, Higher, Assessment, [Gate, Score],
        "mean over columns of 1 − Kolmogorov–Smirnov statistic (numbers) or 1 − TV distance (categories)";
    CorrelationDifference: "correlation_difference", Fidelity, Lower, Assessment, [Gate, Score],
        "mean absolute difference of the Pearson correlations of every pair of features";
    DetectionAuc: "detection_auc", Fidelity, Target(0.5), Assessment, [Gate, Score],
        "ROC AUC of boosted trees telling real from synthetic, out of fold (0.5: indistinguishable)";
    MissingRateDifference: "missing_rate_difference", Fidelity, Lower, Assessment, [Gate, Score],
        "mean over table columns of the absolute difference of the share of empty cells, real train vs synthetic (`/column`: one)";
    ConditionalAccuracy: "conditional_accuracy", Fidelity, Higher, Assessment, [Gate, Score, Summary],
        "share of synthetic samples the TRTR logistic regression assigns to the class they were generated for";
    Recall: "recall", Diversity, Higher, Assessment, [Gate, Score, Chart],
        "share of real train samples inside the k-NN ball of some synthetic sample";
    Coverage: "coverage", Diversity, Higher, Assessment, [Gate, Score, Summary],
        "share of real train samples whose k-NN ball holds a synthetic sample";
    ClassBalanceTv: "class_balance_tv", Diversity, Lower, Assessment, [Gate, Score],
        "total variation distance between the real and synthetic label distributions";
    SamplesPerSecond: "samples_per_second", Efficiency, Higher, Generation, [Score, Log, Chart],
        "synthetic samples generated per second";
    MsPerSample: "ms_per_sample", Efficiency, Lower, Generation, [],
        "milliseconds per generated sample";
    P50Ms: "p50_ms", Efficiency, Lower, Bench, [],
        "median latency of one generation call at a configuration, in milliseconds";
    PeakRssMb: "peak_rss_mb", Efficiency, Lower, Bench, [],
        "peak resident memory of the benchmark process, in MiB";
    BundleSizeKib: "bundle_size_kib", Efficiency, Lower, Bench, [],
        "size of the bundle's files, in KiB";
    TstrAccuracy: "tstr_accuracy", Utility, Higher, Assessment, [Gate, Score, Chart],
        "hold-out accuracy of a logistic regression trained on synthetic data (TSTR)";
    TrtrAccuracy: "trtr_accuracy", Utility, Higher, Assessment, [],
        "hold-out accuracy of the same classifier trained on the real train part (TRTR)";
    TstrTrtrRatio: "tstr_trtr_ratio", Utility, Higher, Assessment, [Gate, Score, Summary],
        "TSTR accuracy over TRTR accuracy";
    TstrMacroF1: "tstr_macro_f1", Utility, Higher, Assessment, [Gate, Score],
        "macro-averaged F1 of the TSTR classifier on the hold-out";
    TrtrMacroF1: "trtr_macro_f1", Utility, Higher, Assessment, [],
        "macro-averaged F1 of the TRTR classifier on the hold-out";
    AugmentationGain: "augmentation_gain", Utility, Higher, Assessment, [Score],
        "hold-out accuracy of real + synthetic training minus that of real alone";
    ClassicalAugmentationGain: "classical_augmentation_gain", Utility, Higher, Assessment, [],
        "the same with as many classical augmentations of the train part as synthetic rows (images: flip, rotation, shift, crop; tables: jitter, SMOTE)";
    CombinedAugmentationGain: "combined_augmentation_gain", Utility, Higher, Assessment, [],
        "the same with every other synthetic row and every other augmented row: as many added rows as the other two";
    TstrAccuracyForest: "tstr_accuracy_forest", Utility, Higher, Assessment, [],
        "TSTR accuracy with a random forest";
    TrtrAccuracyForest: "trtr_accuracy_forest", Utility, Higher, Assessment, [],
        "TRTR accuracy with a random forest";
    TstrTrtrRatioForest: "tstr_trtr_ratio_forest", Utility, Higher, Assessment, [],
        "TSTR over TRTR accuracy with a random forest";
    TstrPerturbedAccuracyRatio: "tstr_perturbed_accuracy_ratio", Robustness, Higher, Assessment,
        [Gate, Score, Chart],
        "TSTR accuracy on perturbed hold-out rows over clean accuracy, mean over perturbations (`/name`: one)";
    TrtrPerturbedAccuracyRatio: "trtr_perturbed_accuracy_ratio", Robustness, Higher, Assessment,
        [],
        "the same for the TRTR classifier";
    TstrAdversarialAccuracy: "tstr_adversarial_accuracy", Robustness, Higher, Assessment, [Score],
        "TSTR accuracy on hold-out rows moved ε = 0.1 (L∞) against the classifier's gradient";
    TrtrAdversarialAccuracy: "trtr_adversarial_accuracy", Robustness, Higher, Assessment, [],
        "the same for the TRTR classifier";
    MiaAuc: "mia_auc", Privacy, Target(0.5), Assessment, [Gate, Score, Chart],
        "ROC AUC of a distance attack telling train records from hold-out ones (0.5: nothing leaks)";
    ExactCopyRate: "exact_copy_rate", Privacy, Lower, Assessment, [Gate, Score],
        "share of synthetic samples equal to a real train record";
    CloserToTrainShare: "closer_to_train_share", Privacy, Lower, Assessment, [Gate, Score],
        "share of synthetic samples closer to a train record than to any hold-out record";
    DcrTrainMedian: "dcr_train_median", Privacy, Higher, Assessment, [Gate, Score, Chart],
        "median distance from a synthetic sample to its closest real train record";
    DcrHoldoutMedian: "dcr_holdout_median", Privacy, Higher, Assessment, [Gate],
        "median distance from a synthetic sample to its closest hold-out record";
    DcrTrainP05: "dcr_train_p05", Privacy, Higher, Assessment, [Gate, Score],
        "5th percentile of the distance to the closest real train record";
    NndrMean: "nndr_mean", Privacy, Higher, Assessment, [Gate, Score],
        "mean ratio of the nearest to the second-nearest train distance (0: an exact copy)";
    TrainSeconds: "train_seconds", Training, Lower, Training, [],
        "wall-clock seconds the training took";
    FinalLoss: "final_loss", Training, Unranked, Training, [],
        "the training loss of the last epoch (not comparable across families)";
}

impl MetricId {
    pub fn spec(self) -> &'static MetricSpec {
        &CATALOGUE[self as usize]
    }

    pub fn name(self) -> &'static str {
        self.spec().name
    }

    pub fn axis(self) -> Axis {
        self.spec().axis
    }

    pub fn direction(self) -> Direction {
        self.spec().direction
    }

    /// The stored name of one part of this figure: `name/detail`.
    pub fn detailed(self, detail: &str) -> String {
        format!("{}/{detail}", self.name())
    }

    /// The metric with exactly this catalogue name (no detail).
    pub fn from_name(name: &str) -> Option<MetricId> {
        CATALOGUE.iter().find(|spec| spec.name == name).map(|spec| spec.id)
    }
}

impl fmt::Display for MetricId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl AsRef<str> for MetricId {
    fn as_ref(&self) -> &str {
        self.name()
    }
}

/// The catalogue entry of a stored name: `name`, `name/detail` or `name.configuration`.
pub fn lookup(stored_name: &str) -> Option<&'static MetricSpec> {
    let base_end = stored_name.find(['/', '.']).unwrap_or(stored_name.len());
    MetricId::from_name(&stored_name[..base_end]).map(MetricId::spec)
}

/// The direction of a stored name; a name the catalogue does not know is not ranked.
pub fn direction(stored_name: &str) -> Direction {
    lookup(stored_name).map_or(Direction::Unranked, |spec| spec.direction)
}

/// The metrics a release policy may bound.
pub fn gateable() -> impl Iterator<Item = &'static MetricSpec> {
    CATALOGUE.iter().filter(|spec| spec.gateable)
}

/// The lines around the generated table in the README.
pub const README_TABLE_START: &str = "<!-- metric-catalogue: generated by `synth-edge metrics --markdown`; a test keeps it equal -->";
pub const README_TABLE_END: &str = "<!-- /metric-catalogue -->";

/// The catalogue as the README's Markdown table: one row per metric.
pub fn markdown_table() -> String {
    let mut table = String::from(
        "| axis | metric | better | gate | what it measures |\n|---|---|---|---|---|\n",
    );
    for spec in CATALOGUE {
        let better = match spec.direction {
            Direction::Higher => "higher".to_owned(),
            Direction::Lower => "lower".to_owned(),
            Direction::Target(ideal) => format!("near {ideal}"),
            Direction::Unranked => "—".to_owned(),
        };
        table.push_str(&format!(
            "| {} | `{}` | {better} | {} | {} |\n",
            spec.axis,
            spec.name,
            if spec.gateable { "yes" } else { "" },
            spec.description.replace('|', "\\|"),
        ));
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalogue_is_indexed_by_id_and_names_each_metric_once() {
        for (idx, spec) in CATALOGUE.iter().enumerate() {
            assert_eq!(spec.id as usize, idx, "{}", spec.name);
            assert_eq!(MetricId::from_name(spec.name), Some(spec.id));
            assert!(
                spec.name
                    .bytes()
                    .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'_'),
                "{}: a stored name is lowercase ASCII with underscores",
                spec.name
            );
            assert!(!spec.description.is_empty(), "{}", spec.name);
        }
        let mut names: Vec<&str> = CATALOGUE.iter().map(|spec| spec.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), CATALOGUE.len());
    }

    #[test]
    fn the_readme_table_is_the_catalogue() {
        let readme = include_str!("../../../README.md");
        let table = readme
            .split_once(README_TABLE_START)
            .and_then(|(_, rest)| rest.split_once(README_TABLE_END))
            .map(|(table, _)| table.trim_start_matches('\n'));
        assert_eq!(
            table,
            Some(markdown_table().as_str()),
            "README.md's metric table differs from the catalogue: paste the output of \
             `synth-edge metrics --markdown` between its markers"
        );
    }

    #[test]
    fn entries_are_in_axis_order() {
        let ranks: Vec<usize> = CATALOGUE.iter().map(|spec| spec.axis.rank()).collect();
        assert!(ranks.windows(2).all(|pair| pair[0] <= pair[1]), "{ranks:?}");
    }

    #[test]
    fn stored_names_with_details_find_their_entry() {
        let check = |stored: &str, expected: Option<MetricId>| {
            assert_eq!(lookup(stored).map(|spec| spec.id), expected, "{stored}");
        };
        check("mia_auc", Some(MetricId::MiaAuc));
        check(
            "tstr_perturbed_accuracy_ratio/gaussian_0.1",
            Some(MetricId::TstrPerturbedAccuracyRatio),
        );
        check("samples_per_second.batch256", Some(MetricId::SamplesPerSecond));
        check("p50_ms.batch1.steps50.ddim", Some(MetricId::P50Ms));
        check("mia", None);
        check("", None);
        assert_eq!(
            MetricId::TstrPerturbedAccuracyRatio.detailed("outliers"),
            "tstr_perturbed_accuracy_ratio/outliers"
        );
        assert_eq!(direction("density"), Direction::Target(1.0));
        assert_eq!(direction("tstr_accuracy_forest"), Direction::Higher);
        assert_eq!(direction("closer_to_train_share"), Direction::Lower);
        assert_eq!(direction("something_else"), Direction::Unranked);
    }

    #[test]
    fn axes_round_trip_through_text_and_json() {
        for axis in Axis::ALL.into_iter().chain([Axis::Training]) {
            assert_eq!(axis.as_str().parse::<Axis>(), Ok(axis));
            assert_eq!(serde_json::to_string(&axis).unwrap(), format!("\"{axis}\""));
        }
        assert_eq!("speed".parse::<Axis>(), Err(UnknownAxis("speed".to_owned())));
        assert!(serde_json::from_str::<Axis>("\"speed\"").is_err());
    }

    #[test]
    fn an_auc_interval_maps_to_its_distance_from_one_half() {
        let check = |direction: Direction, (low, high): (f64, f64), expected: (f64, f64)| {
            let got = direction.goodness_interval(low, high);
            assert!(
                got.is_some_and(
                    |got| (got.0 - expected.0).abs() < 1e-12 && (got.1 - expected.1).abs() < 1e-12
                ),
                "[{low}, {high}] → {got:?}, expected {expected:?}"
            );
        };
        check(Direction::Target(0.5), (0.4, 0.7), (-0.2, 0.0));
        check(Direction::Target(0.5), (0.6, 0.7), (-0.2, -0.1));
        check(Direction::Target(0.5), (0.2, 0.45), (-0.3, -0.05));
        check(Direction::Lower, (1.0, 2.0), (-2.0, -1.0));
    }
}
