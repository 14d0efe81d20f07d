//! The networks of the families, as [`Graph`]s. Tables get MLPs; images whose sides divide by 4
//! get convolutional networks sized by a [`SizePreset`] (8×8 digits, 32×32 nuclei; the blocks are
//! in [`crate::blocks`]), others an MLP on pixels.
//!
//! Exported graphs and their I/O (batch dimension `N` implicit):
//! - VAE decoder and GAN generator: `z [L]`, `y [k]` → `x [d]` (tables) or `x [C, H, W]`;
//! - DDPM denoiser: `x_t [d | C, H, W]`, `t [1]` (the step index as a float), `y [k]` → `eps`
//!   (images: a U-Net);
//! - latent diffusion's decoder: `z [L]` → `x`.
//!
//! Training-only graphs: the VAE encoder (`x`, `y` → `mu`, `logvar`), latent diffusion's
//! encoder (`x` → `mu`, `logvar`) and the GAN discriminator (`x`, `y` → `score [1]`,
//! `class_logits [k]`). Labels enter every network as a one-hot `y`; an all-zero `y` is valid
//! (no class) since every class embedding is a Linear of `y`.

use models::ImageShape;
use models::manifest::{Family, SizePreset};
use models::transform::Block;

use crate::blocks::{self, Cond, DecoderClass, Levels};
use crate::graph::{Graph, GraphBuilder, Op};

/// What the data looks like to a network.
#[derive(Debug, Clone, PartialEq)]
pub struct DataSpec {
    /// Encoded feature width `d` (`C·H·W` for images).
    pub width: usize,
    pub n_classes: usize,
    pub blocks: Vec<Block>,
    pub image: Option<ImageShape>,
}

impl DataSpec {
    /// The per-sample shape of `x`: `[d]` or `[C, H, W]`.
    pub fn sample_dims(&self) -> Vec<usize> {
        match self.conv_image() {
            Some(shape) => vec![shape.channels, shape.height, shape.width],
            None => vec![self.width],
        }
    }

    /// The image shape when the convolutional networks apply.
    pub fn conv_image(&self) -> Option<ImageShape> {
        self.image.filter(|shape| {
            shape.height % 4 == 0 && shape.width % 4 == 0 && shape.height >= 8 && shape.width >= 8
        })
    }
}

/// Layer sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Widths {
    /// Hidden width of MLP layers.
    pub hidden: usize,
    /// Latent / noise width `L` (VAE, GAN).
    pub latent_dim: usize,
    /// Base channel count of convolutional networks.
    pub channels: usize,
    /// Width of the sinusoidal timestep embedding (DDPM).
    pub time_dim: usize,
    /// Channel multiplier of each resolution level of the convolutional networks (levels stop
    /// before a side would drop below 4).
    pub channel_mult: &'static [usize],
    /// Residual (or modulated) blocks per level.
    pub res_blocks: usize,
    /// Groups of every group norm (fewer where the channels do not divide).
    pub groups: usize,
}

impl Widths {
    /// The widths of a size preset for `family` on data like `spec`. Tables keep one MLP for
    /// every preset; the convolutional networks grow: `tiny` 16 base channels × [1, 2, 2], one
    /// block per level, 4 groups (a U-Net training step about 3-4× the cost of the
    /// two-convolution denoiser it replaced, for two CPU cores); `small` 64 × [1, 2, 2]; `base`
    /// 128 × [1, 2, 2, 4] with two blocks per level (a CUDA workstation, 64×64 and above).
    pub fn preset(size: SizePreset, family: Family, spec: &DataSpec) -> Widths {
        let image = spec.image.is_some();
        let (channels, channel_mult, res_blocks, groups): (usize, &'static [usize], usize, usize) =
            match size {
                SizePreset::Tiny => (16, &[1, 2, 2], 1, 4),
                SizePreset::Small => (64, &[1, 2, 2], 1, 8),
                SizePreset::Base => (128, &[1, 2, 2, 4], 2, 8),
            };
        Widths {
            hidden: 256,
            latent_dim: match (family, image) {
                (Family::Gan, _) => 32,
                (_, false) => 16,
                (_, true) => 32,
            },
            channels,
            time_dim: 64,
            channel_mult,
            res_blocks,
            groups,
        }
    }

    /// The architecture in words, for the manifest.
    pub fn describe(&self, family: Family, spec: &DataSpec) -> String {
        match spec.conv_image() {
            Some(shape) => {
                let levels = Levels::new(shape, self);
                let levels: Vec<String> = levels
                    .levels
                    .iter()
                    .map(|(channels, height, width)| format!("{height}×{width}×{channels}"))
                    .collect();
                let networks = match family {
                    Family::Ddpm => {
                        "U-Net with time+class embedding in every block and self-attention at \
                         the lowest level if ≥ 8×8"
                    }
                    Family::Gan => {
                        "generator with class-modulated group norm, critic with projection and \
                         class heads"
                    }
                    Family::Vae => "residual encoder and decoder",
                    Family::Ldm => "autoencoder: residual encoder and decoder",
                };
                format!(
                    "conv {shape}: levels {} ({} block(s) per level, group norm {} groups), \
                     {networks}; hidden {}, latent {}, time embedding {}",
                    levels.join(" → "),
                    self.res_blocks,
                    self.groups,
                    self.hidden,
                    self.latent_dim,
                    self.time_dim
                )
            }
            None => format!(
                "mlp: width {}, hidden {}, latent {}, time embedding {}",
                spec.width, self.hidden, self.latent_dim, self.time_dim
            ),
        }
    }
}

/// Linear to `out` then LeakyReLU(0.2), the discriminator's activation.
fn leaky(
    builder: &mut GraphBuilder,
    name: &str,
    input: &str,
    in_dim: usize,
    out_dim: usize,
) -> String {
    let linear = builder.linear(name, input, in_dim, out_dim);
    builder.node(&format!("{name}.act"), Op::LeakyRelu { alpha: 0.2 }, &[&linear])
}

/// `(z, y) → x`: the VAE decoder and (with a softmax over categorical blocks) the GAN generator.
/// On images `softmax_categories` picks the GAN's generator (Conv3×3 → class-modulated group
/// norm → SiLU per block) over the VAE's decoder (residual blocks with `Linear(y)` added).
pub fn generator(spec: &DataSpec, widths: &Widths, softmax_categories: bool) -> Graph {
    let mut b = GraphBuilder::new();
    let z = b.input("z", &[widths.latent_dim]);
    let y = b.input("y", &[spec.n_classes]);
    let zy = b.node("zy", Op::Concat, &[&z, &y]);
    let in_dim = widths.latent_dim + spec.n_classes;
    match spec.conv_image() {
        Some(shape) => {
            let class = Cond { name: &y, dim: spec.n_classes };
            let class = if softmax_categories {
                DecoderClass::Modulated(class)
            } else {
                DecoderClass::Additive(class)
            };
            blocks::conv_decoder(&mut b, "g", (&zy, in_dim), shape, widths, class);
        }
        None => {
            let h = b.dense("g.h1", &zy, in_dim, widths.hidden);
            let h = b.dense("g.h2", &h, widths.hidden, widths.hidden);
            if spec.image.is_some() {
                let h = b.linear("g.out", &h, widths.hidden, spec.width);
                b.node("x", Op::Tanh, &[&h]);
            } else if softmax_categories && spec.blocks.iter().any(|block| block.categorical) {
                let h = b.linear("g.out", &h, widths.hidden, spec.width);
                let blocks = spec
                    .blocks
                    .iter()
                    .map(|block| (block.start, block.width, block.categorical))
                    .collect();
                b.node("x", Op::BlockSoftmax { blocks }, &[&h]);
            } else {
                b.linear("x", &h, widths.hidden, spec.width);
            }
        }
    }
    b.finish(&[("x", &spec.sample_dims())])
}

/// `(x, y) → (mu, logvar)`: the VAE encoder (images: residual conv trunk, `y` joined after it).
pub fn encoder(spec: &DataSpec, widths: &Widths) -> Graph {
    let mut b = GraphBuilder::new();
    let x = b.input("x", &spec.sample_dims());
    let y = b.input("y", &[spec.n_classes]);
    let h = match spec.conv_image() {
        Some(shape) => {
            let (flat, width) = blocks::conv_encoder(&mut b, "e", &x, shape, widths);
            let hy = b.node("e.hy", Op::Concat, &[&flat, &y]);
            b.dense("e.h", &hy, width + spec.n_classes, widths.hidden)
        }
        None => {
            let xy = b.node("e.xy", Op::Concat, &[&x, &y]);
            let h = b.dense("e.h1", &xy, spec.width + spec.n_classes, widths.hidden);
            b.dense("e.h2", &h, widths.hidden, widths.hidden)
        }
    };
    b.linear("mu", &h, widths.hidden, widths.latent_dim);
    b.linear("logvar", &h, widths.hidden, widths.latent_dim);
    b.finish(&[("mu", &[widths.latent_dim]), ("logvar", &[widths.latent_dim])])
}

/// `x → (mu, logvar)`: the encoder of latent diffusion's autoencoder, unconditional (the class
/// enters the diffusion model in the latent space, not the autoencoder).
pub fn ae_encoder(spec: &DataSpec, widths: &Widths) -> Graph {
    let mut b = GraphBuilder::new();
    let x = b.input("x", &spec.sample_dims());
    let h = match spec.conv_image() {
        Some(shape) => {
            let (flat, width) = blocks::conv_encoder(&mut b, "e", &x, shape, widths);
            b.dense("e.h", &flat, width, widths.hidden)
        }
        None => {
            let x = b.node("e.flat", Op::Flatten, &[&x]);
            let h = b.dense("e.h1", &x, spec.width, widths.hidden);
            b.dense("e.h2", &h, widths.hidden, widths.hidden)
        }
    };
    b.linear("mu", &h, widths.hidden, widths.latent_dim);
    b.linear("logvar", &h, widths.hidden, widths.latent_dim);
    b.finish(&[("mu", &[widths.latent_dim]), ("logvar", &[widths.latent_dim])])
}

/// `z → x`: the decoder of latent diffusion's autoencoder, unconditional; exported next to the
/// latent denoiser as `decoder.onnx`.
pub fn ae_decoder(spec: &DataSpec, widths: &Widths) -> Graph {
    let mut b = GraphBuilder::new();
    let z = b.input("z", &[widths.latent_dim]);
    match spec.conv_image() {
        Some(shape) => {
            blocks::conv_decoder(
                &mut b,
                "g",
                (&z, widths.latent_dim),
                shape,
                widths,
                DecoderClass::None,
            );
        }
        None => {
            let h = b.dense("g.h1", &z, widths.latent_dim, widths.hidden);
            let h = b.dense("g.h2", &h, widths.hidden, widths.hidden);
            let h = b.linear("g.out", &h, widths.hidden, spec.width);
            b.node("x", Op::Tanh, &[&h]);
        }
    }
    b.finish(&[("x", &spec.sample_dims())])
}

/// `(x, y) → (score, class_logits)`: the GAN discriminator (spectrally normalised during
/// training), with the label entering by projection (Miyato & Koyama 2018):
/// `score = w·φ(x) + ⟨E y, φ(x)⟩`. A critic that only sees `y` concatenated learns to ignore it,
/// and the generator with it. `class_logits = Linear(φ(x))` is an auxiliary classifier (Odena et
/// al. 2017). On images `φ` sees `x` alone; on tables `φ` also reads `y` (the MLP as it was), so
/// there the auxiliary head can read the class it is asked for.
pub fn discriminator(spec: &DataSpec, widths: &Widths) -> Graph {
    let mut b = GraphBuilder::new();
    let x = b.input("x", &spec.sample_dims());
    let y = b.input("y", &[spec.n_classes]);
    let h = match spec.conv_image() {
        Some(shape) => {
            let (flat, width) = blocks::critic_trunk(&mut b, &x, shape, widths);
            leaky(&mut b, "d.h", &flat, width, widths.hidden)
        }
        None => {
            let xy = b.node("d.xy", Op::Concat, &[&x, &y]);
            let h = leaky(&mut b, "d.h1", &xy, spec.width + spec.n_classes, widths.hidden);
            leaky(&mut b, "d.h2", &h, widths.hidden, widths.hidden)
        }
    };
    let unconditional = b.linear("d.out", &h, widths.hidden, 1);
    let embedded = b.linear("d.embed", &y, spec.n_classes, widths.hidden);
    let projected = b.node("d.project", Op::Mul, &[&h, &embedded]);
    let projected = b.node("d.project.sum", Op::RowSum, &[&projected]);
    b.node("score", Op::Add, &[&unconditional, &projected]);
    b.linear("class_logits", &h, widths.hidden, spec.n_classes);
    b.finish(&[("score", &[1]), ("class_logits", &[spec.n_classes])])
}

/// `(x_t, t, y) → eps`: the DDPM noise-prediction network; on images the U-Net of
/// [`blocks::unet`], with the time and class embedding in every residual block.
pub fn denoiser(spec: &DataSpec, widths: &Widths) -> Graph {
    let mut b = GraphBuilder::new();
    let x_t = b.input("x_t", &spec.sample_dims());
    let t = b.input("t", &[1]);
    let y = b.input("y", &[spec.n_classes]);
    match spec.conv_image() {
        Some(shape) => {
            blocks::unet(&mut b, (&x_t, &t, &y), shape, spec.n_classes, widths);
        }
        None => {
            let temb = b.node("temb", Op::TimestepEmbedding { dim: widths.time_dim }, &[&t]);
            let joined = b.node("in", Op::Concat, &[&x_t, &temb, &y]);
            let h = b.dense(
                "h1",
                &joined,
                spec.width + widths.time_dim + spec.n_classes,
                widths.hidden,
            );
            let h = b.dense("h2", &h, widths.hidden, widths.hidden);
            let h = b.dense("h3", &h, widths.hidden, widths.hidden);
            b.linear("eps", &h, widths.hidden, spec.width);
        }
    }
    b.finish(&[("eps", &spec.sample_dims())])
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor};

    use super::*;
    use crate::exec::forward;
    use crate::params::Params;

    fn image(side: usize) -> DataSpec {
        DataSpec {
            width: side * side,
            n_classes: 3,
            blocks: Vec::new(),
            image: Some(ImageShape { channels: 1, height: side, width: side }),
        }
    }

    fn has_node(graph: &Graph, prefix: &str) -> bool {
        graph.nodes.iter().any(|node| node.name.starts_with(prefix))
    }

    /// Self-attention only where the U-Net's lowest level is at least 8×8; levels stop before a
    /// side would drop below 4; every residual block reads the conditioning vector.
    #[test]
    fn unet_levels_attention_and_conditioning_follow_the_image_side() {
        for (side, size, levels, attention) in [
            (8, SizePreset::Tiny, 2, false),
            (32, SizePreset::Tiny, 3, true),
            (8, SizePreset::Base, 2, false),
            (32, SizePreset::Base, 4, false),
            (64, SizePreset::Base, 4, true),
        ] {
            let spec = image(side);
            let widths = Widths::preset(size, Family::Ddpm, &spec);
            assert_eq!(Levels::new(spec.image.expect("image"), &widths).levels.len(), levels);
            let graph = denoiser(&spec, &widths);
            assert_eq!(has_node(&graph, "mid.attn"), attention, "{size} on {side}×{side}");
            let blocks = graph.nodes.iter().filter(|node| node.name.ends_with(".conv1")).count();
            let conditioned = graph
                .nodes
                .iter()
                .filter(|node| node.name.ends_with(".cond") && node.inputs == ["cond.silu"])
                .count();
            assert!(blocks > levels, "{size} on {side}×{side}: {blocks} blocks");
            assert_eq!(blocks, conditioned, "{size} on {side}×{side}");
        }
    }

    /// Group-norm parameters are `scale`/`shift`, never `weight` (spectral normalisation selects
    /// `*.weight`); the discriminator's outputs are `score` then `class_logits`, and on images
    /// the class logits depend on `x` alone while the score depends on `y`.
    #[test]
    fn discriminator_heads_and_parameter_names() -> crate::Result<()> {
        let spec = image(8);
        let widths = Widths::preset(SizePreset::Tiny, Family::Gan, &spec);
        for graph in [discriminator(&spec, &widths), generator(&spec, &widths, true)] {
            for (name, _, _) in graph.parameters() {
                let node = name.rsplit_once('.').map_or("", |(node, _)| node);
                let group_norm = graph
                    .nodes
                    .iter()
                    .any(|n| n.name == node && matches!(n.op, Op::GroupNorm { .. }));
                assert_eq!(
                    group_norm,
                    name.ends_with(".scale") || name.ends_with(".shift"),
                    "{name}"
                );
            }
        }
        let graph = discriminator(&spec, &widths);
        let names: Vec<&str> = graph.outputs.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(names, ["score", "class_logits"]);
        let device = Device::Cpu;
        let params = Params::init(&graph, "critic", 1, &device)?;
        let mut rng = models::rng::stream(2, "test/critic");
        let x = Tensor::from_vec(models::rng::normal_f32(&mut rng, 2 * 64), (2, 1, 8, 8), &device)?;
        let run = |labels: [u32; 2]| -> crate::Result<Vec<Vec<f32>>> {
            let y = Tensor::from_vec(models::transform::one_hot(&labels, 3), (2, 3), &device)?;
            forward(&graph, &params, &[("x", &x), ("y", &y)])?
                .iter()
                .map(|out| Ok(out.flatten_all()?.to_vec1::<f32>()?))
                .collect()
        };
        let (first, second) = (run([0, 1])?, run([2, 2])?);
        assert_eq!(first[1], second[1], "class logits must not read y");
        assert_ne!(first[0], second[0], "the score must read y");
        assert_eq!(first[1].len(), 2 * 3);
        Ok(())
    }
}
