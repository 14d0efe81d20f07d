//! Each family trains briefly on a table (`breast_cancer.csv`) and on images (`digits.csv`):
//! the loss falls, the exported ONNX run by tract matches the candle model on the same inputs,
//! and onnxruntime (reference Python) accepts the file under `full_check` and agrees with tract.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers fail loudly too; clippy.toml's allow-unwrap-in-tests covers #[test] fns only"
)]

#[path = "../../tests/support/python.rs"]
mod python;

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use edge_runtime::data::{DataOptions, read_dataset};
use edge_runtime::engine::tract::TractEngine;
use edge_runtime::engine::{Engine, TensorIn};
use models::ImageShape;
use models::manifest::{Family, SizePreset};
use models::split::SplitSpec;
use trainer::exec::forward;
use trainer::fit::prepare;
use trainer::graph::Graph;
use trainer::nets::{self, DataSpec, Widths};
use trainer::params::Params;
use trainer::train::{Hyper, Trained, train};

/// Agreement required between candle, tract and onnxruntime on the same inputs.
const TOLERANCE: f32 = 1e-4;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures").join(name)
}

struct Case {
    data: &'static str,
    options: DataOptions,
    epochs: usize,
    fraction: f64,
}

fn breast_cancer() -> Case {
    Case {
        data: "breast_cancer.csv",
        options: DataOptions { label: Some("diagnosis".into()), ..DataOptions::default() },
        epochs: 12,
        fraction: 1.0,
    }
}

fn digits() -> Case {
    Case {
        data: "digits.csv",
        options: DataOptions {
            label: Some("digit".into()),
            image_shape: Some(ImageShape { channels: 1, height: 8, width: 8 }),
            ..DataOptions::default()
        },
        epochs: 4,
        fraction: 0.5,
    }
}

fn train_case(case: &Case, family: Family) -> (Trained, trainer::nets::DataSpec) {
    let dataset = read_dataset(&fixture(case.data), &case.options).unwrap();
    let prepared =
        prepare(dataset, &SplitSpec { seed: 0, holdout: 0.2, fraction: case.fraction }).unwrap();
    let mut hyper =
        Hyper::defaults(family, SizePreset::Tiny, &prepared.data.spec, prepared.data.n_rows);
    hyper.epochs = case.epochs;
    let trained = train(family, &prepared.data, &hyper, 0, &Device::Cpu, &mut |_| {}).unwrap();
    (trained, prepared.data.spec)
}

/// Random graph inputs for a batch: z and noisy x ~ N(0, 1), t integer steps, y one-hot (the
/// last row all zero: "no class", as classifier-free guidance feeds it).
fn inputs(graph: &Graph, n_classes: usize, batch: usize) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let mut rng = models::rng::stream(11, "test/inputs");
    graph
        .inputs
        .iter()
        .map(|input| {
            let mut shape = vec![batch];
            shape.extend(&input.dims);
            let n: usize = shape.iter().product();
            let data = match input.name.as_str() {
                "y" => {
                    let mut y = models::transform::one_hot(
                        &(0..batch).map(|row| (row % n_classes) as u32).collect::<Vec<_>>(),
                        n_classes,
                    );
                    y[(batch - 1) * n_classes..].fill(0.0);
                    y
                }
                "t" => (0..batch).map(|row| ((row * 37) % 200) as f32).collect(),
                _ => models::rng::normal_f32(&mut rng, n),
            };
            (input.name.clone(), shape, data)
        })
        .collect()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

fn check(case: &Case, family: Family) {
    let label = format!("{family} on {}", case.data);
    let (trained, spec) = train_case(case, family);

    let first = trained.history[0];
    let last = trained.history[trained.history.len() - 1];
    match family {
        // Adversarial losses do not measure progress; the gap between generated and real moments does.
        Family::Gan => {
            let (before, after) =
                (first.moment_gap.unwrap_or(f64::NAN), last.moment_gap.unwrap_or(f64::NAN));
            assert!(after < before, "{label}: moment gap should fall, {before} → {after}");
        }
        _ => assert!(
            last.loss < first.loss,
            "{label}: loss should fall, {} → {}",
            first.loss,
            last.loss
        ),
    }

    check_parity(&label, &trained.graph, &trained.params, spec.n_classes);
}

/// The exported ONNX of `graph` run by tract and by onnxruntime agrees with candle.
fn check_parity(label: &str, graph: &Graph, params: &Params, n_classes: usize) {
    let bytes = trainer::onnx::export(graph, &params.to_host().unwrap(), "test").unwrap();
    let batch = 7;
    let feeds = inputs(graph, n_classes, batch);
    let tensors: Vec<(String, Tensor)> = feeds
        .iter()
        .map(|(name, shape, data)| {
            (name.clone(), Tensor::from_vec(data.clone(), shape.as_slice(), &Device::Cpu).unwrap())
        })
        .collect();
    let named: Vec<(&str, &Tensor)> =
        tensors.iter().map(|(name, tensor)| (name.as_str(), tensor)).collect();
    let candle_out = forward(graph, params, &named).unwrap().remove(0);
    let candle_out: Vec<f32> = candle_out.flatten_all().and_then(|t| t.to_vec1()).unwrap();

    let mut engine = TractEngine::from_onnx(&bytes, 1).unwrap_or_else(|e| panic!("{label}: {e}"));
    let tract_inputs: Vec<TensorIn<'_>> =
        feeds.iter().map(|(_, shape, data)| TensorIn { data, shape }).collect();
    let tract_out = engine.run(&tract_inputs).unwrap_or_else(|e| panic!("{label}: {e}"));
    let diff = max_abs_diff(&candle_out, &tract_out);
    assert!(diff <= TOLERANCE, "{label}: tract differs from candle by {diff}");
    // The symbolic batch: one row alone gives the same answer as inside a batch.
    let one_row: Vec<(Vec<usize>, Vec<f32>)> = feeds
        .iter()
        .map(|(_, shape, data)| {
            let row = data.len() / shape[0];
            let mut one = shape.clone();
            one[0] = 1;
            (one, data[row..2 * row].to_vec())
        })
        .collect();
    let single: Vec<TensorIn<'_>> =
        one_row.iter().map(|(shape, data)| TensorIn { data, shape }).collect();
    let row_out = engine.run(&single).unwrap_or_else(|e| panic!("{label}: {e}"));
    let width = tract_out.len() / batch;
    assert!(
        max_abs_diff(&row_out, &tract_out[width..2 * width]) <= TOLERANCE,
        "{label}: batch of one differs"
    );

    let Some(python) = python::python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let model_path = dir.path().join("model.onnx");
    std::fs::write(&model_path, &bytes).unwrap();
    let json = serde_json::json!(
        feeds
            .iter()
            .map(|(name, shape, data)| (
                name.clone(),
                serde_json::json!({"shape": shape, "data": data})
            ))
            .collect::<serde_json::Map<_, _>>()
    );
    let inputs_path = dir.path().join("inputs.json");
    std::fs::write(&inputs_path, json.to_string()).unwrap();
    let stdout = python::run(
        &python,
        "onnx_check.py",
        &[&model_path.to_string_lossy(), &inputs_path.to_string_lossy()],
    );
    let reply: serde_json::Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    let ort_out: Vec<f32> = reply["output"]
        .as_array()
        .map(|values| values.iter().map(|v| v.as_f64().unwrap_or(f64::NAN) as f32).collect())
        .unwrap_or_default();
    let diff = max_abs_diff(&ort_out, &tract_out);
    assert!(diff <= TOLERANCE, "{label}: onnxruntime differs from tract by {diff}");
    let input_names: Vec<&str> = graph.inputs.iter().map(|input| input.name.as_str()).collect();
    assert_eq!(reply["inputs"], serde_json::json!(input_names), "{label}");
}

#[test]
fn vae_on_a_table() {
    check(&breast_cancer(), Family::Vae);
}

#[test]
fn gan_on_a_table() {
    check(&breast_cancer(), Family::Gan);
}

#[test]
fn ddpm_on_a_table() {
    check(&breast_cancer(), Family::Ddpm);
}

#[test]
fn vae_on_images() {
    check(&digits(), Family::Vae);
}

#[test]
fn gan_on_images() {
    check(&digits(), Family::Gan);
}

#[test]
fn ddpm_on_images() {
    check(&digits(), Family::Ddpm);
}

/// Every exported image network of every preset, untrained (random weights, group-norm affines
/// moved off 1 and 0), on 8×8 and on 32×32 images (whose U-Net has self-attention at 8×8).
#[test]
fn image_networks_of_every_preset_agree_across_engines() {
    for (side, size) in [(8, SizePreset::Tiny), (32, SizePreset::Tiny), (8, SizePreset::Base)] {
        let spec = DataSpec {
            width: side * side,
            n_classes: 3,
            blocks: Vec::new(),
            image: Some(ImageShape { channels: 1, height: side, width: side }),
        };
        for family in [Family::Vae, Family::Gan, Family::Ddpm, Family::Ldm] {
            let mut widths = Widths::preset(size, family, &spec);
            // Narrower than the preset (the test's run time), same structure.
            widths.channels = 8;
            widths.hidden = 32;
            widths.groups = 4;
            let graph = match family {
                Family::Vae => nets::generator(&spec, &widths, false),
                Family::Gan => nets::generator(&spec, &widths, true),
                Family::Ddpm => nets::denoiser(&spec, &widths),
                Family::Ldm => nets::ae_decoder(&spec, &widths),
            };
            let params = Params::init(&graph, "test", 5, &Device::Cpu).unwrap();
            let mut rng = models::rng::stream(6, "test/perturb");
            for var in params.vars() {
                let noise = Tensor::from_vec(
                    models::rng::normal_f32(&mut rng, var.elem_count()),
                    var.dims(),
                    &Device::Cpu,
                )
                .unwrap();
                var.set(&(var.as_tensor() + (noise * 0.1).unwrap()).unwrap()).unwrap();
            }
            check_parity(&format!("{family} {size} on {side}×{side}"), &graph, &params, 3);
        }
    }
}

/// Latent diffusion: the latent denoiser (an MLP on the latent) and the decoder, which takes
/// the standardised latent, both export and agree across candle, tract and onnxruntime.
#[test]
fn ldm_on_images() {
    let (trained, spec) = train_case(&digits(), Family::Ldm);
    let latent = trained.latent.as_ref().unwrap();
    check_parity("ldm denoiser on digits", &trained.graph, &trained.params, spec.n_classes);
    check_parity("ldm decoder on digits", &latent.decoder, &latent.decoder_params, spec.n_classes);
    // The decoder's first layer undoes the standardisation: its weight is diagonal.
    let host = latent.decoder_params.to_host().unwrap();
    let unstandardise = host.iter().find(|p| p.name == "z.unstandardise.weight").unwrap();
    let dim = unstandardise.shape[0];
    for (idx, value) in unstandardise.values.iter().enumerate() {
        assert_eq!(*value == 0.0, idx / dim != idx % dim, "entry {idx} of the diagonal layer");
    }
}
