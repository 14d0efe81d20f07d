//! Runs a [`Graph`] with candle, for training and for the parity check against the exported ONNX.
//!
//! Tensors are `[N, ...]` with the batch first. A `WeightFn` may replace each weight before use
//! (spectral normalisation of the GAN discriminator does); by default weights are used as stored.

use std::collections::HashMap;

use candle_core::{D, Tensor};

use crate::error::{Error, Result};
use crate::graph::{Graph, Op};
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
            Op::Conv2d { out_channels, stride, padding, .. } => {
                let weight = weight_fn(
                    &format!("{}.weight", node.name),
                    params.get(&format!("{}.weight", node.name))?,
                )?;
                let bias = params.get(&format!("{}.bias", node.name))?.reshape((
                    1,
                    *out_channels,
                    1,
                    1,
                ))?;
                crate::conv::conv2d(x, &weight, *stride, *padding)?.broadcast_add(&bias)?
            }
            Op::Upsample2x => upsample2x(x)?,
            Op::Silu => (x * candle_nn::ops::sigmoid(x)?)?,
            Op::LeakyRelu { alpha } => candle_nn::ops::leaky_relu(x, f64::from(*alpha))?,
            Op::Tanh => x.tanh()?,
            Op::Concat => Tensor::cat(&args, 1)?,
            Op::Add => x.broadcast_add(args[1])?,
            Op::Mul => (x * args[1])?,
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
