//! The reference Python (numpy, scipy, scikit-learn, onnx, onnxruntime, prdc) that tests compare
//! against. `tests/run` creates it and sets `FIELDSYNTH_PYTHON`; it also sets
//! `FIELDSYNTH_REQUIRE_PYTHON=1` so that a broken set-up fails the suite instead of skipping.
//! A plain `cargo test` without it skips the reference comparisons and says so.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The reference interpreter, or `None` (with a note) when it is not set up.
pub fn python() -> Option<PathBuf> {
    match std::env::var_os("FIELDSYNTH_PYTHON") {
        Some(path) => Some(PathBuf::from(path)),
        None if std::env::var("FIELDSYNTH_REQUIRE_PYTHON").is_ok_and(|value| value == "1") => {
            panic!("FIELDSYNTH_REQUIRE_PYTHON=1 but FIELDSYNTH_PYTHON is not set; run tests/run")
        }
        None => {
            eprintln!(
                "note: FIELDSYNTH_PYTHON is not set, skipping the reference comparison (tests/run sets it up)"
            );
            None
        }
    }
}

/// A script in `tests/python/`.
pub fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/python").join(name)
}

/// Runs a reference script and returns its standard output; a failure fails the test with the
/// script's own message.
pub fn run(python: &Path, script_name: &str, args: &[&str]) -> String {
    let output = Command::new(python)
        .arg(script(script_name))
        .args(args)
        .output()
        .unwrap_or_else(|err| panic!("cannot start {}: {err}", python.display()));
    assert!(
        output.status.success(),
        "{script_name} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}
