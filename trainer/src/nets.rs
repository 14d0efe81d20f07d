//! The networks of the three families, as [`Graph`]s. Tables get MLPs; images whose sides divide
//! by 4 get small convolutional networks (8×8 digits, 32×32 nuclei), others an MLP on pixels.
//!
//! Exported graphs and their I/O (batch dimension `N` implicit):
//! - VAE decoder and GAN generator: `z [L]`, `y [k]` → `x [d]` (tables) or `x [C, H, W]`;
//! - DDPM denoiser: `x_t [d | C, H, W]`, `t [1]` (the step index as a float), `y [k]` → `eps`.
//!
//! Training-only graphs: the VAE encoder (`x`, `y` → `mu`, `logvar`) and the GAN discriminator
//! (`x`, `y` → `score [1]`). Labels enter every network as a one-hot `y`.

use models::ImageShape;
use models::transform::Block;

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
}

impl Widths {
    pub fn describe(&self, spec: &DataSpec) -> String {
        match spec.conv_image() {
            Some(shape) => format!(
                "conv {shape}: channels {}/{}, hidden {}, latent {}, time embedding {}",
                self.channels,
                2 * self.channels,
                self.hidden,
                self.latent_dim,
                self.time_dim
            ),
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
pub fn generator(spec: &DataSpec, widths: &Widths, softmax_categories: bool) -> Graph {
    let mut b = GraphBuilder::new();
    let z = b.input("z", &[widths.latent_dim]);
    let y = b.input("y", &[spec.n_classes]);
    let zy = b.node("zy", Op::Concat, &[&z, &y]);
    let in_dim = widths.latent_dim + spec.n_classes;
    match spec.conv_image() {
        Some(shape) => {
            let (ch, h4, w4) = (widths.channels, shape.height / 4, shape.width / 4);
            let h = b.dense("g.proj", &zy, in_dim, 2 * ch * h4 * w4);
            let h = b.node("g.grid", Op::Reshape { dims: vec![2 * ch, h4, w4] }, &[&h]);
            let h = b.node("g.up1", Op::Upsample2x, &[&h]);
            let h = b.conv("g.conv1", &h, 2 * ch, ch, 1);
            let h = b.silu(&h);
            let h = b.node("g.up2", Op::Upsample2x, &[&h]);
            let h = b.conv("g.out", &h, ch, shape.channels, 1);
            b.node("x", Op::Tanh, &[&h]);
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

/// `(x, y) → (mu, logvar)`: the VAE encoder.
pub fn encoder(spec: &DataSpec, widths: &Widths) -> Graph {
    let mut b = GraphBuilder::new();
    let x = b.input("x", &spec.sample_dims());
    let y = b.input("y", &[spec.n_classes]);
    let h = match spec.conv_image() {
        Some(shape) => {
            let ch = widths.channels;
            let h = b.conv("e.conv1", &x, shape.channels, ch, 2);
            let h = b.silu(&h);
            let h = b.conv("e.conv2", &h, ch, 2 * ch, 2);
            let h = b.silu(&h);
            let h = b.node("e.flat", Op::Flatten, &[&h]);
            let hy = b.node("e.hy", Op::Concat, &[&h, &y]);
            b.dense(
                "e.h",
                &hy,
                2 * ch * (shape.height / 4) * (shape.width / 4) + spec.n_classes,
                widths.hidden,
            )
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

/// `(x, y) → score`: the GAN discriminator (spectrally normalised during training), with the
/// label entering by projection (Miyato & Koyama 2018): `score = w·φ(x) + ⟨E y, φ(x)⟩`. A
/// critic that only sees `y` concatenated learns to ignore it, and the generator with it.
pub fn discriminator(spec: &DataSpec, widths: &Widths) -> Graph {
    let mut b = GraphBuilder::new();
    let x = b.input("x", &spec.sample_dims());
    let y = b.input("y", &[spec.n_classes]);
    let h = match spec.conv_image() {
        Some(shape) => {
            let ch = widths.channels;
            let h = b.conv("d.conv1", &x, shape.channels, ch, 2);
            let h = b.node("d.conv1.act", Op::LeakyRelu { alpha: 0.2 }, &[&h]);
            let h = b.conv("d.conv2", &h, ch, 2 * ch, 2);
            let h = b.node("d.conv2.act", Op::LeakyRelu { alpha: 0.2 }, &[&h]);
            let h = b.node("d.flat", Op::Flatten, &[&h]);
            let hy = b.node("d.hy", Op::Concat, &[&h, &y]);
            leaky(
                &mut b,
                "d.h",
                &hy,
                2 * ch * (shape.height / 4) * (shape.width / 4) + spec.n_classes,
                widths.hidden,
            )
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
    b.finish(&[("score", &[1])])
}

/// `(x_t, t, y) → eps`: the DDPM noise-prediction network. For images, the time and class
/// embedding is added to the channels at every stage: injected only at the input, the class
/// barely steered the samples.
pub fn denoiser(spec: &DataSpec, widths: &Widths) -> Graph {
    let mut b = GraphBuilder::new();
    let x_t = b.input("x_t", &spec.sample_dims());
    let t = b.input("t", &[1]);
    let y = b.input("y", &[spec.n_classes]);
    let temb = b.node("temb", Op::TimestepEmbedding { dim: widths.time_dim }, &[&t]);
    match spec.conv_image() {
        Some(shape) => {
            let ch = widths.channels;
            let cond = b.node("cond.in", Op::Concat, &[&temb, &y]);
            let cond = b.dense("cond", &cond, widths.time_dim + spec.n_classes, widths.hidden);
            let h0 = b.conv("in", &x_t, shape.channels, ch, 1);
            let c1 = b.linear("cond1", &cond, widths.hidden, ch);
            let c1 = b.node("cond1.grid", Op::Reshape { dims: vec![ch, 1, 1] }, &[&c1]);
            let h0 = b.node("in.cond", Op::Add, &[&h0, &c1]);
            let h0 = b.silu(&h0);
            let h = b.conv("down", &h0, ch, 2 * ch, 2);
            let c2 = b.linear("cond2", &cond, widths.hidden, 2 * ch);
            let c2 = b.node("cond2.grid", Op::Reshape { dims: vec![2 * ch, 1, 1] }, &[&c2]);
            let h = b.node("down.cond", Op::Add, &[&h, &c2]);
            let h = b.silu(&h);
            let h = b.conv("mid", &h, 2 * ch, 2 * ch, 1);
            let c3 = b.linear("cond3", &cond, widths.hidden, 2 * ch);
            let c3 = b.node("cond3.grid", Op::Reshape { dims: vec![2 * ch, 1, 1] }, &[&c3]);
            let h = b.node("mid.cond", Op::Add, &[&h, &c3]);
            let h = b.silu(&h);
            let h = b.node("up", Op::Upsample2x, &[&h]);
            let h = b.conv("up.conv", &h, 2 * ch, ch, 1);
            let h = b.node("skip", Op::Add, &[&h, &h0]);
            let c4 = b.linear("cond4", &cond, widths.hidden, ch);
            let c4 = b.node("cond4.grid", Op::Reshape { dims: vec![ch, 1, 1] }, &[&c4]);
            let h = b.node("up.cond", Op::Add, &[&h, &c4]);
            let h = b.silu(&h);
            b.conv("eps", &h, ch, shape.channels, 1);
        }
        None => {
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
