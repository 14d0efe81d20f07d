//! `synth-train fit` as a user meets it: a bundle that the edge can open, byte-identical models
//! for the same seed, and clear errors (with no half-written bundle) for bad input.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers fail loudly too; clippy.toml's allow-unwrap-in-tests covers #[test] fns only"
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use models::manifest::{Family, Manifest};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures").join(name)
}

fn synth_train(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_synth-train"))
        .args(args)
        .output()
        .unwrap_or_else(|err| panic!("cannot run synth-train: {err}"))
}

fn fit_args<'a>(data: &'a str, out: &'a str, family: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "fit", "--data", data, "--label", "cultivar", "--family", family, "--out", out, "--quiet",
    ];
    args.extend_from_slice(extra);
    args
}

/// Runs a failing command and checks its message and that nothing was left behind.
fn check_error(args: &[&str], out: &Path, expected: &[&str]) {
    let output = synth_train(args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "expected failure for {args:?}");
    for part in expected {
        assert!(stderr.contains(part), "stderr `{stderr}` should contain `{part}`");
    }
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!out.exists(), "{} must not exist after a failed fit", out.display());
    if let Some(parent) = out.parent() {
        let leftovers: Vec<_> = std::fs::read_dir(parent)
            .map(|entries| {
                entries
                    .flatten()
                    .map(|entry| entry.file_name())
                    .filter(|name| name.to_string_lossy().contains("staging"))
                    .collect()
            })
            .unwrap_or_default();
        assert!(leftovers.is_empty(), "staging folders left behind: {leftovers:?}");
    }
}

#[test]
fn the_same_seed_gives_byte_identical_models_and_a_complete_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let wine = fixture("wine.csv");
    let wine = wine.to_string_lossy();
    let mut models = Vec::new();
    for (name, seed) in [("a", "5"), ("b", "5"), ("c", "6")] {
        let out = dir.path().join(name);
        let out = out.to_string_lossy();
        let output = synth_train(&fit_args(
            &wine,
            &out,
            "gan",
            &["--epochs", "3", "--seed", seed, "--fraction", "0.5"],
        ));
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        models.push(std::fs::read(dir.path().join(name).join("model.onnx")).unwrap());
    }
    assert_eq!(models[0], models[1], "same seed, same bytes");
    assert_ne!(models[0], models[2], "another seed, another model");

    // The convolutional path (parallel im2col, batched GEMM) is just as deterministic.
    let digits = fixture("digits.csv");
    let mut conv_models = Vec::new();
    for name in ["d1", "d2"] {
        let out = dir.path().join(name);
        let output = synth_train(&[
            "fit",
            "--data",
            &digits.to_string_lossy(),
            "--family",
            "ddpm",
            "--epochs",
            "1",
            "--fraction",
            "0.2",
            "--seed",
            "4",
            "--quiet",
            "--out",
            &out.to_string_lossy(),
        ]);
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        conv_models.push(std::fs::read(out.join("model.onnx")).unwrap());
    }
    assert_eq!(conv_models[0], conv_models[1], "same seed, same bytes for the image denoiser");

    let text = std::fs::read_to_string(dir.path().join("a/manifest.json")).unwrap();
    let manifest = Manifest::from_json(&text, "manifest.json").unwrap();
    assert_eq!(manifest.family, Family::Gan);
    assert_eq!(manifest.schema.classes, ["cultivar_1", "cultivar_2", "cultivar_3"]);
    assert_eq!(manifest.provenance.split.seed, 5);
    assert_eq!(manifest.provenance.split.fraction, 0.5);
    assert_eq!(manifest.provenance.epochs, 3);
    // 178 rows, hold-out 0.2 per class → 12 + 14 + 10 = 36 held out; half of 47, 57, 38 → 24 + 29 + 19.
    assert_eq!((manifest.provenance.n_holdout, manifest.provenance.n_train), (36, 72));
    assert!(dir.path().join("a/weights.safetensors").is_file());
    let bundle = edge_runtime::bundle::Bundle::open(&dir.path().join("a")).unwrap();
    assert_eq!(bundle.manifest, manifest);
}

#[test]
fn bad_input_is_refused_before_training() {
    let dir = tempfile::tempdir().unwrap();
    let wine = fixture("wine.csv");
    let wine = wine.to_string_lossy();
    let out = dir.path().join("bundle");
    let out_str = out.to_string_lossy();

    check_error(
        &fit_args(&wine, &out_str, "flow", &[]),
        &out,
        &["invalid value 'flow' for '--family <FAMILY>'", "expected one of vae, gan, ddpm"],
    );
    check_error(
        &fit_args(&wine, &out_str, "vae", &["--device", "cuda"]),
        &out,
        &["built without CUDA support", "--features cuda"],
    );
    check_error(
        &fit_args(&wine, &out_str, "vae", &["--fraction", "1.5"]),
        &out,
        &["invalid scarcity fraction 1.5", "(0, 1]"],
    );

    let one_class = dir.path().join("one_class.csv");
    std::fs::write(&one_class, "a,b,cultivar\n1.0,2.0,x\n1.5,2.5,x\n2.0,3.5,x\n").unwrap();
    check_error(
        &fit_args(&one_class.to_string_lossy(), &out_str, "ddpm", &[]),
        &out,
        &["one_class.csv", "label column `cultivar` has only one class (x)", "at least two"],
    );

    // An --out whose parent cannot be created (a file stands where a folder should be).
    let blocker = dir.path().join("blocker");
    std::fs::write(&blocker, "not a folder").unwrap();
    let unwritable = blocker.join("bundle");
    check_error(
        &fit_args(&wine, &unwritable.to_string_lossy(), "vae", &[]),
        &unwritable,
        &["blocker"],
    );

    // An existing bundle is not replaced without --force.
    std::fs::create_dir(&out).unwrap();
    let output = synth_train(&fit_args(&wine, &out_str, "vae", &["--epochs", "1"]));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("already exists"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let output = synth_train(&fit_args(&wine, &out_str, "vae", &["--epochs", "1", "--force"]));
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(out.join("model.onnx").is_file());
}

#[test]
fn a_read_only_folder_fails_fast() {
    let dir = tempfile::tempdir().unwrap();
    let locked = dir.path().join("locked");
    std::fs::create_dir(&locked).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o555)).unwrap();
    // Root ignores permission bits; this check only means something for other users.
    if std::fs::write(locked.join("probe"), "x").is_ok() {
        eprintln!(
            "note: running as root, a read-only folder is writable; checked with a file in the way instead"
        );
        return;
    }
    let out = locked.join("bundle");
    let wine = fixture("wine.csv");
    check_error(
        &fit_args(&wine.to_string_lossy(), &out.to_string_lossy(), "vae", &[]),
        &out,
        &["cannot write a bundle here"],
    );
}
