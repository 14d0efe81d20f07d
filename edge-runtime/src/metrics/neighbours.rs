//! Every nearest-neighbour figure of an assessment, from five passes of the k-NN core:
//!
//! - fidelity: `precision`, `density`; diversity: `recall`, `coverage` — Naeem et al. 2020 with
//!   the reference implementation's strict comparisons (a real sample's ball has the radius of
//!   its k-th nearest other real sample; likewise for synthetic samples);
//! - privacy: distance to the closest real-train record of each synthetic sample
//!   (`dcr_train_median`, `dcr_train_p05`) and to the closest hold-out record
//!   (`dcr_holdout_median`); `closer_to_train_share`, the share of synthetic samples strictly
//!   closer to a train record than to any hold-out record (a generator that learnt the population
//!   and not the records lands near `n_train / (n_train + n_holdout)`, one that copies near 1);
//!   `nndr_mean`, the mean ratio of the
//!   nearest to the second-nearest train distance (0 for an exact copy); `exact_copy_rate`;
//!   `mia_auc`, a distance attack: members (train) and non-members (hold-out) scored by minus
//!   their distance to the nearest synthetic sample, as ROC AUC (0.5: nothing leaks).
//!
//! Inputs are encoded feature matrices; outputs are [`Metric`]s with 95 % intervals. `k` must be
//! in `1..=MAX_K`, the train and synthetic sets need more than `k` rows and the hold-out one, and
//! `replicates` must be in `1..=MAX_REPLICATES`; otherwise nothing is computed.

use super::intervals::{bootstrap, check_replicates, mean, median, quantile, roc_auc};
use super::knn::{Rows, check_k, cross, nearest_within};
use super::{Metric, MetricId};

/// Passes over the three sets; see the module documentation.
pub fn neighbour_metrics(
    train: Rows<'_>,
    holdout: Rows<'_>,
    synthetic: Rows<'_>,
    k: usize,
    seed: u64,
    replicates: usize,
) -> crate::Result<Vec<Metric>> {
    check_k(k, &[("real train", train.n_rows), ("synthetic", synthetic.n_rows)])?;
    check_replicates(replicates)?;
    if holdout.n_rows == 0 {
        return Err(crate::Error::Invalid(
            "the real hold-out is empty; the privacy figures need held-out rows".to_owned(),
        ));
    }
    let real_radius = nearest_within(train, k)?.column(k - 1);
    let synthetic_radius = nearest_within(synthetic, k)?.column(k - 1);
    let to_train = cross(synthetic, train, 2, 1, Some(&synthetic_radius), Some(&real_radius))?;
    let to_holdout = cross(synthetic, holdout, 1, 1, None, None)?;
    let n_syn = synthetic.n_rows as u64;
    let n_real = train.n_rows as u64;
    let mut metrics = Vec::new();

    // Fidelity and diversity (Naeem et al. 2020).
    let counts = &to_train.a_in_b_balls;
    let precise = counts.iter().filter(|&&count| count > 0).count() as u64;
    metrics.push(Metric::proportion(MetricId::Precision, precise, n_syn));
    let density_of = |rows: &[usize]| {
        rows.iter().map(|&j| f64::from(counts[j])).sum::<f64>() / (k as f64 * rows.len() as f64)
    };
    let all_synthetic: Vec<usize> = (0..synthetic.n_rows).collect();
    let density = density_of(&all_synthetic);
    let (low, high) = bootstrap(
        &[synthetic.n_rows],
        replicates,
        seed,
        MetricId::Density.name(),
        density,
        |idx| density_of(&idx[0]),
    );
    metrics.push(Metric::new(MetricId::Density, density, low, high, n_syn));
    let recalled = to_train.b_in_some_a_ball.iter().filter(|&&hit| hit).count() as u64;
    metrics.push(Metric::proportion(MetricId::Recall, recalled, n_real));
    let nearest_synthetic_to_train = to_train.b_nearest.column(0);
    let covered =
        nearest_synthetic_to_train.iter().zip(&real_radius).filter(|(d, r)| d < r).count() as u64;
    metrics.push(Metric::proportion(MetricId::Coverage, covered, n_real));

    // Privacy.
    let dcr_train = to_train.a_nearest.column(0);
    let second = to_train.a_nearest.column(1);
    let dcr_holdout = to_holdout.a_nearest.column(0);
    let statistic_of = |values: &[f64],
                        id: MetricId,
                        statistic: &(dyn Fn(&[f64]) -> f64 + Sync)| {
        let value = statistic(values);
        let (low, high) = bootstrap(&[values.len()], replicates, seed, id.name(), value, |idx| {
            statistic(&idx[0].iter().map(|&j| values[j]).collect::<Vec<_>>())
        });
        Metric::new(id, value, low, high, values.len() as u64)
    };
    metrics.push(statistic_of(&dcr_train, MetricId::DcrTrainMedian, &median));
    metrics.push(statistic_of(&dcr_holdout, MetricId::DcrHoldoutMedian, &median));
    metrics.push(statistic_of(&dcr_train, MetricId::DcrTrainP05, &|values| quantile(values, 0.05)));

    let closer = dcr_train.iter().zip(&dcr_holdout).filter(|(t, h)| t < h).count() as u64;
    metrics.push(Metric::proportion(MetricId::CloserToTrainShare, closer, n_syn));

    let ratios: Vec<f64> = dcr_train
        .iter()
        .zip(&second)
        .map(|(&d1, &d2)| if d1 == 0.0 { 0.0 } else { d1 / d2 })
        .collect();
    metrics.push(statistic_of(&ratios, MetricId::NndrMean, &mean));
    let copies = dcr_train.iter().filter(|&&d| d == 0.0).count() as u64;
    metrics.push(Metric::proportion(MetricId::ExactCopyRate, copies, n_syn));

    let members: Vec<f64> = nearest_synthetic_to_train.iter().map(|d| -d).collect();
    let non_members: Vec<f64> = to_holdout.b_nearest.column(0).iter().map(|d| -d).collect();
    let auc_of = |members: &[f64], non_members: &[f64]| {
        let scores: Vec<f64> = members.iter().chain(non_members).copied().collect();
        let positive: Vec<bool> =
            members.iter().map(|_| true).chain(non_members.iter().map(|_| false)).collect();
        roc_auc(&scores, &positive)
    };
    let auc = auc_of(&members, &non_members);
    let (low, high) = bootstrap(
        &[members.len(), non_members.len()],
        replicates,
        seed,
        MetricId::MiaAuc.name(),
        auc,
        |idx| {
            let m: Vec<f64> = idx[0].iter().map(|&i| members[i]).collect();
            let h: Vec<f64> = idx[1].iter().map(|&i| non_members[i]).collect();
            auc_of(&m, &h)
        },
    );
    metrics.push(Metric::new(
        MetricId::MiaAuc,
        auc,
        low,
        high,
        (members.len() + non_members.len()) as u64,
    ));
    Ok(metrics)
}
