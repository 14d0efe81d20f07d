//! Trainable parameters of one [`Graph`]: created with a seeded initialisation, handed to the
//! optimiser as candle `Var`s, read back to the host for ONNX export and safetensors.
//!
//! Initialisation follows PyTorch's default for `Linear` and `Conv2d`: weight and bias uniform in
//! `±1/√fan_in`, drawn from the stream `(seed, "init/<graph>/<param>")`, so the same seed gives
//! the same starting point on any device. Group-norm scales start at 1 and shifts at 0 (no draw).

use std::collections::HashMap;

use candle_core::{Device, Tensor, Var};
use rand::RngExt;

use crate::error::Result;
use crate::graph::{Graph, Init};

#[derive(Debug)]
pub struct Params {
    names: Vec<String>,
    vars: HashMap<String, Var>,
}

/// A parameter copied to the host: name, shape, row-major values.
#[derive(Debug, Clone, PartialEq)]
pub struct HostParam {
    pub name: String,
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

impl Params {
    pub fn init(graph: &Graph, graph_name: &str, seed: u64, device: &Device) -> Result<Params> {
        let mut names = Vec::new();
        let mut vars = HashMap::new();
        for (name, shape, init) in graph.parameters() {
            let n_values: usize = shape.iter().product();
            let values: Vec<f32> = match init {
                Init::Uniform { fan_in } => {
                    let mut rng = models::rng::stream(seed, &format!("init/{graph_name}/{name}"));
                    let bound = 1.0 / (fan_in.max(1) as f32).sqrt();
                    (0..n_values).map(|_| rng.random_range(-bound..bound)).collect()
                }
                Init::Ones => vec![1.0; n_values],
                Init::Zeros => vec![0.0; n_values],
            };
            let var = Var::from_tensor(&Tensor::from_vec(values, shape.as_slice(), device)?)?;
            names.push(name.clone());
            vars.insert(name, var);
        }
        Ok(Params { names, vars })
    }

    pub fn get(&self, name: &str) -> Result<&Tensor> {
        self.vars.get(name).map(|var| var.as_tensor()).ok_or_else(|| {
            crate::error::Error::Internal(format!("no parameter `{name}` in the graph"))
        })
    }

    pub fn vars(&self) -> Vec<Var> {
        self.names.iter().map(|name| self.vars[name].clone()).collect()
    }

    pub fn to_host(&self) -> Result<Vec<HostParam>> {
        self.names
            .iter()
            .map(|name| {
                let tensor = self.vars[name].as_tensor();
                Ok(HostParam {
                    name: name.clone(),
                    shape: tensor.dims().to_vec(),
                    values: tensor.flatten_all()?.to_device(&Device::Cpu)?.to_vec1::<f32>()?,
                })
            })
            .collect()
    }

    /// Tensors keyed `prefix.name`, for safetensors.
    pub fn named_tensors(&self, prefix: &str) -> HashMap<String, Tensor> {
        self.names
            .iter()
            .map(|name| (format!("{prefix}.{name}"), self.vars[name].as_tensor().clone()))
            .collect()
    }
}

/// An exponential moving average of a parameter set, `θ̄ ← d·θ̄ + (1 − d)·θ` after every step.
/// Diffusion models and GAN generators sample markedly better from the average than from the
/// last iterate (Ho et al. 2020; Karras et al. 2018).
///
/// The decay warms up as `d_t = min(d, (1 + t) / (10 + t))` (the `num_updates` form of
/// TensorFlow's `ExponentialMovingAverage`): a scarce dataset may give only a few dozen steps in
/// all, and a fixed `d = 0.995` would then export weights still two-thirds at their random
/// initialisation.
#[derive(Debug)]
pub struct Ema {
    decay: f64,
    updates: u64,
    shadow: Vec<Tensor>,
}

impl Ema {
    pub fn new(params: &Params, decay: f64) -> Result<Ema> {
        let shadow = params
            .vars()
            .iter()
            .map(|var| Ok(var.as_tensor().detach().copy()?))
            .collect::<Result<_>>()?;
        Ok(Ema { decay, updates: 0, shadow })
    }

    /// The decay the next update uses.
    pub fn current_decay(&self) -> f64 {
        let t = self.updates as f64;
        self.decay.min((1.0 + t) / (10.0 + t))
    }

    pub fn update(&mut self, params: &Params) -> Result<()> {
        let decay = self.current_decay();
        for (shadow, var) in self.shadow.iter_mut().zip(params.vars()) {
            *shadow = ((&*shadow * decay)? + (var.as_tensor().detach() * (1.0 - decay))?)?;
        }
        self.updates += 1;
        Ok(())
    }

    /// Replaces the parameters by their average (for export).
    pub fn apply(&self, params: &Params) -> Result<()> {
        for (shadow, var) in self.shadow.iter().zip(params.vars()) {
            var.set(shadow)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The average after a few steps, against the recurrence worked by hand in f64.
    #[test]
    fn ema_warms_up_then_follows_the_fixed_decay() -> Result<()> {
        let var = Var::from_tensor(&Tensor::new(&[0.0f32], &Device::Cpu)?)?;
        let params = Params {
            names: vec!["w".into()],
            vars: HashMap::from([("w".to_string(), var.clone())]),
        };
        let mut ema = Ema::new(&params, 0.9)?;
        let mut expected = 0.0f64;
        for step in 0..40u32 {
            let value = f64::from(step + 1);
            var.set(&Tensor::new(&[value as f32], &Device::Cpu)?)?;
            let decay = (0.9f64).min((1.0 + f64::from(step)) / (10.0 + f64::from(step)));
            assert!((ema.current_decay() - decay).abs() < 1e-12);
            expected = decay * expected + (1.0 - decay) * value;
            ema.update(&params)?;
        }
        ema.apply(&params)?;
        let got = f64::from(var.as_tensor().to_vec1::<f32>()?[0]);
        assert!((got - expected).abs() < 1e-3 * expected, "{got} vs {expected}");
        Ok(())
    }
}
