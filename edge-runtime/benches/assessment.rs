//! The k-NN figures at scale: precision, recall, density, coverage, DCR, NNDR and the membership
//! attack on 10,000 real train rows, 2,500 real hold-out rows and 10,000 synthetic rows of 64
//! features, timed with and without bootstrap intervals, with the process's peak memory.
//!
//!     cargo bench -p edge-runtime --bench assessment -- [DATA.bin]
//!
//! With a path, the three matrices (row-major little-endian f32: train, hold-out, synthetic) are
//! also written there so that `tests/bench-assessment` can time the reference implementations
//! (prdc and scikit-learn) on exactly the same numbers.

use std::time::Instant;

use edge_runtime::memory::peak_rss_mb;
use edge_runtime::metrics::knn::Rows;
use edge_runtime::metrics::neighbours::neighbour_metrics;

const N_TRAIN: usize = 10_000;
const N_HOLDOUT: usize = 2_500;
const N_SYNTHETIC: usize = 10_000;
const DIM: usize = 64;

fn main() {
    let mut rng = models::rng::stream(2024, "bench/assessment");
    // Real rows from a correlated Gaussian; synthetic rows from a slightly shifted, wider one.
    let mixing: Vec<f32> = models::rng::normal_f32(&mut rng, DIM * DIM)
        .iter()
        .map(|x| x / (DIM as f32).sqrt())
        .collect();
    let mut draw = |n: usize, shift: f32, scale: f32| -> Vec<f32> {
        let base = models::rng::normal_f32(&mut rng, n * DIM);
        let mut out = vec![0.0_f32; n * DIM];
        for row in 0..n {
            for col in 0..DIM {
                let mixed: f32 =
                    (0..DIM).map(|k| base[row * DIM + k] * mixing[k * DIM + col]).sum();
                out[row * DIM + col] = scale * mixed + shift;
            }
        }
        out
    };
    let train = draw(N_TRAIN, 0.0, 1.0);
    let holdout = draw(N_HOLDOUT, 0.0, 1.0);
    let synthetic = draw(N_SYNTHETIC, 0.05, 1.1);
    if let Some(path) = std::env::args().skip(1).find(|arg| !arg.starts_with('-')) {
        let bytes: Vec<u8> =
            train.iter().chain(&holdout).chain(&synthetic).flat_map(|x| x.to_le_bytes()).collect();
        if let Err(err) = std::fs::write(&path, bytes) {
            eprintln!("cannot write {path}: {err}");
            std::process::exit(1);
        }
    }
    let before = peak_rss_mb().unwrap_or(f64::NAN);
    let (train, holdout, synthetic) =
        (Rows::new(&train, DIM), Rows::new(&holdout, DIM), Rows::new(&synthetic, DIM));
    let threads = rayon::current_num_threads();
    // One warm-up pass (thread pool, page faults), then the median of three timed runs each.
    let figures = match neighbour_metrics(train, holdout, synthetic, 5, 0, 0) {
        Ok(figures) => figures,
        Err(err) => {
            eprintln!("error: {err}");
            std::process::exit(1);
        }
    };
    let median_seconds = |replicates: usize| {
        let mut times: Vec<f64> = (0..3)
            .map(|_| {
                let started = Instant::now();
                let _ = neighbour_metrics(train, holdout, synthetic, 5, 0, replicates);
                started.elapsed().as_secs_f64()
            })
            .collect();
        times.sort_by(f64::total_cmp);
        times[1]
    };
    let point_seconds = median_seconds(0);
    let interval_seconds = median_seconds(200);
    let peak = peak_rss_mb().unwrap_or(f64::NAN);
    println!(
        "fieldsynth k-NN figures, {N_TRAIN} train / {N_HOLDOUT} hold-out / {N_SYNTHETIC} synthetic x {DIM}, {threads} threads:"
    );
    println!("  point estimates:           {point_seconds:.3} s (median of 3 after a warm-up)");
    println!("  with 200-replicate intervals: {interval_seconds:.3} s");
    println!("  peak resident memory:      {peak:.1} MiB (data and start-up: {before:.1} MiB)");
    for metric in figures {
        println!("  {:<22} {:.6}", metric.name, metric.value);
    }
}
