//! Distribution-level fidelity figures and the class balance:
//!
//! - `frechet_distance`: `‖μ_r − μ_s‖² + Tr(Σ_r + Σ_s − 2 (Σ_r Σ_s)^{1/2})` between Gaussians
//!   fitted to the real and synthetic features (covariances with `n − 1`, as the FID reference);
//!   the trace of the matrix square root is `Σ √λ` of `Σ_r^{1/2} Σ_s Σ_r^{1/2}` (nalgebra's
//!   symmetric eigendecomposition);
//! - `column_shape_similarity`: the mean over columns of 1 − the Kolmogorov–Smirnov statistic
//!   (numeric columns, pixels) or 1 − the total variation distance of category frequencies;
//! - `correlation_difference`: the mean absolute difference of the Pearson correlations of every
//!   pair of encoded features (a constant feature correlates 0 with everything);
//! - `detection_auc`: ROC AUC of gradient-boosted trees told to tell real from synthetic, from
//!   out-of-fold scores of a 5-fold split over a balanced sample (0.5: indistinguishable);
//! - `missing_rate_difference`: the mean over feature columns of the absolute difference between
//!   the share of empty cells in the real train part and in the synthetic rows (per column as
//!   `missing_rate_difference/<column>` for each column with an empty cell on either side);
//! - `class_balance_tv` (diversity): total variation distance between label distributions.

use nalgebra::{DMatrix, SymmetricEigen};
use smartcore::linalg::basic::matrix::DenseMatrix;
use smartcore::xgboost::{XGRegressor, XGRegressorParameters};

use super::intervals::{bootstrap, roc_auc};
use super::knn::Rows;
use super::{Metric, MetricId};
use crate::error::{Error, Result};
use models::transform::Block;

/// Bootstrap replicates for a statistic costing about `cost` multiply-adds per replicate: the
/// full count when cheap, fewer (at least 20) when a replicate would take seconds.
pub fn affordable_replicates(replicates: usize, cost: f64) -> usize {
    let budget = 2e10;
    ((budget / cost.max(1.0)) as usize).clamp(20.min(replicates), replicates)
}

fn mean_and_covariance(rows: &Rows<'_>, subset: Option<&[usize]>) -> (Vec<f64>, DMatrix<f64>) {
    let all: Vec<usize>;
    let indices = match subset {
        Some(indices) => indices,
        None => {
            all = (0..rows.n_rows).collect();
            &all
        }
    };
    let (n, dim) = (indices.len(), rows.dim);
    let mut mean = vec![0.0; dim];
    for &idx in indices {
        for (m, &x) in mean.iter_mut().zip(rows.row(idx)) {
            *m += f64::from(x);
        }
    }
    for m in &mut mean {
        *m /= n as f64;
    }
    let centred = DMatrix::from_fn(n, dim, |r, c| f64::from(rows.row(indices[r])[c]) - mean[c]);
    let covariance = centred.tr_mul(&centred) / (n.max(2) - 1) as f64;
    (mean, covariance)
}

/// The square root of a symmetric positive semi-definite matrix (negative eigenvalues from
/// rounding are clipped to 0).
fn sqrt_psd(matrix: DMatrix<f64>) -> DMatrix<f64> {
    let eigen = SymmetricEigen::new(matrix);
    let roots = eigen.eigenvalues.map(|value| value.max(0.0).sqrt());
    &eigen.eigenvectors * DMatrix::from_diagonal(&roots) * eigen.eigenvectors.transpose()
}

pub fn frechet_distance(
    real: &Rows<'_>,
    synthetic: &Rows<'_>,
    real_subset: Option<&[usize]>,
    synthetic_subset: Option<&[usize]>,
) -> f64 {
    let (mean_r, cov_r) = mean_and_covariance(real, real_subset);
    let (mean_s, cov_s) = mean_and_covariance(synthetic, synthetic_subset);
    let mean_term: f64 = mean_r.iter().zip(&mean_s).map(|(a, b)| (a - b).powi(2)).sum();
    let root_r = sqrt_psd(cov_r.clone());
    let product = &root_r * &cov_s * &root_r;
    let symmetric = (&product + product.transpose()) * 0.5;
    let trace_sqrt: f64 =
        SymmetricEigen::new(symmetric).eigenvalues.iter().map(|value| value.max(0.0).sqrt()).sum();
    mean_term + cov_r.trace() + cov_s.trace() - 2.0 * trace_sqrt
}

/// Two-sample Kolmogorov–Smirnov statistic.
pub fn ks_statistic(a: &mut [f64], b: &mut [f64]) -> f64 {
    a.sort_by(f64::total_cmp);
    b.sort_by(f64::total_cmp);
    let (mut i, mut j, mut largest) = (0, 0, 0.0_f64);
    while i < a.len() && j < b.len() {
        let value = a[i].min(b[j]);
        while i < a.len() && a[i] <= value {
            i += 1;
        }
        while j < b.len() && b[j] <= value {
            j += 1;
        }
        largest = largest.max((i as f64 / a.len() as f64 - j as f64 / b.len() as f64).abs());
    }
    largest
}

/// `1 − KS` per numeric column, `1 − TV` per categorical block, averaged over columns.
pub fn column_shape_similarity(
    real: &Rows<'_>,
    synthetic: &Rows<'_>,
    blocks: &[Block],
    real_idx: &[usize],
    synthetic_idx: &[usize],
) -> f64 {
    let mut scores = Vec::new();
    for block in blocks {
        if block.categorical {
            let frequencies = |rows: &Rows<'_>, idx: &[usize]| {
                let mut counts = vec![0.0; block.width];
                for &r in idx {
                    let values = &rows.row(r)[block.start..block.start + block.width];
                    counts[models::transform::argmax(values)] += 1.0;
                }
                counts.iter().map(|c| c / idx.len() as f64).collect::<Vec<f64>>()
            };
            let (p, q) = (frequencies(real, real_idx), frequencies(synthetic, synthetic_idx));
            scores.push(1.0 - 0.5 * p.iter().zip(&q).map(|(a, b)| (a - b).abs()).sum::<f64>());
        } else {
            for col in block.start..block.start + block.width {
                let mut a: Vec<f64> =
                    real_idx.iter().map(|&r| f64::from(real.row(r)[col])).collect();
                let mut b: Vec<f64> =
                    synthetic_idx.iter().map(|&r| f64::from(synthetic.row(r)[col])).collect();
                scores.push(1.0 - ks_statistic(&mut a, &mut b));
            }
        }
    }
    scores.iter().sum::<f64>() / scores.len().max(1) as f64
}

/// Pearson correlation matrix (upper triangle, row-major) of the rows `idx`.
fn correlations(rows: &Rows<'_>, idx: &[usize]) -> Vec<f64> {
    let dim = rows.dim;
    let n = idx.len() as f64;
    let matrix = DMatrix::from_fn(idx.len(), dim, |r, c| f64::from(rows.row(idx[r])[c]));
    let means: Vec<f64> = (0..dim).map(|c| matrix.column(c).sum() / n).collect();
    let centred = DMatrix::from_fn(idx.len(), dim, |r, c| matrix[(r, c)] - means[c]);
    let covariance = centred.tr_mul(&centred);
    let scale: Vec<f64> = (0..dim).map(|c| covariance[(c, c)].sqrt()).collect();
    let mut out = Vec::with_capacity(dim * (dim - 1) / 2);
    for i in 0..dim {
        for j in i + 1..dim {
            let denominator = scale[i] * scale[j];
            out.push(if denominator > 1e-12 { covariance[(i, j)] / denominator } else { 0.0 });
        }
    }
    out
}

pub fn correlation_difference(
    real: &Rows<'_>,
    synthetic: &Rows<'_>,
    real_idx: &[usize],
    synthetic_idx: &[usize],
) -> f64 {
    let (a, b) = (correlations(real, real_idx), correlations(synthetic, synthetic_idx));
    if a.is_empty() {
        return 0.0;
    }
    a.iter().zip(&b).map(|(x, y)| (x - y).abs()).sum::<f64>() / a.len() as f64
}

/// Out-of-fold detector scores for a balanced real/synthetic sample: `(scores, is_real)`.
pub fn detection_scores(
    real: &Rows<'_>,
    synthetic: &Rows<'_>,
    seed: u64,
) -> Result<(Vec<f64>, Vec<bool>)> {
    let size = real.n_rows.min(synthetic.n_rows).min(2000);
    let pick = |rows: &Rows<'_>, purpose: &str| {
        let mut order: Vec<usize> = (0..rows.n_rows).collect();
        models::rng::shuffle(&mut models::rng::stream(seed, purpose), &mut order);
        order.truncate(size);
        order
            .iter()
            .map(|&r| rows.row(r).iter().map(|&x| f64::from(x)).collect::<Vec<f64>>())
            .collect::<Vec<_>>()
    };
    let mut samples: Vec<(Vec<f64>, bool)> =
        pick(real, "detection/real").into_iter().map(|row| (row, true)).collect();
    samples.extend(pick(synthetic, "detection/synthetic").into_iter().map(|row| (row, false)));
    models::rng::shuffle(&mut models::rng::stream(seed, "detection/folds"), &mut samples);
    const FOLDS: usize = 5;
    let mut scores = vec![0.0; samples.len()];
    for fold in 0..FOLDS {
        let (train, test): (Vec<usize>, Vec<usize>) =
            (0..samples.len()).partition(|idx| idx % FOLDS != fold);
        let x: Vec<Vec<f64>> = train.iter().map(|&i| samples[i].0.clone()).collect();
        let y: Vec<f64> = train.iter().map(|&i| if samples[i].1 { 1.0 } else { 0.0 }).collect();
        let matrix = DenseMatrix::from_2d_vec(&x).map_err(|err| Error::Classifier {
            context: "detection classifier",
            source: err.into(),
        })?;
        let parameters = XGRegressorParameters::default()
            .with_n_estimators(40)
            .with_max_depth(3)
            .with_learning_rate(0.3)
            .with_seed(seed);
        let model = XGRegressor::fit(&matrix, &y, parameters).map_err(|err| Error::Classifier {
            context: "detection classifier",
            source: err.into(),
        })?;
        let test_x: Vec<Vec<f64>> = test.iter().map(|&i| samples[i].0.clone()).collect();
        let test_matrix = DenseMatrix::from_2d_vec(&test_x).map_err(|err| Error::Classifier {
            context: "detection classifier",
            source: err.into(),
        })?;
        let predicted = model.predict(&test_matrix).map_err(|err| Error::Classifier {
            context: "detection classifier",
            source: err.into(),
        })?;
        for (&i, score) in test.iter().zip(predicted) {
            scores[i] = score;
        }
    }
    Ok((scores, samples.iter().map(|(_, is_real)| *is_real).collect()))
}

/// All distribution-level fidelity metrics, with bootstrap intervals.
pub fn fidelity_metrics(
    real: Rows<'_>,
    synthetic: Rows<'_>,
    blocks: &[Block],
    seed: u64,
    replicates: usize,
) -> Result<Vec<Metric>> {
    let real_all: Vec<usize> = (0..real.n_rows).collect();
    let syn_all: Vec<usize> = (0..synthetic.n_rows).collect();
    let n_total = (real.n_rows + synthetic.n_rows) as u64;
    let groups = [real.n_rows, synthetic.n_rows];
    let dim = real.dim as f64;
    let mut metrics = Vec::new();

    let fd = frechet_distance(&real, &synthetic, None, None);
    let fd_replicates = affordable_replicates(
        replicates,
        4.0 * dim.powi(3) + (real.n_rows + synthetic.n_rows) as f64 * dim * dim,
    );
    let (low, high) =
        bootstrap(&groups, fd_replicates, seed, MetricId::FrechetDistance.name(), fd, |idx| {
            frechet_distance(&real, &synthetic, Some(&idx[0]), Some(&idx[1]))
        });
    metrics.push(Metric::new(MetricId::FrechetDistance, fd, low, high, n_total));

    let shape = column_shape_similarity(&real, &synthetic, blocks, &real_all, &syn_all);
    let (low, high) = bootstrap(
        &groups,
        replicates,
        seed,
        MetricId::ColumnShapeSimilarity.name(),
        shape,
        |idx| column_shape_similarity(&real, &synthetic, blocks, &idx[0], &idx[1]),
    );
    metrics.push(Metric::new(MetricId::ColumnShapeSimilarity, shape, low, high, n_total));

    let corr = correlation_difference(&real, &synthetic, &real_all, &syn_all);
    let corr_replicates =
        affordable_replicates(replicates, (real.n_rows + synthetic.n_rows) as f64 * dim * dim);
    let (low, high) = bootstrap(
        &groups,
        corr_replicates,
        seed,
        MetricId::CorrelationDifference.name(),
        corr,
        |idx| correlation_difference(&real, &synthetic, &idx[0], &idx[1]),
    );
    metrics.push(Metric::new(MetricId::CorrelationDifference, corr, low, high, n_total));

    let (scores, is_real) = detection_scores(&real, &synthetic, seed)?;
    let auc = roc_auc(&scores, &is_real);
    let real_scores: Vec<f64> =
        scores.iter().zip(&is_real).filter(|(_, r)| **r).map(|(s, _)| *s).collect();
    let syn_scores: Vec<f64> =
        scores.iter().zip(&is_real).filter(|(_, r)| !**r).map(|(s, _)| *s).collect();
    let (low, high) = bootstrap(
        &[real_scores.len(), syn_scores.len()],
        replicates,
        seed,
        MetricId::DetectionAuc.name(),
        auc,
        |idx| {
            let s: Vec<f64> = idx[0]
                .iter()
                .map(|&i| real_scores[i])
                .chain(idx[1].iter().map(|&i| syn_scores[i]))
                .collect();
            let p: Vec<bool> =
                idx[0].iter().map(|_| true).chain(idx[1].iter().map(|_| false)).collect();
            roc_auc(&s, &p)
        },
    );
    metrics.push(Metric::new(MetricId::DetectionAuc, auc, low, high, scores.len() as u64));
    Ok(metrics)
}

/// Total variation distance between the label distributions.
/// One table column's empty cells on the real and the synthetic side, for
/// [`missing_rate_metrics`].
#[derive(Debug, Clone, Copy)]
pub struct MissingMask<'a> {
    pub column: &'a str,
    /// `real[i]`: the cell of real train row `i` is empty.
    pub real: &'a [bool],
    pub synthetic: &'a [bool],
}

/// Mean over `columns` of `|missing rate (real) − missing rate (synthetic)|` on the rows `idx`.
fn missing_rate_difference(
    columns: &[MissingMask<'_>],
    real_idx: &[usize],
    synthetic_idx: &[usize],
) -> f64 {
    let rate = |mask: &[bool], idx: &[usize]| {
        idx.iter().filter(|&&row| mask[row]).count() as f64 / idx.len().max(1) as f64
    };
    let total: f64 = columns
        .iter()
        .map(|mask| (rate(mask.real, real_idx) - rate(mask.synthetic, synthetic_idx)).abs())
        .sum();
    total / columns.len().max(1) as f64
}

/// `missing_rate_difference` over every column (bootstrap interval over real and synthetic rows),
/// then one `missing_rate_difference/<column>` per column with an empty cell on either side.
/// All masks have the same real and synthetic lengths.
pub fn missing_rate_metrics(
    columns: &[MissingMask<'_>],
    seed: u64,
    replicates: usize,
) -> Vec<Metric> {
    let (n_real, n_synthetic) =
        columns.first().map_or((0, 0), |mask| (mask.real.len(), mask.synthetic.len()));
    let n = (n_real + n_synthetic) as u64;
    let figure = |columns: &[MissingMask<'_>], purpose: &str| {
        let all = |len: usize| (0..len).collect::<Vec<_>>();
        let value = missing_rate_difference(columns, &all(n_real), &all(n_synthetic));
        let (low, high) =
            bootstrap(&[n_real, n_synthetic], replicates, seed, purpose, value, |idx| {
                missing_rate_difference(columns, &idx[0], &idx[1])
            });
        Metric::new(MetricId::MissingRateDifference, value, low, high, n)
    };
    let mut metrics = vec![figure(columns, MetricId::MissingRateDifference.name())];
    for (idx, mask) in columns.iter().enumerate() {
        if mask.real.iter().chain(mask.synthetic).any(|&empty| empty) {
            let purpose = MetricId::MissingRateDifference.detailed(mask.column);
            metrics.push(figure(&columns[idx..=idx], &purpose).detail(mask.column));
        }
    }
    metrics
}

pub fn class_balance_tv(
    real: &[u32],
    synthetic: &[u32],
    n_classes: usize,
    real_idx: &[usize],
    synthetic_idx: &[usize],
) -> f64 {
    let distribution = |labels: &[u32], idx: &[usize]| {
        let mut counts = vec![0.0; n_classes];
        for &i in idx {
            counts[labels[i] as usize] += 1.0;
        }
        counts.into_iter().map(|c| c / idx.len().max(1) as f64).collect::<Vec<f64>>()
    };
    let (p, q) = (distribution(real, real_idx), distribution(synthetic, synthetic_idx));
    0.5 * p.iter().zip(&q).map(|(a, b)| (a - b).abs()).sum::<f64>()
}

pub fn class_balance_metric(
    real: &[u32],
    synthetic: &[u32],
    n_classes: usize,
    seed: u64,
    replicates: usize,
) -> Metric {
    let value = class_balance_tv(
        real,
        synthetic,
        n_classes,
        &(0..real.len()).collect::<Vec<_>>(),
        &(0..synthetic.len()).collect::<Vec<_>>(),
    );
    let (low, high) = bootstrap(
        &[real.len(), synthetic.len()],
        replicates,
        seed,
        MetricId::ClassBalanceTv.name(),
        value,
        |idx| class_balance_tv(real, synthetic, n_classes, &idx[0], &idx[1]),
    );
    Metric::new(MetricId::ClassBalanceTv, value, low, high, (real.len() + synthetic.len()) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_rates_worked_example() {
        // a: real 1 of 4 empty, synthetic 2 of 4 → 0.25; b: none on either side → 0.
        let (real_a, synthetic_a) = ([true, false, false, false], [true, true, false, false]);
        let none = [false; 4];
        let columns = [
            MissingMask { column: "a", real: &real_a, synthetic: &synthetic_a },
            MissingMask { column: "b", real: &none, synthetic: &none },
        ];
        let metrics = missing_rate_metrics(&columns, 0, 50);
        let names: Vec<&str> = metrics.iter().map(|metric| metric.name.as_str()).collect();
        assert_eq!(names, ["missing_rate_difference", "missing_rate_difference/a"]);
        assert!((metrics[0].value - 0.125).abs() < 1e-12, "{}", metrics[0].value);
        assert!((metrics[1].value - 0.25).abs() < 1e-12, "{}", metrics[1].value);
        assert!(metrics[0].ci_low <= 0.125 && 0.125 <= metrics[0].ci_high);
    }

    #[test]
    fn ks_worked_example() {
        // a = {1, 2, 3}, b = {2.5, 4}: the CDFs differ most at 2 (2/3 against 0) and 3 (1 against 1/2).
        let d = ks_statistic(&mut [3.0, 1.0, 2.0], &mut [4.0, 2.5]);
        assert!((d - 2.0 / 3.0).abs() < 1e-12, "{d}");
    }

    #[test]
    fn frechet_of_identical_sets_is_zero_and_of_shifted_sets_is_the_shift() {
        let data: Vec<f32> =
            models::rng::normal_f32(&mut models::rng::stream(1, "test/fd"), 400 * 3);
        let shifted: Vec<f32> =
            data.iter().enumerate().map(|(i, x)| if i % 3 == 0 { x + 2.0 } else { *x }).collect();
        let (a, b) = (Rows::new(&data, 3), Rows::new(&shifted, 3));
        assert!(frechet_distance(&a, &a, None, None).abs() < 1e-9);
        // Shifting in f32 perturbs the covariance by rounding only.
        assert!((frechet_distance(&a, &b, None, None) - 4.0).abs() < 1e-5);
    }
}
