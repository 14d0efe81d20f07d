//! Convolutional building blocks of the image networks, and the networks built from them: the
//! DDPM U-Net, the conditional (VAE, GAN) and unconditional (latent diffusion's autoencoder)
//! convolutional encoders and decoders, and the GAN critic's trunk.
//!
//! Every tensor is `[N, C, H, W]` per level. An image of side `S` gets [`Levels`]: one
//! resolution per channel multiplier of the preset, `S, S/2, S/4, …`, stopping before a side
//! would drop below 4. Blocks, with `GN` a group norm and `cond` a `[N, D]` conditioning vector:
//! - residual block: `GN → SiLU → Conv3×3 (+ Linear(cond) per channel) → GN → SiLU → Conv3×3`,
//!   plus the input (through a 1×1 convolution when the channel count changes);
//! - self-attention (one head): `GN`, 1×1 projections to `q, k, v` over the `H·W` positions,
//!   `v · softmax(qᵀk / √C)ᵀ`, a 1×1 output projection, residual;
//! - conditional group norm (GAN generator): `GN(h) · (1 + γ(y)) + β(y)` with `γ, β` Linear in
//!   the one-hot `y`, reshaped `[C, 1, 1]`.

use models::ImageShape;

use crate::graph::{GraphBuilder, Op};
use crate::nets::Widths;

/// The resolution levels of an image under a preset: channel count and side of each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Levels {
    /// `(channels, height, width)`, finest first.
    pub levels: Vec<(usize, usize, usize)>,
    pub groups: usize,
}

impl Levels {
    pub fn new(shape: ImageShape, widths: &Widths) -> Levels {
        let mut levels = Vec::new();
        let (mut height, mut width) = (shape.height, shape.width);
        for &mult in widths.channel_mult {
            if height < 4 || width < 4 {
                break;
            }
            levels.push((widths.channels * mult, height, width));
            if height % 2 != 0 || width % 2 != 0 {
                break;
            }
            height /= 2;
            width /= 2;
        }
        if levels.is_empty() {
            levels.push((widths.channels, shape.height, shape.width));
        }
        Levels { levels, groups: widths.groups.max(1) }
    }

    /// The coarsest level.
    pub fn lowest(&self) -> (usize, usize, usize) {
        self.levels[self.levels.len() - 1]
    }

    /// Groups for a group norm of `channels` (the preset's count, or the largest divisor of
    /// `channels` below it).
    pub fn groups_for(&self, channels: usize) -> usize {
        (1..=self.groups.min(channels)).rev().find(|g| channels.is_multiple_of(*g)).unwrap_or(1)
    }
}

/// The conditioning vector of a block and its width.
#[derive(Debug, Clone, Copy)]
pub struct Cond<'a> {
    pub name: &'a str,
    pub dim: usize,
}

/// `GN → SiLU` on `[C, H, W]`.
fn norm_act(b: &mut GraphBuilder, name: &str, x: &str, levels: &Levels, channels: usize) -> String {
    let h = b.group_norm(name, x, levels.groups_for(channels), channels);
    b.silu(&h)
}

/// `Linear(cond) → [C, 1, 1]`.
fn per_channel(b: &mut GraphBuilder, name: &str, cond: Cond<'_>, channels: usize) -> String {
    let c = b.linear(name, cond.name, cond.dim, channels);
    b.node(&format!("{name}.grid"), Op::Reshape { dims: vec![channels, 1, 1] }, &[&c])
}

/// The residual block of the module documentation; `cond`, when given, is added per channel
/// after the first convolution.
pub fn res_block(
    b: &mut GraphBuilder,
    name: &str,
    x: &str,
    in_channels: usize,
    out_channels: usize,
    levels: &Levels,
    cond: Option<Cond<'_>>,
) -> String {
    let h = norm_act(b, &format!("{name}.norm1"), x, levels, in_channels);
    let mut h = b.conv(&format!("{name}.conv1"), &h, in_channels, out_channels, 1);
    if let Some(cond) = cond {
        let c = per_channel(b, &format!("{name}.cond"), cond, out_channels);
        h = b.node(&format!("{name}.cond.add"), Op::Add, &[&h, &c]);
    }
    let h = norm_act(b, &format!("{name}.norm2"), &h, levels, out_channels);
    let h = b.conv(&format!("{name}.conv2"), &h, out_channels, out_channels, 1);
    let skip = if in_channels == out_channels {
        x.to_owned()
    } else {
        b.conv1x1(&format!("{name}.skip"), x, in_channels, out_channels)
    };
    b.node(&format!("{name}.out"), Op::Add, &[&skip, &h])
}

/// Single-head self-attention over the `H·W` positions of `[C, H, W]`, residual.
pub fn attention(
    b: &mut GraphBuilder,
    name: &str,
    x: &str,
    (channels, height, width): (usize, usize, usize),
    levels: &Levels,
) -> String {
    let positions = height * width;
    let n = b.group_norm(&format!("{name}.norm"), x, levels.groups_for(channels), channels);
    let flat = |b: &mut GraphBuilder, part: &str| {
        let p = b.conv1x1(&format!("{name}.{part}"), &n, channels, channels);
        b.node(
            &format!("{name}.{part}.flat"),
            Op::Reshape { dims: vec![channels, positions] },
            &[&p],
        )
    };
    let (q, k, v) = (flat(b, "q"), flat(b, "k"), flat(b, "v"));
    let q_t = b.node(&format!("{name}.q.t"), Op::Transpose, &[&q]);
    let scores = b.node(&format!("{name}.scores"), Op::MatMul, &[&q_t, &k]);
    let scores = b.node(
        &format!("{name}.scores.scaled"),
        Op::Scale { factor: 1.0 / (channels as f32).sqrt() },
        &[&scores],
    );
    let weights = b.node(&format!("{name}.softmax"), Op::Softmax, &[&scores]);
    let weights_t = b.node(&format!("{name}.softmax.t"), Op::Transpose, &[&weights]);
    let mixed = b.node(&format!("{name}.mixed"), Op::MatMul, &[&v, &weights_t]);
    let mixed = b.node(
        &format!("{name}.mixed.grid"),
        Op::Reshape { dims: vec![channels, height, width] },
        &[&mixed],
    );
    let out = b.conv1x1(&format!("{name}.proj"), &mixed, channels, channels);
    b.node(&format!("{name}.out"), Op::Add, &[x, &out])
}

/// `GN(h) · (1 + γ(y)) + β(y)`.
pub fn conditional_norm(
    b: &mut GraphBuilder,
    name: &str,
    x: &str,
    channels: usize,
    levels: &Levels,
    class: Cond<'_>,
) -> String {
    let n = b.group_norm(&format!("{name}.norm"), x, levels.groups_for(channels), channels);
    let gamma = per_channel(b, &format!("{name}.gamma"), class, channels);
    let beta = per_channel(b, &format!("{name}.beta"), class, channels);
    let scaled = b.node(&format!("{name}.scaled"), Op::Mul, &[&n, &gamma]);
    let modulated = b.node(&format!("{name}.modulated"), Op::Add, &[&n, &scaled]);
    b.node(&format!("{name}.out"), Op::Add, &[&modulated, &beta])
}

/// The DDPM U-Net: `x_t [C, H, W]`, `t [N, 1]`, `y [N, k]` → `eps [C, H, W]` (the node named
/// `eps`). Down path: residual blocks per level, a stride-2 Conv3×3 between levels; middle: a
/// residual block, then (lowest level ≥ 8×8) self-attention and a second residual block; up
/// path: `Upsample2x` + Conv3×3 between levels, the down path's output of the level added (an
/// additive skip: half the cost of concatenating), residual blocks; `GN → SiLU → Conv3×3`. The conditioning vector is `MLP(sinusoid(t)) + Linear(y)`, so an all-zero `y` (no
/// class, for classifier-free guidance) gives the learned bias alone.
pub fn unet(
    b: &mut GraphBuilder,
    (x_t, t, y): (&str, &str, &str),
    shape: ImageShape,
    n_classes: usize,
    widths: &Widths,
) -> String {
    let levels = Levels::new(shape, widths);
    let cond_dim = 4 * widths.channels;
    let temb = b.node("temb", Op::TimestepEmbedding { dim: widths.time_dim }, &[t]);
    let temb = b.dense("temb.mlp1", &temb, widths.time_dim, cond_dim);
    let temb = b.linear("temb.mlp2", &temb, cond_dim, cond_dim);
    let yemb = b.linear("yemb", y, n_classes, cond_dim);
    let cond = b.node("cond", Op::Add, &[&temb, &yemb]);
    let cond = b.silu(&cond);
    let cond = Cond { name: &cond, dim: cond_dim };

    let (first_channels, _, _) = levels.levels[0];
    let mut h = b.conv("in", x_t, shape.channels, first_channels, 1);
    let mut channels = first_channels;
    let mut skips = Vec::new();
    let n_levels = levels.levels.len();
    for (idx, &(level_channels, _, _)) in levels.levels.iter().enumerate() {
        for block in 0..widths.res_blocks {
            let name = format!("down{idx}.res{block}");
            h = res_block(b, &name, &h, channels, level_channels, &levels, Some(cond));
            channels = level_channels;
        }
        skips.push(h.clone());
        if idx + 1 < n_levels {
            h = b.conv(&format!("down{idx}.downsample"), &h, channels, channels, 2);
        }
    }
    let lowest = levels.lowest();
    h = res_block(b, "mid.res0", &h, channels, channels, &levels, Some(cond));
    if lowest.1 >= 8 && lowest.2 >= 8 {
        h = attention(b, "mid.attn", &h, lowest, &levels);
        h = res_block(b, "mid.res1", &h, channels, channels, &levels, Some(cond));
    }
    for idx in (0..n_levels).rev() {
        let (level_channels, _, _) = levels.levels[idx];
        if idx + 1 < n_levels {
            let up = b.node(&format!("up{idx}.upsample"), Op::Upsample2x, &[&h]);
            h = b.conv(&format!("up{idx}.upsample.conv"), &up, channels, level_channels, 1);
            channels = level_channels;
        }
        let skip = &skips[idx];
        h = b.node(&format!("up{idx}.skip"), Op::Add, &[&h, skip]);
        for block in 0..widths.res_blocks {
            let name = format!("up{idx}.res{block}");
            h = res_block(b, &name, &h, channels, level_channels, &levels, Some(cond));
            channels = level_channels;
        }
    }
    let h = norm_act(b, "out.norm", &h, &levels, channels);
    b.conv("eps", &h, channels, shape.channels, 1)
}

/// Convolutional encoder trunk: `x [C, H, W]` → residual blocks per level with stride-2
/// downsampling between levels → flattened `[c·h·w]` of the coarsest level. Returns the node and
/// its width.
pub fn conv_encoder(
    b: &mut GraphBuilder,
    prefix: &str,
    x: &str,
    shape: ImageShape,
    widths: &Widths,
) -> (String, usize) {
    let levels = Levels::new(shape, widths);
    let (first_channels, _, _) = levels.levels[0];
    let mut h = b.conv(&format!("{prefix}.in"), x, shape.channels, first_channels, 1);
    let mut channels = first_channels;
    let n_levels = levels.levels.len();
    for (idx, &(level_channels, _, _)) in levels.levels.iter().enumerate() {
        for block in 0..widths.res_blocks {
            let name = format!("{prefix}.level{idx}.res{block}");
            h = res_block(b, &name, &h, channels, level_channels, &levels, None);
            channels = level_channels;
        }
        if idx + 1 < n_levels {
            h = b.conv(&format!("{prefix}.level{idx}.downsample"), &h, channels, channels, 2);
        }
    }
    let h = norm_act(b, &format!("{prefix}.out.norm"), &h, &levels, channels);
    let (_, height, width) = levels.lowest();
    let flat = b.node(&format!("{prefix}.flat"), Op::Flatten, &[&h]);
    (flat, channels * height * width)
}

/// How a convolutional decoder sees the class.
#[derive(Debug, Clone, Copy)]
pub enum DecoderClass<'a> {
    /// Unconditional (latent diffusion's autoencoder).
    None,
    /// Residual blocks with `Linear(y)` added per channel (VAE decoder).
    Additive(Cond<'a>),
    /// `Conv3×3 → conditional group norm(y) → SiLU` stacks (GAN generator).
    Modulated(Cond<'a>),
}

/// Convolutional decoder: `input [in_dim]` → Linear → `[c, h, w]` at the coarsest level →
/// blocks per level, `Upsample2x` + Conv3×3 between levels → `GN → SiLU → Conv3×3` → `tanh`,
/// the node named `x`.
pub fn conv_decoder(
    b: &mut GraphBuilder,
    prefix: &str,
    (input, in_dim): (&str, usize),
    shape: ImageShape,
    widths: &Widths,
    class: DecoderClass<'_>,
) -> String {
    let levels = Levels::new(shape, widths);
    let (mut channels, height, width) = levels.lowest();
    let h = b.dense(&format!("{prefix}.proj"), input, in_dim, channels * height * width);
    let mut h = b.node(
        &format!("{prefix}.grid"),
        Op::Reshape { dims: vec![channels, height, width] },
        &[&h],
    );
    for idx in (0..levels.levels.len()).rev() {
        let (level_channels, _, _) = levels.levels[idx];
        if idx + 1 < levels.levels.len() {
            let up = b.node(&format!("{prefix}.level{idx}.upsample"), Op::Upsample2x, &[&h]);
            h = b.conv(
                &format!("{prefix}.level{idx}.upsample.conv"),
                &up,
                channels,
                level_channels,
                1,
            );
            channels = level_channels;
        }
        for block in 0..widths.res_blocks {
            let name = format!("{prefix}.level{idx}.block{block}");
            h = match class {
                DecoderClass::None => {
                    res_block(b, &name, &h, channels, level_channels, &levels, None)
                }
                DecoderClass::Additive(cond) => {
                    res_block(b, &name, &h, channels, level_channels, &levels, Some(cond))
                }
                DecoderClass::Modulated(cond) => {
                    let conv = b.conv(&format!("{name}.conv"), &h, channels, level_channels, 1);
                    let modulated = conditional_norm(
                        b,
                        &format!("{name}.cn"),
                        &conv,
                        level_channels,
                        &levels,
                        cond,
                    );
                    b.silu(&modulated)
                }
            };
            channels = level_channels;
        }
    }
    let h = match class {
        DecoderClass::Modulated(_) => h,
        _ => norm_act(b, &format!("{prefix}.out.norm"), &h, &levels, channels),
    };
    let h = b.conv(&format!("{prefix}.out"), &h, channels, shape.channels, 1);
    b.node("x", Op::Tanh, &[&h])
}

/// The GAN critic's convolutional trunk: `Conv3×3 → LeakyReLU(0.2)`, then per level a stride-2
/// `Conv3×3 → LeakyReLU(0.2)`, flattened. Returns the node and its width. No normalisation:
/// the critic is spectrally normalised during training.
pub fn critic_trunk(
    b: &mut GraphBuilder,
    x: &str,
    shape: ImageShape,
    widths: &Widths,
) -> (String, usize) {
    let levels = Levels::new(shape, widths);
    let (first_channels, _, _) = levels.levels[0];
    let h = b.conv("d.in", x, shape.channels, first_channels, 1);
    let mut h = b.node("d.in.act", Op::LeakyRelu { alpha: 0.2 }, &[&h]);
    let mut channels = first_channels;
    let (mut height, mut width) = (shape.height, shape.width);
    for (idx, &(level_channels, _, _)) in levels.levels.iter().enumerate() {
        let name = format!("d.level{idx}");
        let conv = b.conv(&name, &h, channels, level_channels, 2);
        h = b.node(&format!("{name}.act"), Op::LeakyRelu { alpha: 0.2 }, &[&conv]);
        channels = level_channels;
        height = height.div_ceil(2);
        width = width.div_ceil(2);
    }
    let flat = b.node("d.flat", Op::Flatten, &[&h]);
    (flat, channels * height * width)
}
