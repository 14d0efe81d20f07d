//! The sync batch: one self-describing, signed JSON document that carries one device's logbook
//! rows to a hub, over HTTP or as a file on a USB stick.
//!
//! ```json
//! { "format": "fieldsynth-logbook-batch", "version": 2,
//!   "source_device": "<uuid>", "created_at": "2025-03-07T14:05:09.123Z",
//!   "payload_sha256": "<hex SHA-256 of the payload's exact bytes>",
//!   "device_key": "<the sender's ed25519 public key, 64 hex digits>",
//!   "signature": "<ed25519 signature of the signed header, 128 hex digits>",
//!   "payload": { "devices": [..], "models": [..], "runs": [..], "metrics": [..] } }
//! ```
//!
//! The signature covers every field but itself ([`signed_header`]): the payload through its
//! checksum, which covers the payload's bytes as they stand in the document. So a file edited
//! and given a recomputed checksum no longer verifies, and a flipped bit or a truncated file is
//! refused before anything is written. Version 1 batches (unsigned, from before devices were
//! enrolled) are refused with a hint to enrol. Decoding checks, in order: the envelope, the
//! sender's key (the caller decides whether it is one it accepts), the signature, the checksum,
//! then each row's fields (a refusal names the field: `runs[3].started_at: ...`) and that the
//! rows hang together: every metric belongs to a settled run of the same batch, and every run's
//! device and model travel with it.

use std::collections::{BTreeSet, HashSet};

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::keys::{PublicKey, SecretKey};
use crate::logbook::{
    DeviceRecord, MetricRow, ModelRow, RunRow, SyncRows, check_device_id, timestamp,
};

pub const FORMAT: &str = "fieldsynth-logbook-batch";
pub const VERSION: u32 = 2;

/// The longest text field of a row (a failed run's message, a hostname) accepted.
const MAX_TEXT_CHARS: usize = 64 * 1024;

/// Unknown fields are refused, so that the signature covers every field a batch carries.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope {
    format: String,
    version: u32,
    source_device: String,
    created_at: String,
    payload_sha256: String,
    #[serde(default)]
    device_key: Option<String>,
    #[serde(default)]
    signature: Option<String>,
    payload: Box<RawValue>,
}

/// The payload with each row kept as text, so a row that does not parse is named by its index.
#[derive(Deserialize)]
struct RawPayload {
    #[serde(default)]
    devices: Vec<Box<RawValue>>,
    #[serde(default)]
    models: Vec<Box<RawValue>>,
    #[serde(default)]
    runs: Vec<Box<RawValue>>,
    #[serde(default)]
    metrics: Vec<Box<RawValue>>,
}

/// A signed batch: its rows, the exact payload text its checksum covers, and the key that
/// signed it.
#[derive(Debug, Clone)]
pub struct Batch {
    pub source_device: String,
    pub created_at: String,
    pub payload_sha256: String,
    pub device_key: PublicKey,
    pub signature: String,
    pub rows: SyncRows,
    payload_json: String,
}

/// What the signature of a batch covers: every envelope field but the signature, one per line.
pub fn signed_header(
    source_device: &str,
    created_at: &str,
    payload_sha256: &str,
    device_key: &str,
) -> Vec<u8> {
    format!(
        "{FORMAT} version {VERSION}\nsource_device {source_device}\ncreated_at {created_at}\npayload_sha256 {payload_sha256}\ndevice_key {device_key}\n"
    )
    .into_bytes()
}

impl Batch {
    /// The batch of `rows` from logbook device `source_device`, signed with the device's `key`.
    pub fn new(source_device: &str, rows: SyncRows, key: &SecretKey) -> Result<Batch> {
        check_device_id(source_device).map_err(|message| {
            Error::Invalid(format!("sync: the logbook's device id: {message}"))
        })?;
        let payload_json = serde_json::to_string(&rows).map_err(encoding_failure)?;
        let created_at = timestamp::now();
        let payload_sha256 = hex::encode(Sha256::digest(payload_json.as_bytes()));
        let device_key = key.public();
        let signature = key.sign(&signed_header(
            source_device,
            &created_at,
            &payload_sha256,
            &device_key.to_hex(),
        ));
        Ok(Batch {
            source_device: source_device.to_owned(),
            created_at,
            payload_sha256,
            device_key,
            signature,
            rows,
            payload_json,
        })
    }

    pub fn encode(&self) -> Result<Vec<u8>> {
        let payload = RawValue::from_string(self.payload_json.clone()).map_err(encoding_failure)?;
        let envelope = Envelope {
            format: FORMAT.to_owned(),
            version: VERSION,
            source_device: self.source_device.clone(),
            created_at: self.created_at.clone(),
            payload_sha256: self.payload_sha256.clone(),
            device_key: Some(self.device_key.to_hex()),
            signature: Some(self.signature.clone()),
            payload,
        };
        serde_json::to_vec_pretty(&envelope).map_err(encoding_failure)
    }

    /// Parses and verifies a batch; `origin` (a file, a peer address) names it in errors.
    /// `accept_key` is asked, before the signature is checked or any row parsed, whether the
    /// signing key is one the caller takes (an enrolled device's; the one a request named).
    /// A batch without a valid signature is [`Error::Refused`] 401; an invalid row 400.
    pub fn decode(
        bytes: &[u8],
        origin: &str,
        accept_key: impl FnOnce(&PublicKey) -> Result<()>,
    ) -> Result<Batch> {
        let refuse = |status: u16, message: String| Error::Refused {
            status,
            message: format!("{origin}: {message}; the batch was rejected whole"),
        };
        let unreadable = |context: String| {
            move |source| Error::BatchUnreadable { origin: origin.to_owned(), context, source }
        };
        let envelope: Envelope = serde_json::from_slice(bytes)
            .map_err(unreadable(format!("not a readable {FORMAT} document")))?;
        if envelope.format != FORMAT {
            return Err(refuse(
                400,
                format!("format is `{}`; expected `{FORMAT}`", envelope.format),
            ));
        }
        if envelope.version == 1 {
            return Err(refuse(
                401,
                "an unsigned batch (format version 1); the hub takes only batches signed by an \
                 enrolled device: enrol the device at the hub and sync with its key"
                    .to_owned(),
            ));
        }
        if envelope.version != VERSION {
            return Err(refuse(
                400,
                format!(
                    "format version is {}; this synth-edge reads version {VERSION}",
                    envelope.version
                ),
            ));
        }
        let (Some(key_hex), Some(signature)) = (&envelope.device_key, &envelope.signature) else {
            return Err(refuse(401, "the batch carries no device_key and signature".to_owned()));
        };
        let device_key = PublicKey::from_hex(key_hex)
            .map_err(|message| refuse(401, format!("device_key: {message}")))?;
        accept_key(&device_key)?;
        let header = signed_header(
            &envelope.source_device,
            &envelope.created_at,
            &envelope.payload_sha256,
            key_hex,
        );
        if !device_key.verifies(&header, signature) {
            return Err(refuse(
                401,
                format!(
                    "signature: does not verify under key {}: the batch was altered after signing, or signed by another key",
                    device_key.fingerprint()
                ),
            ));
        }
        check_device_id(&envelope.source_device)
            .map_err(|message| refuse(400, format!("source_device: {message}")))?;
        check_timestamp(&envelope.created_at)
            .map_err(|message| refuse(400, format!("created_at: {message}")))?;
        let payload_json = envelope.payload.get().to_owned();
        let actual = hex::encode(Sha256::digest(payload_json.as_bytes()));
        if actual != envelope.payload_sha256 {
            return Err(refuse(
                400,
                format!(
                    "payload SHA-256 is {actual}, but the batch declares {}: it was damaged",
                    envelope.payload_sha256
                ),
            ));
        }
        let rows = parse_rows(&payload_json).map_err(|message| refuse(400, message))?;
        check_rows(&rows).map_err(|message| refuse(400, message))?;
        Ok(Batch {
            source_device: envelope.source_device,
            created_at: envelope.created_at,
            payload_sha256: actual,
            device_key,
            signature: signature.clone(),
            rows,
            payload_json,
        })
    }

    /// A file name for the batch in a folder of batch files: sortable by time, unique by checksum.
    pub fn file_name(&self) -> String {
        let stamp: String = self.created_at.chars().filter(char::is_ascii_alphanumeric).collect();
        let device: String =
            self.source_device.chars().filter(char::is_ascii_alphanumeric).take(8).collect();
        let digest: String = self.payload_sha256.chars().take(12).collect();
        format!("fieldsynth-batch-{stamp}-{device}-{digest}.json")
    }
}

fn encoding_failure(source: serde_json::Error) -> Error {
    Error::json("sync: cannot encode a batch", source)
}

/// The payload's rows, each parsed on its own so that a refusal names it (`runs[3]: ...`).
fn parse_rows(payload_json: &str) -> std::result::Result<SyncRows, String> {
    let raw: RawPayload = serde_json::from_str(payload_json)
        .map_err(|err| format!("payload: expected devices, models, runs and metrics: {err}"))?;
    fn each<T: serde::de::DeserializeOwned>(
        list: &str,
        rows: &[Box<RawValue>],
    ) -> std::result::Result<Vec<T>, String> {
        rows.iter()
            .enumerate()
            .map(|(index, row)| {
                serde_json::from_str(row.get()).map_err(|err| format!("{list}[{index}]: {err}"))
            })
            .collect()
    }
    Ok(SyncRows {
        devices: each::<DeviceRecord>("devices", &raw.devices)?,
        models: each::<ModelRow>("models", &raw.models)?,
        runs: each::<RunRow>("runs", &raw.runs)?,
        metrics: each::<MetricRow>("metrics", &raw.metrics)?,
    })
}

/// Each field of each row is in range; every metric belongs to a settled run of the batch; every
/// run's device and model are in it. The error names the field: `runs[3].started_at: ...`.
fn check_rows(rows: &SyncRows) -> std::result::Result<(), String> {
    for (index, device) in rows.devices.iter().enumerate() {
        let field = |name: &str| format!("devices[{index}].{name}");
        check_device_id(&device.id).map_err(|message| format!("{}: {message}", field("id")))?;
        check_text(&field("hostname"), &device.hostname, 255)?;
        check_timestamp(&device.first_seen)
            .map_err(|message| format!("{}: {message}", field("first_seen")))?;
    }
    for (index, model) in rows.models.iter().enumerate() {
        let field = |name: &str| format!("models[{index}].{name}");
        check_sha256(&field("sha256"), &model.sha256)?;
        let manifest = models::Manifest::from_json(model.manifest.get(), field("manifest"))
            .map_err(|err| format!("models[{index}]: {}", crate::error::chain(&err)))?;
        if manifest.model_sha256 != model.sha256 {
            return Err(format!(
                "models[{index}]: the manifest's model_sha256 is {}, but the row is keyed {}",
                manifest.model_sha256.chars().take(80).collect::<String>(),
                model.sha256
            ));
        }
        check_timestamp(&model.registered_at)
            .map_err(|message| format!("{}: {message}", field("registered_at")))?;
    }
    for (index, run) in rows.runs.iter().enumerate() {
        let field = |name: &str| format!("runs[{index}].{name}");
        check_device_id(&run.id).map_err(|message| {
            format!("{}: {}", field("id"), message.replace("device id", "run id"))
        })?;
        check_device_id(&run.device_id)
            .map_err(|message| format!("{}: {message}", field("device_id")))?;
        if let Some(model) = &run.model_sha256 {
            check_sha256(&field("model_sha256"), model)?;
        }
        check_text(&field("kind"), &run.kind, 64)?;
        if run.kind.is_empty() {
            return Err(format!("{}: is empty; expected the command that ran", field("kind")));
        }
        check_timestamp(&run.started_at)
            .map_err(|message| format!("{}: {message}", field("started_at")))?;
        if let Some(finished_at) = &run.finished_at {
            check_timestamp(finished_at)
                .map_err(|message| format!("{}: {message}", field("finished_at")))?;
        }
        if let Some(message) = &run.message {
            check_text(&field("message"), message, MAX_TEXT_CHARS)?;
        }
    }
    for (index, metric) in rows.metrics.iter().enumerate() {
        let field = |name: &str| format!("metrics[{index}].{name}");
        check_device_id(&metric.run_id)
            .map_err(|message| format!("{}: {message}", field("run_id")))?;
        check_text(&field("name"), &metric.name, 128)?;
        if metric.name.is_empty() {
            return Err(format!("{}: is empty; expected the figure's name", field("name")));
        }
        for (name, value) in
            [("value", metric.value), ("ci_low", metric.ci_low), ("ci_high", metric.ci_high)]
        {
            if !value.is_finite() {
                return Err(format!("{}: is {value}; expected a finite number", field(name)));
            }
        }
        if i64::try_from(metric.n).is_err() {
            return Err(format!("{}: is {}; expected at most {}", field("n"), metric.n, i64::MAX));
        }
    }
    check_references(rows)
}

/// Every metric belongs to a settled run of the batch; every run's device and model are in it.
fn check_references(rows: &SyncRows) -> std::result::Result<(), String> {
    let devices: HashSet<&str> = rows.devices.iter().map(|device| device.id.as_str()).collect();
    let models: HashSet<&str> = rows.models.iter().map(|model| model.sha256.as_str()).collect();
    let mut settled_runs = HashSet::new();
    let mut seen_runs = HashSet::new();
    for (index, run) in rows.runs.iter().enumerate() {
        if !seen_runs.insert(run.id.as_str()) {
            return Err(format!("runs[{index}].id: run {} appears twice", run.id));
        }
        if !devices.contains(run.device_id.as_str()) {
            return Err(format!(
                "runs[{index}].device_id: run {} refers to device {}, which the batch does not carry",
                run.id, run.device_id
            ));
        }
        if let Some(model) = &run.model_sha256
            && !models.contains(model.as_str())
        {
            return Err(format!(
                "runs[{index}].model_sha256: run {} refers to model {model}, which the batch does not carry",
                run.id
            ));
        }
        if run.status.is_settled() != run.finished_at.is_some() {
            return Err(format!(
                "runs[{index}].finished_at: run {} is {} but finished_at is {:?}",
                run.id, run.status, run.finished_at
            ));
        }
        if run.status.is_settled() {
            settled_runs.insert(run.id.as_str());
        }
    }
    let mut seen_metrics = BTreeSet::new();
    for (index, metric) in rows.metrics.iter().enumerate() {
        if !settled_runs.contains(metric.run_id.as_str()) {
            return Err(format!(
                "metrics[{index}].run_id: metric {}/{} belongs to run {}, which is not a done or failed run of the batch",
                metric.axis, metric.name, metric.run_id
            ));
        }
        if !seen_metrics.insert((metric.run_id.as_str(), metric.axis, metric.name.as_str())) {
            return Err(format!(
                "metrics[{index}]: metric {}/{} of run {} appears twice",
                metric.axis, metric.name, metric.run_id
            ));
        }
    }
    Ok(())
}

fn check_sha256(field: &str, text: &str) -> std::result::Result<(), String> {
    if text.len() == 64 && text.bytes().all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f')) {
        Ok(())
    } else {
        Err(format!(
            "{field}: `{}` is not a SHA-256; expected 64 lowercase hex digits",
            text.chars().take(80).collect::<String>().escape_debug()
        ))
    }
}

fn check_text(field: &str, text: &str, max_chars: usize) -> std::result::Result<(), String> {
    if text.chars().nth(max_chars).is_some() {
        return Err(format!("{field}: longer than {max_chars} characters"));
    }
    if text.chars().any(|ch| ch.is_control() && ch != '\n' && ch != '\t') {
        return Err(format!("{field}: holds control characters"));
    }
    Ok(())
}

/// A timestamp as the logbook writes them: `YYYY-MM-DDTHH:MM:SS.mmmZ`, in range.
fn check_timestamp(text: &str) -> std::result::Result<(), String> {
    let expected = || {
        format!(
            "`{}` is not a timestamp; expected RFC 3339 UTC with milliseconds, such as 2025-03-07T14:05:09.123Z",
            text.chars().take(40).collect::<String>().escape_debug()
        )
    };
    let bytes = text.as_bytes();
    let shape = b"dddd-dd-ddTdd:dd:dd.dddZ";
    if bytes.len() != shape.len()
        || !bytes
            .iter()
            .zip(shape)
            .all(|(byte, want)| if *want == b'd' { byte.is_ascii_digit() } else { byte == want })
    {
        return Err(expected());
    }
    let number = |range: std::ops::Range<usize>| -> u32 {
        text.get(range).and_then(|digits| digits.parse().ok()).unwrap_or(u32::MAX)
    };
    let in_range = (1..=12).contains(&number(5..7))
        && (1..=31).contains(&number(8..10))
        && number(11..13) < 24
        && number(14..16) < 60
        && number(17..19) < 61;
    if in_range { Ok(()) } else { Err(expected()) }
}
