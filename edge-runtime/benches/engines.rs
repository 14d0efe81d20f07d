//! One graph evaluation of a bundle's model by each engine, at batch 1 and batch 256: the
//! engine alone (no noise drawing, no decoding), to compare with Python's onnxruntime on the same
//! `model.onnx` (`tests/bench-engines` runs both side by side).
//!
//!     cargo bench -p edge-runtime --bench engines [--features ort] -- BUNDLE_DIR [THREADS]

use std::time::Instant;

use edge_runtime::bundle::Bundle;
use edge_runtime::engine::{self, EngineKind, TensorIn};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|arg| !arg.starts_with("--")).collect();
    let Some(dir) = args.first() else {
        eprintln!("usage: engines BUNDLE_DIR [THREADS]");
        std::process::exit(2);
    };
    let threads: usize = args.get(1).and_then(|t| t.parse().ok()).unwrap_or(2);
    let bundle = match Bundle::open(std::path::Path::new(dir)) {
        Ok(bundle) => bundle,
        Err(err) => {
            eprintln!("{err}");
            std::process::exit(1);
        }
    };
    let mut kinds = vec![EngineKind::Tract];
    if cfg!(feature = "ort") && std::env::var_os("ORT_DYLIB_PATH").is_some() {
        kinds.push(EngineKind::ORT);
    }
    let inputs = &bundle.manifest.graph.inputs;
    println!("{} ({}), {threads} thread(s):", dir, bundle.manifest.architecture);
    for kind in kinds {
        let mut engine = match engine::load(&bundle, kind, threads) {
            Ok(engine) => engine,
            Err(err) => {
                eprintln!("{kind}: {err}");
                continue;
            }
        };
        for (batch, runs) in [(1_usize, 20_000_usize), (256, 2_000)] {
            let data: Vec<(Vec<usize>, Vec<f32>)> = inputs
                .iter()
                .map(|input| {
                    let mut shape = vec![batch];
                    shape.extend(input.shape.iter().skip(1).map(|dim| dim.unwrap_or(1)));
                    let n: usize = shape.iter().product();
                    (shape, models::rng::normal_f32(&mut models::rng::stream(1, &input.name), n))
                })
                .collect();
            let feeds: Vec<TensorIn<'_>> =
                data.iter().map(|(shape, values)| TensorIn { data: values, shape }).collect();
            for _ in 0..runs / 10 {
                let _ = engine.run(&feeds);
            }
            let mut times = Vec::with_capacity(runs);
            let started = Instant::now();
            for _ in 0..runs {
                let run = Instant::now();
                if let Err(err) = engine.run(&feeds) {
                    eprintln!("{kind}: {err}");
                    std::process::exit(1);
                }
                times.push(run.elapsed().as_secs_f64());
            }
            let total = started.elapsed().as_secs_f64();
            times.sort_by(f64::total_cmp);
            println!(
                "  {kind:<5} batch {batch:>3}: {:>10.0} samples/s, p50 {:>8.2} µs",
                (batch * runs) as f64 / total,
                times[runs / 2] * 1e6
            );
        }
    }
}
