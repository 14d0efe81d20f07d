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

    // wine.csv writes the whole-number columns magnesium and proline as `127.0`: they are
    // generated whole; alcohol keeps its two decimals.
    let models::transform::Encoder::Tabular(encoder) = &manifest.transform else {
        panic!("wine is a table")
    };
    let decimals = |column: &str| {
        encoder.columns.iter().find_map(|encoder| match encoder {
            models::transform::ColumnEncoder::Numeric { name, decimals, .. } if name == column => {
                Some(*decimals)
            }
            _ => None,
        })
    };
    assert_eq!(
        [decimals("magnesium"), decimals("proline"), decimals("alcohol")],
        [Some(0), Some(0), Some(2)]
    );
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
        &["invalid value '1.5' for '--fraction <FRACTION>'", "(0, 1]"],
    );

    let one_class = dir.path().join("one_class.csv");
    std::fs::write(&one_class, "a,b,cultivar\n1.0,2.0,x\n1.5,2.5,x\n2.0,3.5,x\n").unwrap();
    check_error(
        &fit_args(&one_class.to_string_lossy(), &out_str, "ddpm", &[]),
        &out,
        &["one_class.csv", "label column `cultivar` has only one class (x)", "at least two"],
    );

    // Values a float holds but whose mean or variance overflows (the probe's 1e308 CSV): refused
    // naming the column, before a bundle that could not generate is written.
    let huge = dir.path().join("huge.csv");
    let mut text = String::from("a,big,cultivar\n");
    for row in 0..12 {
        text.push_str(&format!("{row}.5,{}e308,{}\n", 1.0 + 0.05 * row as f64, row % 2));
    }
    std::fs::write(&huge, text).unwrap();
    check_error(
        &fit_args(&huge.to_string_lossy(), &out_str, "vae", &["--epochs", "1"]),
        &out,
        &["column `big`", "overflows"],
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

    // An existing bundle is not replaced without --force: the library says why, the command
    // line adds which flags would change that.
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("manifest.json"), "an earlier bundle").unwrap();
    let output = synth_train(&fit_args(&wine, &out_str, "vae", &["--epochs", "1"]));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    for part in [
        "already exists; choose another bundle folder or allow replacing it",
        "choose another --out, or pass --force",
    ] {
        assert!(stderr.contains(part), "`{stderr}` should contain `{part}`");
    }
    assert_eq!(std::fs::read_to_string(out.join("manifest.json")).unwrap(), "an earlier bundle");
    let err = trainer::bundle::Staging::new(&out, false).unwrap_err().to_string();
    assert!(err.contains("already exists") && !err.contains("--"), "no flag named: {err}");
    let output = synth_train(&fit_args(&wine, &out_str, "vae", &["--epochs", "1", "--force"]));
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(out.join("model.onnx").is_file());
    // --force replaces a bundle (again, here), never a folder holding anything else.
    let output = synth_train(&fit_args(&wine, &out_str, "vae", &["--epochs", "1", "--force"]));
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let precious = dir.path().join("precious");
    std::fs::create_dir_all(precious.join("sub")).unwrap();
    std::fs::write(precious.join("thesis.txt"), "years of work").unwrap();
    let precious_str = precious.to_string_lossy();
    let output = synth_train(&fit_args(&wine, &precious_str, "vae", &["--epochs", "1", "--force"]));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("is not a bundle folder"), "{stderr}");
    assert_eq!(std::fs::read_to_string(precious.join("thesis.txt")).unwrap(), "years of work");
    assert!(precious.join("sub").is_dir() && !precious.join("model.onnx").exists());
}

/// Every numeric flag of `fit` and `study` out of its range: refused by the command line with the
/// flag and the accepted range named, no panic, nothing written; the smallest valid values run.
#[test]
fn numeric_flags_out_of_range_are_refused_naming_the_flag_and_the_range() {
    let dir = tempfile::tempdir().unwrap();
    let wine = fixture("wine.csv");
    let wine = wine.to_string_lossy();
    let out = dir.path().join("bundle");
    let out_str = out.to_string_lossy();
    let huge = "1000000000000";
    let fit_cases: &[(&[&str], &str, &str)] = &[
        (&["--epochs", "0"], "--epochs", "1 to 1000000"),
        (&["--epochs", huge], "--epochs", "1 to 1000000"),
        (&["--epochs", "1e12"], "--epochs", "1 to 1000000"),
        (&["--fraction", "0"], "--fraction", "(0, 1]"),
        (&["--fraction", "NaN"], "--fraction", "(0, 1]"),
        (&["--fraction", "1e308"], "--fraction", "(0, 1]"),
        (&["--holdout", "1"], "--holdout", "[0, 1)"),
        (&["--holdout", "-0.2"], "--holdout", "[0, 1)"),
        (&["--image-shape", "4294967296x4294967296x3"], "--image-shape", "1 to 4096"),
    ];
    for (extra, flag, range) in fit_cases {
        // `--holdout -0.2` would read as a flag: such values are joined to their flag.
        let args = join_negative(&fit_args(&wine, &out_str, "vae", extra));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        check_error(&args, &out, &[&format!("for '{flag} <"), range]);
    }

    let study_out = dir.path().join("study");
    let study_str = study_out.to_string_lossy();
    let study = ["study", "--data", &wine, "--label", "cultivar", "--out", &study_str, "--quiet"];
    let many_fractions = vec!["0.5"; 33].join(",");
    let study_cases: &[(&[&str], &str, &str)] = &[
        (&["--jobs", "0"], "--jobs", "1 to 256"),
        (&["--jobs", huge], "--jobs", "1 to 256"),
        (&["--epochs", huge], "--epochs", "1 to 1000000"),
        (&["--bootstrap", huge], "--bootstrap", "1 to 100000"),
        (&["--bootstrap", "0"], "--bootstrap", "1 to 100000"),
        (&["--n", huge], "--n", "1 to 10000000"),
        (&["--seeds", "0"], "--seeds", "1 to 1000"),
        (&["--seeds", huge], "--seeds", "1 to 1000"),
        (&["--fractions", "1,0"], "--fractions", "(0, 1]"),
        (&["--fractions", &many_fractions], "--fractions", "at most 32"),
        (&["--holdout", "1.5"], "--holdout", "(0, 1)"),
    ];
    for (extra, flag, range) in study_cases {
        let args: Vec<&str> = study.iter().chain(extra.iter()).copied().collect();
        check_error(&args, &study_out, &[flag, range]);
    }

    // The smallest valid values train and write a bundle.
    let output = synth_train(&fit_args(&wine, &out_str, "vae", &["--epochs", "1"]));
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(out.join("model.onnx").is_file());
}

/// A library caller of `fit` and of `study` gets the same one check of the epochs as each other
/// (the command line refuses such values before either runs), before anything is written.
#[test]
fn fit_and_study_check_their_epochs_with_one_check() {
    use trainer::fit::{FitSettings, MAX_EPOCHS, check_epochs};
    use trainer::study::{Budget, StudySettings};

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("bundle");
    let study_out = dir.path().join("study");
    assert!(check_epochs(1).is_ok() && check_epochs(MAX_EPOCHS).is_ok());
    for epochs in [0, MAX_EPOCHS + 1, usize::MAX] {
        let expected = check_epochs(epochs).unwrap_err().to_string();
        assert!(expected.contains(&format!("epochs is {epochs}; expected 1 to 1000000")));
        let fit = FitSettings {
            data: fixture("wine.csv"),
            data_options: edge_runtime::data::DataOptions {
                label: Some("cultivar".to_owned()),
                ..Default::default()
            },
            family: Family::Vae,
            size: models::manifest::SizePreset::Tiny,
            split: models::SplitSpec::new(0, 0.2, 1.0).unwrap(),
            train_seed: 0,
            epochs: Some(epochs),
            device: trainer::device::DeviceChoice::Cpu,
            out: out.clone(),
            replace: false,
            sign_key: None,
        };
        let err = trainer::fit::fit(&fit, &mut trainer::fit::Quiet).unwrap_err();
        assert_eq!(err.to_string(), expected);
        let study = StudySettings {
            datasets: trainer::study::default_datasets(&fixture(""), Budget::Quick),
            families: vec![Family::Vae],
            fractions: vec![1.0],
            seeds: 1,
            out: study_out.clone(),
            device: trainer::device::DeviceChoice::Cpu,
            holdout: 0.2,
            budget: Budget::Quick,
            size: None,
            n_synthetic: None,
            bootstrap: 10,
            epochs: Some(epochs),
            trainer: None,
            jobs: 1,
        };
        let err = trainer::study::run_study(&study, &mut QuietStudy).unwrap_err();
        assert_eq!(err.to_string(), expected);
        assert!(!out.exists() && !study_out.exists());
    }
}

struct QuietStudy;
impl trainer::study::StudyObserver for QuietStudy {}

/// `["--holdout", "-0.2"]` as `["--holdout=-0.2"]`, so clap reads the value as a value.
fn join_negative(args: &[&str]) -> Vec<String> {
    let mut joined: Vec<String> = Vec::new();
    for arg in args {
        match joined.last_mut() {
            Some(last) if arg.starts_with('-') && arg.parse::<f64>().is_ok() => {
                last.push('=');
                last.push_str(arg);
            }
            _ => joined.push((*arg).to_owned()),
        }
    }
    joined
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

/// SIGTERM while a study cell is being evaluated: the cell's run is failed with the signal, the
/// study exits 143, and nothing claims the cell is done.
#[cfg(unix)]
#[test]
fn sigterm_during_a_study_cell_fails_its_run() {
    use edge_runtime::logbook::{Logbook, RunStatus};
    use std::time::{Duration, Instant};

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("study");
    let db = out.join("study.sqlite");
    // 20,000 bootstrap replicates over 5,000 samples: an evaluation of many seconds.
    let child = Command::new(env!("CARGO_BIN_EXE_synth-train"))
        .args(["study", "--data"])
        .arg(fixture("wine.csv"))
        .args(["--label", "cultivar", "--families", "vae", "--fractions", "1", "--epochs", "1"])
        .args(["--n", "5000", "--bootstrap", "20000", "--jobs", "1", "--quiet", "--out"])
        .arg(&out)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let mut running = None;
    while running.is_none() && started.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(50));
        if db.exists()
            && let Ok(runs) = Logbook::open(&db).and_then(|logbook| logbook.runs())
        {
            running = runs.into_iter().find(|run| run.status == RunStatus::Running);
        }
    }
    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let running = running.unwrap_or_else(|| panic!("no cell run appeared; stderr: {stderr}"));
    assert_eq!(output.status.code(), Some(143), "{stderr}");
    let run = Logbook::open(&db).unwrap().find_run(&running.id).unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Failed, "{run:?}");
    assert!(run.message.as_deref().unwrap_or_default().contains("SIGTERM"), "{run:?}");
}
