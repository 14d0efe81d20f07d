//! Which way each metric points, the per-axis trade-off scores, and the verdicts behind the
//! recommendation. Pure: study figures in, numbers out.
//!
//! **Axis score.** For one dataset and one axis: at each scarcity fraction, each of the axis's
//! scoring metrics ([`SCORE_METRICS`]) is turned into a "goodness" (the value where higher is
//! better, minus the value where lower is better, minus the distance to the ideal for AUCs and
//! density; the log of the value for sampling speed, which spans orders of magnitude) and
//! min-max normalised across the families measured there: the best family gets 1, the worst 0
//! (all 0.5 when they are equal). A family's axis score is the mean of these over metrics and
//! fractions, so every fraction weighs the same.
//!
//! **Verdict.** A priority is decided on one metric ([`PRIORITIES`]) at one fraction: the
//! family with the best value wins, the margin is the difference to the runner-up, and the lead
//! is flagged uncertain when the two intervals overlap (compared in the goodness space, so for an
//! AUC the interval of its distance to 0.5).

use crate::report::study::{DatasetResults, Figure};

/// Which values of a metric are better.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Direction {
    Higher,
    Lower,
    /// Best at this value: the distance to it is what counts.
    Target(f64),
    /// Not comparable across families (a training loss), or unknown.
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

/// The direction of a metric by name; a perturbation's row (`…/gaussian_0.1`) and a `_forest`
/// variant point the way of the figure they detail.
pub fn direction(name: &str) -> Direction {
    let base = name.split('/').next().unwrap_or(name);
    let base = base.strip_suffix("_forest").unwrap_or(base);
    match base {
        "detection_auc" | "mia_auc" => Direction::Target(0.5),
        "density" => Direction::Target(1.0),
        "frechet_distance"
        | "correlation_difference"
        | "class_balance_tv"
        | "ms_per_sample"
        | "exact_copy_rate"
        | "closer_to_train_share"
        | "train_seconds" => Direction::Lower,
        "precision"
        | "recall"
        | "coverage"
        | "column_shape_similarity"
        | "augmentation_gain"
        | "samples_per_second"
        | "nndr_mean" => Direction::Higher,
        _ if base.ends_with("_accuracy")
            || base.ends_with("_ratio")
            || base.ends_with("_f1")
            || base.starts_with("dcr_") =>
        {
            Direction::Higher
        }
        _ => Direction::Unranked,
    }
}

/// Metrics compared on a log scale (they span orders of magnitude across families).
fn log_scaled(name: &str) -> bool {
    name == "samples_per_second"
}

/// The metrics behind each axis score. Utility and robustness use the figures of the classifier
/// trained on synthetic data (TSTR): the TRTR ones do not depend on the generator.
pub const SCORE_METRICS: [(&str, &[&str]); 6] = [
    (
        "fidelity",
        &[
            "precision",
            "density",
            "frechet_distance",
            "column_shape_similarity",
            "correlation_difference",
            "detection_auc",
        ],
    ),
    ("diversity", &["recall", "coverage", "class_balance_tv"]),
    ("efficiency", &["samples_per_second"]),
    ("utility", &["tstr_accuracy", "tstr_macro_f1", "tstr_trtr_ratio", "augmentation_gain"]),
    ("robustness", &["tstr_perturbed_accuracy_ratio", "tstr_adversarial_accuracy"]),
    (
        "privacy",
        &[
            "mia_auc",
            "exact_copy_rate",
            "closer_to_train_share",
            "dcr_train_p05",
            "dcr_train_median",
            "nndr_mean",
        ],
    ),
];

/// One axis's scores on one dataset, in the dataset's family order; `None` where a family has
/// none of the axis's metrics at any fraction shared with another family.
#[derive(Debug, Clone, PartialEq)]
pub struct AxisScores {
    pub axis: &'static str,
    pub scores: Vec<(String, Option<f64>)>,
}

impl AxisScores {
    /// The families with the highest score (more than one on a tie).
    pub fn leaders(&self) -> Vec<&str> {
        let best =
            self.scores.iter().filter_map(|(_, score)| *score).fold(f64::NEG_INFINITY, f64::max);
        if !best.is_finite() {
            return Vec::new();
        }
        self.scores
            .iter()
            .filter(|(_, score)| score.is_some_and(|score| (score - best).abs() < 1e-9))
            .map(|(family, _)| family.as_str())
            .collect()
    }
}

/// The six axis scores of a dataset (see the module docs).
pub fn axis_scores(dataset: &DatasetResults) -> Vec<AxisScores> {
    SCORE_METRICS
        .iter()
        .map(|(axis, names)| {
            let mut sums = vec![(0.0, 0usize); dataset.families.len()];
            for &fraction in &dataset.fractions {
                for name in *names {
                    let goodness: Vec<(usize, f64)> = dataset
                        .families
                        .iter()
                        .enumerate()
                        .filter_map(|(idx, family)| {
                            let figure = dataset.figure(family, fraction, name)?;
                            let value = if log_scaled(name) {
                                figure.value.max(f64::MIN_POSITIVE).log10()
                            } else {
                                figure.value
                            };
                            direction(name).goodness(value).map(|goodness| (idx, goodness))
                        })
                        .collect();
                    if goodness.len() < 2 {
                        continue;
                    }
                    let min =
                        goodness.iter().map(|(_, value)| *value).fold(f64::INFINITY, f64::min);
                    let max =
                        goodness.iter().map(|(_, value)| *value).fold(f64::NEG_INFINITY, f64::max);
                    for (idx, value) in goodness {
                        let normalised = if max > min { (value - min) / (max - min) } else { 0.5 };
                        sums[idx].0 += normalised;
                        sums[idx].1 += 1;
                    }
                }
            }
            AxisScores {
                axis,
                scores: dataset
                    .families
                    .iter()
                    .zip(sums)
                    .map(|(family, (sum, count))| {
                        (family.clone(), (count > 0).then(|| sum / count as f64))
                    })
                    .collect(),
            }
        })
        .collect()
}

/// A priority a person may have, decided on one metric.
#[derive(Debug, Clone, Copy)]
pub struct Priority {
    pub title: &'static str,
    /// The axis whose score is quoted beside the verdict.
    pub axis: &'static str,
    pub metric: &'static str,
    /// What the metric measures, in plain words.
    pub meaning: &'static str,
}

pub const PRIORITIES: [Priority; 3] = [
    Priority {
        title: "Privacy first",
        axis: "privacy",
        metric: "mia_auc",
        meaning: "the membership-inference attack's AUC: 0.5 means the attack cannot tell training records from others, so closest to 0.5 wins",
    },
    Priority {
        title: "Utility first",
        axis: "utility",
        metric: "tstr_accuracy",
        meaning: "the accuracy on real hold-out data of a classifier trained on synthetic data only (TSTR); higher wins",
    },
    Priority {
        title: "Fastest on the device",
        axis: "efficiency",
        metric: "samples_per_second",
        meaning: "synthetic samples generated per second on this machine; higher wins",
    },
];

/// The families ranked on one metric at one fraction, best first.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub fraction: f64,
    pub ranking: Vec<(String, Figure)>,
    /// The winner's and the runner-up's intervals overlap: the lead may be chance.
    pub overlap: bool,
    /// The winner and the runner-up have the same value.
    pub tie: bool,
}

impl Verdict {
    pub fn winner(&self) -> &(String, Figure) {
        &self.ranking[0]
    }

    pub fn runner_up(&self) -> &(String, Figure) {
        &self.ranking[1]
    }
}

/// Ranks the families on `metric` at `fraction`; `None` unless at least two have it.
pub fn verdict(dataset: &DatasetResults, metric: &str, fraction: f64) -> Option<Verdict> {
    let direction = direction(metric);
    let mut ranked: Vec<(String, Figure, f64)> = dataset
        .families
        .iter()
        .filter_map(|family| {
            let figure = dataset.figure(family, fraction, metric)?;
            direction.goodness(figure.value).map(|goodness| (family.clone(), *figure, goodness))
        })
        .collect();
    if ranked.len() < 2 {
        return None;
    }
    // Stable: on equal values the report's family order decides who is named first.
    ranked.sort_by(|a, b| b.2.total_cmp(&a.2));
    let (first, second) = (&ranked[0], &ranked[1]);
    let overlap = match (
        direction.goodness_interval(first.1.low, first.1.high),
        direction.goodness_interval(second.1.low, second.1.high),
    ) {
        (Some(a), Some(b)) => a.0 <= b.1 && b.0 <= a.1,
        _ => true,
    };
    let tie = (first.2 - second.2).abs() <= 1e-12 * first.2.abs().max(1.0);
    Some(Verdict {
        fraction,
        overlap,
        tie,
        ranking: ranked.into_iter().map(|(family, figure, _)| (family, figure)).collect(),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::report::study::{Group, Modality};

    fn figure(value: f64, low: f64, high: f64) -> Figure {
        Figure { value, low, high, n: 100, n_seeds: 1, seed_sd: None }
    }

    /// Per family, its `(metric, value, low, high)` figures.
    type FamilyFigures<'a> = [(&'a str, &'a [(&'a str, f64, f64, f64)])];

    /// A dataset where each family has the given figures at every fraction.
    fn dataset(fractions: &[f64], rows: &FamilyFigures<'_>) -> DatasetResults {
        let mut groups = Vec::new();
        for (family, figures) in rows {
            for &fraction in fractions {
                let figures: BTreeMap<String, Figure> = figures
                    .iter()
                    .map(|(name, value, low, high)| {
                        ((*name).to_owned(), figure(*value, *low, *high))
                    })
                    .collect();
                groups.push(Group {
                    family: (*family).to_owned(),
                    fraction,
                    seeds: vec![0],
                    samples: vec![None],
                    figures,
                });
            }
        }
        DatasetResults {
            name: "d".to_owned(),
            modality: Modality::Tabular,
            data_path: None,
            label: None,
            families: rows.iter().map(|(family, _)| (*family).to_owned()).collect(),
            fractions: fractions.to_vec(),
            groups,
            metrics: Vec::new(),
        }
    }

    fn score_of(scores: &[AxisScores], axis: &str, family: &str) -> Option<f64> {
        scores
            .iter()
            .find(|scores| scores.axis == axis)?
            .scores
            .iter()
            .find(|(name, _)| name == family)?
            .1
    }

    #[test]
    fn directions_follow_the_metric_catalogue() {
        let check =
            |name: &str, expected: Direction| assert_eq!(direction(name), expected, "{name}");
        check("precision", Direction::Higher);
        check("tstr_accuracy_forest", Direction::Higher);
        check("tstr_perturbed_accuracy_ratio/gaussian_0.1", Direction::Higher);
        check("dcr_train_p05", Direction::Higher);
        check("frechet_distance", Direction::Lower);
        check("closer_to_train_share", Direction::Lower);
        check("mia_auc", Direction::Target(0.5));
        check("density", Direction::Target(1.0));
        check("final_loss", Direction::Unranked);
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

    #[test]
    fn axis_scores_are_min_max_over_families_averaged_over_metrics_and_fractions() {
        // recall: a 0.9 (best), b 0.5, c 0.1 (worst) → 1, 0.5, 0; class_balance_tv (lower is
        // better): a 0.3 (worst), b 0.1 (best), c 0.2 → 0, 1, 0.5. Means: a 0.5, b 0.75, c 0.25.
        let data = dataset(
            &[0.25, 1.0],
            &[
                (
                    "a",
                    &[
                        ("recall", 0.9, 0.8, 1.0),
                        ("class_balance_tv", 0.3, 0.2, 0.4),
                        ("samples_per_second", 10.0, 9.0, 11.0),
                    ],
                ),
                (
                    "b",
                    &[
                        ("recall", 0.5, 0.4, 0.6),
                        ("class_balance_tv", 0.1, 0.0, 0.2),
                        ("samples_per_second", 100.0, 90.0, 110.0),
                    ],
                ),
                (
                    "c",
                    &[
                        ("recall", 0.1, 0.0, 0.2),
                        ("class_balance_tv", 0.2, 0.1, 0.3),
                        ("samples_per_second", 10_000.0, 9000.0, 11_000.0),
                    ],
                ),
            ],
        );
        let scores = axis_scores(&data);
        let close = |got: Option<f64>, expected: f64| {
            assert!(got.is_some_and(|got| (got - expected).abs() < 1e-12), "{got:?} != {expected}")
        };
        close(score_of(&scores, "diversity", "a"), 0.5);
        close(score_of(&scores, "diversity", "b"), 0.75);
        close(score_of(&scores, "diversity", "c"), 0.25);
        // Speed on a log scale: 1, 2, 4 decades → 0, 1/3, 1.
        close(score_of(&scores, "efficiency", "b"), 1.0 / 3.0);
        assert_eq!(score_of(&scores, "privacy", "a"), None, "no privacy metric was given");
        let diversity =
            scores.iter().find(|scores| scores.axis == "diversity").map(AxisScores::leaders);
        assert_eq!(diversity, Some(vec!["b"]));
    }

    #[test]
    fn a_verdict_names_the_best_family_and_flags_overlapping_intervals() {
        let data = dataset(
            &[1.0],
            &[
                ("a", &[("mia_auc", 0.62, 0.58, 0.66), ("tstr_accuracy", 0.70, 0.60, 0.80)]),
                ("b", &[("mia_auc", 0.52, 0.49, 0.55), ("tstr_accuracy", 0.90, 0.85, 0.95)]),
                ("c", &[("mia_auc", 0.40, 0.35, 0.48), ("tstr_accuracy", 0.85, 0.80, 0.90)]),
            ],
        );
        let privacy = verdict(&data, "mia_auc", 1.0);
        let names = |verdict: &Option<Verdict>| {
            verdict.as_ref().map(|verdict| {
                verdict.ranking.iter().map(|(family, _)| family.clone()).collect::<Vec<_>>()
            })
        };
        assert_eq!(names(&privacy), Some(vec!["b".to_owned(), "c".to_owned(), "a".to_owned()]));
        // b's distance to 0.5 lies within [0, 0.05], c's within [0.02, 0.15]: they overlap.
        assert_eq!(privacy.as_ref().map(|verdict| verdict.overlap), Some(true));
        let utility = verdict(&data, "tstr_accuracy", 1.0);
        assert_eq!(names(&utility), Some(vec!["b".to_owned(), "c".to_owned(), "a".to_owned()]));
        assert_eq!(
            utility.as_ref().map(|verdict| (verdict.overlap, verdict.tie)),
            Some((true, false))
        );
        let apart = dataset(
            &[1.0],
            &[
                ("a", &[("tstr_accuracy", 0.6, 0.55, 0.65)]),
                ("b", &[("tstr_accuracy", 0.9, 0.85, 0.95)]),
            ],
        );
        assert_eq!(
            verdict(&apart, "tstr_accuracy", 1.0)
                .map(|verdict| (verdict.winner().0.clone(), verdict.overlap)),
            Some(("b".to_owned(), false))
        );
        assert_eq!(verdict(&apart, "mia_auc", 1.0), None, "no family has the metric");
    }
}
