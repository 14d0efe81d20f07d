//! The sync batch: one self-describing JSON document that carries logbook rows from an edge to a
//! hub, over HTTP or as a file on a USB stick.
//!
//! ```json
//! { "format": "fieldsynth-logbook-batch", "version": 1,
//!   "source_device": "<uuid>", "created_at": "2025-03-07T14:05:09.123Z",
//!   "payload_sha256": "<hex SHA-256 of the payload's exact bytes>",
//!   "payload": { "devices": [..], "models": [..], "runs": [..], "metrics": [..] } }
//! ```
//!
//! The checksum covers the payload's bytes as they stand in the document, so a flipped bit or a
//! truncated file is refused before anything is written. Decoding also checks that the rows hang
//! together: every metric belongs to a done or failed run of the same batch, and every run's
//! device and model travel with it.

use std::collections::{BTreeSet, HashSet};

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::logbook::{SyncRows, timestamp};

pub const FORMAT: &str = "fieldsynth-logbook-batch";
pub const VERSION: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
struct Envelope {
    format: String,
    version: u32,
    source_device: String,
    created_at: String,
    payload_sha256: String,
    payload: Box<RawValue>,
}

/// A batch ready to send: its rows and the exact payload text its checksum covers.
#[derive(Debug, Clone)]
pub struct Batch {
    pub source_device: String,
    pub created_at: String,
    pub payload_sha256: String,
    pub rows: SyncRows,
    payload_json: String,
}

impl Batch {
    pub fn new(source_device: &str, rows: SyncRows) -> Result<Batch> {
        let payload_json = serde_json::to_string(&rows).map_err(encoding_failure)?;
        Ok(Batch {
            source_device: source_device.to_owned(),
            created_at: timestamp::now(),
            payload_sha256: hex::encode(Sha256::digest(payload_json.as_bytes())),
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
            payload,
        };
        serde_json::to_vec_pretty(&envelope).map_err(encoding_failure)
    }

    /// Parses and verifies a batch; `origin` (a file, a peer address) names it in errors.
    pub fn decode(bytes: &[u8], origin: &str) -> Result<Batch> {
        let refuse = |message: String| {
            Error::Sync(format!("{origin}: {message}; the batch was rejected whole"))
        };
        let unreadable = |context: String| {
            move |source| Error::BatchUnreadable { origin: origin.to_owned(), context, source }
        };
        let envelope: Envelope = serde_json::from_slice(bytes)
            .map_err(unreadable(format!("not a readable {FORMAT} document")))?;
        if envelope.format != FORMAT {
            return Err(refuse(format!("format is `{}`; expected `{FORMAT}`", envelope.format)));
        }
        if envelope.version != VERSION {
            return Err(refuse(format!(
                "format version is {}; this synth-edge reads version {VERSION}",
                envelope.version
            )));
        }
        let payload_json = envelope.payload.get().to_owned();
        let actual = hex::encode(Sha256::digest(payload_json.as_bytes()));
        if !actual.eq_ignore_ascii_case(&envelope.payload_sha256) {
            return Err(refuse(format!(
                "payload SHA-256 is {actual}, but the batch declares {}: it was damaged",
                envelope.payload_sha256
            )));
        }
        let rows: SyncRows = serde_json::from_str(&payload_json)
            .map_err(unreadable("payload rows are malformed".to_owned()))?;
        check_rows(&rows).map_err(refuse)?;
        Ok(Batch {
            source_device: envelope.source_device,
            created_at: envelope.created_at,
            payload_sha256: actual,
            rows,
            payload_json,
        })
    }

    /// A file name for the batch in a `--to-dir` folder: sortable by time, unique by checksum.
    pub fn file_name(&self) -> String {
        let stamp: String = self.created_at.chars().filter(char::is_ascii_alphanumeric).collect();
        let device: String =
            self.source_device.chars().filter(char::is_ascii_alphanumeric).take(8).collect();
        format!("fieldsynth-batch-{stamp}-{device}-{}.json", &self.payload_sha256[..12])
    }
}

fn encoding_failure(source: serde_json::Error) -> Error {
    Error::json("sync: cannot encode a batch", source)
}

/// Every metric belongs to a settled run of the batch; every run's device and model are in it.
fn check_rows(rows: &SyncRows) -> std::result::Result<(), String> {
    let devices: HashSet<&str> = rows.devices.iter().map(|device| device.id.as_str()).collect();
    let models: HashSet<&str> = rows.models.iter().map(|model| model.sha256.as_str()).collect();
    let mut settled_runs = HashSet::new();
    for run in &rows.runs {
        if !devices.contains(run.device_id.as_str()) {
            return Err(format!(
                "run {} refers to device {}, which the batch does not carry",
                run.id, run.device_id
            ));
        }
        if let Some(model) = &run.model_sha256
            && !models.contains(model.as_str())
        {
            return Err(format!(
                "run {} refers to model {model}, which the batch does not carry",
                run.id
            ));
        }
        if run.status.is_settled() != run.finished_at.is_some() {
            return Err(format!(
                "run {} is {} but finished_at is {:?}",
                run.id, run.status, run.finished_at
            ));
        }
        if run.status.is_settled() {
            settled_runs.insert(run.id.as_str());
        }
    }
    let mut seen_metrics = BTreeSet::new();
    for metric in &rows.metrics {
        if !settled_runs.contains(metric.run_id.as_str()) {
            return Err(format!(
                "metric {}/{} belongs to run {}, which is not a done or failed run of the batch",
                metric.axis, metric.name, metric.run_id
            ));
        }
        if !seen_metrics.insert((metric.run_id.as_str(), metric.axis, metric.name.as_str())) {
            return Err(format!(
                "metric {}/{} of run {} appears twice",
                metric.axis, metric.name, metric.run_id
            ));
        }
    }
    Ok(())
}
