//! Training loops of the three families, on encoded data `x [n, d]` (or `[n, C, H, W]`) with
//! one-hot labels `y [n, k]`, with candle's AdamW.
//!
//! - VAE (conditional): encoder `(x, y) → (μ, log σ²)`, `z = μ + σ·ε`, decoder `(z, y) → x̂`.
//!   Loss per sample: Gaussian negative log-likelihood of numeric features (or pixels) with a
//!   learned per-feature scale, softmax cross-entropy of each one-hot block, plus the KL term.
//! - GAN (conditional): hinge loss, the discriminator spectrally normalised (one power
//!   iteration per step, as Miyato et al. 2018), Adam with β₁ = 0.5. Small data makes plain
//!   GANs collapse; the spectral norm bounds the critic's Lipschitz constant, and the hinge loss
//!   stops rewarding an over-confident critic. Because adversarial losses do not measure
//!   progress, each epoch also records the gap between generated and real feature moments.
//! - DDPM: `x_t = √ᾱ_t x₀ + √(1 − ᾱ_t) ε`, the network predicts `ε` (mean squared error), `t`
//!   uniform over the schedule's steps.
//!
//! The diffusion model and the GAN generator are exported as the exponential moving average of
//! their weights. Every draw (batch order, ε, z, t) comes from a seeded stream on the host, so
//! the same seed gives the same weights.

use candle_core::{D, DType, Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use models::manifest::Family;
use models::rng::{self, StreamRng};
use models::schedule::NoiseSchedule;
use rand::RngExt;

use crate::error::{Error, Result};
use crate::exec::{forward, forward_with};
use crate::graph::Graph;
use crate::nets::{self, DataSpec, Widths};
use crate::params::{Ema, Params};

/// Decay of the exponential moving average of the diffusion and generator weights that is
/// exported: an average over the last ~200 steps.
const EMA_DECAY: f64 = 0.995;

/// Encoded training data.
#[derive(Debug, Clone)]
pub struct TrainData {
    /// `n × d` row-major.
    pub x: Vec<f32>,
    /// `n × k` one-hot.
    pub y: Vec<f32>,
    pub n_rows: usize,
    pub spec: DataSpec,
}

/// Hyper-parameters. [`Hyper::defaults`] picks them from the family and the data size.
#[derive(Debug, Clone, PartialEq)]
pub struct Hyper {
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    pub widths: Widths,
    /// Diffusion steps `T` (DDPM).
    pub diffusion_steps: usize,
}

impl Hyper {
    /// Defaults that train a useful model on the fixtures in a minute or two on two CPU cores:
    /// a fixed budget of optimiser steps, spread over as many epochs as the data size needs.
    pub fn defaults(family: Family, spec: &DataSpec, n_rows: usize) -> Hyper {
        // Large images: a smaller batch keeps a step's column matrices in cache.
        let pixels = spec.image.map_or(1, |shape| shape.n_values());
        let batch_size = (n_rows / 4).clamp(16, (32_768 / pixels).clamp(16, 128));
        let batches_per_epoch = n_rows.div_ceil(batch_size).max(1);
        let image = spec.image.is_some();
        let target_steps: usize = match (family, image) {
            (Family::Vae, false) => 3000,
            (Family::Gan, false) => 3000,
            (Family::Ddpm, false) => 5000,
            (Family::Vae, true) => 1500,
            (Family::Gan, true) => 1500,
            (Family::Ddpm, true) => 1500,
        };
        let learning_rate = match family {
            Family::Vae => 1e-3,
            Family::Gan => 2e-4,
            Family::Ddpm => 1e-3,
        };
        let widths = Widths {
            hidden: 256,
            latent_dim: match (family, image) {
                (Family::Gan, _) => 32,
                (_, false) => 16,
                (_, true) => 32,
            },
            // 16 base channels: enough for 8×8 digits and 32×32 nuclei, and a quarter of the cost
            // of 32, which buys the optimiser steps these small images need.
            channels: 16,
            time_dim: 64,
        };
        Hyper {
            epochs: target_steps.div_ceil(batches_per_epoch).clamp(10, 5000),
            batch_size,
            learning_rate,
            widths,
            diffusion_steps: 200,
        }
    }
}

/// One epoch's mean figures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpochStats {
    pub epoch: usize,
    /// The family's training loss: VAE negative ELBO per sample, GAN discriminator hinge loss,
    /// DDPM noise-prediction MSE.
    pub loss: f64,
    /// GAN only: generator loss.
    pub generator_loss: Option<f64>,
    /// GAN only: squared gap between generated and real per-feature means and standard deviations.
    pub moment_gap: Option<f64>,
}

/// A trained model: the exported graph with its parameters, and what trained alongside it.
#[derive(Debug)]
pub struct Trained {
    pub family: Family,
    pub graph: Graph,
    pub params: Params,
    /// Encoder (VAE) or discriminator (GAN), kept for resuming; not exported.
    pub companion: Option<(Graph, Params)>,
    pub schedule: Option<NoiseSchedule>,
    pub history: Vec<EpochStats>,
}

/// Called after every epoch.
pub type OnEpoch<'a> = dyn FnMut(&EpochStats) + 'a;

pub fn train(
    family: Family,
    data: &TrainData,
    hyper: &Hyper,
    seed: u64,
    device: &Device,
    on_epoch: &mut OnEpoch<'_>,
) -> Result<Trained> {
    if data.n_rows == 0 {
        return Err(Error::Invalid("the train part is empty".to_owned()));
    }
    let batches = Batches::new(data, hyper.batch_size, seed, device);
    match family {
        Family::Vae => train_vae(data, hyper, seed, device, batches, on_epoch),
        Family::Gan => train_gan(data, hyper, seed, device, batches, on_epoch),
        Family::Ddpm => train_ddpm(data, hyper, seed, device, batches, on_epoch),
    }
}

/// Shuffled mini-batches, reshuffled every epoch from a seeded stream.
struct Batches<'a> {
    data: &'a TrainData,
    batch_size: usize,
    rng: StreamRng,
    device: &'a Device,
}

impl<'a> Batches<'a> {
    fn new(data: &'a TrainData, batch_size: usize, seed: u64, device: &'a Device) -> Self {
        Batches { data, batch_size, rng: rng::stream(seed, "train/batches"), device }
    }

    /// This epoch's batches as `(x, y)` tensors, `x` shaped like the network's input.
    fn epoch(&mut self) -> Result<Vec<(Tensor, Tensor)>> {
        let mut order: Vec<usize> = (0..self.data.n_rows).collect();
        rng::shuffle(&mut self.rng, &mut order);
        let (d, k) = (self.data.spec.width, self.data.spec.n_classes);
        order
            .chunks(self.batch_size)
            .map(|rows| {
                let mut x = Vec::with_capacity(rows.len() * d);
                let mut y = Vec::with_capacity(rows.len() * k);
                for &row in rows {
                    x.extend_from_slice(&self.data.x[row * d..(row + 1) * d]);
                    y.extend_from_slice(&self.data.y[row * k..(row + 1) * k]);
                }
                let mut x_dims = vec![rows.len()];
                x_dims.extend(self.data.spec.sample_dims());
                Ok((
                    Tensor::from_vec(x, x_dims, self.device)?,
                    Tensor::from_vec(y, (rows.len(), k), self.device)?,
                ))
            })
            .collect()
    }
}

fn normal(rng: &mut StreamRng, dims: &[usize], device: &Device) -> Result<Tensor> {
    let n: usize = dims.iter().product();
    Ok(Tensor::from_vec(rng::normal_f32(rng, n), dims, device)?)
}

fn scalar(tensor: &Tensor) -> Result<f64> {
    Ok(f64::from(tensor.to_dtype(DType::F32)?.to_scalar::<f32>()?))
}

fn adamw(vars: Vec<Var>, lr: f64, beta1: f64) -> Result<AdamW> {
    Ok(AdamW::new(vars, ParamsAdamW { lr, beta1, beta2: 0.999, eps: 1e-8, weight_decay: 0.0 })?)
}

/// Per-sample reconstruction negative log-likelihood, summed over features: `[B]`.
/// Numeric features (and pixels): Gaussian with learned log-scale; one-hot blocks: cross-entropy.
fn reconstruction_nll(
    spec: &DataSpec,
    x: &Tensor,
    x_hat: &Tensor,
    log_scale: &Tensor,
) -> Result<Tensor> {
    let batch = x.dim(0)?;
    let x = x.reshape((batch, spec.width))?;
    let x_hat = x_hat.reshape((batch, spec.width))?;
    let mut total = Tensor::zeros(batch, DType::F32, x.device())?;
    let mut numeric_offset = 0;
    for block in &spec.blocks {
        let target = x.narrow(1, block.start, block.width)?;
        let predicted = x_hat.narrow(1, block.start, block.width)?;
        let nll = if block.categorical {
            let log_probs = candle_nn::ops::log_softmax(&predicted, D::Minus1)?;
            (target * log_probs)?.sum(1)?.neg()?
        } else {
            let scale = log_scale.narrow(0, numeric_offset, block.width)?;
            numeric_offset += block.width;
            let inv_var = (scale.affine(-2.0, 0.0)?).exp()?;
            let sq = (target - predicted)?.sqr()?;
            (sq.broadcast_mul(&inv_var)?.affine(0.5, 0.0)?.broadcast_add(&scale)?).sum(1)?
        };
        total = (total + nll)?;
    }
    Ok(total)
}

fn n_numeric(spec: &DataSpec) -> usize {
    spec.blocks.iter().filter(|block| !block.categorical).map(|block| block.width).sum()
}

fn train_vae(
    data: &TrainData,
    hyper: &Hyper,
    seed: u64,
    device: &Device,
    mut batches: Batches<'_>,
    on_epoch: &mut OnEpoch<'_>,
) -> Result<Trained> {
    let spec = &data.spec;
    let encoder_graph = nets::encoder(spec, &hyper.widths);
    let decoder_graph = nets::generator(spec, &hyper.widths, false);
    let encoder = Params::init(&encoder_graph, "encoder", seed, device)?;
    let decoder = Params::init(&decoder_graph, "decoder", seed, device)?;
    // Learned log-scale of each numeric feature's Gaussian (one value per pixel for images).
    let log_scale = Var::zeros(n_numeric(spec).max(1), DType::F32, device)?;
    let mut vars = encoder.vars();
    vars.extend(decoder.vars());
    vars.push(log_scale.clone());
    let mut optimiser = adamw(vars, hyper.learning_rate, 0.9)?;
    let mut noise = rng::stream(seed, "train/vae/eps");
    let latent = hyper.widths.latent_dim;
    let mut history = Vec::with_capacity(hyper.epochs);
    for epoch in 0..hyper.epochs {
        let (mut sum, mut count) = (0.0, 0);
        for (x, y) in batches.epoch()? {
            let batch = x.dim(0)?;
            let encoded = forward(&encoder_graph, &encoder, &[("x", &x), ("y", &y)])?;
            let (mu, logvar) = (&encoded[0], &encoded[1].clamp(-10.0, 10.0)?);
            let eps = normal(&mut noise, &[batch, latent], device)?;
            let z = (mu + (logvar.affine(0.5, 0.0)?.exp()? * eps)?)?;
            let x_hat = forward(&decoder_graph, &decoder, &[("z", &z), ("y", &y)])?.remove(0);
            let nll = reconstruction_nll(spec, &x, &x_hat, log_scale.as_tensor())?;
            // KL(N(μ, σ²) ‖ N(0, 1)) per sample.
            let kl = ((mu.sqr()? + logvar.exp()?)? - logvar)?
                .affine(1.0, -1.0)?
                .sum(1)?
                .affine(0.5, 0.0)?;
            let loss = (nll + kl)?.mean_all()?;
            optimiser.backward_step(&loss)?;
            sum += scalar(&loss)? * batch as f64;
            count += batch;
        }
        let stats =
            EpochStats { epoch, loss: sum / count as f64, generator_loss: None, moment_gap: None };
        check_finite(&stats)?;
        on_epoch(&stats);
        history.push(stats);
    }
    Ok(Trained {
        family: Family::Vae,
        graph: decoder_graph,
        params: decoder,
        companion: Some((encoder_graph, encoder)),
        schedule: None,
        history,
    })
}

/// Spectral normalisation state: one left singular vector estimate per weight.
struct SpectralNorm {
    u: std::collections::HashMap<String, Tensor>,
    rng: StreamRng,
}

impl SpectralNorm {
    fn new(seed: u64) -> Self {
        SpectralNorm {
            u: std::collections::HashMap::new(),
            rng: rng::stream(seed, "train/gan/spectral"),
        }
    }

    /// `W / σ(W)` with `σ` from one power iteration on the detached weight; gradients flow
    /// through `σ = uᵀ W v` as in Miyato et al.
    fn normalise(&mut self, name: &str, weight: &Tensor) -> Result<Tensor> {
        let out = weight.dim(0)?;
        let matrix = weight.reshape((out, ()))?;
        let u = match self.u.get(name) {
            Some(u) => u.clone(),
            None => normal(&mut self.rng, &[out, 1], weight.device())?,
        };
        let detached = matrix.detach();
        let v = l2_normalise(&detached.t()?.matmul(&u)?)?;
        let u = l2_normalise(&detached.matmul(&v)?)?;
        let sigma = u.t()?.matmul(&matrix.matmul(&v)?)?.reshape(())?;
        self.u.insert(name.to_owned(), u);
        Ok(weight.broadcast_div(&sigma)?)
    }
}

fn l2_normalise(vector: &Tensor) -> Result<Tensor> {
    let norm = (vector.sqr()?.sum_all()?.sqrt()? + 1e-12)?;
    Ok(vector.broadcast_div(&norm)?)
}

fn train_gan(
    data: &TrainData,
    hyper: &Hyper,
    seed: u64,
    device: &Device,
    mut batches: Batches<'_>,
    on_epoch: &mut OnEpoch<'_>,
) -> Result<Trained> {
    let spec = &data.spec;
    let generator_graph = nets::generator(spec, &hyper.widths, true);
    let critic_graph = nets::discriminator(spec, &hyper.widths);
    let generator = Params::init(&generator_graph, "generator", seed, device)?;
    let critic = Params::init(&critic_graph, "discriminator", seed, device)?;
    let mut optimiser_g = adamw(generator.vars(), hyper.learning_rate, 0.5)?;
    let mut ema = Ema::new(&generator, EMA_DECAY)?;
    let mut optimiser_d = adamw(critic.vars(), hyper.learning_rate * 2.0, 0.5)?;
    let mut spectral = SpectralNorm::new(seed);
    let mut noise = rng::stream(seed, "train/gan/z");
    let latent = hyper.widths.latent_dim;
    let moments = Moments::of_real(data, seed, latent, device)?;
    let mut history = Vec::with_capacity(hyper.epochs);
    for epoch in 0..hyper.epochs {
        let (mut sum_d, mut sum_g, mut count) = (0.0, 0.0, 0);
        for (x, y) in batches.epoch()? {
            let batch = x.dim(0)?;
            let score = |input: &Tensor, spectral: &mut SpectralNorm| -> Result<Tensor> {
                Ok(forward_with(
                    &critic_graph,
                    &critic,
                    &[("x", input), ("y", &y)],
                    &mut |name, weight| spectral.normalise(name, weight),
                )?
                .remove(0))
            };
            // Critic step on real and (detached) generated samples.
            let z = normal(&mut noise, &[batch, latent], device)?;
            let fake =
                forward(&generator_graph, &generator, &[("z", &z), ("y", &y)])?.remove(0).detach();
            let real_term = score(&x, &mut spectral)?.affine(-1.0, 1.0)?.relu()?.mean_all()?;
            let fake_term = score(&fake, &mut spectral)?.affine(1.0, 1.0)?.relu()?.mean_all()?;
            let loss_d = (real_term + fake_term)?;
            optimiser_d.backward_step(&loss_d)?;
            // Generator step.
            let z = normal(&mut noise, &[batch, latent], device)?;
            let fake = forward(&generator_graph, &generator, &[("z", &z), ("y", &y)])?.remove(0);
            let loss_g = score(&fake, &mut spectral)?.mean_all()?.neg()?;
            optimiser_g.backward_step(&loss_g)?;
            ema.update(&generator)?;
            sum_d += scalar(&loss_d)? * batch as f64;
            sum_g += scalar(&loss_g)? * batch as f64;
            count += batch;
        }
        let gap = moments.gap(&generator_graph, &generator)?;
        let stats = EpochStats {
            epoch,
            loss: sum_d / count as f64,
            generator_loss: Some(sum_g / count as f64),
            moment_gap: Some(gap),
        };
        check_finite(&stats)?;
        on_epoch(&stats);
        history.push(stats);
    }
    ema.apply(&generator)?;
    Ok(Trained {
        family: Family::Gan,
        graph: generator_graph,
        params: generator,
        companion: Some((critic_graph, critic)),
        schedule: None,
        history,
    })
}

/// Real per-feature means and standard deviations, and fixed generator inputs to compare with.
struct Moments {
    mean: Vec<f64>,
    std: Vec<f64>,
    z: Tensor,
    y: Tensor,
    width: usize,
}

impl Moments {
    fn of_real(data: &TrainData, seed: u64, latent: usize, device: &Device) -> Result<Moments> {
        let (mean, std) = column_moments(&data.x, data.spec.width);
        let n = data.n_rows.min(512);
        let z = normal(&mut rng::stream(seed, "train/gan/moments"), &[n, latent], device)?;
        let y = Tensor::from_vec(
            data.y[..n * data.spec.n_classes].to_vec(),
            (n, data.spec.n_classes),
            device,
        )?;
        Ok(Moments { mean, std, z, y, width: data.spec.width })
    }

    fn gap(&self, graph: &Graph, params: &Params) -> Result<f64> {
        let fake = forward(graph, params, &[("z", &self.z), ("y", &self.y)])?.remove(0);
        let values = fake.flatten_all()?.to_device(&Device::Cpu)?.to_vec1::<f32>()?;
        let (mean, std) = column_moments(&values, self.width);
        let gap: f64 = mean.iter().zip(&self.mean).map(|(a, b)| (a - b).powi(2)).sum::<f64>()
            + std.iter().zip(&self.std).map(|(a, b)| (a - b).powi(2)).sum::<f64>();
        Ok(gap / self.width as f64)
    }
}

fn column_moments(values: &[f32], width: usize) -> (Vec<f64>, Vec<f64>) {
    let n = (values.len() / width).max(1) as f64;
    let mut mean = vec![0.0; width];
    let mut sq = vec![0.0; width];
    for row in values.chunks_exact(width) {
        for (col, &value) in row.iter().enumerate() {
            mean[col] += f64::from(value);
            sq[col] += f64::from(value).powi(2);
        }
    }
    let mean: Vec<f64> = mean.iter().map(|sum| sum / n).collect();
    let std = sq.iter().zip(&mean).map(|(sum, m)| (sum / n - m * m).max(0.0).sqrt()).collect();
    (mean, std)
}

fn train_ddpm(
    data: &TrainData,
    hyper: &Hyper,
    seed: u64,
    device: &Device,
    mut batches: Batches<'_>,
    on_epoch: &mut OnEpoch<'_>,
) -> Result<Trained> {
    let spec = &data.spec;
    let graph = nets::denoiser(spec, &hyper.widths);
    let params = Params::init(&graph, "denoiser", seed, device)?;
    let schedule = NoiseSchedule::cosine(hyper.diffusion_steps);
    let alpha_bars = schedule.alpha_bars();
    let mut optimiser = adamw(params.vars(), hyper.learning_rate, 0.9)?;
    let mut ema = Ema::new(&params, EMA_DECAY)?;
    let mut noise = rng::stream(seed, "train/ddpm/eps");
    let mut steps = rng::stream(seed, "train/ddpm/t");
    let mut history = Vec::with_capacity(hyper.epochs);
    let total_epochs = hyper.epochs as f64;
    for epoch in 0..hyper.epochs {
        // Cosine decay of the learning rate to a tenth over training.
        let progress = epoch as f64 / total_epochs;
        optimiser.set_learning_rate(
            hyper.learning_rate
                * (0.1 + 0.9 * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())),
        );
        let (mut sum, mut count) = (0.0, 0);
        for (x0, y) in batches.epoch()? {
            let batch = x0.dim(0)?;
            let t: Vec<usize> = (0..batch).map(|_| steps.random_range(0..schedule.steps)).collect();
            let mut coef_dims = vec![batch];
            coef_dims.extend(std::iter::repeat_n(1, x0.rank() - 1));
            let signal: Vec<f32> = t.iter().map(|&step| alpha_bars[step].sqrt() as f32).collect();
            let sigma: Vec<f32> =
                t.iter().map(|&step| (1.0 - alpha_bars[step]).sqrt() as f32).collect();
            let signal = Tensor::from_vec(signal, coef_dims.as_slice(), device)?;
            let sigma = Tensor::from_vec(sigma, coef_dims.as_slice(), device)?;
            let eps = normal(&mut noise, x0.dims(), device)?;
            let x_t = (x0.broadcast_mul(&signal)? + eps.broadcast_mul(&sigma)?)?;
            let t = Tensor::from_vec(
                t.iter().map(|&step| step as f32).collect::<Vec<_>>(),
                (batch, 1),
                device,
            )?;
            let eps_hat =
                forward(&graph, &params, &[("x_t", &x_t), ("t", &t), ("y", &y)])?.remove(0);
            let loss = (eps_hat - eps)?.sqr()?.mean_all()?;
            optimiser.backward_step(&loss)?;
            ema.update(&params)?;
            sum += scalar(&loss)? * batch as f64;
            count += batch;
        }
        let stats =
            EpochStats { epoch, loss: sum / count as f64, generator_loss: None, moment_gap: None };
        check_finite(&stats)?;
        on_epoch(&stats);
        history.push(stats);
    }
    ema.apply(&params)?;
    Ok(Trained {
        family: Family::Ddpm,
        graph,
        params,
        companion: None,
        schedule: Some(schedule),
        history,
    })
}

fn check_finite(stats: &EpochStats) -> Result<()> {
    if stats.loss.is_finite() {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "training diverged at epoch {} (loss {}); try a smaller learning rate or fewer epochs",
            stats.epoch + 1,
            stats.loss
        )))
    }
}
