//! Diffusion noise schedules: the forward process `q(x_t | x_0) = N(√ᾱ_t x_0, (1 − ᾱ_t) I)` for
//! `t = 0 .. steps − 1`, with `ᾱ_t = ∏_{s ≤ t} (1 − β_s)`. The manifest stores the rule, and both
//! trainer and edge compute the betas from it with this code, in `f64`.

use serde::{Deserialize, Serialize};

use crate::error::{Result, Source};
use crate::manifest::field_error;

/// The most diffusion steps a schedule may have.
pub const MAX_STEPS: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "rule", rename_all = "lowercase")]
pub enum BetaRule {
    /// Ho et al. 2020: betas evenly spaced from `beta_start` to `beta_end`.
    Linear { beta_start: f64, beta_end: f64 },
    /// Nichol & Dhariwal 2021: `ᾱ(t) = f(t)/f(0)`, `f(t) = cos²(((t/T) + s)/(1 + s) · π/2)`,
    /// betas clipped at `max_beta`.
    Cosine { offset: f64, max_beta: f64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct NoiseSchedule {
    #[serde(flatten)]
    pub rule: BetaRule,
    /// Number of training diffusion steps `T`.
    pub steps: usize,
}

impl NoiseSchedule {
    pub fn cosine(steps: usize) -> NoiseSchedule {
        NoiseSchedule { rule: BetaRule::Cosine { offset: 0.008, max_beta: 0.999 }, steps }
    }

    pub fn linear(steps: usize) -> NoiseSchedule {
        NoiseSchedule { rule: BetaRule::Linear { beta_start: 1e-4, beta_end: 0.02 }, steps }
    }

    /// Checks a schedule read from the manifest `source` (at `field`): 1 to [`MAX_STEPS`] steps,
    /// finite rule parameters, and betas that all lie in (0, 1) with every `ᾱ_t` above 0, so
    /// the sampler never divides by zero.
    pub fn validate(&self, source: &Source, field: &str) -> Result<()> {
        if !(1..=MAX_STEPS).contains(&self.steps) {
            return Err(field_error(
                source,
                &format!("{field}.steps"),
                format!("is {}; expected 1 to {MAX_STEPS}", self.steps),
            ));
        }
        let in_unit = |value: f64| value > 0.0 && value < 1.0;
        let parameters = match self.rule {
            BetaRule::Linear { beta_start, beta_end } => [
                ("beta_start", beta_start, in_unit(beta_start)),
                ("beta_end", beta_end, in_unit(beta_end)),
            ],
            BetaRule::Cosine { offset, max_beta } => [
                ("offset", offset, (0.0..=1.0).contains(&offset)),
                ("max_beta", max_beta, in_unit(max_beta)),
            ],
        };
        for (name, value, valid) in parameters {
            if !valid {
                let expected = if name == "offset" { "[0, 1]" } else { "(0, 1)" };
                return Err(field_error(
                    source,
                    &format!("{field}.{name}"),
                    format!("is {value}; expected a number in {expected}"),
                ));
            }
        }
        if let Some(step) = self.betas().iter().position(|&beta| !in_unit(beta)) {
            return Err(field_error(
                source,
                field,
                format!("gives beta_{step} outside (0, 1); expected every beta in (0, 1)"),
            ));
        }
        if let Some(step) = self.alpha_bars().iter().position(|&alpha_bar| alpha_bar <= 0.0) {
            return Err(field_error(
                source,
                field,
                format!(
                    "gives ᾱ_{step} = 0 (the product of 1 − β underflows); use fewer steps or a smaller max_beta"
                ),
            ));
        }
        Ok(())
    }

    pub fn betas(&self) -> Vec<f64> {
        let steps = self.steps;
        match self.rule {
            BetaRule::Linear { beta_start, beta_end } => {
                if steps == 1 {
                    return vec![beta_start];
                }
                (0..steps)
                    .map(|t| beta_start + (beta_end - beta_start) * t as f64 / (steps - 1) as f64)
                    .collect()
            }
            BetaRule::Cosine { offset, max_beta } => {
                let f = |t: f64| {
                    (((t / steps as f64) + offset) / (1.0 + offset) * std::f64::consts::FRAC_PI_2)
                        .cos()
                        .powi(2)
                };
                (0..steps).map(|t| (1.0 - f(t as f64 + 1.0) / f(t as f64)).min(max_beta)).collect()
            }
        }
    }

    /// `ᾱ_t` for every step.
    pub fn alpha_bars(&self) -> Vec<f64> {
        let mut product = 1.0;
        self.betas()
            .into_iter()
            .map(|beta| {
                product *= 1.0 - beta;
                product
            })
            .collect()
    }

    /// `k` timesteps for DDIM, evenly spaced over `0 .. steps − 1`, descending, ending at 0.
    pub fn ddim_timesteps(&self, k: usize) -> Vec<usize> {
        let k = k.clamp(1, self.steps);
        let mut timesteps: Vec<usize> = (0..k)
            .map(|idx| {
                ((idx as f64) * (self.steps - 1) as f64 / (k.max(2) - 1) as f64).round() as usize
            })
            .collect();
        if k == 1 {
            timesteps = vec![self.steps - 1];
        }
        timesteps.dedup();
        timesteps.reverse();
        timesteps
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_endpoints() {
        let betas = NoiseSchedule::linear(1000).betas();
        assert_eq!(betas.len(), 1000);
        assert!((betas[0] - 1e-4).abs() < 1e-15 && (betas[999] - 0.02).abs() < 1e-15);
    }

    #[test]
    fn cosine_matches_closed_form() {
        // ᾱ_t = f(t + 1) / f(0) exactly when no beta is clipped.
        let schedule = NoiseSchedule::cosine(100);
        let f = |t: f64| ((t / 100.0 + 0.008) / 1.008 * std::f64::consts::FRAC_PI_2).cos().powi(2);
        let alpha_bars = schedule.alpha_bars();
        for t in [0, 10, 50, 90] {
            assert!((alpha_bars[t] - f(t as f64 + 1.0) / f(0.0)).abs() < 1e-12, "t={t}");
        }
        assert!(schedule.betas().iter().all(|&beta| beta > 0.0 && beta <= 0.999));
    }

    #[test]
    fn ddim_timesteps_span_the_chain() {
        let schedule = NoiseSchedule::cosine(200);
        assert_eq!(schedule.ddim_timesteps(5), vec![199, 149, 100, 50, 0]);
        assert_eq!(schedule.ddim_timesteps(1), vec![199]);
        assert_eq!(schedule.ddim_timesteps(500).len(), 200);
    }
}
