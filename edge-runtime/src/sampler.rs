//! Generating samples from a bundle: labels, noise and (for diffusion) the sampling loop run in
//! Rust; the engine only evaluates the exported graph.
//!
//! - VAE and GAN: one pass of `(z, y) → x` per batch.
//! - DDPM: ancestral sampling over the manifest's schedule, on all `T` steps or on `K` evenly
//!   spaced ones (a respaced chain, Nichol & Dhariwal 2021); DDIM (η = 0, Song et al. 2021) on
//!   `K` steps. Both use the predicted `x̂₀ = (x_t − √(1 − ᾱ_t) ε̂) / √ᾱ_t`, clipped to the range
//!   the train part spans in the encoded space ([-1, 1] for pixels, the standardised min and max
//!   for a numeric column, [0, 1] for one-hot entries). Without the clip, the first step of a
//!   cosine schedule (ᾱ near 0) multiplies the network's error some thirty-fold.
//! - LDM: the same chain on the standardised latent (clipped to the manifest's `latent` range),
//!   then one pass of the decoder `z → x` per batch.
//! - Classifier-free guidance (a diffusion manifest's `guidance` scale `w > 0`): each step runs
//!   the denoiser on the requested labels and on the all-zero "no class" label and uses
//!   `ε̂ = (1 + w) ε̂(x, y) − w ε̂(x, ∅)` (Ho & Salimans 2022).
//!
//! Every draw is indexed by sample, never by batch: `z`, `x_T` and each step's noise are drawn
//! for all `n` samples in sample order from streams of the seed, so the output does not depend
//! on the samples per engine call, the engine or the number of threads.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use models::manifest::{Family, GraphSpec, Manifest};
use models::rng;
use models::schedule::NoiseSchedule;
use models::transform::one_hot;

use crate::bundle::Bundle;
use crate::engine::{self, Engine, EngineKind, TensorIn, TensorOut};
use crate::error::{Error, Result};
use crate::memory::MemoryBudget;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SamplerKind {
    #[default]
    Ddpm,
    Ddim,
}

impl std::str::FromStr for SamplerKind {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        match text {
            "ddpm" => Ok(SamplerKind::Ddpm),
            "ddim" => Ok(SamplerKind::Ddim),
            other => {
                Err(Error::Invalid(format!("invalid sampler `{other}`: expected `ddpm` or `ddim`")))
            }
        }
    }
}

impl std::fmt::Display for SamplerKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SamplerKind::Ddpm => "ddpm",
            SamplerKind::Ddim => "ddim",
        })
    }
}

/// DDIM's step count when none is given.
pub const DEFAULT_DDIM_STEPS: usize = 50;

/// Which classes to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClassChoice {
    /// The train part's class proportions (largest-remainder rounding).
    #[default]
    Proportional,
    /// Equal counts (the first classes take one more when `n` does not divide).
    Balanced,
    /// Only this class index.
    Single(u32),
}

#[derive(Debug, Clone, PartialEq)]
pub struct SampleSettings {
    pub n: usize,
    pub seed: u64,
    pub classes: ClassChoice,
    /// Diffusion steps (`None`: all training steps for DDPM, 50 for DDIM).
    pub steps: Option<usize>,
    pub sampler: SamplerKind,
    pub batch: usize,
    /// Classifier-free guidance scale `w` for a diffusion bundle trained for it (`None`: the
    /// manifest's `guidance`; 0: the conditional prediction alone).
    pub guidance: Option<f64>,
}

impl Default for SampleSettings {
    fn default() -> Self {
        SampleSettings {
            n: 1000,
            seed: 0,
            classes: ClassChoice::Proportional,
            steps: None,
            sampler: SamplerKind::Ddpm,
            batch: 256,
            guidance: None,
        }
    }
}

/// Generated samples in the encoded space, with their labels and how long generation took.
#[derive(Debug, Clone)]
pub struct Samples {
    /// `n × width` row-major (pixels channel-major for images).
    pub x: Vec<f32>,
    pub labels: Vec<u32>,
    pub width: usize,
    pub elapsed: Duration,
    /// Network evaluations per sample (diffusion steps; 1 for VAE and GAN).
    pub steps: usize,
    /// Samples and time of each batch (for diffusion, summed over steps): the spread behind the
    /// efficiency figures' intervals.
    pub batch_times: Vec<(usize, Duration)>,
}

/// A bundle's manifest and an engine ready to run it. Every output of the engine is checked
/// against the manifest (shape, finite values) before it is used, and the tensors a request
/// needs are checked against a memory budget before they are allocated.
pub struct Generator {
    pub manifest: Manifest,
    engine: Box<dyn Engine>,
    /// Latent diffusion's decoder.
    decoder: Option<Box<dyn Engine>>,
    /// The bundle folder, named in errors about what its model produced.
    bundle_dir: PathBuf,
    budget: MemoryBudget,
}

impl std::fmt::Debug for Generator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Generator")
            .field("family", &self.manifest.family)
            .field("engine", &self.engine.kind())
            .finish()
    }
}

impl Generator {
    pub fn new(bundle: &Bundle, engine: EngineKind, threads: usize) -> Result<Generator> {
        let decoder = match (bundle.manifest.family, bundle.decoder_graph()) {
            (Family::Ldm, Some(graph)) => Some(engine::load_graph(&graph, engine, threads)?),
            (Family::Ldm, None) => {
                return Err(Error::bundle(
                    &bundle.dir,
                    "is a latent diffusion bundle without decoder.onnx",
                ));
            }
            _ => None,
        };
        Ok(Generator {
            manifest: bundle.manifest.clone(),
            engine: engine::load(bundle, engine, threads)?,
            decoder,
            bundle_dir: bundle.dir.clone(),
            budget: MemoryBudget::from_system(),
        })
    }

    /// Replaces the memory budget (by default half the memory available).
    pub fn with_memory_budget(mut self, budget: MemoryBudget) -> Generator {
        self.budget = budget;
        self
    }

    pub fn engine_kind(&self) -> EngineKind {
        self.engine.kind()
    }

    /// Class index of a class name, or a clear error listing the known names.
    pub fn class_index(&self, name: &str) -> Result<u32> {
        let classes = &self.manifest.schema.classes;
        classes.iter().position(|class| class == name).map(|idx| idx as u32).ok_or_else(|| {
            Error::Invalid(format!(
                "unknown class `{name}`: the model knows {}",
                classes.join(", ")
            ))
        })
    }

    pub fn generate(&mut self, settings: &SampleSettings) -> Result<Samples> {
        if settings.n == 0 {
            return Err(Error::Invalid(
                "cannot generate 0 samples: expected at least 1".to_owned(),
            ));
        }
        if settings.batch == 0 {
            return Err(Error::Invalid(
                "0 samples per engine call: expected at least 1".to_owned(),
            ));
        }
        self.check_memory(settings)?;
        let started = Instant::now();
        let labels = assign_labels(&self.manifest, settings)?;
        let n_classes = self.manifest.n_classes();
        let y = one_hot(&labels, n_classes);
        let width = self.manifest.transform.width();
        let mut batch_times: Vec<(usize, Duration)> = (0..settings.n)
            .step_by(settings.batch)
            .map(|start| (settings.batch.min(settings.n - start), Duration::ZERO))
            .collect();
        let (x, steps) = match self.manifest.family {
            Family::Vae | Family::Gan => (self.decode_latents(settings, &y, &mut batch_times)?, 1),
            Family::Ddpm => self.diffuse(settings, &y, &mut batch_times)?,
            Family::Ldm => {
                let (z, steps) = self.diffuse(settings, &y, &mut batch_times)?;
                (self.decode(settings, &z, &mut batch_times)?, steps + 1)
            }
        };
        Ok(Samples { x, labels, width, elapsed: started.elapsed(), steps, batch_times })
    }

    /// The per-sample shape of the sampled graph's output (`[d]` or `[C, H, W]`; latent
    /// diffusion's `[L]`; the validated manifest declares every dimension after the batch).
    fn sample_dims(&self) -> Vec<usize> {
        output_dims(&self.manifest.graph)
    }

    /// The guidance scale of a request, `None` for none: `--guidance` needs a bundle trained with
    /// label dropout (one whose manifest has `guidance`), within `0 ..= MAX_GUIDANCE`.
    fn guidance(&self, settings: &SampleSettings) -> Result<Option<f32>> {
        let scale = match (settings.guidance, self.manifest.guidance) {
            (None, trained) => trained,
            (Some(scale), _) if !(0.0..=models::manifest::MAX_GUIDANCE).contains(&scale) => {
                return Err(Error::Invalid(format!(
                    "guidance scale {scale}: expected 0 to {}",
                    models::manifest::MAX_GUIDANCE
                )));
            }
            (Some(scale), Some(_)) => Some(scale),
            (Some(0.0), None) => None,
            (Some(_), None) => {
                return Err(Error::Invalid(format!(
                    "this {} bundle was not trained for classifier-free guidance (its manifest has \
                     no `guidance`); expected no guidance scale",
                    self.manifest.family
                )));
            }
        };
        Ok(scale.filter(|scale| *scale > 0.0).map(|scale| scale as f32))
    }

    /// The tensors of a request must fit the memory budget: all samples at once (with labels,
    /// one-hot classes, latents or the diffusion state), and each engine call's inputs and
    /// output.
    fn check_memory(&self, settings: &SampleSettings) -> Result<()> {
        let n = settings.n as u128;
        let rows = settings.batch.min(settings.n) as u128;
        let width = self.manifest.transform.width() as u128;
        let n_classes = self.manifest.n_classes() as u128;
        let latent = self.manifest.graph.latent_dim.unwrap_or(0) as u128;
        let guided = u128::from(self.guidance(settings)?.is_some()) + 1;
        // Per sample: label, one-hot class and the output; a latent (VAE, GAN) or the noise
        // prediction and one step's noise (DDPM; LDM on the latent, then the decoded sample);
        // guidance runs a second, unconditional prediction.
        let (per_sample, per_call) = match self.manifest.family {
            Family::Vae | Family::Gan => {
                (1 + n_classes + width + latent, latent + n_classes + width)
            }
            Family::Ddpm => {
                (1 + n_classes + (2 + guided) * width, guided * (width + 1 + n_classes + width))
            }
            Family::Ldm => {
                let dim = self.manifest.latent.as_ref().map_or(0, |latent| latent.dim) as u128;
                (
                    1 + n_classes + (2 + guided) * dim + width,
                    (guided * (dim + 1 + n_classes + dim)).max(dim + width),
                )
            }
        };
        let batches = settings.n.div_ceil(settings.batch.max(1)) as u128;
        let timing = batches * std::mem::size_of::<(usize, Duration)>() as u128;
        self.budget.check(
            &format!("one engine call on {rows} samples"),
            rows * per_call * 4,
            "the samples per engine call",
        )?;
        self.budget.check(
            &format!("generating {} samples of {} encoded values", settings.n, width),
            n * per_sample * 4 + timing,
            "the number of samples",
        )
    }

    /// The engine's output for the samples `start .. start + rows` must have the shape the
    /// manifest declares and finite values; `step` names the diffusion step, if any.
    fn checked_output(
        &self,
        output: TensorOut,
        start: usize,
        rows: usize,
        step: Option<usize>,
    ) -> Result<Vec<f32>> {
        self.checked_output_of(&self.manifest.graph, output, start, rows, step)
    }

    /// [`Self::checked_output`] for the graph `spec` (the model's, or the decoder's).
    fn checked_output_of(
        &self,
        spec: &GraphSpec,
        output: TensorOut,
        start: usize,
        rows: usize,
        step: Option<usize>,
    ) -> Result<Vec<f32>> {
        let name = spec.outputs.first().map_or("x", |output| output.name.as_str());
        let at_step = step.map_or_else(String::new, |t| format!(" at diffusion step t = {t}"));
        let dims = output_dims(spec);
        let width: usize = dims.iter().product();
        let mut expected = vec![rows];
        expected.extend(dims);
        if output.shape != expected || output.data.len() != rows * width {
            return Err(Error::bundle(
                &self.bundle_dir,
                format!(
                    "the model's output `{name}` has shape {:?} ({} values) for a batch of {rows}{at_step}, but the manifest declares {expected:?}; refusing its samples",
                    output.shape,
                    output.data.len()
                ),
            ));
        }
        if let Some(pos) = output.data.iter().position(|value| !value.is_finite()) {
            return Err(Error::bundle(
                &self.bundle_dir,
                format!(
                    "the model's output `{name}` is {} for sample {}, value {}{at_step}; expected finite numbers, refusing its samples",
                    output.data.get(pos).copied().unwrap_or(f32::NAN),
                    start + pos / width.max(1),
                    pos % width.max(1)
                ),
            ));
        }
        Ok(output.data)
    }

    fn decode_latents(
        &mut self,
        settings: &SampleSettings,
        y: &[f32],
        batch_times: &mut [(usize, Duration)],
    ) -> Result<Vec<f32>> {
        let latent = self.manifest.graph.latent_dim.ok_or_else(|| {
            Error::Invalid(format!(
                "the {} manifest has no graph.latent_dim; expected the size of the latent input",
                self.manifest.family
            ))
        })?;
        let n_classes = self.manifest.n_classes();
        let z = rng::normal_f32(&mut rng::stream(settings.seed, "generate/z"), settings.n * latent);
        let width = self.manifest.transform.width();
        let mut out = Vec::with_capacity(settings.n * width);
        for (batch, start) in (0..settings.n).step_by(settings.batch).enumerate() {
            let rows = settings.batch.min(settings.n - start);
            let inputs = [
                TensorIn {
                    data: &z[start * latent..(start + rows) * latent],
                    shape: &[rows, latent],
                },
                TensorIn {
                    data: &y[start * n_classes..(start + rows) * n_classes],
                    shape: &[rows, n_classes],
                },
            ];
            let started = Instant::now();
            let output = self.engine.run_tensor(&inputs)?;
            batch_times[batch].1 += started.elapsed();
            out.extend(self.checked_output(output, start, rows, None)?);
        }
        Ok(out)
    }

    fn diffuse(
        &mut self,
        settings: &SampleSettings,
        y: &[f32],
        batch_times: &mut [(usize, Duration)],
    ) -> Result<(Vec<f32>, usize)> {
        let schedule = self
            .manifest
            .schedule
            .ok_or_else(|| {
                Error::Invalid(
                    "the ddpm manifest has no `schedule`; expected the noise schedule it was trained with"
                        .to_owned(),
                )
            })?;
        let timesteps = diffusion_timesteps(&schedule, settings)?;
        let alpha_bars = schedule.alpha_bars();
        let bounds: Vec<(f32, f32)> = match &self.manifest.latent {
            Some(latent) => latent.low.iter().copied().zip(latent.high.iter().copied()).collect(),
            None => self.manifest.transform.bounds(),
        };
        let n_classes = self.manifest.n_classes();
        let mut dims = vec![0];
        dims.extend(self.sample_dims());
        let width: usize = dims[1..].iter().product();
        let n = settings.n;
        let mut x = rng::normal_f32(&mut rng::stream(settings.seed, "generate/x_T"), n * width);
        let mut eps = vec![0.0_f32; n * width];
        let guidance = self.guidance(settings)?;
        let no_class = vec![0.0_f32; settings.batch.min(n) * n_classes];
        for (idx, &t) in timesteps.iter().enumerate() {
            let t_prev = timesteps.get(idx + 1).copied();
            for (batch, start) in (0..n).step_by(settings.batch).enumerate() {
                let rows = settings.batch.min(n - start);
                let started = Instant::now();
                dims[0] = rows;
                let t_input = vec![t as f32; rows];
                let x_batch = &x[start * width..(start + rows) * width];
                // The predicted noise of this batch given the class rows `y_batch`.
                let mut predict = |y_batch: &[f32]| {
                    let inputs = [
                        TensorIn { data: x_batch, shape: &dims },
                        TensorIn { data: &t_input, shape: &[rows, 1] },
                        TensorIn { data: y_batch, shape: &[rows, n_classes] },
                    ];
                    let output = self.engine.run_tensor(&inputs)?;
                    self.checked_output(output, start, rows, Some(t))
                };
                let mut predicted = predict(&y[start * n_classes..(start + rows) * n_classes])?;
                if let Some(scale) = guidance {
                    let unconditional = predict(&no_class[..rows * n_classes])?;
                    for (eps, free) in predicted.iter_mut().zip(&unconditional) {
                        *eps = (1.0 + scale) * *eps - scale * free;
                    }
                }
                batch_times[batch].1 += started.elapsed();
                eps[start * width..(start + rows) * width].copy_from_slice(&predicted);
            }
            let update_started = Instant::now();
            let step = Step::new(alpha_bars[t], t_prev.map_or(1.0, |prev| alpha_bars[prev]));
            let noise = match (settings.sampler, t_prev) {
                (SamplerKind::Ddpm, Some(_)) => Some(rng::normal_f32(
                    &mut rng::stream(settings.seed, &format!("generate/ddpm/{idx}")),
                    n * width,
                )),
                _ => None,
            };
            for (pos, (value, eps)) in x.iter_mut().zip(&eps).enumerate() {
                let x0 = step.predict_x0(*value, *eps, bounds[pos % width]);
                *value = match settings.sampler {
                    SamplerKind::Ddim => step.ddim(*value, x0),
                    SamplerKind::Ddpm => {
                        step.ancestral(*value, x0, noise.as_ref().map_or(0.0, |noise| noise[pos]))
                    }
                };
            }
            // The update runs over all samples at once: each batch takes its share.
            let update = update_started.elapsed();
            for (rows, time) in batch_times.iter_mut() {
                *time += update.mul_f64(*rows as f64 / n as f64);
            }
        }
        if let Some(pos) = x.iter().position(|value| !value.is_finite()) {
            return Err(Error::bundle(
                &self.bundle_dir,
                format!(
                    "sampling ended with a non-finite value for sample {}, value {}; refusing the samples",
                    pos / width.max(1),
                    pos % width.max(1)
                ),
            ));
        }
        let evaluations = if guidance.is_some() { 2 } else { 1 };
        Ok((x, evaluations * timesteps.len()))
    }

    /// Latent diffusion's last step: the decoder `z → x` on every sampled latent.
    fn decode(
        &mut self,
        settings: &SampleSettings,
        z: &[f32],
        batch_times: &mut [(usize, Duration)],
    ) -> Result<Vec<f32>> {
        let Some(latent) = self.manifest.latent.as_ref() else {
            return Err(Error::bundle(&self.bundle_dir, "has no `latent` section in its manifest"));
        };
        let spec = latent.decoder.clone();
        let dim = latent.dim;
        let Some(mut decoder) = self.decoder.take() else {
            return Err(Error::bundle(&self.bundle_dir, "has no decoder engine loaded"));
        };
        let width = self.manifest.transform.width();
        let mut out = Vec::with_capacity(settings.n * width);
        // Each batch's output is checked before the next runs: at most one unchecked output
        // is held at a time.
        let mut decode = || -> Result<()> {
            for (batch, start) in (0..settings.n).step_by(settings.batch).enumerate() {
                let rows = settings.batch.min(settings.n - start);
                let inputs =
                    [TensorIn { data: &z[start * dim..(start + rows) * dim], shape: &[rows, dim] }];
                let started = Instant::now();
                let output = decoder.run_tensor(&inputs)?;
                batch_times[batch].1 += started.elapsed();
                out.extend(self.checked_output_of(&spec, output, start, rows, None)?);
            }
            Ok(())
        };
        let result = decode();
        self.decoder = Some(decoder);
        result.map(|()| out)
    }
}

/// The per-sample dimensions of a graph's first output.
fn output_dims(spec: &GraphSpec) -> Vec<usize> {
    spec.outputs
        .first()
        .map(|output| output.shape.iter().skip(1).map(|dim| dim.unwrap_or(1)).collect())
        .unwrap_or_default()
}

/// The descending timesteps the sampler visits.
fn diffusion_timesteps(schedule: &NoiseSchedule, settings: &SampleSettings) -> Result<Vec<usize>> {
    let steps = match (settings.steps, settings.sampler) {
        (Some(0), _) => {
            return Err(Error::Invalid(
                "0 diffusion steps requested: expected at least 1".to_owned(),
            ));
        }
        (Some(steps), _) if steps > schedule.steps => {
            return Err(Error::Invalid(format!(
                "{steps} diffusion steps requested: the model was trained with {} diffusion steps, so at most {}",
                schedule.steps, schedule.steps
            )));
        }
        (Some(steps), _) => steps,
        (None, SamplerKind::Ddpm) => schedule.steps,
        (None, SamplerKind::Ddim) => DEFAULT_DDIM_STEPS.min(schedule.steps),
    };
    Ok(schedule.ddim_timesteps(steps))
}

/// The coefficients of one reverse step from `t` to the previous visited step.
struct Step {
    alpha_bar: f64,
    alpha_bar_prev: f64,
}

impl Step {
    fn new(alpha_bar: f64, alpha_bar_prev: f64) -> Step {
        Step { alpha_bar, alpha_bar_prev }
    }

    fn predict_x0(&self, x_t: f32, eps: f32, (low, high): (f32, f32)) -> f64 {
        let x0 = (f64::from(x_t) - (1.0 - self.alpha_bar).sqrt() * f64::from(eps))
            / self.alpha_bar.sqrt();
        x0.clamp(f64::from(low), f64::from(high))
    }

    /// DDIM, η = 0: `x_prev = √ᾱ_prev x̂₀ + √(1 − ᾱ_prev) ε̂`, with `ε̂` re-derived from the clipped `x̂₀`.
    fn ddim(&self, x_t: f32, x0: f64) -> f32 {
        let eps = (f64::from(x_t) - self.alpha_bar.sqrt() * x0) / (1.0 - self.alpha_bar).sqrt();
        (self.alpha_bar_prev.sqrt() * x0 + (1.0 - self.alpha_bar_prev).sqrt() * eps) as f32
    }

    /// The posterior `q(x_prev | x_t, x̂₀)` mean plus its standard deviation times `noise`.
    fn ancestral(&self, x_t: f32, x0: f64, noise: f32) -> f32 {
        let beta = 1.0 - self.alpha_bar / self.alpha_bar_prev;
        let mean = (self.alpha_bar_prev.sqrt() * beta / (1.0 - self.alpha_bar)) * x0
            + ((1.0 - beta).sqrt() * (1.0 - self.alpha_bar_prev) / (1.0 - self.alpha_bar))
                * f64::from(x_t);
        let variance = beta * (1.0 - self.alpha_bar_prev) / (1.0 - self.alpha_bar);
        (mean + variance.max(0.0).sqrt() * f64::from(noise)) as f32
    }
}

/// Labels for `n` samples, shuffled by a seeded stream (except for a single class).
fn assign_labels(manifest: &Manifest, settings: &SampleSettings) -> Result<Vec<u32>> {
    let n_classes = manifest.n_classes();
    let counts: Vec<usize> = match settings.classes {
        ClassChoice::Single(class) => {
            if class as usize >= n_classes {
                return Err(Error::Invalid(format!(
                    "class index {class} is out of range for {n_classes} classes"
                )));
            }
            return Ok(vec![class; settings.n]);
        }
        ClassChoice::Balanced => (0..n_classes)
            .map(|class| settings.n / n_classes + usize::from(class < settings.n % n_classes))
            .collect(),
        ClassChoice::Proportional => {
            largest_remainder(&manifest.provenance.train_class_counts, settings.n, n_classes)
        }
    };
    let mut labels: Vec<u32> = counts
        .iter()
        .enumerate()
        .flat_map(|(class, &count)| std::iter::repeat_n(class as u32, count))
        .collect();
    rng::shuffle(&mut rng::stream(settings.seed, "generate/labels"), &mut labels);
    Ok(labels)
}

/// Splits `n` in proportion to `weights` (uniform if they are missing or all zero), handing the
/// leftover units to the largest remainders (ties to the lower class).
fn largest_remainder(weights: &[usize], n: usize, n_classes: usize) -> Vec<usize> {
    let weights: Vec<f64> = if weights.len() == n_classes && weights.iter().any(|&w| w > 0) {
        weights.iter().map(|&w| w as f64).collect()
    } else {
        vec![1.0; n_classes]
    };
    let total: f64 = weights.iter().sum();
    let exact: Vec<f64> = weights.iter().map(|w| w / total * n as f64).collect();
    let mut counts: Vec<usize> = exact.iter().map(|value| value.floor() as usize).collect();
    let mut order: Vec<usize> = (0..n_classes).collect();
    order.sort_by(|&a, &b| {
        (exact[b] - exact[b].floor()).total_cmp(&(exact[a] - exact[a].floor())).then(a.cmp(&b))
    });
    let missing = n.saturating_sub(counts.iter().sum::<usize>());
    for &class in order.iter().take(missing) {
        counts[class] += 1;
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn largest_remainder_worked_example() {
        // 357 : 212 of 10 → 6.27 : 3.73 → 6 : 4.
        assert_eq!(largest_remainder(&[357, 212], 10, 2), vec![6, 4]);
        assert_eq!(largest_remainder(&[1, 1, 1], 10, 3), vec![4, 3, 3]);
        assert_eq!(largest_remainder(&[], 4, 2), vec![2, 2]);
    }

    /// Data N(μ, σ²) has the exact noise predictor
    /// `ε*(x_t) = √(1 − ᾱ) (x_t − √ᾱ μ) / (ᾱ σ² + 1 − ᾱ)`; with it, both samplers must turn
    /// N(0, 1) noise into samples of mean μ and standard deviation σ.
    #[test]
    fn samplers_reproduce_a_gaussian_with_the_exact_predictor() {
        let schedule = NoiseSchedule::cosine(200);
        let alpha_bars = schedule.alpha_bars();
        let (mu, sigma) = (0.7_f64, 0.4_f64);
        let n = 20_000;
        for (sampler, k) in [
            (SamplerKind::Ddpm, 200),
            (SamplerKind::Ddpm, 50),
            (SamplerKind::Ddim, 50),
            (SamplerKind::Ddim, 200),
        ] {
            let timesteps = schedule.ddim_timesteps(k);
            let mut x = rng::normal_f32(&mut rng::stream(1, "test/x_T"), n);
            for (idx, &t) in timesteps.iter().enumerate() {
                let ab = alpha_bars[t];
                let step =
                    Step::new(ab, timesteps.get(idx + 1).map_or(1.0, |&prev| alpha_bars[prev]));
                let noise = rng::normal_f32(&mut rng::stream(1, &format!("test/noise/{idx}")), n);
                let last = idx + 1 == timesteps.len();
                for (value, z) in x.iter_mut().zip(&noise) {
                    let eps = ((1.0 - ab).sqrt() * (f64::from(*value) - ab.sqrt() * mu)
                        / (ab * sigma * sigma + 1.0 - ab)) as f32;
                    let x0 = step.predict_x0(*value, eps, (-10.0, 10.0));
                    *value = match sampler {
                        SamplerKind::Ddim => step.ddim(*value, x0),
                        SamplerKind::Ddpm => {
                            step.ancestral(*value, x0, if last { 0.0 } else { *z })
                        }
                    };
                }
            }
            let mean = x.iter().map(|&v| f64::from(v)).sum::<f64>() / n as f64;
            let std =
                (x.iter().map(|&v| (f64::from(v) - mean).powi(2)).sum::<f64>() / n as f64).sqrt();
            // Standard errors at n = 20 000: 0.003 for the mean, 0.002 for the standard deviation;
            // the rest is discretisation error of the coarser chains.
            assert!((mean - mu).abs() < 0.015, "{sampler} {k} steps: mean {mean}");
            // Measured: DDPM 0.391 (200 steps), 0.367 (50: the posterior variance β̃ of a
            // respaced chain leaves out Var(x₀ | x_t)); DDIM 0.398 (200), 0.388 (50).
            let tolerance = if sampler == SamplerKind::Ddpm && k < 200 { 0.04 } else { 0.015 };
            assert!((std - sigma).abs() < tolerance, "{sampler} {k} steps: std {std}");
        }
    }

    /// With a perfect noise predictor for a point mass at x₀, both samplers land on x₀.
    #[test]
    fn reverse_steps_recover_a_known_x0() {
        let schedule = NoiseSchedule::cosine(100);
        let alpha_bars = schedule.alpha_bars();
        let x0_true = 0.3;
        for sampler in [SamplerKind::Ddpm, SamplerKind::Ddim] {
            let timesteps = schedule.ddim_timesteps(20);
            let mut x = 1.7_f32;
            for (idx, &t) in timesteps.iter().enumerate() {
                let eps = ((f64::from(x) - alpha_bars[t].sqrt() * x0_true)
                    / (1.0 - alpha_bars[t]).sqrt()) as f32;
                let step = Step::new(
                    alpha_bars[t],
                    timesteps.get(idx + 1).map_or(1.0, |&prev| alpha_bars[prev]),
                );
                let x0 = step.predict_x0(x, eps, (-10.0, 10.0));
                x = match sampler {
                    SamplerKind::Ddim => step.ddim(x, x0),
                    SamplerKind::Ddpm => step.ancestral(x, x0, 0.25),
                };
            }
            assert!((f64::from(x) - x0_true).abs() < 1e-5, "{sampler}: {x}");
        }
    }
}
