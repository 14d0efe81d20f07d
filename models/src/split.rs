//! Stratified train / hold-out split, then a scarcity fraction of the train part.
//!
//! For each class, its rows (in file order) are shuffled by a seeded stream of that class; the
//! first `round(holdout · n_c)` go to the hold-out (at least one and at most `n_c − 1` when the
//! class has two rows or more), the rest to the train part. A hold-out share of 0 keeps every row
//! for training (a prepared train file; evaluation then takes the hold-out as a file). The scarce train subset takes the
//! first `max(1, round(fraction · train_c))` of a second seeded shuffle of each class's train
//! rows. Smaller fractions are therefore nested inside larger ones under the same seed, and the
//! hold-out does not depend on the fraction at all: every scarcity level of a study is measured
//! against the same real hold-out. Only integer arithmetic and `f64::round` are involved, so the
//! partition is the same on every machine.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::rng;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SplitSpec {
    pub seed: u64,
    /// Share of each class held out, in [0, 1) (0: none; evaluation needs a hold-out file).
    pub holdout: f64,
    /// Share of each class's train rows kept for training, in (0, 1].
    pub fraction: f64,
}

impl SplitSpec {
    pub fn new(seed: u64, holdout: f64, fraction: f64) -> Result<SplitSpec> {
        if !(0.0..1.0).contains(&holdout) {
            return Err(Error::parameter(
                "hold-out fraction",
                holdout,
                "a number in [0, 1), e.g. 0.2 (0: train on every row)",
            ));
        }
        if !(fraction > 0.0 && fraction <= 1.0) {
            return Err(Error::parameter(
                "scarcity fraction",
                fraction,
                "a number in (0, 1], e.g. 0.25",
            ));
        }
        Ok(SplitSpec { seed, holdout, fraction })
    }
}

/// Row indices, each list ascending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    /// The scarce train subset the model is fitted on.
    pub train: Vec<usize>,
    /// The whole train part (before the scarcity fraction).
    pub train_full: Vec<usize>,
    /// The real hold-out: never trained on.
    pub holdout: Vec<usize>,
}

/// Splits rows by `labels` (class indices below `n_classes`).
pub fn partition(labels: &[u32], n_classes: usize, spec: &SplitSpec) -> Result<Partition> {
    let spec = SplitSpec::new(spec.seed, spec.holdout, spec.fraction)?;
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); n_classes];
    for (row, &label) in labels.iter().enumerate() {
        let class = label as usize;
        if class >= n_classes {
            return Err(Error::parameter(
                "label index",
                label,
                format!("below the number of classes {n_classes}"),
            ));
        }
        by_class[class].push(row);
    }
    let mut part = Partition { train: Vec::new(), train_full: Vec::new(), holdout: Vec::new() };
    for (class, mut rows) in by_class.into_iter().enumerate() {
        let n_rows = rows.len();
        if n_rows == 0 {
            continue;
        }
        rng::shuffle(&mut rng::stream(spec.seed, &format!("split/holdout/{class}")), &mut rows);
        let n_holdout = if n_rows < 2 || spec.holdout == 0.0 {
            0
        } else {
            ((spec.holdout * n_rows as f64).round() as usize).clamp(1, n_rows - 1)
        };
        part.holdout.extend_from_slice(&rows[..n_holdout]);
        let mut train = rows[n_holdout..].to_vec();
        part.train_full.extend_from_slice(&train);
        rng::shuffle(&mut rng::stream(spec.seed, &format!("split/scarcity/{class}")), &mut train);
        let n_keep = ((spec.fraction * train.len() as f64).round() as usize).clamp(1, train.len());
        part.train.extend_from_slice(&train[..n_keep]);
    }
    part.train.sort_unstable();
    part.train_full.sort_unstable();
    part.holdout.sort_unstable();
    Ok(part)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(counts: &[usize]) -> Vec<u32> {
        counts
            .iter()
            .enumerate()
            .flat_map(|(class, &n)| std::iter::repeat_n(class as u32, n))
            .collect()
    }

    #[test]
    fn worked_example_counts() {
        // 10 and 3 rows; hold-out 0.2 → 2 and round(0.6)=1; fraction 0.5 → round(4)=4, round(1)=1.
        let labels = labels(&[10, 3]);
        let part =
            partition(&labels, 2, &SplitSpec { seed: 1, holdout: 0.2, fraction: 0.5 }).unwrap();
        let count =
            |rows: &[usize], class: u32| rows.iter().filter(|&&row| labels[row] == class).count();
        assert_eq!((count(&part.holdout, 0), count(&part.holdout, 1)), (2, 1));
        assert_eq!((count(&part.train_full, 0), count(&part.train_full, 1)), (8, 2));
        assert_eq!((count(&part.train, 0), count(&part.train, 1)), (4, 1));
    }

    #[test]
    fn a_hold_out_of_zero_trains_on_every_row() {
        let labels = labels(&[10, 3]);
        let part =
            partition(&labels, 2, &SplitSpec { seed: 1, holdout: 0.0, fraction: 1.0 }).unwrap();
        assert!(part.holdout.is_empty());
        assert_eq!(part.train, (0..13).collect::<Vec<_>>());
        assert_eq!(part.train_full, part.train);
    }

    #[test]
    fn single_row_class_stays_in_train() {
        let labels = labels(&[5, 1]);
        let part =
            partition(&labels, 2, &SplitSpec { seed: 0, holdout: 0.5, fraction: 0.1 }).unwrap();
        assert!(part.train.contains(&5));
        assert!(!part.holdout.contains(&5));
    }

    #[test]
    fn bad_fractions_are_refused() {
        for (holdout, fraction) in
            [(-0.1, 0.5), (1.0, 0.5), (0.2, 0.0), (0.2, 1.5), (0.2, f64::NAN), (f64::NAN, 1.0)]
        {
            let err = SplitSpec::new(0, holdout, fraction)
                .err()
                .map(|err| err.to_string())
                .unwrap_or_default();
            assert!(
                err.starts_with("invalid ")
                    && (err.contains("expected a number in (0, 1")
                        || err.contains("expected a number in [0, 1")),
                "{err}"
            );
        }
    }
}
