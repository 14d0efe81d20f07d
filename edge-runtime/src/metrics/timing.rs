//! Intervals for timing figures: a nearest-rank percentile of repeated timings and its 95 %
//! percentile-bootstrap interval (resample the timings with replacement, take the percentile of
//! each resample, keep the 2.5th and 97.5th percentiles of those).

use models::rng::{self, StreamRng};
use rand::RngExt;

/// Resamples per bootstrap interval.
pub const BOOTSTRAP_RESAMPLES: usize = 1000;

/// Nearest-rank percentile (`q` in 0..=1) of ascending `sorted`; NaN when it is empty.
pub fn nearest_rank(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// The 95 % bootstrap interval of the `q` percentile of `values`, drawn from the stream
/// `(seed, purpose)`. With fewer than two values there is no spread to resample: the interval is
/// the value itself.
pub fn bootstrap_percentile_interval(values: &[f64], q: f64, seed: u64, purpose: &str) -> (f64, f64) {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    if sorted.len() < 2 {
        let value = nearest_rank(&sorted, q);
        return (value, value);
    }
    let mut rng: StreamRng = rng::stream(seed, purpose);
    let mut estimates = Vec::with_capacity(BOOTSTRAP_RESAMPLES);
    let mut resample = vec![0.0; sorted.len()];
    for _ in 0..BOOTSTRAP_RESAMPLES {
        for slot in resample.iter_mut() {
            *slot = sorted[rng.random_range(0..sorted.len())];
        }
        resample.sort_by(f64::total_cmp);
        estimates.push(nearest_rank(&resample, q));
    }
    estimates.sort_by(f64::total_cmp);
    (nearest_rank(&estimates, 0.025), nearest_rank(&estimates, 0.975))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_rank(values: &[f64], q: f64, expected: f64) {
        assert_eq!(nearest_rank(values, q), expected, "{values:?} at {q}");
    }

    #[test]
    fn nearest_rank_picks_the_ceiling_rank() {
        check_rank(&[1.0, 2.0, 3.0, 4.0], 0.5, 2.0);
        check_rank(&[1.0, 2.0, 3.0, 4.0, 5.0], 0.5, 3.0);
        check_rank(&[1.0, 2.0, 3.0, 4.0], 0.95, 4.0);
        check_rank(&[1.0, 2.0, 3.0, 4.0], 0.0, 1.0);
        assert!(nearest_rank(&[], 0.5).is_nan());
    }

    #[test]
    fn bootstrap_interval_brackets_the_median_and_stays_within_the_data() {
        // 1..=40 ms: the median is 20; resampled medians of 40 draws spread a few ms either side.
        let values: Vec<f64> = (1..=40).rev().map(f64::from).collect();
        let (low, high) = bootstrap_percentile_interval(&values, 0.5, 0, "test");
        assert!((13.0..20.0).contains(&low), "low {low}");
        assert!((20.0..28.0).contains(&high), "high {high}");
        assert_eq!(bootstrap_percentile_interval(&values, 0.5, 0, "test"), (low, high), "same seed, same interval");
        assert_eq!(bootstrap_percentile_interval(&[7.0], 0.5, 0, "test"), (7.0, 7.0));
        assert_eq!(bootstrap_percentile_interval(&[5.0; 10], 0.5, 0, "test"), (5.0, 5.0));
    }
}
