//! Utility and robustness: does a classifier trained on synthetic data work on real data, and
//! does that hold under perturbation and attack?
//!
//! Classifiers come from well-kept crates: an L2-regularised multinomial logistic regression
//! (linfa-logistic, α = 1), the primary model behind the contract names, and a random forest
//! (smartcore, suffix `_forest`). TRTR trains on the
//! real train part, TSTR on the synthetic samples; both are tested on the real hold-out.
//!
//! Robustness perturbs the hold-out features (encoded, standardised units) and reports accuracy
//! over clean accuracy, per perturbation and averaged: Gaussian noise σ ∈ {0.1, 0.3, 0.5}, 10 %
//! of features masked to 0 (the train mean), injected outliers (10 % of rows get three features
//! set to ±5); for images also a one-pixel shift and brightness ±20 %. The adversarial accuracy
//! moves each hold-out row by ε = 0.1 in L∞ along the sign of the gradient of the logistic
//! regression's own cross-entropy loss — for two classes the exact worst case of a linear model.
//!
//! The augmentation gains refit the logistic regression on the real train part plus added rows
//! and subtract TRTR accuracy on the same hold-out: the synthetic rows (`augmentation_gain`), as
//! many classical augmentations of the train part ([`augment`], `classical_augmentation_gain`),
//! or every other row of each (`combined_augmentation_gain`), so all three add the same number
//! of rows and compare the kind of rows, not their count.

use rand::RngExt;
use smartcore::ensemble::random_forest_classifier::{
    RandomForestClassifier, RandomForestClassifierParameters,
};
use smartcore::linalg::basic::matrix::DenseMatrix;

use super::augment::{self, Augmentation};
use super::intervals::bootstrap;
use super::knn::Rows;
use super::{Metric, MetricId};
use crate::error::{Error, Result};
use models::ImageShape;
use models::transform::Block;

/// A labelled feature matrix.
#[derive(Debug, Clone, Copy)]
pub struct Labelled<'a> {
    pub x: Rows<'a>,
    pub labels: &'a [u32],
}

/// A fitted multinomial linear model: `logits = W x + b`.
#[derive(Debug, Clone)]
pub struct LinearModel {
    /// `n_classes × dim`; classes absent from training have `-∞` bias.
    pub weights: Vec<f64>,
    pub bias: Vec<f64>,
    pub dim: usize,
}

impl LinearModel {
    pub fn logits(&self, row: &[f32]) -> Vec<f64> {
        self.bias
            .iter()
            .enumerate()
            .map(|(class, b)| {
                b + self.weights[class * self.dim..(class + 1) * self.dim]
                    .iter()
                    .zip(row)
                    .map(|(w, x)| w * f64::from(*x))
                    .sum::<f64>()
            })
            .collect()
    }

    pub fn predict(&self, row: &[f32]) -> u32 {
        let logits = self.logits(row);
        (0..logits.len()).fold(0, |best, c| if logits[c] > logits[best] { c } else { best }) as u32
    }

    /// `row + ε · sign(∇ₓ cross-entropy(row, label))`.
    pub fn adversarial(&self, row: &[f32], label: u32, epsilon: f32) -> Vec<f32> {
        let logits = self.logits(row);
        let top = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let exp: Vec<f64> =
            logits.iter().map(|l| if l.is_finite() { (l - top).exp() } else { 0.0 }).collect();
        let total: f64 = exp.iter().sum();
        let mut gradient = vec![0.0; self.dim];
        for (class, e) in exp.iter().enumerate() {
            let coefficient = e / total - if class as u32 == label { 1.0 } else { 0.0 };
            for (g, w) in
                gradient.iter_mut().zip(&self.weights[class * self.dim..(class + 1) * self.dim])
            {
                *g += coefficient * w;
            }
        }
        row.iter()
            .zip(&gradient)
            .map(|(x, g)| x + epsilon * g.signum() as f32 * f32::from(*g != 0.0))
            .collect()
    }
}

fn smartcore_error(context: &'static str) -> impl Fn(smartcore::error::Failed) -> Error {
    move |err| Error::Classifier { context, source: err.into() }
}

fn dense(x: &Rows<'_>) -> Result<DenseMatrix<f64>> {
    let rows: Vec<Vec<f64>> =
        (0..x.n_rows).map(|r| x.row(r).iter().map(|&v| f64::from(v)).collect()).collect();
    DenseMatrix::from_2d_vec(&rows).map_err(smartcore_error("feature matrix"))
}

/// Fits the logistic regression (linfa, multinomial, L2 α = 1); the data must hold at least two
/// classes.
pub fn fit_logistic(data: &Labelled<'_>, n_classes: usize) -> Result<LinearModel> {
    use linfa::prelude::Fit;
    let dim = data.x.dim;
    let records =
        ndarray::Array2::from_shape_fn((data.x.n_rows, dim), |(r, c)| f64::from(data.x.row(r)[c]));
    let targets = ndarray::Array1::from_iter(data.labels.iter().map(|&label| label as usize));
    let dataset = linfa::Dataset::new(records, targets);
    let model = linfa_logistic::MultiLogisticRegression::default()
        .alpha(1.0)
        .max_iterations(200)
        .fit(&dataset)
        .map_err(|err| Error::Classifier { context: "logistic regression", source: err.into() })?;
    let (params, intercept) = (model.params(), model.intercept());
    let mut weights = vec![0.0; n_classes * dim];
    let mut bias = vec![f64::NEG_INFINITY; n_classes];
    for (column, &class) in model.classes().iter().enumerate() {
        bias[class] = intercept[column];
        for feature in 0..dim {
            weights[class * dim + feature] = params[(feature, column)];
        }
    }
    Ok(LinearModel { weights, bias, dim })
}

/// Fits the random forest and predicts `test`.
pub fn forest_predictions(
    train: &Labelled<'_>,
    test: &Rows<'_>,
    trees: u16,
    seed: u64,
) -> Result<Vec<u32>> {
    let labels: Vec<u32> = train.labels.to_vec();
    let parameters =
        RandomForestClassifierParameters::default().with_n_trees(trees).with_seed(seed);
    let model: RandomForestClassifier<f64, u32, DenseMatrix<f64>, Vec<u32>> =
        RandomForestClassifier::fit(&dense(&train.x)?, &labels, parameters)
            .map_err(smartcore_error("random forest"))?;
    model.predict(&dense(test)?).map_err(smartcore_error("random forest"))
}

pub fn accuracy(predicted: &[u32], truth: &[u32], idx: &[usize]) -> f64 {
    idx.iter().filter(|&&i| predicted[i] == truth[i]).count() as f64 / idx.len().max(1) as f64
}

/// Macro-averaged F1 over the classes present in the truth or the predictions of `idx`.
pub fn macro_f1(predicted: &[u32], truth: &[u32], idx: &[usize], n_classes: usize) -> f64 {
    let mut scores = Vec::new();
    for class in 0..n_classes as u32 {
        let tp = idx.iter().filter(|&&i| predicted[i] == class && truth[i] == class).count() as f64;
        let fp = idx.iter().filter(|&&i| predicted[i] == class && truth[i] != class).count() as f64;
        let fn_ =
            idx.iter().filter(|&&i| predicted[i] != class && truth[i] == class).count() as f64;
        if tp + fp + fn_ > 0.0 {
            scores.push(2.0 * tp / (2.0 * tp + fp + fn_));
        }
    }
    scores.iter().sum::<f64>() / scores.len().max(1) as f64
}

/// Settings of the utility and robustness measurements.
#[derive(Debug, Clone, Copy)]
pub struct UtilitySettings<'a> {
    pub seed: u64,
    pub replicates: usize,
    pub forest_trees: u16,
    pub image: Option<ImageShape>,
    /// The encoded blocks of a table (the classical augmentation keeps categories one-hot).
    pub blocks: &'a [Block],
    /// The classical augmentation's [strength](Augmentation::strength): 1 in every assessment;
    /// 0 makes it a copy of the train rows.
    pub augmentation_strength: f32,
}

/// `conditional_accuracy`: the share of `synthetic` rows that `model` (the TRTR classifier)
/// assigns to the class they were generated for, with its Wilson interval.
pub fn conditional_accuracy(model: &LinearModel, synthetic: &Labelled<'_>) -> Metric {
    let matches = (0..synthetic.x.n_rows)
        .filter(|&row| model.predict(synthetic.x.row(row)) == synthetic.labels[row])
        .count() as u64;
    Metric::proportion(MetricId::ConditionalAccuracy, matches, synthetic.x.n_rows as u64)
}

/// The rows of `sets`, one after the other, with their labels.
fn stack(dim: usize, sets: &[(&[f32], &[u32])]) -> (Vec<f32>, Vec<u32>) {
    let x = sets.iter().flat_map(|(x, _)| x.iter()).copied().collect();
    let labels = sets.iter().flat_map(|(_, labels)| labels.iter()).copied().collect();
    debug_assert!(sets.iter().all(|(x, labels)| x.len() == labels.len() * dim));
    (x, labels)
}

/// Every other row (indices ≡ `parity` mod 2) of a `dim`-wide set.
fn every_other(x: &[f32], labels: &[u32], dim: usize, parity: usize) -> (Vec<f32>, Vec<u32>) {
    let keep = |idx: &usize| idx % 2 == parity;
    let rows = x.chunks_exact(dim.max(1)).enumerate().filter(|(idx, _)| keep(idx));
    let x = rows.flat_map(|(_, row)| row.iter().copied()).collect();
    let labels = labels.iter().enumerate().filter(|(idx, _)| keep(idx)).map(|(_, l)| *l).collect();
    (x, labels)
}

fn predict_all(model: &LinearModel, x: &Rows<'_>) -> Vec<u32> {
    (0..x.n_rows).map(|r| model.predict(x.row(r))).collect()
}

/// Utility and robustness metrics, and `conditional_accuracy` (a fidelity figure, computed here
/// with the TRTR classifier this fits anyway). `synthetic` must hold at least two classes.
pub fn utility_metrics(
    train: Labelled<'_>,
    holdout: Labelled<'_>,
    synthetic: Labelled<'_>,
    n_classes: usize,
    settings: &UtilitySettings<'_>,
) -> Result<Vec<Metric>> {
    let (seed, replicates) = (settings.seed, settings.replicates);
    let n_holdout = holdout.x.n_rows;
    let truth = holdout.labels;
    let all: Vec<usize> = (0..n_holdout).collect();
    let mut metrics = Vec::new();

    let trtr_model = fit_logistic(&train, n_classes)?;
    let tstr_model = fit_logistic(&synthetic, n_classes)?;
    metrics.push(conditional_accuracy(&trtr_model, &synthetic));
    let trtr = predict_all(&trtr_model, &holdout.x);
    let tstr = predict_all(&tstr_model, &holdout.x);
    let correct =
        |predicted: &[u32]| predicted.iter().zip(truth).filter(|(p, t)| p == t).count() as u64;
    metrics.push(Metric::proportion(MetricId::TrtrAccuracy, correct(&trtr), n_holdout as u64));
    metrics.push(Metric::proportion(MetricId::TstrAccuracy, correct(&tstr), n_holdout as u64));
    let ratio =
        |idx: &[usize], a: &[u32], b: &[u32]| accuracy(a, truth, idx) / accuracy(b, truth, idx);
    metrics.push(boot(MetricId::TstrTrtrRatio, None, &all, seed, replicates, |idx| {
        ratio(idx, &tstr, &trtr)
    }));
    metrics.push(boot(MetricId::TrtrMacroF1, None, &all, seed, replicates, |idx| {
        macro_f1(&trtr, truth, idx, n_classes)
    }));
    metrics.push(boot(MetricId::TstrMacroF1, None, &all, seed, replicates, |idx| {
        macro_f1(&tstr, truth, idx, n_classes)
    }));

    // Real + added rows against real alone, same hold-out. Each gain adds as many rows as the
    // synthetic set has: the synthetic rows, as many classical augmentations of the train part,
    // or every other row of each.
    let dim = train.x.dim;
    let augmentation = Augmentation {
        image: settings.image,
        blocks: settings.blocks,
        strength: settings.augmentation_strength,
    };
    let classical = augment::augment(&train, synthetic.x.n_rows, &augmentation, seed);
    let half_synthetic = every_other(synthetic.x.data, synthetic.labels, dim, 0);
    let half_classical = every_other(&classical.0, &classical.1, dim, 1);
    let real = (train.x.data, train.labels);
    let gains = [
        (MetricId::AugmentationGain, stack(dim, &[real, (synthetic.x.data, synthetic.labels)])),
        (
            MetricId::ClassicalAugmentationGain,
            stack(dim, &[real, (classical.0.as_slice(), classical.1.as_slice())]),
        ),
        (
            MetricId::CombinedAugmentationGain,
            stack(
                dim,
                &[
                    real,
                    (half_synthetic.0.as_slice(), half_synthetic.1.as_slice()),
                    (half_classical.0.as_slice(), half_classical.1.as_slice()),
                ],
            ),
        ),
    ];
    for (id, (x, labels)) in &gains {
        let added = Labelled { x: Rows::new(x, dim), labels };
        let augmented = predict_all(&fit_logistic(&added, n_classes)?, &holdout.x);
        metrics.push(boot(*id, None, &all, seed, replicates, |idx| {
            accuracy(&augmented, truth, idx) - accuracy(&trtr, truth, idx)
        }));
    }

    // The same with a random forest.
    let trtr_forest = forest_predictions(&train, &holdout.x, settings.forest_trees, seed)?;
    let tstr_forest = forest_predictions(&synthetic, &holdout.x, settings.forest_trees, seed)?;
    metrics.push(Metric::proportion(
        MetricId::TrtrAccuracyForest,
        correct(&trtr_forest),
        n_holdout as u64,
    ));
    metrics.push(Metric::proportion(
        MetricId::TstrAccuracyForest,
        correct(&tstr_forest),
        n_holdout as u64,
    ));
    metrics.push(boot(MetricId::TstrTrtrRatioForest, None, &all, seed, replicates, |idx| {
        ratio(idx, &tstr_forest, &trtr_forest)
    }));

    // Robustness.
    let classifiers = [
        (
            &tstr_model,
            &tstr,
            MetricId::TstrPerturbedAccuracyRatio,
            MetricId::TstrAdversarialAccuracy,
        ),
        (
            &trtr_model,
            &trtr,
            MetricId::TrtrPerturbedAccuracyRatio,
            MetricId::TrtrAdversarialAccuracy,
        ),
    ];
    for (model, clean, perturbed_id, adversarial_id) in classifiers {
        let mut per_perturbation: Vec<(String, Vec<u32>)> = Vec::new();
        for perturbation in perturbations(settings.image) {
            let perturbed = perturb(&holdout.x, perturbation, seed, settings.image);
            let rows = Rows::new(&perturbed, holdout.x.dim);
            per_perturbation.push((perturbation.name(), predict_all(model, &rows)));
        }
        let mean_ratio = |idx: &[usize]| {
            let clean_accuracy = accuracy(clean, truth, idx);
            per_perturbation
                .iter()
                .map(|(_, predicted)| accuracy(predicted, truth, idx) / clean_accuracy)
                .sum::<f64>()
                / per_perturbation.len() as f64
        };
        metrics.push(boot(perturbed_id, None, &all, seed, replicates, mean_ratio));
        for (name, predicted) in &per_perturbation {
            metrics.push(boot(perturbed_id, Some(name), &all, seed, replicates, |idx| {
                accuracy(predicted, truth, idx) / accuracy(clean, truth, idx)
            }));
        }
        let adversarial: u64 = (0..n_holdout)
            .filter(|&r| {
                model.predict(&model.adversarial(holdout.x.row(r), truth[r], ADVERSARIAL_EPSILON))
                    == truth[r]
            })
            .count() as u64;
        metrics.push(Metric::proportion(adversarial_id, adversarial, n_holdout as u64));
    }
    Ok(metrics)
}

/// L∞ size of the adversarial perturbation, in standardised units.
pub const ADVERSARIAL_EPSILON: f32 = 0.1;

/// The figure `id` (or its part `id/detail`) of a statistic over hold-out rows, with its
/// bootstrap interval; seeded by the stored name, so each part draws its own resamples.
fn boot(
    id: MetricId,
    detail: Option<&str>,
    all: &[usize],
    seed: u64,
    replicates: usize,
    statistic: impl Fn(&[usize]) -> f64 + Sync,
) -> Metric {
    let value = statistic(all);
    let unmeasured = Metric::new(id, value, value, value, all.len() as u64);
    let metric = match detail {
        Some(detail) => unmeasured.detail(detail),
        None => unmeasured,
    };
    let (low, high) =
        bootstrap(&[all.len()], replicates, seed, &metric.name, value, |idx| statistic(&idx[0]));
    Metric { ci_low: low, ci_high: high, ..metric }
}

/// One perturbation of the hold-out features.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Perturbation {
    Gaussian(f32),
    Mask(f32),
    Outliers,
    Shift,
    Brightness(f32),
}

impl Perturbation {
    pub fn name(&self) -> String {
        match self {
            Perturbation::Gaussian(sigma) => format!("gaussian_{sigma}"),
            Perturbation::Mask(share) => format!("mask_{share}"),
            Perturbation::Outliers => "outliers".to_owned(),
            Perturbation::Shift => "shift_1px".to_owned(),
            Perturbation::Brightness(factor) => format!("brightness_{factor:+}"),
        }
    }
}

pub fn perturbations(image: Option<ImageShape>) -> Vec<Perturbation> {
    let mut list = vec![
        Perturbation::Gaussian(0.1),
        Perturbation::Gaussian(0.3),
        Perturbation::Gaussian(0.5),
        Perturbation::Mask(0.1),
        Perturbation::Outliers,
    ];
    if image.is_some() {
        list.extend([
            Perturbation::Shift,
            Perturbation::Brightness(0.2),
            Perturbation::Brightness(-0.2),
        ]);
    }
    list
}

/// The perturbed copy of `x` (seeded by the perturbation's name).
pub fn perturb(
    x: &Rows<'_>,
    perturbation: Perturbation,
    seed: u64,
    image: Option<ImageShape>,
) -> Vec<f32> {
    let mut rng = models::rng::stream(seed, &format!("robustness/{}", perturbation.name()));
    let dim = x.dim;
    let mut out = x.data.to_vec();
    match perturbation {
        Perturbation::Gaussian(sigma) => {
            for value in &mut out {
                *value += sigma * rng.sample::<f32, _>(rand_distr::StandardNormal);
            }
        }
        Perturbation::Mask(share) => {
            let n_masked = ((share * dim as f32).round() as usize).max(1);
            for row in out.chunks_exact_mut(dim) {
                let mut columns: Vec<usize> = (0..dim).collect();
                models::rng::shuffle(&mut rng, &mut columns);
                for &col in &columns[..n_masked] {
                    row[col] = 0.0;
                }
            }
        }
        Perturbation::Outliers => {
            for row in out.chunks_exact_mut(dim) {
                if rng.random::<f32>() < 0.1 {
                    for _ in 0..3.min(dim) {
                        let col = rng.random_range(0..dim);
                        row[col] = if rng.random::<bool>() { 5.0 } else { -5.0 };
                    }
                }
            }
        }
        Perturbation::Shift => {
            let shape = image.unwrap_or(ImageShape { channels: 1, height: 1, width: dim });
            let (height, width) = (shape.height as isize, shape.width as isize);
            let plane = shape.height * shape.width;
            for (row_out, row_in) in out.chunks_exact_mut(dim).zip(x.data.chunks_exact(dim)) {
                let (dy, dx): (isize, isize) =
                    [(0, 1), (0, -1), (1, 0), (-1, 0)][rng.random_range(0..4)];
                for channel in 0..shape.channels {
                    for y in 0..height {
                        for xx in 0..width {
                            let (sy, sx) = (y - dy, xx - dx);
                            let inside = sy >= 0 && sx >= 0 && sy < height && sx < width;
                            // Pixels shifted in from outside are black (-1 in the encoded space).
                            row_out[channel * plane + (y * width + xx) as usize] = if inside {
                                row_in[channel * plane + (sy * width + sx) as usize]
                            } else {
                                -1.0
                            };
                        }
                    }
                }
            }
        }
        Perturbation::Brightness(change) => {
            for value in &mut out {
                *value = ((*value + 1.0) * (1.0 + change) - 1.0).clamp(-1.0, 1.0);
            }
        }
    }
    out
}
