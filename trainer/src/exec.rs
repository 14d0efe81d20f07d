//! Runs a [`Graph`] with candle, for training and for the parity check against the exported ONNX.
//!
//! Tensors are `[N, ...]` with the batch first. A `WeightFn` may replace each weight before use
//! (spectral normalisation of the GAN discriminator does); by default weights are used as stored.

use std::collections::HashMap;

use candle_core::{D, Tensor};

use crate::error::{Error, Result};
use crate::graph::{GROUP_NORM_EPS, Graph, Op};
use crate::params::Params;

/// Turns a stored weight (`name`, tensor) into the weight a layer uses.
pub type WeightFn<'a> = dyn FnMut(&str, &Tensor) -> Result<Tensor> + 'a;

/// Evaluates `graph` on `inputs` (by name), returning the outputs in the graph's order.
pub fn forward(graph: &Graph, params: &Params, inputs: &[(&str, &Tensor)]) -> Result<Vec<Tensor>> {
    forward_with(graph, params, inputs, &mut |_, weight| Ok(weight.clone()))
}

pub fn forward_with(
    graph: &Graph,
    params: &Params,
    inputs: &[(&str, &Tensor)],
    weight_fn: &mut WeightFn<'_>,
) -> Result<Vec<Tensor>> {
    let mut values: HashMap<&str, Tensor> = HashMap::new();
    for input in &graph.inputs {
        let tensor = inputs
            .iter()
            .find(|(name, _)| *name == input.name)
            .map(|(_, tensor)| (*tensor).clone())
            .ok_or_else(|| {
                Error::Internal(format!("graph input `{}` was not given", input.name))
            })?;
        values.insert(input.name.as_str(), tensor);
    }
    for node in &graph.nodes {
        let args: Vec<&Tensor> = node
            .inputs
            .iter()
            .map(|name| {
                values.get(name.as_str()).ok_or_else(|| {
                    Error::Internal(format!("node `{}` reads unknown `{name}`", node.name))
                })
            })
            .collect::<Result<_>>()?;
        let x = args[0];
        let out = match &node.op {
            Op::Linear { .. } => {
                let weight = weight_fn(
                    &format!("{}.weight", node.name),
                    params.get(&format!("{}.weight", node.name))?,
                )?;
                let bias = params.get(&format!("{}.bias", node.name))?;
                x.matmul(&weight.t()?)?.broadcast_add(bias)?
            }
            Op::Conv2d { stride, padding, .. } => {
                let weight = weight_fn(
                    &format!("{}.weight", node.name),
                    params.get(&format!("{}.weight", node.name))?,
                )?;
                let bias = params.get(&format!("{}.bias", node.name))?;
                crate::channel::shift(&crate::conv::conv2d(x, &weight, *stride, *padding)?, bias)?
            }
            Op::Upsample2x => upsample2x(x)?,
            Op::Silu => (x * candle_nn::ops::sigmoid(x)?)?,
            Op::LeakyRelu { alpha } => candle_nn::ops::leaky_relu(x, f64::from(*alpha))?,
            Op::Tanh => x.tanh()?,
            Op::Concat => Tensor::cat(&args, 1)?,
            Op::Add => x.broadcast_add(args[1])?,
            Op::Mul => x.broadcast_mul(args[1])?,
            Op::Scale { factor } => x.affine(f64::from(*factor), 0.0)?,
            Op::GroupNorm { groups, channels } => group_norm(
                x,
                *groups,
                params.get(&format!("{}.scale", node.name))?,
                params.get(&format!("{}.shift", node.name))?,
            )
            .map_err(|error| match error {
                Error::Internal(message) => Error::Internal(format!(
                    "node `{}` ({channels} channels): {message}",
                    node.name
                )),
                other => other,
            })?,
            Op::MatMul => x.contiguous()?.matmul(&args[1].contiguous()?)?,
            Op::Transpose => x.transpose(1, 2)?.contiguous()?,
            Op::Softmax => candle_nn::ops::softmax_last_dim(&x.contiguous()?)?,
            Op::RowSum => x.sum_keepdim(1)?,
            Op::Reshape { dims } => {
                let mut shape = vec![x.dim(0)?];
                shape.extend_from_slice(dims);
                x.reshape(shape)?
            }
            Op::Flatten => x.flatten_from(1)?,
            Op::TimestepEmbedding { dim } => {
                let freqs = Tensor::from_vec(timestep_frequencies(*dim), (1, dim / 2), x.device())?;
                let angles = x.broadcast_mul(&freqs)?;
                Tensor::cat(&[angles.sin()?, angles.cos()?], 1)?
            }
            Op::BlockSoftmax { blocks } => {
                let parts: Vec<Tensor> = blocks
                    .iter()
                    .map(|&(start, width, categorical)| {
                        let part = x.narrow(1, start, width)?;
                        if categorical {
                            candle_nn::ops::softmax(&part, D::Minus1)
                        } else {
                            Ok(part)
                        }
                    })
                    .collect::<candle_core::Result<_>>()?;
                Tensor::cat(&parts, 1)?
            }
        };
        values.insert(node.name.as_str(), out);
    }
    graph
        .outputs
        .iter()
        .map(|(name, _)| {
            values
                .get(name.as_str())
                .cloned()
                .ok_or_else(|| Error::Internal(format!("graph output `{name}` is not a node")))
        })
        .collect()
}

/// Group normalisation of `x [B, C, H, W]` with per-channel `scale [C]` and `shift [C]`:
/// statistics over each sample's `C / groups` channels × `H × W` values, biased variance,
/// `eps =` [`GROUP_NORM_EPS`]. Built from candle primitives, so autograd gives the gradients.
pub fn group_norm(x: &Tensor, groups: usize, scale: &Tensor, shift: &Tensor) -> Result<Tensor> {
    let (batch, channels, height, width) = x.dims4()?;
    if groups == 0 || !channels.is_multiple_of(groups) {
        return Err(Error::Internal(format!(
            "group norm: {channels} channels do not split into {groups} groups"
        )));
    }
    let grouped = x.reshape((batch, groups, channels / groups * height * width))?;
    let centred = grouped.broadcast_sub(&grouped.mean_keepdim(2)?)?;
    let variance = centred.sqr()?.mean_keepdim(2)?;
    let normalised = centred
        .broadcast_div(&(variance + GROUP_NORM_EPS)?.sqrt()?)?
        .reshape((batch, channels, height, width))?;
    crate::channel::affine(&normalised, scale, shift)
}

/// Nearest-neighbour 2× upsampling of `[B, C, H, W]` as a broadcast: the backward pass is a
/// plain sum over each 2×2 block. (candle's `upsample_nearest2d` computes its gradient with a
/// grouped convolution, one group per channel, which dominated a training step.)
pub fn upsample2x(x: &Tensor) -> Result<Tensor> {
    let (batch, channels, height, width) = x.dims4()?;
    Ok(x.reshape((batch, channels, height, 1, width, 1))?
        .broadcast_as((batch, channels, height, 2, width, 2))?
        .reshape((batch, channels, 2 * height, 2 * width))?)
}

/// `f_i = exp(−ln(10000) · i / half)` for `i < half = dim / 2`.
pub fn timestep_frequencies(dim: usize) -> Vec<f32> {
    let half = dim / 2;
    (0..half).map(|idx| (-(10_000_f64.ln()) * idx as f64 / half as f64).exp() as f32).collect()
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Var};

    use super::*;
    use crate::graph::{GraphBuilder, Init};

    /// Group norm of a row-major `[B, C, H, W]` in f64, loop by loop.
    fn group_norm_direct(
        x: &[f64],
        (batch, channels, spatial): (usize, usize, usize),
        groups: usize,
        scale: &[f64],
        shift: &[f64],
    ) -> Vec<f64> {
        let per_group = channels / groups;
        let mut out = vec![0.0; x.len()];
        for sample in 0..batch {
            for group in 0..groups {
                let start = (sample * channels + group * per_group) * spatial;
                let values = &x[start..start + per_group * spatial];
                let mean = values.iter().sum::<f64>() / values.len() as f64;
                let var =
                    values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / values.len() as f64;
                for (offset, value) in values.iter().enumerate() {
                    let channel = group * per_group + offset / spatial;
                    out[start + offset] = (value - mean) / (var + GROUP_NORM_EPS).sqrt()
                        * scale[channel]
                        + shift[channel];
                }
            }
        }
        out
    }

    fn to_f64(tensor: &Tensor) -> Vec<f64> {
        tensor.flatten_all().unwrap().to_vec1::<f32>().unwrap().into_iter().map(f64::from).collect()
    }

    /// Forward values against the loop above, and the gradients of `Σ w ⊙ GN(x)` with respect
    /// to `x`, scale and shift against central finite differences of it.
    #[test]
    fn group_norm_matches_a_direct_computation_and_its_finite_differences() -> Result<()> {
        let device = Device::Cpu;
        let (batch, channels, height, width, groups) = (2, 6, 3, 2, 3);
        let spatial = height * width;
        let mut rng = models::rng::stream(3, "test/group-norm");
        let n = batch * channels * spatial;
        let x = Var::from_vec(
            models::rng::normal_f32(&mut rng, n),
            (batch, channels, height, width),
            &device,
        )?;
        let scale = Var::from_vec(models::rng::normal_f32(&mut rng, channels), channels, &device)?;
        let shift = Var::from_vec(models::rng::normal_f32(&mut rng, channels), channels, &device)?;
        let weights = models::rng::normal_f32(&mut rng, n);
        let out = group_norm(x.as_tensor(), groups, scale.as_tensor(), shift.as_tensor())?;
        let (x64, scale64, shift64) = (to_f64(&x), to_f64(&scale), to_f64(&shift));
        let dims = (batch, channels, spatial);
        let expected = group_norm_direct(&x64, dims, groups, &scale64, &shift64);
        for (got, want) in to_f64(&out).iter().zip(&expected) {
            assert!((got - want).abs() < 1e-5, "{got} vs {want}");
        }

        let weights_tensor = Tensor::from_vec(weights.clone(), out.dims(), &device)?;
        let grads = (out * weights_tensor)?.sum_all()?.backward()?;
        let loss = |x: &[f64], scale: &[f64], shift: &[f64]| -> f64 {
            group_norm_direct(x, dims, groups, scale, shift)
                .iter()
                .zip(&weights)
                .map(|(v, w)| v * f64::from(*w))
                .sum()
        };
        let step = 1e-5;
        let central =
            |perturb: &dyn Fn(f64) -> f64| (perturb(step) - perturb(-step)) / (2.0 * step);
        let checks: [(&Var, Vec<f64>); 3] = [
            (
                &x,
                (0..n)
                    .map(|idx| {
                        central(&|h| {
                            let mut moved = x64.clone();
                            moved[idx] += h;
                            loss(&moved, &scale64, &shift64)
                        })
                    })
                    .collect(),
            ),
            (
                &scale,
                (0..channels)
                    .map(|idx| {
                        central(&|h| {
                            let mut moved = scale64.clone();
                            moved[idx] += h;
                            loss(&x64, &moved, &shift64)
                        })
                    })
                    .collect(),
            ),
            (
                &shift,
                (0..channels)
                    .map(|idx| {
                        central(&|h| {
                            let mut moved = shift64.clone();
                            moved[idx] += h;
                            loss(&x64, &scale64, &moved)
                        })
                    })
                    .collect(),
            ),
        ];
        for (var, numeric) in checks {
            let analytic = to_f64(grads.get(var.as_tensor()).expect("a gradient"));
            for (got, want) in analytic.iter().zip(&numeric) {
                assert!((got - want).abs() < 1e-3 * (1.0 + want.abs()), "{got} vs {want}");
            }
        }
        Ok(())
    }

    /// `Mul` broadcasts its second input like `Add`; group-norm parameters start at 1 and 0.
    #[test]
    fn mul_broadcasts_and_group_norm_starts_as_a_plain_normalisation() -> Result<()> {
        let device = Device::Cpu;
        let mut b = GraphBuilder::new();
        let x = b.input("x", &[2, 2, 2]);
        let g = b.input("g", &[2, 1, 1]);
        let product = b.node("product", Op::Mul, &[&x, &g]);
        b.group_norm("norm", &product, 1, 2);
        let graph = b.finish(&[("product", &[2, 2, 2]), ("norm", &[2, 2, 2])]);
        assert_eq!(
            graph.parameters(),
            vec![
                ("norm.scale".to_owned(), vec![2], Init::Ones),
                ("norm.shift".to_owned(), vec![2], Init::Zeros)
            ]
        );
        let params = Params::init(&graph, "test", 0, &device)?;
        assert_eq!(params.get("norm.scale")?.to_vec1::<f32>()?, [1.0, 1.0]);
        assert_eq!(params.get("norm.shift")?.to_vec1::<f32>()?, [0.0, 0.0]);
        let x_values: Vec<f32> = (0..8).map(|v| v as f32).collect();
        let x_tensor = Tensor::from_vec(x_values.clone(), (1, 2, 2, 2), &device)?;
        let g_tensor = Tensor::from_vec(vec![2.0_f32, -1.0], (1, 2, 1, 1), &device)?;
        let outputs = forward(&graph, &params, &[("x", &x_tensor), ("g", &g_tensor)])?;
        let product = outputs[0].flatten_all()?.to_vec1::<f32>()?;
        assert_eq!(product, [0.0, 2.0, 4.0, 6.0, -4.0, -5.0, -6.0, -7.0]);
        let normalised = to_f64(&outputs[1]);
        let product64: Vec<f64> = product.iter().map(|&v| f64::from(v)).collect();
        let expected = group_norm_direct(&product64, (1, 2, 4), 1, &[1.0, 1.0], &[0.0, 0.0]);
        for (got, want) in normalised.iter().zip(&expected) {
            assert!((got - want).abs() < 1e-5, "{got} vs {want}");
        }
        Ok(())
    }
}
