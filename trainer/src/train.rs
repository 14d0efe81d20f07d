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
//!   On images the critic sees every real and generated batch through DiffAugment
//!   ([`crate::augment`]), and also classifies the real images (an auxiliary head, Odena et al.
//!   2017) while the generator is rewarded for images the head takes for the requested class:
//!   the projection alone let samples drift to other classes.
//! - DDPM: `x_t = √ᾱ_t x₀ + √(1 − ᾱ_t) ε`, the network predicts `ε` (mean squared error), `t`
//!   uniform over the schedule's steps. On images the label is dropped (all-zero) for a tenth
//!   of the samples, so the same network also predicts without a class, for classifier-free
//!   guidance at sampling time (Ho & Salimans 2022).
//! - LDM: an autoencoder (a β-VAE with a small KL weight) on the images, then a DDPM on its
//!   standardised latent means; the bundle holds the denoiser and the decoder, the decoder
//!   taking the standardised latent (the un-standardisation is folded into its first layer).
//!
//! The diffusion model and the GAN generator are exported as the exponential moving average of
//! their weights. Every draw (batch order, ε, z, t) comes from a seeded stream on the host, so
//! the same seed gives the same weights.

use candle_core::{D, DType, Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use models::manifest::{Family, SizePreset};
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

/// Share of training samples whose label is dropped for classifier-free guidance (images).
const LABEL_DROPOUT: f64 = 0.1;

/// Classifier-free guidance scale written into image diffusion manifests (`--guidance` chooses
/// another when sampling). Measured at fraction 1, DDIM 50 steps, as (share of samples recognised
/// as their class, precision, recall): nuclei32 DDPM at 0, 1, 3: (0.71, 0.64, 0.88),
/// (0.85, 0.62, 0.81), (0.98, 0.70, 0.78); digits DDPM at 1 and 3: (0.998, 0.83, 0.74),
/// (0.998, 0.77, 0.23); digits LDM at 1 and 3: (0.99, 0.88, 0.24), (1.00, 0.80, 0.004). 1 keeps
/// the diversity of the small images; 32×32 DDPM gains from 3.
pub const GUIDANCE: f64 = 1.0;

/// Weight of the auxiliary classification loss of the GAN (critic on real images, generator on
/// its own).
const CLASS_LOSS_WEIGHT: f64 = 3.0;

/// Weight of the KL term of latent diffusion's autoencoder, per latent dimension against the
/// per-pixel likelihood: small, so the latent keeps what the images hold.
const AUTOENCODER_KL_WEIGHT: f64 = 0.05;

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
    /// Diffusion steps `T` (DDPM, LDM).
    pub diffusion_steps: usize,
    /// Classifier-free guidance scale (image diffusion, trained with label dropout).
    pub guidance: Option<f64>,
}

impl Hyper {
    /// Defaults that train a useful model on the fixtures in a minute or two on two CPU cores:
    /// a fixed budget of optimiser steps, spread over as many epochs as the data size needs.
    pub fn defaults(family: Family, size: SizePreset, spec: &DataSpec, n_rows: usize) -> Hyper {
        // Large images: a smaller batch keeps a step's column matrices in cache.
        let pixels = spec.image.map_or(1, |shape| shape.n_values());
        let batch_size = (n_rows / 4).clamp(16, (32_768 / pixels).clamp(16, 128));
        let batches_per_epoch = n_rows.div_ceil(batch_size).max(1);
        let image = spec.image.is_some();
        let target_steps: usize = match (family, image) {
            (Family::Vae, false) => 3000,
            (Family::Gan, false) => 3000,
            (Family::Ddpm | Family::Ldm, false) => 5000,
            (Family::Vae, true) => 1500,
            (Family::Gan, true) => 1500,
            (Family::Ddpm, true) => 1500,
            (Family::Ldm, true) => 1500,
        };
        let learning_rate = match family {
            Family::Vae => 1e-3,
            Family::Gan => 2e-4,
            Family::Ddpm | Family::Ldm => 1e-3,
        };
        let widths = Widths::preset(size, family, spec);
        Hyper {
            epochs: target_steps.div_ceil(batches_per_epoch).clamp(10, 5000),
            batch_size,
            learning_rate,
            widths,
            diffusion_steps: 200,
            guidance: (family.is_diffusion() && image).then_some(GUIDANCE),
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
    /// Latent diffusion: the decoder and the latent range.
    pub latent: Option<TrainedLatent>,
}

/// Latent diffusion's decoder (taking the standardised latent) and the range of the train
/// part's standardised latents.
#[derive(Debug)]
pub struct TrainedLatent {
    pub decoder: Graph,
    pub decoder_params: Params,
    pub low: Vec<f32>,
    pub high: Vec<f32>,
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
    if family == Family::Ldm && data.spec.image.is_none() {
        return Err(Error::Invalid(
            "latent diffusion (ldm) is for images; use vae, gan or ddpm for a table".to_owned(),
        ));
    }
    let batches = Batches::new(data, hyper.batch_size, seed, device);
    match family {
        Family::Vae => train_vae(data, hyper, seed, device, batches, on_epoch),
        Family::Gan => train_gan(data, hyper, seed, device, batches, on_epoch),
        Family::Ddpm => train_ddpm(data, hyper, seed, device, batches, on_epoch),
        Family::Ldm => train_ldm(data, hyper, seed, device, batches, on_epoch),
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
            let nets = Autoencoder {
                encoder: (&encoder_graph, &encoder),
                decoder: (&decoder_graph, &decoder),
                log_scale: log_scale.as_tensor(),
                latent_dim: latent,
            };
            let loss = nets.elbo_loss(spec, &x, Some(&y), &mut noise, 1.0)?;
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
        latent: None,
    })
}

/// An encoder and decoder trained together on the negative ELBO: the VAE (conditional on the
/// class) and latent diffusion's autoencoder (unconditional).
struct Autoencoder<'a> {
    encoder: (&'a Graph, &'a Params),
    decoder: (&'a Graph, &'a Params),
    /// Learned log-scale of each numeric feature's Gaussian (one value per pixel for images).
    log_scale: &'a Tensor,
    latent_dim: usize,
}

impl Autoencoder<'_> {
    /// The mean over the batch of the reconstruction NLL plus `kl_weight` × KL(N(μ, σ²) ‖ N(0, 1))
    /// per sample, the latent drawn by reparameterisation from `noise`; `y` (one-hot classes) is
    /// fed to both networks when given.
    fn elbo_loss(
        &self,
        spec: &DataSpec,
        x: &Tensor,
        y: Option<&Tensor>,
        noise: &mut StreamRng,
        kl_weight: f64,
    ) -> Result<Tensor> {
        fn with_class<'t>(
            first: (&'static str, &'t Tensor),
            y: Option<&'t Tensor>,
        ) -> Vec<(&'static str, &'t Tensor)> {
            let mut feeds = vec![first];
            feeds.extend(y.map(|y| ("y", y)));
            feeds
        }
        let encoded = forward(self.encoder.0, self.encoder.1, &with_class(("x", x), y))?;
        let (mu, logvar) = (&encoded[0], &encoded[1].clamp(-10.0, 10.0)?);
        let eps = normal(noise, &[x.dim(0)?, self.latent_dim], x.device())?;
        let z = (mu + (logvar.affine(0.5, 0.0)?.exp()? * eps)?)?;
        let x_hat = forward(self.decoder.0, self.decoder.1, &with_class(("z", &z), y))?.remove(0);
        let nll = reconstruction_nll(spec, x, &x_hat, self.log_scale)?;
        let kl = ((mu.sqr()? + logvar.exp()?)? - logvar)?
            .affine(1.0, -1.0)?
            .sum(1)?
            .affine(0.5 * kl_weight, 0.0)?;
        Ok((nll + kl)?.mean_all()?)
    }
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
    let mut augmentation = rng::stream(seed, "train/gan/augment");
    let image = spec.conv_image().is_some();
    let latent = hyper.widths.latent_dim;
    let moments = Moments::of_real(data, seed, latent, device)?;
    let mut history = Vec::with_capacity(hyper.epochs);
    for epoch in 0..hyper.epochs {
        let (mut sum_d, mut sum_g, mut count) = (0.0, 0.0, 0);
        for (x, y) in batches.epoch()? {
            let batch = x.dim(0)?;
            // The critic's score and, when it has the auxiliary head, its class logits, on
            // DiffAugment'ed images.
            let mut judge =
                |input: &Tensor, spectral: &mut SpectralNorm| -> Result<(Tensor, Option<Tensor>)> {
                    let input = if image {
                        crate::augment::diff_augment(input, &mut augmentation)?
                    } else {
                        input.clone()
                    };
                    let mut outputs = forward_with(
                        &critic_graph,
                        &critic,
                        &[("x", &input), ("y", &y)],
                        // The class head does not feed the score: left unnormalised, its logits
                        // can grow as far as the classification needs.
                        &mut |name, weight| {
                            if name.starts_with("class_logits.") {
                                Ok(weight.clone())
                            } else {
                                spectral.normalise(name, weight)
                            }
                        },
                    )?;
                    // Tables keep the projection critic alone (their critic's features read y).
                    let logits = (image && outputs.len() > 1).then(|| outputs.remove(1));
                    Ok((outputs.remove(0), logits))
                };
            // Critic step on real and (detached) generated samples.
            let z = normal(&mut noise, &[batch, latent], device)?;
            let fake =
                forward(&generator_graph, &generator, &[("z", &z), ("y", &y)])?.remove(0).detach();
            let (real_score, real_logits) = judge(&x, &mut spectral)?;
            let real_term = real_score.affine(-1.0, 1.0)?.relu()?.mean_all()?;
            let fake_term = judge(&fake, &mut spectral)?.0.affine(1.0, 1.0)?.relu()?.mean_all()?;
            let mut loss_d = (real_term + fake_term)?;
            if let Some(logits) = real_logits {
                loss_d = (loss_d + class_loss(&logits, &y)?.affine(CLASS_LOSS_WEIGHT, 0.0)?)?;
            }
            optimiser_d.backward_step(&loss_d)?;
            // Generator step.
            let z = normal(&mut noise, &[batch, latent], device)?;
            let fake = forward(&generator_graph, &generator, &[("z", &z), ("y", &y)])?.remove(0);
            let (fake_score, fake_logits) = judge(&fake, &mut spectral)?;
            let mut loss_g = fake_score.mean_all()?.neg()?;
            if let Some(logits) = fake_logits {
                loss_g = (loss_g + class_loss(&logits, &y)?.affine(CLASS_LOSS_WEIGHT, 0.0)?)?;
            }
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
        latent: None,
    })
}

/// Mean softmax cross-entropy of `logits [B, k]` against one-hot `y [B, k]`.
fn class_loss(logits: &Tensor, y: &Tensor) -> Result<Tensor> {
    let log_probs = candle_nn::ops::log_softmax(logits, D::Minus1)?;
    Ok((y * log_probs)?.sum(1)?.mean_all()?.neg()?)
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
    let label_dropout = if hyper.guidance.is_some() { LABEL_DROPOUT } else { 0.0 };
    let (graph, params, schedule, history) = fit_denoiser(
        &data.spec,
        hyper,
        hyper.epochs,
        label_dropout,
        seed,
        device,
        &mut batches,
        on_epoch,
    )?;
    Ok(Trained {
        family: Family::Ddpm,
        graph,
        params,
        companion: None,
        schedule: Some(schedule),
        history,
        latent: None,
    })
}

type Denoiser = (Graph, Params, NoiseSchedule, Vec<EpochStats>);

/// Trains a noise-prediction network on `batches` (data shaped as `spec`) for `epochs`, with
/// the label dropped for a `label_dropout` share of the samples; returns the EMA weights.
#[allow(clippy::too_many_arguments)]
fn fit_denoiser(
    spec: &DataSpec,
    hyper: &Hyper,
    epochs: usize,
    label_dropout: f64,
    seed: u64,
    device: &Device,
    batches: &mut Batches<'_>,
    on_epoch: &mut OnEpoch<'_>,
) -> Result<Denoiser> {
    let graph = nets::denoiser(spec, &hyper.widths);
    let params = Params::init(&graph, "denoiser", seed, device)?;
    let schedule = NoiseSchedule::cosine(hyper.diffusion_steps);
    let alpha_bars = schedule.alpha_bars();
    let mut optimiser = adamw(params.vars(), hyper.learning_rate, 0.9)?;
    let mut ema = Ema::new(&params, EMA_DECAY)?;
    let mut noise = rng::stream(seed, "train/ddpm/eps");
    let mut steps = rng::stream(seed, "train/ddpm/t");
    let mut dropout = rng::stream(seed, "train/ddpm/label-dropout");
    let mut history = Vec::with_capacity(epochs);
    let total_epochs = epochs as f64;
    for epoch in 0..epochs {
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
            let y = if label_dropout > 0.0 {
                let keep: Vec<f32> = (0..batch)
                    .map(|_| if dropout.random_bool(label_dropout) { 0.0 } else { 1.0 })
                    .collect();
                y.broadcast_mul(&Tensor::from_vec(keep, (batch, 1), device)?)?
            } else {
                y
            };
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
    Ok((graph, params, schedule, history))
}

/// Epochs of latent diffusion's denoiser per epoch of its autoencoder: the latent network is
/// an MLP on a few dozen values, far cheaper per step than the convolutions.
pub const LATENT_EPOCHS_PER_EPOCH: usize = 3;

/// The epochs a training of `family` runs in all for `epochs` (latent diffusion trains its
/// autoencoder, then the latent denoiser for [`LATENT_EPOCHS_PER_EPOCH`] times as many).
pub fn epochs_in_all(family: Family, epochs: usize) -> usize {
    match family {
        Family::Ldm => epochs * (1 + LATENT_EPOCHS_PER_EPOCH),
        _ => epochs,
    }
}

fn train_ldm(
    data: &TrainData,
    hyper: &Hyper,
    seed: u64,
    device: &Device,
    mut batches: Batches<'_>,
    on_epoch: &mut OnEpoch<'_>,
) -> Result<Trained> {
    let spec = &data.spec;
    let latent_dim = hyper.widths.latent_dim;
    // 1. The autoencoder: a β-VAE, unconditional.
    let encoder_graph = nets::ae_encoder(spec, &hyper.widths);
    let decoder_graph = nets::ae_decoder(spec, &hyper.widths);
    let encoder = Params::init(&encoder_graph, "ae-encoder", seed, device)?;
    let decoder = Params::init(&decoder_graph, "ae-decoder", seed, device)?;
    let log_scale = Var::zeros(n_numeric(spec).max(1), DType::F32, device)?;
    let mut vars = encoder.vars();
    vars.extend(decoder.vars());
    vars.push(log_scale.clone());
    let mut optimiser = adamw(vars, hyper.learning_rate, 0.9)?;
    let mut noise = rng::stream(seed, "train/ldm/autoencoder-eps");
    let mut history = Vec::with_capacity(hyper.epochs * (1 + LATENT_EPOCHS_PER_EPOCH));
    for epoch in 0..hyper.epochs {
        let (mut sum, mut count) = (0.0, 0);
        for (x, _) in batches.epoch()? {
            let batch = x.dim(0)?;
            let nets = Autoencoder {
                encoder: (&encoder_graph, &encoder),
                decoder: (&decoder_graph, &decoder),
                log_scale: log_scale.as_tensor(),
                latent_dim,
            };
            let loss = nets.elbo_loss(spec, &x, None, &mut noise, AUTOENCODER_KL_WEIGHT)?;
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
    // 2. The latent means of the train part, standardised per dimension.
    // In batches: the whole train part at once would hold every image's activations.
    let mut mu = Vec::with_capacity(data.n_rows * latent_dim);
    let per_row = data.spec.width;
    for rows in data.x.chunks(hyper.batch_size.max(1) * per_row) {
        let mut dims = vec![rows.len() / per_row];
        dims.extend(data.spec.sample_dims());
        let x = Tensor::from_vec(rows.to_vec(), dims, device)?;
        let batch_mu = forward(&encoder_graph, &encoder, &[("x", &x)])?.remove(0);
        mu.extend(
            batch_mu
                .to_device(&Device::Cpu)?
                .to_dtype(DType::F32)?
                .flatten_all()?
                .to_vec1::<f32>()?,
        );
    }
    let (mean, std) = column_moments(&mu, latent_dim);
    let std: Vec<f64> = std.iter().map(|value| value.max(1e-3)).collect();
    let standardised: Vec<f32> = mu
        .chunks_exact(latent_dim)
        .flat_map(|row| {
            row.iter()
                .zip(mean.iter().zip(&std))
                .map(|(value, (mean, std))| ((f64::from(*value) - mean) / std) as f32)
        })
        .collect();
    let mut low = vec![f32::INFINITY; latent_dim];
    let mut high = vec![f32::NEG_INFINITY; latent_dim];
    for row in standardised.chunks_exact(latent_dim) {
        for (idx, value) in row.iter().enumerate() {
            low[idx] = low[idx].min(*value);
            high[idx] = high[idx].max(*value);
        }
    }
    // A margin of a tenth of a standard deviation: the sampler's clip should not bind exactly
    // at the extreme train latents, and a dimension without spread still gets a range.
    for (low, high) in low.iter_mut().zip(high.iter_mut()) {
        *low -= 0.1;
        *high += 0.1;
    }
    // 3. The denoiser on the latents, conditional, with label dropout for guidance.
    let latent_spec = DataSpec {
        width: latent_dim,
        n_classes: spec.n_classes,
        blocks: vec![models::transform::Block { start: 0, width: latent_dim, categorical: false }],
        image: None,
    };
    let latent_data =
        TrainData { x: standardised, y: data.y.clone(), n_rows: data.n_rows, spec: latent_spec };
    let mut latent_batches = Batches::new(&latent_data, hyper.batch_size, seed, device);
    let offset = hyper.epochs;
    let mut on_latent_epoch = |stats: &EpochStats| {
        let stats = EpochStats { epoch: stats.epoch + offset, ..*stats };
        on_epoch(&stats);
        history.push(stats);
    };
    let label_dropout = if hyper.guidance.is_some() { LABEL_DROPOUT } else { 0.0 };
    let (graph, params, schedule, _) = fit_denoiser(
        &latent_data.spec,
        hyper,
        hyper.epochs * LATENT_EPOCHS_PER_EPOCH,
        label_dropout,
        seed,
        device,
        &mut latent_batches,
        &mut on_latent_epoch,
    )?;
    // 4. The exported decoder takes the standardised latent: `z = mean + std · z'` as a
    // diagonal linear layer in front of it.
    let (decoder, decoder_params) =
        with_unstandardise(&decoder_graph, &decoder, &mean, &std, device)?;
    Ok(Trained {
        family: Family::Ldm,
        graph,
        params,
        companion: Some((encoder_graph, encoder)),
        schedule: Some(schedule),
        history,
        latent: Some(TrainedLatent { decoder, decoder_params, low, high }),
    })
}

/// `graph` (input `z`) behind a linear layer `z ← mean + std · z'`, with its parameters.
fn with_unstandardise(
    graph: &Graph,
    params: &Params,
    mean: &[f64],
    std: &[f64],
    device: &Device,
) -> Result<(Graph, Params)> {
    let dim = mean.len();
    let mut nodes = vec![crate::graph::Node {
        name: "z.unstandardise".to_owned(),
        op: crate::graph::Op::Linear { in_dim: dim, out_dim: dim },
        inputs: vec!["z".to_owned()],
    }];
    nodes.extend(graph.nodes.iter().cloned().map(|mut node| {
        for input in &mut node.inputs {
            if input == "z" {
                "z.unstandardise".clone_into(input);
            }
        }
        node
    }));
    let wrapped = Graph { inputs: graph.inputs.clone(), nodes, outputs: graph.outputs.clone() };
    let mut weight = vec![0.0_f32; dim * dim];
    for (idx, std) in std.iter().enumerate() {
        weight[idx * dim + idx] = *std as f32;
    }
    let bias: Vec<f32> = mean.iter().map(|mean| *mean as f32).collect();
    let unstandardise =
        [Tensor::from_vec(weight, (dim, dim), device)?, Tensor::from_vec(bias, dim, device)?];
    // Same initialisation stream as the trained decoder, then every value set: the wrapped
    // graph's parameters are the trained ones plus the new layer's.
    let wrapped_params = Params::init(&wrapped, "ae-decoder", 0, device)?;
    for ((name, _, _), var) in wrapped.parameters().iter().zip(wrapped_params.vars()) {
        let value = match name.as_str() {
            "z.unstandardise.weight" => unstandardise[0].clone(),
            "z.unstandardise.bias" => unstandardise[1].clone(),
            _ => params.get(name)?.clone(),
        };
        var.set(&value)?;
    }
    Ok((wrapped, wrapped_params))
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
