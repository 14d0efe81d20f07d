//! Writing a bundle folder (`model.onnx`, `manifest.json`, `weights.safetensors`) so that it
//! appears whole or not at all.
//!
//! A [`Staging`] folder is created beside the destination *before* training starts, so an
//! unwritable `--out` fails in a second rather than after minutes of training. Files are written
//! and synced there, then the folder is renamed into place. Dropping an unfinished staging
//! folder removes it.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use candle_core::Tensor;
use models::manifest::{MANIFEST_FILE, MODEL_FILE, Manifest, WEIGHTS_FILE};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

#[derive(Debug)]
pub struct Staging {
    dir: Option<tempfile::TempDir>,
    out: PathBuf,
    replace: bool,
}

impl Staging {
    /// Checks `out` and creates the staging folder next to it. An existing `out` is refused
    /// unless `replace` is set.
    pub fn new(out: &Path, replace: bool) -> Result<Staging> {
        if out.exists() && !replace {
            return Err(Error::Invalid(format!(
                "{}: already exists; choose another --out or pass --force to replace the bundle",
                out.display()
            )));
        }
        if out.is_file() {
            return Err(Error::Invalid(format!(
                "{}: is a file; --out must name a bundle folder",
                out.display()
            )));
        }
        let parent = match out.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
            _ => PathBuf::from("."),
        };
        if parent.exists() && !parent.is_dir() {
            return Err(Error::Invalid(format!(
                "{}: cannot write a bundle here: {} is a file, not a folder",
                out.display(),
                parent.display()
            )));
        }
        fs::create_dir_all(&parent)
            .map_err(|source| Error::BundleFolder { path: out.to_owned(), source })?;
        let name = out
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_else(|| "bundle".to_owned());
        let dir = tempfile::Builder::new()
            .prefix(&format!(".{name}.staging-"))
            .tempdir_in(&parent)
            .map_err(|source| Error::BundleFolder { path: out.to_owned(), source })?;
        Ok(Staging { dir: Some(dir), out: out.to_owned(), replace })
    }

    fn path(&self) -> Result<&Path> {
        self.dir
            .as_ref()
            .map(tempfile::TempDir::path)
            .ok_or_else(|| Error::Internal("staging folder already used".to_owned()))
    }

    /// Writes the bundle's files, sets the manifest's model checksum, and moves the folder into
    /// place. Returns the manifest as written.
    pub fn commit(
        mut self,
        mut manifest: Manifest,
        onnx: &[u8],
        weights: &HashMap<String, Tensor>,
    ) -> Result<Manifest> {
        let dir = self.path()?.to_owned();
        manifest.model_sha256 = hex::encode(Sha256::digest(onnx));
        write_synced(&dir.join(MODEL_FILE), onnx)?;
        write_synced(&dir.join(MANIFEST_FILE), manifest.to_json().as_bytes())?;
        let weights_path = dir.join(WEIGHTS_FILE);
        candle_core::safetensors::save(weights, &weights_path)?;
        for file in [MODEL_FILE, MANIFEST_FILE, WEIGHTS_FILE] {
            edge_runtime::data::make_readable(&dir.join(file))?;
        }
        edge_runtime::data::make_readable(&dir)?;
        let staged = self
            .dir
            .take()
            .ok_or_else(|| Error::Internal("staging folder already used".to_owned()))?
            .keep();
        if self.out.exists() && self.replace {
            let old = staged.with_extension("old");
            fs::rename(&self.out, &old).map_err(|err| Error::io(&self.out, err))?;
            fs::rename(&staged, &self.out).map_err(|err| Error::io(&self.out, err))?;
            fs::remove_dir_all(&old).map_err(|err| Error::io(&old, err))?;
        } else {
            fs::rename(&staged, &self.out).map_err(|err| Error::io(&self.out, err))?;
        }
        Ok(manifest)
    }
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut file = fs::File::create(path).map_err(|err| Error::io(path, err))?;
    std::io::Write::write_all(&mut file, bytes).map_err(|err| Error::io(path, err))?;
    file.sync_all().map_err(|err| Error::io(path, err))
}
