//! Opening a bundle folder, and sealing one.
//!
//! A bundle is a folder of plain files: `manifest.json`, `model.onnx`, for latent diffusion
//! `decoder.onnx`, optionally `weights.safetensors`, and `seal.json`. The seal lists every other file of the folder with its
//! size and SHA-256, one `digest` over that list, and optionally an ed25519 signature of the
//! digest by a trainer's key ([`crate::keys`]).
//!
//! [`Bundle::open_with`] checks, in this order and before anything parses a manifest or a graph:
//! every file's size against a bound; that the folder holds exactly the files its seal lists (no
//! more, no fewer, no links or other non-regular files); each file's size and SHA-256; the
//! digest; the signature, when there is one, and whether its key is trusted. Only then is the
//! manifest parsed (a newer format version is refused), `model.onnx` (and `decoder.onnx`)
//! checked against the manifest's checksum, the graph's operators checked against those synth-train writes
//! ([`models::manifest::EXPORTED_OPS`]), and its inputs, outputs and constants checked against
//! the manifest and a memory budget. The bytes checked are the bytes used: the model is read
//! once.
//!
//! The digest is the SHA-256 of `fieldsynth-bundle-v1\n` followed by one line
//! `NAME SIZE SHA256\n` per file, in byte order of the names. Names are 1 to 128 characters of
//! `[A-Za-z0-9._-]`, not starting with `.`, so the encoding is unambiguous. The signature is the
//! ed25519 signature of `fieldsynth-bundle-signature-v1\n` followed by the digest's 64 hex digits:
//! the prefix keeps a bundle signature from ever passing for a signature of anything else a key
//! signs.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use models::Manifest;
use models::manifest::{
    ACCEPTED_EXTRA_OPS, DECODER_FILE, EXPORTED_OPS, GraphSpec, MANIFEST_FILE, MODEL_FILE,
    SEAL_FILE, TensorSpec,
};
use prost::Message;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tract_onnx::pb::{
    GraphProto, ModelProto, TensorProto, ValueInfoProto, tensor_shape_proto::dimension, type_proto,
};

use crate::error::{Error, Result};
use crate::keys::{PublicKey, SecretKey};

/// The seal format this build writes and reads.
pub const SEAL_FORMAT: &str = "fieldsynth-bundle-seal-v1";
const DIGEST_PREFIX: &[u8] = b"fieldsynth-bundle-v1\n";
const SIGNATURE_PREFIX: &[u8] = b"fieldsynth-bundle-signature-v1\n";

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
/// The largest `model.onnx` read (it is held in memory whole).
pub const MAX_MODEL_BYTES: u64 = 2 * GIB;
/// The largest `manifest.json` read: the manifest of a 64×64 RGB image model is about 1 MiB.
pub const MAX_MANIFEST_BYTES: u64 = 8 * MIB;
/// The largest `seal.json` read.
pub const MAX_SEAL_BYTES: u64 = MIB;
/// The largest other file hashed (streamed, never held in memory): training weights.
pub const MAX_OTHER_FILE_BYTES: u64 = 8 * GIB;
/// The most files a bundle folder may hold.
pub const MAX_FILES: usize = 64;
/// The most memory a graph's initialisers and constants may declare, all together.
pub const MAX_CONSTANT_BYTES: u64 = GIB;

/// `seal.json`: the files of a bundle, their digest, and optionally its signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seal {
    pub format: String,
    /// Every other file of the folder, in byte order of the names.
    pub files: Vec<SealedFile>,
    /// SHA-256 (hex) over the files' names, sizes and SHA-256s (see the module documentation).
    pub digest: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<SealSignature>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SealedFile {
    pub name: String,
    pub bytes: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SealSignature {
    /// The signer's public key, 64 hex digits.
    pub public_key: String,
    /// The ed25519 signature of the digest, 128 hex digits.
    pub signature: String,
}

/// What a bundle must show, beyond an intact seal, before it is used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// An intact seal; a signature, when there is one, must verify, but any key will do.
    Sealed,
    /// A signature that verifies under one of these keys (at least one must be given).
    SignedBy(Vec<PublicKey>),
}

#[derive(Debug, Clone)]
pub struct Bundle {
    pub dir: PathBuf,
    pub manifest: Manifest,
    /// The verified bytes of `model.onnx`.
    pub model: Vec<u8>,
    /// The verified bytes of `decoder.onnx` (latent diffusion only).
    pub decoder: Option<Vec<u8>>,
    /// Size on disk of all files in the folder.
    pub size_bytes: u64,
    /// The seal's digest: one name for the whole bundle.
    pub digest: String,
    /// The key whose signature verified, when the bundle is signed.
    pub signer: Option<PublicKey>,
}

impl Bundle {
    /// Opens a bundle whose seal is intact; a signature is not required.
    pub fn open(dir: &Path) -> Result<Bundle> {
        Bundle::open_with(dir, &Trust::Sealed)
    }

    /// Opens a bundle signed by one of `trusted`.
    pub fn open_trusted(dir: &Path, trusted: &[PublicKey]) -> Result<Bundle> {
        Bundle::open_with(dir, &Trust::SignedBy(trusted.to_vec()))
    }

    pub fn open_with(dir: &Path, trust: &Trust) -> Result<Bundle> {
        if !dir.is_dir() {
            return Err(Error::bundle(
                dir,
                "is not a bundle folder (expected manifest.json, model.onnx and seal.json inside)",
            ));
        }
        let seal = read_seal(dir)?;
        let on_disk = list_files(dir)?;
        let mut contents = check_files(dir, &seal, &on_disk)?;
        let digest = digest_of(&seal.files);
        if digest != seal.digest {
            return Err(Error::bundle(
                &dir.join(SEAL_FILE),
                format!(
                    "its digest is {}, but its files give {digest}; the seal was edited, refusing \
                     to load the bundle",
                    seal.digest
                ),
            ));
        }
        let signer = check_signature(dir, &seal, trust)?;
        let (Some(manifest_bytes), Some(model)) =
            (contents.remove(MANIFEST_FILE), contents.remove(MODEL_FILE))
        else {
            return Err(Error::bundle(
                dir,
                "is not a bundle: its seal does not list both manifest.json and model.onnx",
            ));
        };
        let decoder = contents.remove(DECODER_FILE);
        let manifest = check_contents(dir, manifest_bytes, &model, decoder.as_deref())?;
        let size_bytes = on_disk.values().sum::<u64>().saturating_add(seal_size(dir)?);
        Ok(Bundle { dir: dir.to_owned(), manifest, model, decoder, size_bytes, digest, signer })
    }

    pub fn model_path(&self) -> PathBuf {
        self.dir.join(MODEL_FILE)
    }

    /// The sampled graph: `model.onnx` with the inputs and outputs the manifest declares.
    pub fn model_graph(&self) -> BundleGraph<'_> {
        BundleGraph { path: self.model_path(), bytes: &self.model, spec: &self.manifest.graph }
    }

    /// Latent diffusion's decoder, `decoder.onnx` (`None` for the other families).
    pub fn decoder_graph(&self) -> Option<BundleGraph<'_>> {
        let latent = self.manifest.latent.as_ref()?;
        let bytes = self.decoder.as_deref()?;
        Some(BundleGraph { path: self.dir.join(DECODER_FILE), bytes, spec: &latent.decoder })
    }
}

/// One verified ONNX graph of a bundle: its file, its bytes and what the manifest declares.
#[derive(Debug, Clone)]
pub struct BundleGraph<'a> {
    pub path: PathBuf,
    pub bytes: &'a [u8],
    pub spec: &'a GraphSpec,
}

/// Checks a bundle's contents as [`Bundle::open_with`] does once its seal is verified (the
/// manifest, the model against the manifest's checksum, the graph against the manifest and the
/// memory budget), without looking at its seal: what to check before sealing a folder.
pub fn check_unsealed(dir: &Path) -> Result<Manifest> {
    let read = |name: &str| {
        let path = dir.join(name);
        let metadata = fs::symlink_metadata(&path).map_err(|err| Error::io(&path, err))?;
        if !metadata.file_type().is_file() {
            return Err(Error::bundle(&path, "is not a plain file (a link or a folder?)"));
        }
        read_bounded(&path, metadata.len(), limit_for(name))
    };
    let decoder = match fs::symlink_metadata(dir.join(DECODER_FILE)) {
        Ok(_) => Some(read(DECODER_FILE)?),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => None,
        Err(err) => return Err(Error::io(&dir.join(DECODER_FILE), err)),
    };
    check_contents(dir, read(MANIFEST_FILE)?, &read(MODEL_FILE)?, decoder.as_deref())
}

/// The graph file's SHA-256 is the one its manifest records.
fn check_checksum(bytes: &[u8], expected: &str, path: &Path) -> Result<()> {
    let actual = hex::encode(Sha256::digest(bytes));
    if actual.eq_ignore_ascii_case(expected) {
        return Ok(());
    }
    Err(Error::bundle(
        path,
        format!(
            "SHA-256 is {actual}, but the manifest expects {expected}; the file was changed or corrupted after export, refusing to load it"
        ),
    ))
}

fn check_contents(
    dir: &Path,
    manifest_bytes: Vec<u8>,
    model: &[u8],
    decoder: Option<&[u8]>,
) -> Result<Manifest> {
    let manifest_path = dir.join(MANIFEST_FILE);
    let model_path = dir.join(MODEL_FILE);
    let text = String::from_utf8(manifest_bytes).map_err(|err| {
        Error::bundle_unreadable(&manifest_path, "is not UTF-8 text", err.utf8_error())
    })?;
    let manifest = Manifest::from_json(&text, manifest_path.as_path())?;
    check_checksum(model, &manifest.model_sha256, &model_path)?;
    let mut constants = 0_u64;
    check_graph_io(model, &manifest.graph, &model_path, &mut constants)?;
    let decoder_path = dir.join(DECODER_FILE);
    match (&manifest.latent, decoder) {
        (Some(latent), Some(decoder)) => {
            check_checksum(decoder, &latent.decoder_sha256, &decoder_path)?;
            check_graph_io(decoder, &latent.decoder, &decoder_path, &mut constants)?;
        }
        (Some(_), None) => {
            return Err(Error::bundle(
                &decoder_path,
                "is missing: the manifest describes a latent diffusion model, which needs its decoder",
            ));
        }
        (None, Some(_)) => {
            return Err(Error::bundle(
                &decoder_path,
                format!("is not part of a {} bundle; refusing to load it", manifest.family),
            ));
        }
        (None, None) => {}
    }
    Ok(manifest)
}

/// Writes `dir/seal.json` (whole or not at all) over every other file of `dir`, signed with
/// `key` when one is given, and returns it. Nothing is checked about what the files hold: the
/// caller vouches for them (a fresh export, or a bundle whose model matches its manifest).
pub fn seal(dir: &Path, key: Option<&SecretKey>) -> Result<Seal> {
    let listed = list_files(dir)?;
    let mut files = Vec::with_capacity(listed.len());
    for (name, bytes) in &listed {
        let path = dir.join(name);
        let (read, sha256) = hash_file(&path, *bytes, limit_for(name))?;
        files.push(SealedFile { name: name.clone(), bytes: read, sha256 });
    }
    let digest = digest_of(&files);
    let signature = key.map(|key| SealSignature {
        public_key: key.public().to_hex(),
        signature: key.sign(&signed_message(&digest)),
    });
    let seal = Seal { format: SEAL_FORMAT.to_owned(), files, digest, signature };
    let mut text = serde_json::to_string_pretty(&seal)
        .map_err(|err| Error::json(format!("{}: encoding the seal", dir.display()), err))?;
    text.push('\n');
    crate::data::write_atomically(&dir.join(SEAL_FILE), text.as_bytes())?;
    Ok(seal)
}

/// The digest of a list of sealed files (in any order: they are sorted by name first).
pub fn digest_of(files: &[SealedFile]) -> String {
    let mut sorted: Vec<&SealedFile> = files.iter().collect();
    sorted.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    let mut hasher = Sha256::new();
    hasher.update(DIGEST_PREFIX);
    for file in sorted {
        hasher.update(format!("{} {} {}\n", file.name, file.bytes, file.sha256).as_bytes());
    }
    hex::encode(hasher.finalize())
}

/// What a bundle's signature signs: a prefix of its own, then the digest's hex digits.
fn signed_message(digest: &str) -> Vec<u8> {
    [SIGNATURE_PREFIX, digest.as_bytes()].concat()
}

fn read_seal(dir: &Path) -> Result<Seal> {
    let path = dir.join(SEAL_FILE);
    let metadata = match fs::symlink_metadata(&path) {
        Ok(metadata) => metadata,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::bundle(
                dir,
                "has no seal.json: it was exported by a synth-train older than bundle seals (or \
                 its seal was removed); re-export it, or check and seal it with `synth-train seal`",
            ));
        }
        Err(err) => return Err(Error::io(&path, err)),
    };
    if !metadata.file_type().is_file() {
        return Err(Error::bundle(&path, "is not a plain file (a link or a folder?)"));
    }
    let bytes = read_bounded(&path, metadata.len(), MAX_SEAL_BYTES)?;
    let seal: Seal = serde_json::from_slice(&bytes).map_err(|err| {
        Error::bundle_unreadable(&path, format!("is not a valid seal ({SEAL_FORMAT})"), err)
    })?;
    if seal.format != SEAL_FORMAT {
        return Err(Error::bundle(
            &path,
            format!(
                "format is `{}`; this build reads `{SEAL_FORMAT}` (a newer synth-train?)",
                seal.format
            ),
        ));
    }
    if seal.files.len() > MAX_FILES {
        return Err(Error::bundle(
            &path,
            format!("lists {} files; a bundle holds at most {MAX_FILES}", seal.files.len()),
        ));
    }
    Ok(seal)
}

fn seal_size(dir: &Path) -> Result<u64> {
    let path = dir.join(SEAL_FILE);
    Ok(fs::symlink_metadata(&path).map_err(|err| Error::io(&path, err))?.len())
}

/// The plain files of `dir` other than the seal, by name, with their sizes. A link, a folder or
/// any other kind of entry, a name that is not a bundle file's, or too many files is refused.
fn list_files(dir: &Path) -> Result<BTreeMap<String, u64>> {
    let mut files = BTreeMap::new();
    for entry in fs::read_dir(dir).map_err(|err| Error::io(dir, err))? {
        let entry = entry.map_err(|err| Error::io(dir, err))?;
        let path = entry.path();
        let name = entry.file_name();
        let Some(name) = name.to_str().filter(|name| valid_name(name)) else {
            return Err(Error::bundle(
                &path,
                "is not a bundle file: names are letters, digits, `.`, `_` and `-`, not starting \
                 with `.`; remove it from the bundle folder",
            ));
        };
        let metadata = fs::symlink_metadata(&path).map_err(|err| Error::io(&path, err))?;
        if !metadata.file_type().is_file() {
            return Err(Error::bundle(
                &path,
                "is not a plain file (a link, a folder or a device); a bundle holds plain files only",
            ));
        }
        if name == SEAL_FILE {
            continue;
        }
        files.insert(name.to_owned(), metadata.len());
        if files.len() > MAX_FILES {
            return Err(Error::bundle(
                dir,
                format!("holds more than {MAX_FILES} files; a bundle holds a few"),
            ));
        }
    }
    Ok(files)
}

fn valid_name(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && !name.starts_with('.')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Checks the folder against its seal: the same names, each file's size and SHA-256. Returns the
/// bytes of the manifest and the model, read once and checked.
fn check_files(
    dir: &Path,
    seal: &Seal,
    on_disk: &BTreeMap<String, u64>,
) -> Result<HashMap<String, Vec<u8>>> {
    let seal_path = dir.join(SEAL_FILE);
    let mut sealed: BTreeMap<&str, &SealedFile> = BTreeMap::new();
    for file in &seal.files {
        if !valid_name(&file.name) || file.name == SEAL_FILE {
            return Err(Error::bundle(
                &seal_path,
                format!("lists `{}`, which cannot be a bundle file", file.name.escape_debug()),
            ));
        }
        if sealed.insert(file.name.as_str(), file).is_some() {
            return Err(Error::bundle(&seal_path, format!("lists `{}` twice", file.name)));
        }
    }
    if let Some(extra) = on_disk.keys().find(|name| !sealed.contains_key(name.as_str())) {
        return Err(Error::bundle(
            &dir.join(extra),
            "is not listed in the bundle's seal: it was added after export; remove it, or check \
             the bundle and seal it again",
        ));
    }
    if let Some(missing) = sealed.keys().find(|name| !on_disk.contains_key(**name)) {
        return Err(Error::bundle(
            &dir.join(missing),
            "is listed in the bundle's seal but missing; the bundle is incomplete, refusing to \
             load it",
        ));
    }
    let mut contents = HashMap::new();
    for (name, file) in sealed {
        let path = dir.join(name);
        let size = on_disk.get(name).copied().unwrap_or_default();
        let limit = limit_for(name);
        if size != file.bytes {
            return Err(Error::bundle(
                &path,
                format!(
                    "is {size} bytes, but the seal says {}; the file was changed after export, \
                     refusing to load the bundle",
                    file.bytes
                ),
            ));
        }
        let sha256 = if [MANIFEST_FILE, MODEL_FILE, DECODER_FILE].contains(&name) {
            let bytes = read_bounded(&path, size, limit)?;
            let sha256 = hex::encode(Sha256::digest(&bytes));
            contents.insert(name.to_owned(), bytes);
            sha256
        } else {
            hash_file(&path, size, limit)?.1
        };
        if sha256 != file.sha256 {
            return Err(Error::bundle(
                &path,
                format!(
                    "SHA-256 is {sha256}, but the seal expects {}; the file was changed after \
                     export, refusing to load the bundle",
                    file.sha256
                ),
            ));
        }
    }
    Ok(contents)
}

/// The signer, when the seal is signed and its signature verifies; an error when the signature
/// does not verify, or `trust` asks for a trusted signer and there is none.
fn check_signature(dir: &Path, seal: &Seal, trust: &Trust) -> Result<Option<PublicKey>> {
    let trusted = match trust {
        Trust::Sealed => None,
        Trust::SignedBy(keys) if keys.is_empty() => {
            return Err(Error::Invalid(
                "no trusted key given: a signed bundle can only be checked against at least one \
                 trusted public key"
                    .to_owned(),
            ));
        }
        Trust::SignedBy(keys) => Some(keys.as_slice()),
    };
    let fingerprints =
        |keys: &[PublicKey]| keys.iter().map(PublicKey::fingerprint).collect::<Vec<_>>().join(", ");
    let Some(signature) = &seal.signature else {
        return match trusted {
            None => Ok(None),
            Some(keys) => Err(Error::bundle(
                dir,
                format!(
                    "is not signed, but only bundles signed by a trusted key are accepted \
                     (trusted: {}); sign it with the trainer's key (`synth-train seal`)",
                    fingerprints(keys)
                ),
            )),
        };
    };
    let seal_path = dir.join(SEAL_FILE);
    let key = PublicKey::from_hex(&signature.public_key).map_err(|msg| {
        Error::bundle(&seal_path, format!("signature.public_key: {msg}; refusing the bundle"))
    })?;
    if !key.verifies(&signed_message(&seal.digest), &signature.signature) {
        return Err(Error::bundle(
            dir,
            format!(
                "its signature by key {} does not verify: the bundle or its seal was changed \
                 after signing, refusing to load it",
                key.fingerprint()
            ),
        ));
    }
    if let Some(keys) = trusted
        && !keys.contains(&key)
    {
        return Err(Error::bundle(
            dir,
            format!(
                "is signed by key {}, which is not trusted (trusted: {}); refusing to load it",
                key.fingerprint(),
                fingerprints(keys)
            ),
        ));
    }
    Ok(Some(key))
}

fn limit_for(name: &str) -> u64 {
    match name {
        MODEL_FILE | DECODER_FILE => MAX_MODEL_BYTES,
        MANIFEST_FILE => MAX_MANIFEST_BYTES,
        _ => MAX_OTHER_FILE_BYTES,
    }
}

fn too_large(path: &Path, size: u64, limit: u64) -> Error {
    Error::bundle(
        path,
        format!(
            "is {size} bytes; a bundle's file of this kind may be at most {limit} bytes, refusing to read it"
        ),
    )
}

/// The whole of a file that its size on disk (`size`) says is at most `limit` bytes; read through
/// a bound too, so a file that grows meanwhile is not read past it.
fn read_bounded(path: &Path, size: u64, limit: u64) -> Result<Vec<u8>> {
    if size > limit {
        return Err(too_large(path, size, limit));
    }
    let file = fs::File::open(path).map_err(|err| Error::io(path, err))?;
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or_default());
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|err| Error::io(path, err))?;
    if bytes.len() as u64 > limit {
        return Err(too_large(path, bytes.len() as u64, limit));
    }
    Ok(bytes)
}

/// The number of bytes and the SHA-256 of a file, streamed, refusing one over `limit`.
fn hash_file(path: &Path, size: u64, limit: u64) -> Result<(u64, String)> {
    if size > limit {
        return Err(too_large(path, size, limit));
    }
    let file = fs::File::open(path).map_err(|err| Error::io(path, err))?;
    let mut hasher = Sha256::new();
    let mut reader = file.take(limit.saturating_add(1));
    let mut buffer = vec![0_u8; 1 << 16];
    let mut read = 0_u64;
    loop {
        let n = reader.read(&mut buffer).map_err(|err| Error::io(path, err))?;
        if n == 0 {
            break;
        }
        read += n as u64;
        hasher.update(buffer.get(..n).unwrap_or_default());
    }
    if read > limit {
        return Err(too_large(path, read, limit));
    }
    Ok((read, hex::encode(hasher.finalize())))
}

/// The graph may use only the operators synth-train writes, its declared inputs and outputs must
/// be the manifest's, by name and shape, and its constants must fit the memory budget.
fn check_graph_io(model: &[u8], spec: &GraphSpec, path: &Path, constants: &mut u64) -> Result<()> {
    let proto = ModelProto::decode(model)
        .map_err(|err| Error::bundle_unreadable(path, "not a readable ONNX model", err))?;
    let graph = proto.graph.ok_or_else(|| Error::bundle(path, "ONNX model has no graph"))?;
    check_operators(&graph, path)?;
    check_constants(&graph, path, constants)?;
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
    for (what, found, expected) in
        [("inputs", &inputs, &spec.inputs), ("outputs", &outputs, &spec.outputs)]
    {
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

/// Every node of the graph, and of any subgraph held in an attribute, must be one of the
/// operators of the default ONNX domain that synth-train writes ([`EXPORTED_OPS`]) or passes
/// through harmlessly ([`ACCEPTED_EXTRA_OPS`]). Operators that size a tensor from a tiny constant
/// or a run-time shape (`Expand`, `Tile`, `Range`, `ConstantOfShape`, `Shape`), control flow and
/// custom domains never reach an engine: a 300 KB file must not ask one for gigabytes, nor make
/// it panic.
fn check_operators(graph: &GraphProto, path: &Path) -> Result<()> {
    for node in &graph.node {
        let default_domain = node.domain.is_empty() || node.domain == "ai.onnx";
        let op = node.op_type.as_str();
        if !default_domain || !(EXPORTED_OPS.contains(&op) || ACCEPTED_EXTRA_OPS.contains(&op)) {
            let name = if node.name.is_empty() {
                node.output.first().map_or("", String::as_str)
            } else {
                node.name.as_str()
            };
            let domain = if default_domain {
                String::new()
            } else {
                format!(" of the domain `{}`", shown(&node.domain))
            };
            return Err(Error::bundle(
                path,
                format!(
                    "graph node `{}` uses the operator `{}`{domain}, which synth-train never \
                     writes (it writes {}); the graph was not written by synth-train, refusing it \
                     before any engine loads it",
                    shown(name),
                    shown(op),
                    EXPORTED_OPS.join(", ")
                ),
            ));
        }
        for attribute in &node.attribute {
            for subgraph in attribute.g.iter().chain(&attribute.graphs) {
                check_operators(subgraph, path)?;
            }
        }
    }
    Ok(())
}

/// A name from the graph as an error shows it: escaped, and cut to 64 characters.
fn shown(name: &str) -> String {
    let mut text: String = name.chars().take(64).collect::<String>().escape_debug().to_string();
    if name.chars().nth(64).is_some() {
        text.push_str("...");
    }
    text
}

/// The memory the graph's constants declare: initialisers, `Constant` values, tensors held in
/// node attributes (subgraphs included). Their sum must stay within [`MAX_CONSTANT_BYTES`]; a
/// tensor whose data lives in an external file is refused (a bundle's model holds all its data,
/// and data never names a path). Operators that size a tensor from a constant are refused by
/// [`check_operators`]; the accepted ones can still grow tensors by broadcasting (`Add`, `Mul`,
/// `MatMul`) or repeated `Concat`, which nothing here bounds yet.
/// `total` carries the constants of a bundle's graphs already counted (latent diffusion has
/// two), so the budget bounds them together.
fn check_constants(graph: &GraphProto, path: &Path, total: &mut u64) -> Result<()> {
    add_graph_constants(graph, path, total)
}

fn add_graph_constants(graph: &GraphProto, path: &Path, total: &mut u64) -> Result<()> {
    for tensor in &graph.initializer {
        add_tensor(tensor, &tensor.name, path, total)?;
    }
    for sparse in &graph.sparse_initializer {
        let name = sparse.values.as_ref().map_or("", |values| values.name.as_str());
        add_declared(name, &sparse.dims, 1, path, total)?;
    }
    for node in &graph.node {
        let node_name = if node.name.is_empty() {
            node.output.first().map_or("", String::as_str)
        } else {
            node.name.as_str()
        };
        for attribute in &node.attribute {
            for tensor in attribute.t.iter().chain(&attribute.tensors) {
                let name = if tensor.name.is_empty() { node_name } else { &tensor.name };
                add_tensor(tensor, name, path, total)?;
            }
            for sparse in attribute.sparse_tensor.iter().chain(&attribute.sparse_tensors) {
                add_declared(node_name, &sparse.dims, 1, path, total)?;
            }
            for subgraph in attribute.g.iter().chain(&attribute.graphs) {
                add_graph_constants(subgraph, path, total)?;
            }
        }
    }
    Ok(())
}

fn add_tensor(tensor: &TensorProto, name: &str, path: &Path, total: &mut u64) -> Result<()> {
    if tensor.data_location == Some(1) || !tensor.external_data.is_empty() {
        return Err(Error::bundle(
            path,
            format!(
                "graph tensor `{}` keeps its data in an external file; a bundle's model must hold \
                 all its data",
                name.escape_debug()
            ),
        ));
    }
    add_declared(name, &tensor.dims, element_size(tensor.data_type), path, total)
}

/// Adds `dims`' element count × `element` bytes to `total`, refusing a negative dimension or a
/// sum over the budget.
fn add_declared(
    name: &str,
    dims: &[i64],
    element: u64,
    path: &Path,
    total: &mut u64,
) -> Result<()> {
    let refuse = |what: String| {
        Error::bundle(
            path,
            format!(
                "graph tensor `{}` of shape {dims:?} {what}; refusing the model before any engine \
                 allocates it",
                name.escape_debug()
            ),
        )
    };
    let mut bytes = Some(element);
    for &dim in dims {
        let Ok(dim) = u64::try_from(dim) else {
            return Err(refuse("has a negative dimension".to_owned()));
        };
        bytes = bytes.and_then(|bytes| bytes.checked_mul(dim));
    }
    let within =
        bytes.and_then(|bytes| total.checked_add(bytes)).filter(|sum| *sum <= MAX_CONSTANT_BYTES);
    match within {
        Some(sum) => {
            *total = sum;
            Ok(())
        }
        None => Err(refuse(format!(
            "declares {} bytes of constants ({} before it); a model's constants may take at most \
             {MAX_CONSTANT_BYTES} bytes in all",
            bytes.map_or_else(|| "more than 2^64".to_owned(), |bytes| bytes.to_string()),
            total
        ))),
    }
}

/// Bytes per element of an ONNX data type; an unknown type counts as the widest.
fn element_size(data_type: i32) -> u64 {
    match data_type {
        2 | 3 | 9 | 17..=22 => 1,
        4 | 5 | 10 | 16 => 2,
        1 | 6 | 12 => 4,
        7 | 11 | 13 | 14 => 8,
        _ => 16,
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, bytes: u64, digit: char) -> SealedFile {
        SealedFile { name: name.to_owned(), bytes, sha256: digit.to_string().repeat(64) }
    }

    #[test]
    fn the_digest_is_the_documented_encoding_in_name_order() {
        // Python: hashlib.sha256(b"fieldsynth-bundle-v1\na.bin 3 " + b"0" * 64 + b"\nb-c_d.json 10 "
        //         + b"f" * 64 + b"\n").hexdigest()
        let expected = "df2b9aba5b713aa4fb4b502b9abbfccc54fc9f0a0b4b0363df5fc6105784e77b";
        let files = [file("b-c_d.json", 10, 'f'), file("a.bin", 3, '0')];
        assert_eq!(digest_of(&files), expected);
        let reversed = [file("a.bin", 3, '0'), file("b-c_d.json", 10, 'f')];
        assert_eq!(digest_of(&reversed), expected);
        assert_ne!(digest_of(&[file("a.bin", 4, '0'), file("b-c_d.json", 10, 'f')]), expected);
    }

    #[test]
    fn a_bundle_signature_signs_the_prefixed_digest_only() {
        let key = SecretKey::generate().unwrap();
        let digest = "ab".repeat(32);
        let signature = key.sign(&signed_message(&digest));
        assert!(key.public().verifies(&signed_message(&digest), &signature));
        assert!(!key.public().verifies(digest.as_bytes(), &signature), "the prefix is signed");
    }

    #[test]
    fn bundle_file_names_are_plain() {
        for good in ["model.onnx", "weights.safetensors", "a-b_c.1"] {
            assert!(valid_name(good), "{good}");
        }
        for bad in ["", ".DS_Store", "../x", "a/b", "a b", "x\ny", "é", &"a".repeat(129)] {
            assert!(!valid_name(bad), "{bad:?}");
        }
    }
}
