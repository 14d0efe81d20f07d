//! `synth-edge generate` on the fixture bundles: well-formed output, class control,
//! reproducibility, engine agreement, and clear errors that leave nothing behind.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers fail loudly too; clippy.toml's allow-unwrap-in-tests covers #[test] fns only"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use edge_runtime::bundle::Bundle;
use edge_runtime::engine::EngineKind;
use edge_runtime::sampler::{ClassChoice, Generator, SampleSettings, SamplerKind};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures").join(name)
}

fn bundle(name: &str) -> PathBuf {
    fixture("bundles").join(name)
}

const TABULAR_BUNDLES: [&str; 3] = ["wheat-vae", "wheat-gan", "wheat-ddpm"];

fn synth_edge(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_synth-edge"))
        .args(args)
        .output()
        .unwrap_or_else(|err| panic!("cannot run synth-edge: {err}"))
}

fn generate(model: &Path, out: &Path, extra: &[&str]) -> String {
    let mut args = vec![
        "generate",
        "--model",
        model.to_str().unwrap_or_default(),
        "--out",
        out.to_str().unwrap_or_default(),
    ];
    args.extend_from_slice(extra);
    let output = synth_edge(&args);
    assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
    std::fs::read_to_string(out).unwrap_or_default()
}

fn rows(text: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header =
        reader.headers().map(|h| h.iter().map(str::to_owned).collect()).unwrap_or_default();
    let rows = reader
        .records()
        .map(|r| r.map(|r| r.iter().map(str::to_owned).collect()).unwrap_or_default())
        .collect();
    (header, rows)
}

/// The real wheat trial: header, and the values each categorical column may take.
fn wheat_vocabulary() -> (Vec<String>, BTreeMap<String, BTreeSet<String>>) {
    let text = std::fs::read_to_string(fixture("wheat_splitsplit.csv")).unwrap_or_default();
    let (header, rows) = rows(&text);
    let mut vocabulary = BTreeMap::new();
    for name in ["row", "inoc", "trt", "gen", "dry", "dust", "block"] {
        let col =
            header.iter().position(|h| h == name).unwrap_or_else(|| panic!("wheat has {name}"));
        vocabulary.insert(name.to_owned(), rows.iter().map(|row| row[col].clone()).collect());
    }
    (header, vocabulary)
}

#[test]
fn tabular_output_has_the_original_header_known_categories_and_no_nan() {
    let (header, vocabulary) = wheat_vocabulary();
    let dir = tempfile::tempdir().unwrap();
    for name in TABULAR_BUNDLES {
        let out = dir.path().join(format!("{name}.csv"));
        let text = generate(&bundle(name), &out, &["--n", "200", "--seed", "1"]);
        let (got_header, rows) = rows(&text);
        assert_eq!(got_header, header, "{name}");
        assert_eq!(rows.len(), 200, "{name}");
        for row in &rows {
            for (column, cell) in header.iter().zip(row) {
                match vocabulary.get(column) {
                    Some(known) => assert!(
                        known.contains(cell),
                        "{name}: `{column}` = `{cell}` is not a real category"
                    ),
                    None => {
                        let value: f64 = cell.parse().unwrap_or_else(|_| {
                            panic!("{name}: `{column}` = `{cell}` is not a number")
                        });
                        assert!(value.is_finite(), "{name}: {column} = {cell}");
                        // Integer columns of the trial stay integers.
                        assert!(
                            !cell.contains('.'),
                            "{name}: `{column}` = `{cell}` should be an integer like the real column"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn balanced_single_class_and_proportional_labels() {
    let dir = tempfile::tempdir().unwrap();
    let count = |text: &str| {
        let (header, rows) = rows(text);
        let col = header.iter().position(|h| h == "gen").unwrap_or_default();
        let mut counts = BTreeMap::new();
        for row in rows {
            *counts.entry(row[col].clone()).or_insert(0) += 1;
        }
        counts
    };
    for name in TABULAR_BUNDLES {
        let balanced = count(&generate(
            &bundle(name),
            &dir.path().join("b.csv"),
            &["--n", "60", "--balanced"],
        ));
        assert_eq!(
            balanced,
            BTreeMap::from([("Marquis".to_owned(), 30), ("Mindum".to_owned(), 30)]),
            "{name}"
        );
        let single = count(&generate(
            &bundle(name),
            &dir.path().join("s.csv"),
            &["--n", "25", "--class", "Mindum"],
        ));
        assert_eq!(single, BTreeMap::from([("Mindum".to_owned(), 25)]), "{name}");
        // The train part is 64 + 64: proportional is even too, by largest remainder 21 + 20.
        let proportional =
            count(&generate(&bundle(name), &dir.path().join("p.csv"), &["--n", "41"]));
        assert_eq!(
            proportional,
            BTreeMap::from([("Marquis".to_owned(), 21), ("Mindum".to_owned(), 20)]),
            "{name}"
        );
    }
}

#[test]
fn the_same_seed_gives_the_same_samples_whatever_the_batch() {
    let dir = tempfile::tempdir().unwrap();
    for name in TABULAR_BUNDLES {
        let a = generate(&bundle(name), &dir.path().join("a.csv"), &["--n", "50", "--seed", "9"]);
        let b = generate(
            &bundle(name),
            &dir.path().join("b.csv"),
            &["--n", "50", "--seed", "9", "--batch", "7", "--threads", "1"],
        );
        let c = generate(&bundle(name), &dir.path().join("c.csv"), &["--n", "50", "--seed", "10"]);
        assert_eq!(a, b, "{name}: same seed, same bytes, whatever the batch and threads");
        assert_ne!(a, c, "{name}: another seed, other samples");
    }
}

#[test]
fn diffusion_samplers_and_step_counts() {
    let dir = tempfile::tempdir().unwrap();
    let model = bundle("wheat-ddpm");
    let ddim = generate(
        &model,
        &dir.path().join("ddim.csv"),
        &["--n", "20", "--sampler", "ddim", "--steps", "10"],
    );
    let ddpm = generate(&model, &dir.path().join("ddpm.csv"), &["--n", "20", "--steps", "10"]);
    assert_eq!(rows(&ddim).1.len(), 20);
    assert_ne!(ddim, ddpm);
    let output = synth_edge(&[
        "generate",
        "--model",
        model.to_str().unwrap_or_default(),
        "--n",
        "5",
        "--steps",
        "1000",
        "--out",
        dir.path().join("x.csv").to_str().unwrap_or_default(),
    ]);
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("at most 200"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn images_are_written_as_pngs_in_class_folders_with_a_grid() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("digits");
    generate(&bundle("digits-vae"), &out, &["--n", "30", "--balanced"]);
    let mut n_images = 0;
    for class in 0..10 {
        let folder = out.join(class.to_string());
        let files: Vec<_> = std::fs::read_dir(&folder)
            .unwrap_or_else(|e| panic!("{}: {e}", folder.display()))
            .flatten()
            .collect();
        assert_eq!(files.len(), 3, "class {class}");
        for file in files {
            let decoder = png::Decoder::new(std::io::BufReader::new(
                std::fs::File::open(file.path()).unwrap(),
            ));
            let info = decoder.read_info().unwrap().info().clone();
            assert_eq!(
                (info.width, info.height, info.color_type),
                (8, 8, png::ColorType::Grayscale)
            );
            n_images += 1;
        }
    }
    assert_eq!(n_images, 30);
    assert!(out.join("grid.png").is_file());
    // The same samples as a pixel CSV, like digits.csv.
    let text = generate(&bundle("digits-vae"), &dir.path().join("digits.csv"), &["--n", "5"]);
    let (header, rows) = rows(&text);
    assert_eq!(header.len(), 65);
    assert_eq!(header[0], "px_0_0");
    assert!(
        rows.iter()
            .flatten()
            .take(64)
            .all(|cell| cell.parse::<f64>().is_ok_and(|v| (0.0..=16.0).contains(&v)))
    );
}

/// Whether ONNX Runtime can be loaded (ORT_DYLIB_PATH); tests/run always sets it, so a missing
/// library there is a failure, not a skip.
#[cfg(feature = "ort")]
fn ort_library_available(check: &str) -> bool {
    if std::env::var_os("ORT_DYLIB_PATH").is_some() {
        return true;
    }
    assert!(std::env::var("FIELDSYNTH_REQUIRE_PYTHON").is_err(), "tests/run sets ORT_DYLIB_PATH");
    eprintln!("note: ORT_DYLIB_PATH is not set, skipping {check}");
    false
}

/// Same seed, same samples from tract and ONNX Runtime (in the encoded space, within 1e-4).
#[cfg(feature = "ort")]
#[test]
fn tract_and_ort_agree() {
    if !ort_library_available("tract/ort agreement") {
        return;
    }
    for name in ["wheat-vae", "wheat-gan", "wheat-ddpm", "digits-vae", "digits-ldm"] {
        let opened = Bundle::open(&bundle(name)).unwrap();
        let settings = SampleSettings {
            n: 64,
            seed: 4,
            steps: Some(20),
            batch: 16,
            ..SampleSettings::default()
        };
        let mut samples = Vec::new();
        for engine in [EngineKind::Tract, EngineKind::ORT] {
            let mut generator = Generator::new(&opened, engine, 1)
                .unwrap_or_else(|e| panic!("{name} {engine}: {e}"));
            samples.push(generator.generate(&settings).unwrap());
        }
        assert_eq!(samples[0].labels, samples[1].labels);
        let diff = samples[0]
            .x
            .iter()
            .zip(&samples[1].x)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0_f32, f32::max);
        assert!(diff <= 1e-4, "{name}: tract and ort differ by {diff}");
    }
}

/// The CPU-only ONNX Runtime of tests/run has neither CUDA nor TensorRT: asking for them is a
/// clear error naming the provider and nothing is written (never a silent CPU fall-back).
#[cfg(feature = "ort")]
#[test]
fn gpu_providers_missing_from_the_library_are_refused() {
    if !ort_library_available("the provider check") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let model = bundle("wheat-gan");
    for (engine, provider) in [("ort-cuda", "CUDA"), ("ort-tensorrt", "TensorRT")] {
        let out = dir.path().join(format!("{engine}.csv"));
        let output = synth_edge(&[
            "generate",
            "--model",
            model.to_str().unwrap_or_default(),
            "--n",
            "4",
            "--engine",
            engine,
            "--out",
            out.to_str().unwrap_or_default(),
        ]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{engine} ran on a CPU-only ONNX Runtime");
        assert!(stderr.contains(&format!("{provider} execution provider")), "{engine}: {stderr}");
        assert!(!out.exists(), "{engine}: output written despite the error");
    }
}

/// `guidance` overrides the manifest's scale: the bundle's own scale gives the default samples,
/// another scale other samples, the same seed the same bytes; a scale for a bundle not trained
/// for guidance, or outside 0..=20, is refused.
#[test]
fn a_guidance_scale_overrides_the_bundles_own() {
    let ldm = Bundle::open(&bundle("digits-ldm")).unwrap();
    assert_eq!(ldm.manifest.guidance, Some(1.0));
    let draw = |bundle: &Bundle, guidance: Option<f64>| {
        let mut generator = Generator::new(bundle, EngineKind::Tract, 1).unwrap();
        let settings = SampleSettings {
            n: 12,
            seed: 3,
            steps: Some(5),
            sampler: SamplerKind::Ddim,
            guidance,
            ..SampleSettings::default()
        };
        generator.generate(&settings).map(|samples| samples.x)
    };
    let default = draw(&ldm, None).unwrap();
    assert_eq!(draw(&ldm, Some(1.0)).unwrap(), default, "the manifest's own scale");
    let stronger = draw(&ldm, Some(3.0)).unwrap();
    assert_ne!(stronger, default);
    assert_eq!(draw(&ldm, Some(3.0)).unwrap(), stronger, "same seed, same samples");
    assert_ne!(draw(&ldm, Some(0.0)).unwrap(), default, "0: the conditional prediction alone");
    let err = draw(&ldm, Some(20.5)).unwrap_err().to_string();
    assert!(err.contains("expected 0 to 20"), "{err}");

    let ddpm = Bundle::open(&bundle("wheat-ddpm")).unwrap();
    assert_eq!(ddpm.manifest.guidance, None);
    let err = draw(&ddpm, Some(2.0)).unwrap_err().to_string();
    assert!(err.contains("not trained for classifier-free guidance"), "{err}");
    assert_eq!(draw(&ddpm, Some(0.0)).unwrap(), draw(&ddpm, None).unwrap());
}

#[test]
fn the_library_reproduces_the_binary() {
    let opened = Bundle::open(&bundle("wheat-gan")).unwrap();
    let mut generator = Generator::new(&opened, EngineKind::Tract, 1).unwrap();
    let settings = SampleSettings {
        n: 10,
        seed: 2,
        classes: ClassChoice::Balanced,
        steps: None,
        sampler: SamplerKind::Ddpm,
        batch: 3,
        guidance: None,
    };
    let samples = generator.generate(&settings).unwrap();
    let bytes = edge_runtime::output::csv_bytes(&opened.manifest, &samples).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let encoded_path = dir.path().join("g.json");
    let text = generate(
        &bundle("wheat-gan"),
        &dir.path().join("g.csv"),
        &[
            "--n",
            "10",
            "--seed",
            "2",
            "--balanced",
            "--encoded-out",
            encoded_path.to_str().unwrap_or_default(),
        ],
    );
    assert_eq!(String::from_utf8_lossy(&bytes), text);

    // --encoded-out holds the same samples before decoding: same labels, same f32 values.
    let encoded: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&encoded_path).unwrap_or_default()).unwrap();
    assert_eq!(encoded["width"].as_u64(), Some(samples.width as u64));
    let labels: Vec<u64> = encoded["labels"]
        .as_array()
        .map(|a| a.iter().filter_map(serde_json::Value::as_u64).collect())
        .unwrap_or_default();
    assert_eq!(labels, samples.labels.iter().map(|&l| u64::from(l)).collect::<Vec<_>>());
    let values: Vec<f32> = encoded["rows"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .flat_map(|row| row.as_array().cloned().unwrap_or_default())
                .filter_map(|v| v.as_f64())
                .map(|v| v as f32)
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(values, samples.x);
}

/// A copy of a fixture bundle, altered by `tamper`, must be refused with a message containing
/// every part of `expected`, and no output file may appear.
fn check_refused(tamper: impl Fn(&Path), extra: &[&str], expected: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("bundle");
    std::fs::create_dir(&copy).unwrap();
    for file in ["model.onnx", "manifest.json", "seal.json"] {
        std::fs::copy(bundle("wheat-vae").join(file), copy.join(file)).unwrap();
    }
    tamper(&copy);
    // Sealed again, so that the check under test is what refuses (tests/bundle_trust.rs covers
    // the seal); a copy without its model keeps the old seal, which lists the model.
    if copy.join("model.onnx").exists() {
        edge_runtime::bundle::seal(&copy, None).unwrap();
    }
    let out = dir.path().join("out.csv");
    let mut args = vec![
        "generate",
        "--model",
        copy.to_str().unwrap_or_default(),
        "--out",
        out.to_str().unwrap_or_default(),
    ];
    args.extend_from_slice(extra);
    let output = synth_edge(&args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "expected a refusal: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    for part in expected {
        assert!(stderr.contains(part), "`{stderr}` should contain `{part}`");
    }
    assert!(!out.exists(), "no output may be written");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert_eq!(leftovers.len(), 1, "only the bundle copy remains: {leftovers:?}");
}

fn edit_manifest(dir: &Path, edit: impl Fn(&mut serde_json::Value)) {
    let path = dir.join("manifest.json");
    let mut value: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_default())
            .unwrap_or_default();
    edit(&mut value);
    std::fs::write(&path, value.to_string()).unwrap();
}

#[test]
fn tampered_or_broken_bundles_are_refused() {
    let n = ["--n", "10"];
    check_refused(
        |dir| std::fs::remove_file(dir.join("model.onnx")).unwrap_or_default(),
        &n,
        &["model.onnx", "is listed in the bundle's seal but missing"],
    );
    check_refused(
        |dir| {
            let path = dir.join("model.onnx");
            let mut bytes = std::fs::read(&path).unwrap_or_default();
            let middle = bytes.len() / 2;
            bytes[middle] ^= 0x01;
            std::fs::write(&path, bytes).unwrap_or_default();
        },
        &n,
        &["model.onnx", "SHA-256", "the manifest expects", "refusing to load"],
    );
    check_refused(
        |dir| {
            let path = dir.join("manifest.json");
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            std::fs::write(&path, &text[..text.len() / 2]).unwrap_or_default();
        },
        &n,
        &["manifest.json", "not valid JSON"],
    );
    check_refused(
        |dir| edit_manifest(dir, |m| m["family"] = "flow".into()),
        &n,
        &["manifest.json", "unknown variant `flow`", "vae"],
    );
    check_refused(
        |dir| edit_manifest(dir, |m| m["format_version"] = 99.into()),
        &n,
        &["manifest.json", "format version 99 is newer"],
    );
    check_refused(
        |dir| edit_manifest(dir, |m| m["graph"]["inputs"][0]["name"] = "noise".into()),
        &n,
        &[
            "model.onnx",
            "graph inputs are (z[N, 16], y[N, 2])",
            "manifest expects (noise[N, 16], y[N, 2])",
        ],
    );
    check_refused(
        |_| {},
        &["--n", "0"],
        &["invalid value '0' for '--n <N>'", "from 1 to 10000000"],
    );
    check_refused(
        |_| {},
        &["--n", "5", "--class", "Spelt"],
        &["unknown class `Spelt`", "Marquis, Mindum"],
    );
}
