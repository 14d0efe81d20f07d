//! The per-axis trade-off scores and the verdicts behind the recommendation, oriented by the
//! metric catalogue's directions. Pure: study figures in, numbers out.
//!
//! **Axis score.** For one dataset and one axis: at each scarcity fraction, each of the axis's
//! scoring metrics ([`score_metrics`], the catalogue's scored figures) is turned into a "goodness" (the value where higher is
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

use edge_runtime::metrics::catalogue::{CATALOGUE, MetricSpec};
use edge_runtime::metrics::{Axis, MetricId};
use models::manifest::Family;

use crate::report::study::{DatasetResults, Figure};

pub use edge_runtime::metrics::catalogue::{Direction, direction};

/// The metrics behind an axis score: the catalogue's [scored](MetricSpec::scored) figures of
/// that axis. Utility and robustness use the figures of the classifier trained on synthetic data
/// (TSTR): the TRTR ones do not depend on the generator.
pub fn score_metrics(axis: Axis) -> impl Iterator<Item = &'static MetricSpec> {
    CATALOGUE.iter().filter(move |spec| spec.scored && spec.axis == axis)
}

/// One axis's scores on one dataset, in the dataset's family order; `None` where a family has
/// none of the axis's metrics at any fraction shared with another family.
#[derive(Debug, Clone, PartialEq)]
pub struct AxisScores {
    pub axis: Axis,
    pub scores: Vec<(Family, Option<f64>)>,
}

impl AxisScores {
    /// The families with the highest score (more than one on a tie).
    pub fn leaders(&self) -> Vec<Family> {
        let best =
            self.scores.iter().filter_map(|(_, score)| *score).fold(f64::NEG_INFINITY, f64::max);
        if !best.is_finite() {
            return Vec::new();
        }
        self.scores
            .iter()
            .filter(|(_, score)| score.is_some_and(|score| (score - best).abs() < 1e-9))
            .map(|(family, _)| *family)
            .collect()
    }
}

/// The six axis scores of a dataset (see the module docs).
pub fn axis_scores(dataset: &DatasetResults) -> Vec<AxisScores> {
    Axis::ALL
        .into_iter()
        .map(|axis| {
            let mut sums = vec![(0.0, 0usize); dataset.families.len()];
            for &fraction in &dataset.fractions {
                for spec in score_metrics(axis) {
                    let name = spec.name;
                    let goodness: Vec<(usize, f64)> = dataset
                        .families
                        .iter()
                        .enumerate()
                        .filter_map(|(idx, &family)| {
                            let figure = dataset.figure(family, fraction, name)?;
                            let value = if spec.log_scale {
                                figure.value.max(f64::MIN_POSITIVE).log10()
                            } else {
                                figure.value
                            };
                            spec.direction.goodness(value).map(|goodness| (idx, goodness))
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
                    .map(|(&family, (sum, count))| {
                        (family, (count > 0).then(|| sum / count as f64))
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
    pub axis: Axis,
    pub metric: MetricId,
    /// What the metric measures, in plain words.
    pub meaning: &'static str,
}

pub const PRIORITIES: [Priority; 3] = [
    Priority {
        title: "Privacy first",
        axis: Axis::Privacy,
        metric: MetricId::MiaAuc,
        meaning: "the membership-inference attack's AUC: 0.5 means the attack cannot tell training records from others, so closest to 0.5 wins",
    },
    Priority {
        title: "Utility first",
        axis: Axis::Utility,
        metric: MetricId::TstrAccuracy,
        meaning: "the accuracy on real hold-out data of a classifier trained on synthetic data only (TSTR); higher wins",
    },
    Priority {
        title: "Fastest on the device",
        axis: Axis::Efficiency,
        metric: MetricId::SamplesPerSecond,
        meaning: "synthetic samples generated per second on this machine; higher wins",
    },
];

/// The families ranked on one metric at one fraction, best first.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub fraction: f64,
    pub ranking: Vec<(Family, Figure)>,
    /// The winner's and the runner-up's intervals overlap: the lead may be chance.
    pub overlap: bool,
    /// The winner and the runner-up have the same value.
    pub tie: bool,
}

impl Verdict {
    pub fn winner(&self) -> &(Family, Figure) {
        &self.ranking[0]
    }

    pub fn runner_up(&self) -> &(Family, Figure) {
        &self.ranking[1]
    }
}

/// Ranks the families on `metric` at `fraction`; `None` unless at least two have it.
pub fn verdict(dataset: &DatasetResults, metric: MetricId, fraction: f64) -> Option<Verdict> {
    let direction = metric.direction();
    let mut ranked: Vec<(Family, Figure, f64)> = dataset
        .families
        .iter()
        .filter_map(|&family| {
            let figure = dataset.figure(family, fraction, metric.name())?;
            direction.goodness(figure.value).map(|goodness| (family, *figure, goodness))
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

    use models::Modality;

    use super::*;
    use crate::report::study::Group;

    fn figure(value: f64, low: f64, high: f64) -> Figure {
        Figure { value, low, high, n: 100, n_seeds: 1, seed_sd: None }
    }

    /// Per family, its `(metric, value, low, high)` figures.
    type FamilyFigures<'a> = [(Family, &'a [(MetricId, f64, f64, f64)])];

    /// A dataset where each family has the given figures at every fraction.
    fn dataset(fractions: &[f64], rows: &FamilyFigures<'_>) -> DatasetResults {
        let mut groups = Vec::new();
        for (family, figures) in rows {
            for &fraction in fractions {
                let figures: BTreeMap<String, Figure> = figures
                    .iter()
                    .map(|(name, value, low, high)| {
                        (name.name().to_owned(), figure(*value, *low, *high))
                    })
                    .collect();
                groups.push(Group {
                    family: *family,
                    fraction,
                    seeds: vec![0],
                    samples: vec![String::new()],
                    figures,
                });
            }
        }
        DatasetResults {
            name: "d".to_owned(),
            modality: Modality::Tabular,
            data_path: String::new(),
            label: String::new(),
            families: rows.iter().map(|(family, _)| *family).collect(),
            fractions: fractions.to_vec(),
            groups,
            metrics: Vec::new(),
        }
    }

    fn score_of(scores: &[AxisScores], axis: Axis, family: Family) -> Option<f64> {
        scores
            .iter()
            .find(|scores| scores.axis == axis)?
            .scores
            .iter()
            .find(|(name, _)| *name == family)?
            .1
    }

    #[test]
    fn axis_scores_are_min_max_over_families_averaged_over_metrics_and_fractions() {
        // recall: vae 0.9 (best), gan 0.5, ddpm 0.1 (worst) → 1, 0.5, 0; class_balance_tv (lower
        // is better): vae 0.3 (worst), gan 0.1 (best), ddpm 0.2 → 0, 1, 0.5. Means: vae 0.5, gan
        // 0.75, ddpm 0.25.
        let data = dataset(
            &[0.25, 1.0],
            &[
                (
                    Family::Vae,
                    &[
                        (MetricId::Recall, 0.9, 0.8, 1.0),
                        (MetricId::ClassBalanceTv, 0.3, 0.2, 0.4),
                        (MetricId::SamplesPerSecond, 10.0, 9.0, 11.0),
                    ],
                ),
                (
                    Family::Gan,
                    &[
                        (MetricId::Recall, 0.5, 0.4, 0.6),
                        (MetricId::ClassBalanceTv, 0.1, 0.0, 0.2),
                        (MetricId::SamplesPerSecond, 100.0, 90.0, 110.0),
                    ],
                ),
                (
                    Family::Ddpm,
                    &[
                        (MetricId::Recall, 0.1, 0.0, 0.2),
                        (MetricId::ClassBalanceTv, 0.2, 0.1, 0.3),
                        (MetricId::SamplesPerSecond, 10_000.0, 9000.0, 11_000.0),
                    ],
                ),
            ],
        );
        let scores = axis_scores(&data);
        let close = |got: Option<f64>, expected: f64| {
            assert!(got.is_some_and(|got| (got - expected).abs() < 1e-12), "{got:?} != {expected}")
        };
        close(score_of(&scores, Axis::Diversity, Family::Vae), 0.5);
        close(score_of(&scores, Axis::Diversity, Family::Gan), 0.75);
        close(score_of(&scores, Axis::Diversity, Family::Ddpm), 0.25);
        // Speed on a log scale: 1, 2, 4 decades → 0, 1/3, 1.
        close(score_of(&scores, Axis::Efficiency, Family::Gan), 1.0 / 3.0);
        assert_eq!(
            score_of(&scores, Axis::Privacy, Family::Vae),
            None,
            "no privacy metric was given"
        );
        let diversity =
            scores.iter().find(|scores| scores.axis == Axis::Diversity).map(AxisScores::leaders);
        assert_eq!(diversity, Some(vec![Family::Gan]));
    }

    #[test]
    fn a_verdict_names_the_best_family_and_flags_overlapping_intervals() {
        let data = dataset(
            &[1.0],
            &[
                (
                    Family::Vae,
                    &[
                        (MetricId::MiaAuc, 0.62, 0.58, 0.66),
                        (MetricId::TstrAccuracy, 0.70, 0.60, 0.80),
                    ],
                ),
                (
                    Family::Gan,
                    &[
                        (MetricId::MiaAuc, 0.52, 0.49, 0.55),
                        (MetricId::TstrAccuracy, 0.90, 0.85, 0.95),
                    ],
                ),
                (
                    Family::Ddpm,
                    &[
                        (MetricId::MiaAuc, 0.40, 0.35, 0.48),
                        (MetricId::TstrAccuracy, 0.85, 0.80, 0.90),
                    ],
                ),
            ],
        );
        let privacy = verdict(&data, MetricId::MiaAuc, 1.0);
        let names = |verdict: &Option<Verdict>| {
            verdict.as_ref().map(|verdict| {
                verdict.ranking.iter().map(|(family, _)| *family).collect::<Vec<_>>()
            })
        };
        assert_eq!(names(&privacy), Some(vec![Family::Gan, Family::Ddpm, Family::Vae]));
        // gan's distance to 0.5 lies within [0, 0.05], ddpm's within [0.02, 0.15]: they overlap.
        assert_eq!(privacy.as_ref().map(|verdict| verdict.overlap), Some(true));
        let utility = verdict(&data, MetricId::TstrAccuracy, 1.0);
        assert_eq!(names(&utility), Some(vec![Family::Gan, Family::Ddpm, Family::Vae]));
        assert_eq!(
            utility.as_ref().map(|verdict| (verdict.overlap, verdict.tie)),
            Some((true, false))
        );
        let apart = dataset(
            &[1.0],
            &[
                (Family::Vae, &[(MetricId::TstrAccuracy, 0.6, 0.55, 0.65)]),
                (Family::Gan, &[(MetricId::TstrAccuracy, 0.9, 0.85, 0.95)]),
            ],
        );
        assert_eq!(
            verdict(&apart, MetricId::TstrAccuracy, 1.0)
                .map(|verdict| (verdict.winner().0, verdict.overlap)),
            Some((Family::Gan, false))
        );
        assert_eq!(verdict(&apart, MetricId::MiaAuc, 1.0), None, "no family has the metric");
    }
}
