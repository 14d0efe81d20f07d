//! Times one training step (batch 64, forward + backward of a noise-prediction MSE) of each size
//! preset's image denoiser, next to the two-convolution denoiser it replaced, on 8×8×1 and
//! 32×32×1 images, and one forward + backward of the `tiny` GAN and VAE networks; prints every
//! network's parameter count per preset. Run with one thread for the figures of the CPU budget:
//! `CANDLE_NUM_THREADS=1 RAYON_NUM_THREADS=1 cargo run -p trainer --release --example step_time`.

use std::time::Instant;

use candle_core::{Device, Tensor};
use models::ImageShape;
use models::manifest::{Family, SizePreset};
use trainer::exec::forward;
use trainer::graph::{Graph, GraphBuilder, Op};
use trainer::nets::{self, DataSpec, Widths};
use trainer::params::Params;

/// The allocator `synth-train` uses, so the figures are the binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The denoiser before the U-Net: two 16-channel convolutions around one stride-2 level.
fn previous_denoiser(shape: ImageShape, n_classes: usize) -> Graph {
    let (ch, hidden, time_dim) = (16, 256, 64);
    let mut b = GraphBuilder::new();
    let x_t = b.input("x_t", &[shape.channels, shape.height, shape.width]);
    let t = b.input("t", &[1]);
    let y = b.input("y", &[n_classes]);
    let temb = b.node("temb", Op::TimestepEmbedding { dim: time_dim }, &[&t]);
    let cond = b.node("cond.in", Op::Concat, &[&temb, &y]);
    let cond = b.dense("cond", &cond, time_dim + n_classes, hidden);
    let grid = |b: &mut GraphBuilder, name: &str, channels: usize| {
        let c = b.linear(name, &cond, hidden, channels);
        b.node(&format!("{name}.grid"), Op::Reshape { dims: vec![channels, 1, 1] }, &[&c])
    };
    let h0 = b.conv("in", &x_t, shape.channels, ch, 1);
    let c1 = grid(&mut b, "cond1", ch);
    let h0 = b.node("in.cond", Op::Add, &[&h0, &c1]);
    let h0 = b.silu(&h0);
    let h = b.conv("down", &h0, ch, 2 * ch, 2);
    let c2 = grid(&mut b, "cond2", 2 * ch);
    let h = b.node("down.cond", Op::Add, &[&h, &c2]);
    let h = b.silu(&h);
    let h = b.conv("mid", &h, 2 * ch, 2 * ch, 1);
    let c3 = grid(&mut b, "cond3", 2 * ch);
    let h = b.node("mid.cond", Op::Add, &[&h, &c3]);
    let h = b.silu(&h);
    let h = b.node("up", Op::Upsample2x, &[&h]);
    let h = b.conv("up.conv", &h, 2 * ch, ch, 1);
    let h = b.node("skip", Op::Add, &[&h, &h0]);
    let c4 = grid(&mut b, "cond4", ch);
    let h = b.node("up.cond", Op::Add, &[&h, &c4]);
    let h = b.silu(&h);
    b.conv("eps", &h, ch, shape.channels, 1);
    b.finish(&[("eps", &[shape.channels, shape.height, shape.width])])
}

/// Mean seconds of a forward + backward step over `repeats` steps after one warm-up.
fn step_seconds(graph: &Graph, shape: ImageShape, n_classes: usize, repeats: usize) -> f64 {
    let device = Device::Cpu;
    let batch = 64;
    let params = Params::init(graph, "bench", 0, &device).expect("init");
    let mut rng = models::rng::stream(1, "bench/inputs");
    let n = batch * shape.n_values();
    let dims = (batch, shape.channels, shape.height, shape.width);
    let x = Tensor::from_vec(models::rng::normal_f32(&mut rng, n), dims, &device).expect("x");
    let noise = Tensor::from_vec(models::rng::normal_f32(&mut rng, n), dims, &device).expect("eps");
    let t = Tensor::from_vec((0..batch).map(|i| (i * 3) as f32).collect(), (batch, 1), &device)
        .expect("t");
    let labels: Vec<u32> = (0..batch).map(|i| (i % n_classes) as u32).collect();
    let y = Tensor::from_vec(
        models::transform::one_hot(&labels, n_classes),
        (batch, n_classes),
        &device,
    )
    .expect("y");
    let step = || {
        let out = forward(graph, &params, &[("x_t", &x), ("t", &t), ("y", &y)]).expect("forward");
        let loss =
            (&out[0] - &noise).and_then(|d| d.sqr()).and_then(|d| d.mean_all()).expect("loss");
        loss.backward().expect("backward");
    };
    step();
    let start = Instant::now();
    for _ in 0..repeats {
        step();
    }
    start.elapsed().as_secs_f64() / repeats as f64
}

/// Mean seconds of a forward + backward (of the sum of squares of every output) of any graph on
/// random inputs (`y` one-hot).
fn generic_step_seconds(graph: &Graph, n_classes: usize, repeats: usize) -> f64 {
    let device = Device::Cpu;
    let batch = 64;
    let params = Params::init(graph, "bench", 0, &device).expect("init");
    let mut rng = models::rng::stream(2, "bench/generic");
    let labels: Vec<u32> = (0..batch).map(|i| (i % n_classes) as u32).collect();
    let feeds: Vec<(String, Tensor)> = graph
        .inputs
        .iter()
        .map(|input| {
            let mut dims = vec![batch];
            dims.extend(&input.dims);
            let values = if input.name == "y" {
                models::transform::one_hot(&labels, n_classes)
            } else {
                models::rng::normal_f32(&mut rng, dims.iter().product())
            };
            (input.name.clone(), Tensor::from_vec(values, dims, &device).expect("input"))
        })
        .collect();
    let named: Vec<(&str, &Tensor)> = feeds.iter().map(|(name, t)| (name.as_str(), t)).collect();
    let step = || {
        let outputs = forward(graph, &params, &named).expect("forward");
        let mut loss = Tensor::new(0.0_f32, &device).expect("zero");
        for out in outputs {
            loss = (loss + out.sqr().and_then(|o| o.mean_all()).expect("square")).expect("sum");
        }
        loss.backward().expect("backward");
    };
    step();
    let start = Instant::now();
    for _ in 0..repeats {
        step();
    }
    start.elapsed().as_secs_f64() / repeats as f64
}

fn main() {
    let n_classes = 10;
    for side in [8, 32] {
        let shape = ImageShape { channels: 1, height: side, width: side };
        let spec =
            DataSpec { width: side * side, n_classes, blocks: Vec::new(), image: Some(shape) };
        let repeats = if side == 8 { 10 } else { 2 };
        let previous = previous_denoiser(shape, n_classes);
        let before = step_seconds(&previous, shape, n_classes, repeats);
        println!(
            "{side}×{side}: previous denoiser {} parameters, {:.1} ms/step",
            previous.n_parameters(),
            before * 1e3
        );
        for size in SizePreset::ALL {
            let widths = Widths::preset(size, Family::Ddpm, &spec);
            let graph = nets::denoiser(&spec, &widths);
            let seconds = if size == SizePreset::Tiny {
                format!("{:.1} ms/step", step_seconds(&graph, shape, n_classes, repeats) * 1e3)
            } else {
                "not timed".to_owned()
            };
            println!("{side}×{side}: {size} U-Net {} parameters, {seconds}", graph.n_parameters());
            let family_widths = |family| Widths::preset(size, family, &spec);
            let others = [
                ("VAE encoder", nets::encoder(&spec, &family_widths(Family::Vae))),
                ("VAE decoder", nets::generator(&spec, &family_widths(Family::Vae), false)),
                ("GAN generator", nets::generator(&spec, &family_widths(Family::Gan), true)),
                ("GAN critic", nets::discriminator(&spec, &family_widths(Family::Gan))),
                ("LDM encoder", nets::ae_encoder(&spec, &family_widths(Family::Ldm))),
                ("LDM decoder", nets::ae_decoder(&spec, &family_widths(Family::Ldm))),
            ];
            for (what, graph) in others {
                let seconds = if size == SizePreset::Tiny {
                    let seconds = generic_step_seconds(&graph, n_classes, repeats);
                    format!("{:.1} ms/step", seconds * 1e3)
                } else {
                    "not timed".to_owned()
                };
                println!(
                    "{side}×{side}: {size} {what} {} parameters, {seconds}",
                    graph.n_parameters()
                );
            }
        }
    }
}
