//! Writing a bundle folder (`model.onnx`, `manifest.json`, `weights.safetensors`, `seal.json`)
//! so that it appears whole and working, or not at all.
//!
//! A [`Staging`] folder is created beside the destination *before* training starts, so an
//! unwritable destination fails in a second rather than after minutes of training. Files are written
//! and synced there and sealed (signed, when a key is given); the staged folder is then opened
//! with the edge runtime, exactly as a device will open it, and a few samples are drawn from it:
//! a bundle that does not load, or whose samples are not finite, is refused. Only then is the
//! folder renamed into place. Dropping an unfinished staging folder removes it.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use candle_core::Tensor;
use edge_runtime::bundle::{Bundle, Trust};
use edge_runtime::engine::EngineKind;
use edge_runtime::keys::SecretKey;
use edge_runtime::sampler::{ClassChoice, Generator, SampleSettings, SamplerKind};
use models::manifest::{
    DECODER_FILE, MANIFEST_FILE, MODEL_FILE, Manifest, SEAL_FILE, WEIGHTS_FILE,
};
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
                "{}: already exists; choose another bundle folder or allow replacing it",
                out.display()
            )));
        }
        if out.is_file() {
            return Err(Error::Invalid(format!(
                "{}: is a file; a bundle is written as a folder, choose another path",
                out.display()
            )));
        }
        if replace && out.exists() {
            check_replaceable(out)?;
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

    /// Writes the bundle's files, sets the manifest's model checksum, seals the folder (signed
    /// with `sign_key` when given), checks that the edge runtime loads it and samples finite
    /// values from it, and moves the folder into place. Returns the manifest as written.
    pub fn commit(
        mut self,
        mut manifest: Manifest,
        onnx: &[u8],
        decoder: Option<&[u8]>,
        weights: &HashMap<String, Tensor>,
        sign_key: Option<&SecretKey>,
    ) -> Result<Manifest> {
        let dir = self.path()?.to_owned();
        manifest.model_sha256 = hex::encode(Sha256::digest(onnx));
        write_synced(&dir.join(MODEL_FILE), onnx)?;
        let mut files = vec![MODEL_FILE, MANIFEST_FILE, WEIGHTS_FILE];
        match (decoder, manifest.latent.as_mut()) {
            (Some(decoder), Some(latent)) => {
                latent.decoder_sha256 = hex::encode(Sha256::digest(decoder));
                write_synced(&dir.join(DECODER_FILE), decoder)?;
                files.push(DECODER_FILE);
            }
            (None, None) => {}
            _ => {
                return Err(Error::Internal(
                    "a decoder graph goes with a latent section, and only with one".to_owned(),
                ));
            }
        }
        write_synced(&dir.join(MANIFEST_FILE), manifest.to_json().as_bytes())?;
        let weights_path = dir.join(WEIGHTS_FILE);
        candle_core::safetensors::save(weights, &weights_path)?;
        for file in files {
            edge_runtime::data::make_readable(&dir.join(file))?;
        }
        edge_runtime::data::make_readable(&dir)?;
        edge_runtime::bundle::seal(&dir, sign_key)?;
        self_check(&dir, sign_key).map_err(|source| Error::SelfCheck {
            path: self.out.clone(),
            source: Box::new(source),
        })?;
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

/// Samples drawn from a staged bundle before it is moved into place.
const SELF_CHECK_SAMPLES: usize = 8;

/// Opens the staged bundle as a device would (its signature checked against the signing key's
/// public half, when it is signed) and draws a few samples of every class with tract, refusing
/// any that is not finite.
fn self_check(dir: &Path, sign_key: Option<&SecretKey>) -> edge_runtime::Result<()> {
    let trust = sign_key.map_or(Trust::Sealed, |key| Trust::SignedBy(vec![key.public()]));
    let bundle = Bundle::open_with(dir, &trust)?;
    let mut generator = Generator::new(&bundle, EngineKind::Tract, 1)?;
    let n = SELF_CHECK_SAMPLES.max(bundle.manifest.n_classes());
    let samples = generator.generate(&SampleSettings {
        n,
        seed: 0,
        classes: ClassChoice::Balanced,
        steps: None,
        sampler: SamplerKind::Ddpm,
        batch: n,
        guidance: None,
    })?;
    let width = samples.width.max(1);
    match samples.x.iter().position(|value| !value.is_finite()) {
        None => Ok(()),
        Some(index) => Err(edge_runtime::Error::Invalid(format!(
            "sample {} of {n} holds {} at encoded position {}: the model emits non-finite values",
            index / width,
            samples.x.get(index).copied().unwrap_or(f32::NAN),
            index % width
        ))),
    }
}

/// Replacing is for bundles: `out` must be an empty folder or hold only a bundle's files (plain
/// files with a bundle file's name), so replacing never deletes anything else that was there.
fn check_replaceable(out: &Path) -> Result<()> {
    let metadata = fs::symlink_metadata(out).map_err(|err| Error::io(out, err))?;
    if !metadata.is_dir() {
        return Err(Error::Invalid(format!(
            "{}: is not a folder (a link, file or device); only a bundle folder is replaced",
            out.display()
        )));
    }
    for entry in fs::read_dir(out).map_err(|err| Error::io(out, err))? {
        let entry = entry.map_err(|err| Error::io(out, err))?;
        let name = entry.file_name();
        let is_bundle_file = [MANIFEST_FILE, MODEL_FILE, DECODER_FILE, WEIGHTS_FILE, SEAL_FILE]
            .iter()
            .any(|file| name.as_os_str() == *file)
            && entry.file_type().is_ok_and(|kind| kind.is_file());
        if !is_bundle_file {
            return Err(Error::Invalid(format!(
                "{}: is not a bundle folder (it holds `{}`); refusing to replace it, and \
                 everything in it, with a bundle",
                out.display(),
                name.to_string_lossy()
            )));
        }
    }
    Ok(())
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut file = fs::File::create(path).map_err(|err| Error::io(path, err))?;
    std::io::Write::write_all(&mut file, bytes).map_err(|err| Error::io(path, err))?;
    file.sync_all().map_err(|err| Error::io(path, err))
}
