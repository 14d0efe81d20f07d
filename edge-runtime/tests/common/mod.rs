//! Helpers the sync and hub-security tests share: opening logbooks and keys, the model rows a
//! test logbook registers.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers fail loudly; clippy.toml's allow-unwrap-in-tests covers #[test] fns only"
)]

use std::path::Path;
use std::sync::atomic::AtomicBool;

use edge_runtime::keys::SecretKey;
use edge_runtime::logbook::{Logbook, RunRecord};
use sha2::{Digest, Sha256};

pub fn key(key_file: &Path) -> SecretKey {
    SecretKey::read(key_file).unwrap_or_else(|err| panic!("{}: {err}", key_file.display()))
}

pub fn never() -> AtomicBool {
    AtomicBool::new(false)
}

pub fn open(path: &Path) -> Logbook {
    Logbook::open(path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

pub fn sorted_runs(logbook: &Logbook) -> Vec<RunRecord> {
    let mut runs = logbook.runs().unwrap();
    runs.sort_by(|a, b| (&a.id, &a.device_id).cmp(&(&b.id, &b.device_id)));
    runs
}

pub fn text(path: &Path) -> &str {
    path.to_str().unwrap_or_default()
}

pub fn model_sha(name: &str) -> String {
    hex::encode(Sha256::digest(name.as_bytes()))
}

/// A valid bundle manifest (the wheat-vae fixture's) for the model `name`: its `model_sha256`
/// is [`model_sha`] of `name`.
pub fn manifest_for(name: &str) -> String {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/bundles/wheat-vae/manifest.json");
    let mut manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    manifest["model_sha256"] = serde_json::json!(model_sha(name));
    serde_json::to_string(&manifest).unwrap()
}
