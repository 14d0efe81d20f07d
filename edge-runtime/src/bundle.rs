//! Opening a bundle folder: the manifest is parsed (a newer format version is refused), the
//! SHA-256 of `model.onnx` is checked against the manifest before anything reads the graph, and
//! the graph's inputs and outputs are checked against the manifest's.

use std::fs;
use std::path::{Path, PathBuf};

use models::Manifest;
use models::manifest::{MANIFEST_FILE, MODEL_FILE, TensorSpec};
use prost::Message;
use sha2::{Digest, Sha256};
use tract_onnx::pb::{ModelProto, ValueInfoProto, tensor_shape_proto::dimension, type_proto};

use crate::error::{Error, Result};

#[derive(Debug, Clone)]
pub struct Bundle {
    pub dir: PathBuf,
    pub manifest: Manifest,
    /// The verified bytes of `model.onnx`.
    pub model: Vec<u8>,
    /// Size on disk of all files in the folder.
    pub size_bytes: u64,
}

impl Bundle {
    pub fn open(dir: &Path) -> Result<Bundle> {
        if !dir.is_dir() {
            return Err(Error::bundle(
                dir,
                "is not a bundle folder (expected model.onnx and manifest.json inside)",
            ));
        }
        let manifest_path = dir.join(MANIFEST_FILE);
        let text =
            fs::read_to_string(&manifest_path).map_err(|err| Error::io(&manifest_path, err))?;
        let manifest = Manifest::from_json(&text, manifest_path.as_path())?;
        let model_path = dir.join(MODEL_FILE);
        let model = fs::read(&model_path).map_err(|err| Error::io(&model_path, err))?;
        let actual = hex::encode(Sha256::digest(&model));
        if !actual.eq_ignore_ascii_case(&manifest.model_sha256) {
            return Err(Error::bundle(
                &model_path,
                format!(
                    "SHA-256 is {actual}, but the manifest expects {}; the file was changed or corrupted after export, refusing to load it",
                    manifest.model_sha256
                ),
            ));
        }
        check_graph_io(&model, &manifest, &model_path)?;
        let mut size_bytes = 0;
        for entry in fs::read_dir(dir).map_err(|err| Error::io(dir, err))? {
            let entry = entry.map_err(|err| Error::io(dir, err))?;
            size_bytes += entry.metadata().map_err(|err| Error::io(&entry.path(), err))?.len();
        }
        Ok(Bundle { dir: dir.to_owned(), manifest, model, size_bytes })
    }

    pub fn model_path(&self) -> PathBuf {
        self.dir.join(MODEL_FILE)
    }
}

/// The graph's declared inputs and outputs must be the manifest's, by name and shape.
fn check_graph_io(model: &[u8], manifest: &Manifest, path: &Path) -> Result<()> {
    let proto = ModelProto::decode(model)
        .map_err(|err| Error::bundle_unreadable(path, "not a readable ONNX model", err))?;
    let graph = proto.graph.ok_or_else(|| Error::bundle(path, "ONNX model has no graph"))?;
    let initialisers: std::collections::HashSet<&str> =
        graph.initializer.iter().map(|init| init.name.as_str()).collect();
    let inputs: Vec<TensorSpec> = graph
        .input
        .iter()
        .filter(|input| !initialisers.contains(input.name.as_str()))
        .map(spec_of)
        .collect::<Result<_, _>>()
        .map_err(|msg| Error::bundle(path, msg))?;
    let outputs: Vec<TensorSpec> = graph
        .output
        .iter()
        .map(spec_of)
        .collect::<Result<_, _>>()
        .map_err(|msg| Error::bundle(path, msg))?;
    for (what, found, expected) in [
        ("inputs", &inputs, &manifest.graph.inputs),
        ("outputs", &outputs, &manifest.graph.outputs),
    ] {
        if found != expected {
            return Err(Error::bundle(
                path,
                format!(
                    "graph {what} are {}, but the manifest expects {}",
                    describe(found),
                    describe(expected)
                ),
            ));
        }
    }
    Ok(())
}

fn spec_of(info: &ValueInfoProto) -> Result<TensorSpec, String> {
    let Some(type_proto::Value::TensorType(tensor)) =
        info.r#type.as_ref().and_then(|t| t.value.as_ref())
    else {
        return Err(format!("graph value `{}` is not a tensor", info.name));
    };
    let dims = tensor.shape.as_ref().map(|shape| shape.dim.as_slice()).unwrap_or_default();
    let shape = dims
        .iter()
        .map(|dim| match dim.value {
            Some(dimension::Value::DimValue(value)) if value > 0 => Some(value as usize),
            _ => None,
        })
        .collect();
    Ok(TensorSpec { name: info.name.clone(), shape })
}

fn describe(specs: &[TensorSpec]) -> String {
    let parts: Vec<String> = specs
        .iter()
        .map(|spec| {
            let dims: Vec<String> = spec
                .shape
                .iter()
                .map(|dim| dim.map_or_else(|| "N".to_owned(), |d| d.to_string()))
                .collect();
            format!("{}[{}]", spec.name, dims.join(", "))
        })
        .collect();
    format!("({})", parts.join(", "))
}
