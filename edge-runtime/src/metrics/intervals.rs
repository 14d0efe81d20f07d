//! Confidence intervals (95 %) and the small statistics they are built from.
//!
//! Proportions get a Wilson score interval; every other figure a percentile bootstrap whose
//! replicates draw their resampling indices from seeded streams (one per replicate), so the
//! interval is the same however the replicates are spread over threads.

use rand::RngExt;
use rayon::prelude::*;

/// The most bootstrap replicates an interval takes: [`check_replicates`] refuses more, and
/// [`bootstrap`] draws none when asked for more.
pub const MAX_REPLICATES: usize = 100_000;

/// Refuses a replicate count outside `1..=MAX_REPLICATES`.
pub fn check_replicates(replicates: usize) -> crate::Result<()> {
    if (1..=MAX_REPLICATES).contains(&replicates) {
        Ok(())
    } else {
        Err(crate::Error::Invalid(format!(
            "bootstrap replicates is {replicates}; expected 1 to {MAX_REPLICATES}"
        )))
    }
}

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
    // Rounding must not push the bounds past the estimate (at p = 1 the upper bound is exactly 1).
    ((centre - half).clamp(0.0, p), (centre + half).clamp(p, 1.0))
}

/// Bias-corrected percentile bootstrap (Efron 1987, "BC"): `statistic` is evaluated on
/// `replicates` resamples (with replacement) of each group's indices — `groups[g]` is that
/// group's size, so real and synthetic sample sizes stay fixed — and the interval is read off
/// the finite replicates at percentiles shifted by the median bias `z₀ = Φ⁻¹(P(θ* < θ̂))`.
/// Statistics that resampling biases (the Fréchet distance, KS-based similarity, a total
/// variation near 0) would otherwise get intervals that miss their own estimate; when even the
/// corrected interval misses `point`, it is widened to include it.
///
/// Precondition: `replicates` is in `1..=MAX_REPLICATES`, which the entry points check with
/// [`check_replicates`] before any figure is computed (a metric's interval is not the place to
/// report a bad setting). Outside it no replicate is drawn and the interval is undefined
/// (`(NaN, NaN)`, as when no replicate is finite); a debug build stops on the assertion.
pub fn bootstrap<F>(
    groups: &[usize],
    replicates: usize,
    seed: u64,
    purpose: &str,
    point: f64,
    statistic: F,
) -> (f64, f64)
where
    F: Fn(&[Vec<usize>]) -> f64 + Sync,
{
    debug_assert!(
        check_replicates(replicates).is_ok(),
        "bootstrap replicates is {replicates}; the caller must check it (1 to {MAX_REPLICATES})"
    );
    if check_replicates(replicates).is_err() {
        return (f64::NAN, f64::NAN);
    }
    let mut values: Vec<f64> = (0..replicates)
        .into_par_iter()
        .map(|replicate| {
            let mut rng = models::rng::stream(seed, &format!("bootstrap/{purpose}/{replicate}"));
            let resampled: Vec<Vec<usize>> = groups
                .iter()
                .map(|&n| (0..n).map(|_| rng.random_range(0..n.max(1))).collect())
                .collect();
            statistic(&resampled)
        })
        .filter(|value| value.is_finite())
        .collect();
    if values.is_empty() || !point.is_finite() {
        return (f64::NAN, f64::NAN);
    }
    values.sort_by(f64::total_cmp);
    let count = values.len() as f64;
    let below = values.iter().filter(|&&value| value < point).count() as f64
        + 0.5 * values.iter().filter(|&&value| value == point).count() as f64;
    let z0 = normal_quantile((below / count).clamp(1.0 / (count + 1.0), count / (count + 1.0)));
    let low = quantile_sorted(&values, normal_cdf(2.0 * z0 - Z_95));
    let high = quantile_sorted(&values, normal_cdf(2.0 * z0 + Z_95));
    (low.min(point), high.max(point))
}

/// The standard normal distribution function, from `erfc` (Numerical Recipes' Chebyshev fit,
/// relative error below 1.2e-7).
pub fn normal_cdf(x: f64) -> f64 {
    let z = (x / std::f64::consts::SQRT_2).abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let polynomial = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let erfc = t * polynomial.exp();
    if x >= 0.0 { 1.0 - 0.5 * erfc } else { 0.5 * erfc }
}

/// The standard normal quantile function (Acklam's rational approximation, relative error
/// below 1.2e-9).
pub fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    let p_low = 0.024_25;
    if p <= 0.0 {
        return f64::NEG_INFINITY;
    }
    if p >= 1.0 {
        return f64::INFINITY;
    }
    if p < p_low {
        let q = (-2.0 * p.ln()).sqrt();
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    } else if p <= 1.0 - p_low {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        -normal_quantile(1.0 - p)
    }
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

/// Nearest-rank percentile (`q` in 0..=1) of ascending `sorted` (latency percentiles are reported
/// this way: an observed time, not an interpolation); NaN when it is empty.
pub fn nearest_rank(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
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
        rank_sum_pos +=
            average_rank * order[start..end].iter().filter(|&&idx| positive[idx]).count() as f64;
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
    fn nearest_rank_picks_the_ceiling_rank() {
        assert_eq!(nearest_rank(&[1.0, 2.0, 3.0, 4.0], 0.5), 2.0);
        assert_eq!(nearest_rank(&[1.0, 2.0, 3.0, 4.0, 5.0], 0.5), 3.0);
        assert_eq!(nearest_rank(&[1.0, 2.0, 3.0, 4.0], 0.95), 4.0);
        assert_eq!(nearest_rank(&[1.0, 2.0, 3.0, 4.0], 0.0), 1.0);
        assert!(nearest_rank(&[], 0.5).is_nan());
    }

    #[test]
    fn normal_functions_match_tables() {
        // Φ(1.96) = 0.9750021, Φ(-1) = 0.1586553; Φ⁻¹(0.975) = 1.959964, Φ⁻¹(0.01) = -2.326348.
        assert!((normal_cdf(1.96) - 0.975_002_1).abs() < 2e-7);
        assert!((normal_cdf(-1.0) - 0.158_655_3).abs() < 2e-7);
        assert!((normal_quantile(0.975) - 1.959_964).abs() < 1e-6);
        assert!((normal_quantile(0.01) + 2.326_348).abs() < 1e-6);
    }

    /// A statistic that resampling biases upward: the corrected interval still holds the estimate.
    #[test]
    fn bias_corrected_interval_contains_a_biased_estimate() {
        let data: Vec<f64> = (0..200).map(|i| f64::from(i % 10)).collect();
        // The maximum: a resample can only keep it or lose it, so every replicate is at most
        // the estimate and a plain percentile interval would lie below it.
        let spread = |idx: &[usize]| idx.iter().map(|&i| data[i]).fold(f64::NEG_INFINITY, f64::max);
        let all: Vec<usize> = (0..data.len()).collect();
        let point = spread(&all);
        let (low, high) = bootstrap(&[data.len()], 200, 1, "max", point, |idx| spread(&idx[0]));
        assert!(low <= point && point <= high, "{low} {point} {high}");
    }

    #[test]
    fn replicate_counts_are_bounded() {
        assert!(check_replicates(1).is_ok() && check_replicates(MAX_REPLICATES).is_ok());
        for bad in [0, MAX_REPLICATES + 1, usize::MAX] {
            let message = check_replicates(bad).unwrap_err().to_string();
            assert_eq!(message, format!("bootstrap replicates is {bad}; expected 1 to 100000"));
        }
        // The largest count is drawn in full; a count out of range is never quietly changed
        // into another: nothing is drawn, and a debug build stops on the precondition.
        let calls = std::sync::atomic::AtomicUsize::new(0);
        let count = |_: &[Vec<usize>]| {
            calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            1.0
        };
        let (low, high) = bootstrap(&[3], MAX_REPLICATES, 0, "bound", 1.0, count);
        assert_eq!(calls.swap(0, std::sync::atomic::Ordering::Relaxed), MAX_REPLICATES);
        assert_eq!((low, high), (1.0, 1.0));
        for bad in [0, MAX_REPLICATES + 1, usize::MAX] {
            let outcome = std::panic::catch_unwind(|| bootstrap(&[3], bad, 0, "bound", 1.0, count));
            if cfg!(debug_assertions) {
                let panic = outcome.unwrap_err();
                let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
                assert!(message.contains(&format!("replicates is {bad}")), "{message}");
            } else {
                let (low, high) = outcome.unwrap();
                assert!(low.is_nan() && high.is_nan());
            }
            assert_eq!(calls.load(std::sync::atomic::Ordering::Relaxed), 0, "{bad}: none drawn");
        }
    }

    #[test]
    fn bootstrap_of_a_mean_covers_it_and_is_reproducible() {
        let data: Vec<f64> = (0..400).map(|i| (i % 17) as f64).collect();
        let stat =
            |idx: &[Vec<usize>]| idx[0].iter().map(|&i| data[i]).sum::<f64>() / idx[0].len() as f64;
        let m = mean(&data);
        let a = bootstrap(&[data.len()], 300, 5, "mean", m, stat);
        let b = bootstrap(&[data.len()], 300, 5, "mean", m, stat);
        assert_eq!(a, b);
        // The standard error is about 4.9 / 20 = 0.245: the interval spans roughly ± 0.48.
        assert!(a.0 < m && m < a.1 && a.1 - a.0 > 0.6 && a.1 - a.0 < 1.4, "{a:?} around {m}");
    }
}
