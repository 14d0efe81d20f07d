//! Confidence intervals (95 %) and the small statistics they are built from.
//!
//! Proportions get a Wilson score interval; every other figure a percentile bootstrap whose
//! replicates draw their resampling indices from seeded streams (one per replicate), so the
//! interval is the same however the replicates are spread over threads.

use rand::RngExt;
use rayon::prelude::*;

/// The standard normal quantile for a two-sided 95 % interval.
pub const Z_95: f64 = 1.959_963_984_540_054;

/// Wilson score interval of `successes` out of `n`; `(0, 1)` for `n = 0`.
pub fn wilson(successes: u64, n: u64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let (n, p) = (n as f64, successes as f64 / n as f64);
    let z2 = Z_95 * Z_95;
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = Z_95 * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / (1.0 + z2 / n);
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// Percentile bootstrap: `statistic` is evaluated on `replicates` resamples (with replacement)
/// of each group's indices — `groups[g]` is that group's size — and the 2.5 % and 97.5 %
/// quantiles of the finite results are returned. Resampling groups separately keeps, say, real
/// and synthetic sample sizes fixed.
pub fn bootstrap<F>(groups: &[usize], replicates: usize, seed: u64, purpose: &str, statistic: F) -> (f64, f64)
where
    F: Fn(&[Vec<usize>]) -> f64 + Sync,
{
    let mut values: Vec<f64> = (0..replicates)
        .into_par_iter()
        .map(|replicate| {
            let mut rng = models::rng::stream(seed, &format!("bootstrap/{purpose}/{replicate}"));
            let resampled: Vec<Vec<usize>> = groups.iter().map(|&n| (0..n).map(|_| rng.random_range(0..n.max(1))).collect()).collect();
            statistic(&resampled)
        })
        .filter(|value| value.is_finite())
        .collect();
    if values.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    values.sort_by(f64::total_cmp);
    (quantile_sorted(&values, 0.025), quantile_sorted(&values, 0.975))
}

/// Quantile with linear interpolation between order statistics (numpy's default).
pub fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let position = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let (low, high) = (position.floor() as usize, position.ceil() as usize);
    sorted[low] + (sorted[high] - sorted[low]) * (position - low as f64)
}

pub fn quantile(values: &[f64], q: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    quantile_sorted(&sorted, q)
}

pub fn median(values: &[f64]) -> f64 {
    quantile(values, 0.5)
}

pub fn mean(values: &[f64]) -> f64 {
    if values.is_empty() { f64::NAN } else { values.iter().sum::<f64>() / values.len() as f64 }
}

/// Area under the ROC curve of `scores` for `positive` labels (Mann-Whitney, ties counted half).
pub fn roc_auc(scores: &[f64], positive: &[bool]) -> f64 {
    let n_pos = positive.iter().filter(|&&p| p).count();
    let n_neg = positive.len() - n_pos;
    if n_pos == 0 || n_neg == 0 {
        return f64::NAN;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    // Average ranks (1-based) over runs of tied scores.
    let mut rank_sum_pos = 0.0;
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && scores[order[end]] == scores[order[start]] {
            end += 1;
        }
        let average_rank = (start + 1 + end) as f64 / 2.0;
        rank_sum_pos += average_rank * order[start..end].iter().filter(|&&idx| positive[idx]).count() as f64;
        start = end;
    }
    (rank_sum_pos - (n_pos * (n_pos + 1)) as f64 / 2.0) / (n_pos as f64 * n_neg as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilson_worked_example() {
        // 8 of 10 (Newcombe 1998, method 3): 0.4902 to 0.9433.
        let (low, high) = wilson(8, 10);
        assert!((low - 0.4902).abs() < 5e-4 && (high - 0.9433).abs() < 5e-4, "{low} {high}");
        assert_eq!(wilson(0, 0), (0.0, 1.0));
        let (low, high) = wilson(0, 20);
        assert!(low == 0.0 && (high - 0.1611).abs() < 5e-4, "{high}");
    }

    #[test]
    fn auc_worked_example_with_ties() {
        // Positives 0.8, 0.4, 0.4; negatives 0.4, 0.1: pairs won 2 + (0.5 + 1) + (0.5 + 1) = 5 of 6.
        let auc = roc_auc(&[0.8, 0.4, 0.4, 0.4, 0.1], &[true, true, true, false, false]);
        assert!((auc - 5.0 / 6.0).abs() < 1e-12, "{auc}");
    }

    #[test]
    fn quantiles_match_numpy() {
        // numpy.percentile([1, 2, 3, 4, 10], [5, 50, 97.5]) = [1.2, 3.0, 9.4]
        let values = [4.0, 1.0, 10.0, 3.0, 2.0];
        assert!((quantile(&values, 0.05) - 1.2).abs() < 1e-12);
        assert!((median(&values) - 3.0).abs() < 1e-12);
        assert!((quantile(&values, 0.975) - 9.4).abs() < 1e-12);
    }

    #[test]
    fn bootstrap_of_a_mean_covers_it_and_is_reproducible() {
        let data: Vec<f64> = (0..400).map(|i| (i % 17) as f64).collect();
        let stat = |idx: &[Vec<usize>]| idx[0].iter().map(|&i| data[i]).sum::<f64>() / idx[0].len() as f64;
        let a = bootstrap(&[data.len()], 300, 5, "mean", stat);
        let b = bootstrap(&[data.len()], 300, 5, "mean", stat);
        assert_eq!(a, b);
        let m = mean(&data);
        // The standard error is about 4.9 / 20 = 0.245: the interval spans roughly ± 0.48.
        assert!(a.0 < m && m < a.1 && a.1 - a.0 > 0.6 && a.1 - a.0 < 1.4, "{a:?} around {m}");
    }
}
