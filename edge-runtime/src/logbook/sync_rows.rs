//! The rows a sync moves from one logbook to another ([`SyncRows`]), as they travel in a batch:
//! JSON text from the file (parameters, manifests) is kept byte for byte, so a batch's checksum
//! covers exactly what is stored. An edge collects them with [`Logbook::pending_rows`] and
//! marks them with [`Logbook::mark_synced`] once delivered; a hub merges them with
//! [`Logbook::apply_rows`], only for the enrolled device that signed them
//! ([`Logbook::enroll_device`], [`Logbook::revoke_device`], [`EnrolledDevice`]).

use std::collections::BTreeSet;
use std::fmt;

use rusqlite::{OptionalExtension, Row, params};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::{DeviceRecord, Logbook, RUN_COLUMNS, RunStatus, device_from_row, sql_count, timestamp};
use crate::error::{Error, Result};
use crate::keys::PublicKey;
use crate::metrics::Axis;

/// A `models` row as it travels in a sync batch; the manifest's JSON text is kept byte for byte.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelRow {
    pub sha256: String,
    pub manifest: Box<RawValue>,
    pub registered_at: String,
}

/// A `runs` row as it travels in a sync batch; the parameters' JSON text is kept byte for byte.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRow {
    pub id: String,
    pub device_id: String,
    pub model_sha256: Option<String>,
    pub kind: String,
    pub params: Box<RawValue>,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub status: RunStatus,
    pub message: Option<String>,
}

/// A `metrics` row as it travels in a sync batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricRow {
    pub run_id: String,
    /// Its lowercase name on the wire; a batch naming another axis is refused whole.
    pub axis: Axis,
    pub name: String,
    pub value: f64,
    pub ci_low: f64,
    pub ci_high: f64,
    pub n: u64,
}

/// Rows to move from one logbook to another: what a sync batch carries.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SyncRows {
    pub devices: Vec<DeviceRecord>,
    pub models: Vec<ModelRow>,
    pub runs: Vec<RunRow>,
    pub metrics: Vec<MetricRow>,
}

impl SyncRows {
    pub fn is_empty(&self) -> bool {
        self.devices.is_empty()
            && self.models.is_empty()
            && self.runs.is_empty()
            && self.metrics.is_empty()
    }

    pub fn n_settled_runs(&self) -> usize {
        self.runs.iter().filter(|run| run.status.is_settled()).count()
    }
}

/// What applying a batch changed; all zero when the batch had been applied before.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplySummary {
    pub devices_added: usize,
    pub models_added: usize,
    pub runs_added: usize,
    /// Runs the hub held as `running` that the batch reports done or failed.
    pub runs_settled: usize,
    pub metrics_added: usize,
}

impl ApplySummary {
    pub fn changed_anything(&self) -> bool {
        *self != ApplySummary::default()
    }
}

impl fmt::Display for ApplySummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} new device(s), {} new model(s), {} new run(s), {} run(s) settled, {} new metric(s)",
            self.devices_added,
            self.models_added,
            self.runs_added,
            self.runs_settled,
            self.metrics_added
        )
    }
}

impl Logbook {
    /// The next rows a sync should send, all of this logbook's own device: up to `max_runs` of
    /// its settled runs not yet synced (oldest first) with their metrics, with `include_running`
    /// also its every running run, its device row, and the models those runs refer to or that
    /// were never synced. Empty when nothing is left.
    pub fn pending_rows(&self, max_runs: usize, include_running: bool) -> Result<SyncRows> {
        let context = "collecting rows to sync";
        let max_runs = i64::try_from(max_runs).unwrap_or(i64::MAX);
        let mut runs: Vec<RunRow> = {
            let mut statement = self
                .connection
                .prepare(&format!(
                    "SELECT {RUN_COLUMNS} FROM runs WHERE status != 'running' AND device_id = ?2
                     AND id NOT IN (SELECT row_key FROM synced WHERE row_kind = 'run')
                     ORDER BY started_at, id LIMIT ?1"
                ))
                .map_err(|err| self.failure(context, err))?;
            statement
                .query_map(params![max_runs, self.device_id], run_row_from_row)
                .and_then(Iterator::collect)
                .map_err(|err| self.failure(context, err))?
        };
        if include_running {
            let mut statement = self
                .connection
                .prepare(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE status = 'running' AND device_id = ?1 ORDER BY started_at, id"))
                .map_err(|err| self.failure(context, err))?;
            let running: Vec<RunRow> = statement
                .query_map([&self.device_id], run_row_from_row)
                .and_then(Iterator::collect)
                .map_err(|err| self.failure(context, err))?;
            runs.extend(running);
        }
        let mut metrics = Vec::new();
        for run in runs.iter().filter(|run| run.status.is_settled()) {
            metrics.extend(self.metrics_of(&run.device_id, &run.id)?.into_iter().map(|metric| {
                MetricRow {
                    run_id: run.id.clone(),
                    axis: metric.axis,
                    name: metric.name,
                    value: metric.value,
                    ci_low: metric.ci_low,
                    ci_high: metric.ci_high,
                    n: metric.n,
                }
            }));
        }
        let wanted_models: BTreeSet<&str> =
            runs.iter().filter_map(|run| run.model_sha256.as_deref()).collect();
        let unsynced = |kind: &str| -> Result<BTreeSet<String>> {
            let mut statement = self
                .connection
                .prepare(&format!(
                    "SELECT {key} FROM {kind}s WHERE {key} NOT IN (SELECT row_key FROM synced WHERE row_kind = ?1)",
                    key = if kind == "model" { "sha256" } else { "id" }
                ))
                .map_err(|err| self.failure(context, err))?;
            statement
                .query_map([kind], |row| row.get(0))
                .and_then(Iterator::collect)
                .map_err(|err| self.failure(context, err))
        };
        // A batch speaks for this device only: it carries this device's row (when it was never
        // synced, or its runs travel) and none of the other devices a logbook may hold.
        let mut device_ids = unsynced("device")?;
        device_ids.retain(|id| *id == self.device_id);
        if !runs.is_empty() {
            device_ids.insert(self.device_id.clone());
        }
        let mut model_ids = unsynced("model")?;
        model_ids.extend(wanted_models.into_iter().map(str::to_owned));
        let mut devices = Vec::with_capacity(device_ids.len());
        for id in &device_ids {
            devices.push(
                self.connection
                    .query_row(
                        "SELECT id, hostname, first_seen FROM devices WHERE id = ?1",
                        [id],
                        device_from_row,
                    )
                    .map_err(|err| self.failure(context, err))?,
            );
        }
        let mut models = Vec::with_capacity(model_ids.len());
        for sha256 in &model_ids {
            models.push(
                self.connection
                    .query_row(
                        "SELECT sha256, manifest, registered_at FROM models WHERE sha256 = ?1",
                        [sha256],
                        model_row_from_row,
                    )
                    .map_err(|err| self.failure(format!("{context}: model {sha256}"), err))?,
            );
        }
        Ok(SyncRows { devices, models, runs, metrics })
    }

    /// Records that a hub acknowledged `rows` (sent in the batch with checksum `batch_sha256`):
    /// its devices, models and settled runs are not sent again. Running runs stay unsynced.
    pub fn mark_synced(&self, rows: &SyncRows, batch_sha256: &str) -> Result<()> {
        let context = "marking rows synced";
        let transaction =
            self.connection.unchecked_transaction().map_err(|err| self.failure(context, err))?;
        {
            let mut insert = transaction
                .prepare_cached("INSERT OR IGNORE INTO synced (row_kind, row_key, batch_sha256, synced_at) VALUES (?1, ?2, ?3, ?4)")
                .map_err(|err| self.failure(context, err))?;
            let now = timestamp::now();
            let keys = rows
                .devices
                .iter()
                .map(|device| ("device", device.id.as_str()))
                .chain(rows.models.iter().map(|model| ("model", model.sha256.as_str())))
                .chain(
                    rows.runs
                        .iter()
                        .filter(|run| run.status.is_settled())
                        .map(|run| ("run", run.id.as_str())),
                );
            for (kind, key) in keys {
                insert
                    .execute(params![kind, key, batch_sha256, now])
                    .map_err(|err| self.failure(context, err))?;
            }
        }
        transaction.commit().map_err(|err| self.failure(context, err))
    }

    /// Merges rows sent by the enrolled device `sender`, verified under `key`, in one
    /// transaction, for the logbook device `source_device` the batch speaks for. The sender must
    /// be enrolled, not revoked, and `key` must still be its key (a batch verified just before a
    /// rotation or a revocation is refused, 403);
    /// its key must speak for `source_device` (bound at enrolment, or now, by this first batch,
    /// when the device is new to this logbook); every device and run row must be that device's.
    /// Anything else is [`Error::Refused`] (401 or 403) and nothing is written. Rows are then
    /// inserted or ignored by primary key, runs and metrics strictly under `source_device`: a run
    /// of the same id held for another device is another run, never touched. A run of
    /// `source_device` held as `running` is settled when the rows say it is; applying the same
    /// rows twice changes nothing the second time.
    pub fn apply_rows(
        &self,
        sender: &str,
        key: &PublicKey,
        source_device: &str,
        rows: &SyncRows,
    ) -> Result<ApplySummary> {
        let transaction = self
            .connection
            .unchecked_transaction()
            .map_err(|err| self.failure("applying a sync batch", err))?;
        let summary = self.apply_in(&transaction, sender, key, source_device, rows)?;
        transaction.commit().map_err(|err| self.failure("applying a sync batch", err))?;
        Ok(summary)
    }

    /// [`Logbook::apply_rows`] for several batches (origin, sender, key, source device, rows) in one
    /// transaction: one refused batch leaves the logbook as it was, the others included, and its
    /// refusal starts with its origin (the file it came from).
    pub fn apply_batches(
        &self,
        batches: &[(&str, &str, &PublicKey, &str, &SyncRows)],
    ) -> Result<Vec<ApplySummary>> {
        let context = "applying sync batches";
        let transaction =
            self.connection.unchecked_transaction().map_err(|err| self.failure(context, err))?;
        let mut summaries = Vec::with_capacity(batches.len());
        for (origin, sender, key, source_device, rows) in batches {
            let summary =
                self.apply_in(&transaction, sender, key, source_device, rows).map_err(|err| {
                    match err {
                        Error::Refused { status, message } => {
                            Error::Refused { status, message: format!("{origin}: {message}") }
                        }
                        other => other,
                    }
                })?;
            summaries.push(summary);
        }
        transaction.commit().map_err(|err| self.failure(context, err))?;
        Ok(summaries)
    }

    fn apply_in(
        &self,
        transaction: &rusqlite::Connection,
        sender: &str,
        key: &PublicKey,
        source_device: &str,
        rows: &SyncRows,
    ) -> Result<ApplySummary> {
        let context = "applying a sync batch";
        let fail = |err: rusqlite::Error| self.failure(context, err);
        let forbidden = |message: String| Error::Refused { status: 403, message };
        let mut summary = ApplySummary::default();
        let enrolled =
            enrolled_by_name(transaction, sender).map_err(fail)?.ok_or_else(|| Error::Refused {
                status: 401,
                message: format!("device `{sender}` is not enrolled at this hub"),
            })?;
        if let Some(revoked_at) = &enrolled.revoked_at {
            return Err(forbidden(format!(
                "the key of device `{sender}` was revoked at {revoked_at}"
            )));
        }
        if enrolled.public_key != key.to_hex() {
            return Err(forbidden(format!(
                "the batch is signed with key {}, but device `{sender}` is now enrolled with key {} (its key was replaced)",
                key.fingerprint(),
                crate::keys::fingerprint_of_hex(&enrolled.public_key)
            )));
        }
        match &enrolled.device_id {
            Some(bound) if bound != source_device => {
                return Err(forbidden(format!(
                    "device `{sender}` speaks for logbook device {bound}, but the batch comes from {source_device}"
                )));
            }
            Some(_) => {}
            None => {
                let holder: Option<String> = transaction
                    .query_row(
                        "SELECT name FROM device_keys WHERE device_id = ?1",
                        [source_device],
                        |row| row.get(0),
                    )
                    .optional()
                    .map_err(fail)?;
                if let Some(holder) = holder {
                    return Err(forbidden(format!(
                        "logbook device {source_device} belongs to enrolled device `{holder}`, not to `{sender}`"
                    )));
                }
                let known: Option<i64> = transaction
                    .query_row("SELECT 1 FROM devices WHERE id = ?1", [source_device], |row| {
                        row.get(0)
                    })
                    .optional()
                    .map_err(fail)?;
                if known.is_some() {
                    return Err(forbidden(format!(
                        "logbook device {source_device} already has rows on this hub from before `{sender}` was enrolled; \
                         only an enrolment that names this device id may take them over"
                    )));
                }
                transaction
                    .execute(
                        "UPDATE device_keys SET device_id = ?2 WHERE name = ?1",
                        params![sender, source_device],
                    )
                    .map_err(fail)?;
            }
        }
        for (index, device) in rows.devices.iter().enumerate() {
            if device.id != source_device {
                return Err(forbidden(format!(
                    "devices[{index}].id: device {} is not the sender's device {source_device}",
                    device.id
                )));
            }
        }
        // Another device's run of the same id is no concern of this batch: runs are keyed by
        // (device, id), and everything below names the sender's device.
        for (index, run) in rows.runs.iter().enumerate() {
            if run.device_id != source_device {
                return Err(forbidden(format!(
                    "runs[{index}].device_id: run {} claims device {}, not the sender's device {source_device}",
                    run.id, run.device_id
                )));
            }
        }
        // A model is keyed by the SHA-256 of its graph; a batch may not give a model the hub
        // holds another manifest (a manifest's validity and key are checked at decoding).
        for model in &rows.models {
            let held: Option<String> = transaction
                .query_row(
                    "SELECT manifest FROM models WHERE sha256 = ?1",
                    [&model.sha256],
                    |row| row.get(0),
                )
                .optional()
                .map_err(fail)?;
            if held.is_some_and(|held| held != model.manifest.get()) {
                return Err(forbidden(format!(
                    "model {} is registered with another manifest at this hub",
                    model.sha256
                )));
            }
        }
        {
            let mut insert_device = transaction
                .prepare_cached(
                    "INSERT OR IGNORE INTO devices (id, hostname, first_seen) VALUES (?1, ?2, ?3)",
                )
                .map_err(fail)?;
            for device in &rows.devices {
                summary.devices_added += insert_device
                    .execute(params![device.id, device.hostname, device.first_seen])
                    .map_err(fail)?;
            }
            let mut insert_model =
                transaction.prepare_cached("INSERT OR IGNORE INTO models (sha256, manifest, registered_at) VALUES (?1, ?2, ?3)").map_err(fail)?;
            for model in &rows.models {
                summary.models_added += insert_model
                    .execute(params![model.sha256, model.manifest.get(), model.registered_at])
                    .map_err(fail)?;
            }
            let mut insert_run = transaction
                .prepare_cached(
                    "INSERT OR IGNORE INTO runs (id, device_id, model_id, kind, params, started_at, finished_at, status, message)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )
                .map_err(fail)?;
            let mut settle_run = transaction
                .prepare_cached("UPDATE runs SET status = ?3, finished_at = ?4, message = ?5 WHERE device_id = ?2 AND id = ?1 AND status = 'running'")
                .map_err(fail)?;
            for run in &rows.runs {
                let added = insert_run
                    .execute(params![
                        run.id,
                        source_device,
                        run.model_sha256,
                        run.kind,
                        run.params.get(),
                        run.started_at,
                        run.finished_at,
                        run.status.as_str(),
                        run.message
                    ])
                    .map_err(fail)?;
                summary.runs_added += added;
                if added == 0 && run.status.is_settled() {
                    summary.runs_settled += settle_run
                        .execute(params![
                            run.id,
                            source_device,
                            run.status.as_str(),
                            run.finished_at,
                            run.message
                        ])
                        .map_err(fail)?;
                }
            }
            let mut insert_metric = transaction
                .prepare_cached("INSERT OR IGNORE INTO metrics (device_id, run_id, axis, name, value, ci_low, ci_high, n) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)")
                .map_err(fail)?;
            for metric in &rows.metrics {
                summary.metrics_added += sql_count(metric.n)
                    .and_then(|n| {
                        insert_metric.execute(params![
                            source_device,
                            metric.run_id,
                            metric.axis.as_str(),
                            metric.name,
                            metric.value,
                            metric.ci_low,
                            metric.ci_high,
                            n
                        ])
                    })
                    .map_err(fail)?;
            }
        }
        Ok(summary)
    }

    /// Enrols device `name` with `public_key`, optionally pinned to the logbook device
    /// `device_id` it speaks for (a device that synced here before it was enrolled).
    /// `replace` allows a name already enrolled (a new key after a rotation or a revocation;
    /// its device stays the same unless `device_id` says otherwise); without it an enrolled name
    /// is refused. `before_commit` runs inside the transaction (writing the secret key file), so
    /// either both happen or neither.
    pub fn enroll_device(
        &self,
        name: &str,
        public_key: &PublicKey,
        device_id: Option<&str>,
        replace: bool,
        before_commit: impl FnOnce() -> Result<()>,
    ) -> Result<EnrolledDevice> {
        check_device_name(name)
            .map_err(|message| self.refusal(format!("enrolling a device: {message}")))?;
        let context = format!("enrolling device `{name}`");
        let fail = |err: rusqlite::Error| self.failure(&context, err);
        if let Some(device_id) = device_id {
            check_device_id(device_id)
                .map_err(|message| self.refusal(format!("{context}: device id: {message}")))?;
        }
        let transaction = self.connection.unchecked_transaction().map_err(fail)?;
        let existing = enrolled_by_name(&transaction, name).map_err(fail)?;
        if let Some(existing) = &existing
            && !replace
        {
            return Err(self.refusal(format!(
                "{context}: it is already enrolled (key {}, since {}); replacing its key must be asked for explicitly",
                crate::keys::fingerprint_of_hex(&existing.public_key),
                existing.enrolled_at
            )));
        }
        if let Some(device_id) = device_id {
            let holder: Option<String> = transaction
                .query_row(
                    "SELECT name FROM device_keys WHERE device_id = ?1 AND name != ?2",
                    params![device_id, name],
                    |row| row.get(0),
                )
                .optional()
                .map_err(fail)?;
            if let Some(holder) = holder {
                return Err(self.refusal(format!(
                    "{context}: logbook device {device_id} already belongs to enrolled device `{holder}`"
                )));
            }
        }
        let key_holder: Option<String> = transaction
            .query_row(
                "SELECT name FROM device_keys WHERE public_key = ?1 AND name != ?2",
                params![public_key.to_hex(), name],
                |row| row.get(0),
            )
            .optional()
            .map_err(fail)?;
        if let Some(holder) = key_holder {
            return Err(self.refusal(format!(
                "{context}: key {} is already the key of device `{holder}`",
                public_key.fingerprint()
            )));
        }
        let bound = device_id
            .map(str::to_owned)
            .or_else(|| existing.as_ref().and_then(|existing| existing.device_id.clone()));
        transaction
            .execute(
                "INSERT INTO device_keys (name, public_key, device_id, enrolled_at, revoked_at)
                 VALUES (?1, ?2, ?3, ?4, NULL)
                 ON CONFLICT (name) DO UPDATE SET public_key = excluded.public_key,
                     device_id = excluded.device_id, enrolled_at = excluded.enrolled_at,
                     revoked_at = NULL",
                params![name, public_key.to_hex(), bound, timestamp::now()],
            )
            .map_err(fail)?;
        let enrolled = enrolled_by_name(&transaction, name)
            .map_err(fail)?
            .ok_or_else(|| self.refusal(format!("{context}: the enrolment did not read back")))?;
        before_commit()?;
        transaction.commit().map_err(fail)?;
        Ok(enrolled)
    }

    /// Revokes the key of device `name`: its batches are refused from now on (403). Its rows stay.
    pub fn revoke_device(&self, name: &str) -> Result<EnrolledDevice> {
        let context = format!("revoking device `{name}`");
        let fail = |err: rusqlite::Error| self.failure(&context, err);
        let transaction = self.connection.unchecked_transaction().map_err(fail)?;
        let Some(existing) = enrolled_by_name(&transaction, name).map_err(fail)? else {
            return Err(self.refusal(format!("{context}: no such enrolled device")));
        };
        if let Some(revoked_at) = &existing.revoked_at {
            return Err(self.refusal(format!("{context}: it was already revoked at {revoked_at}")));
        }
        transaction
            .execute(
                "UPDATE device_keys SET revoked_at = ?2 WHERE name = ?1",
                params![name, timestamp::now()],
            )
            .map_err(fail)?;
        let revoked = enrolled_by_name(&transaction, name)
            .map_err(fail)?
            .ok_or_else(|| self.refusal(format!("{context}: the device did not read back")))?;
        transaction.commit().map_err(fail)?;
        Ok(revoked)
    }

    /// The enrolled device whose public key is `public_key` (revoked or not), if any.
    pub fn device_by_key(&self, public_key: &PublicKey) -> Result<Option<EnrolledDevice>> {
        self.connection
            .query_row(
                &format!("SELECT {ENROLLED_COLUMNS} FROM device_keys WHERE public_key = ?1"),
                [public_key.to_hex()],
                enrolled_from_row,
            )
            .optional()
            .map_err(|err| self.failure("looking up a device key", err))
    }

    /// Every enrolled device, by name.
    pub fn enrolled_devices(&self) -> Result<Vec<EnrolledDevice>> {
        let context = "listing enrolled devices";
        let mut statement = self
            .connection
            .prepare(&format!("SELECT {ENROLLED_COLUMNS} FROM device_keys ORDER BY name"))
            .map_err(|err| self.failure(context, err))?;
        statement
            .query_map([], enrolled_from_row)
            .and_then(Iterator::collect)
            .map_err(|err| self.failure(context, err))
    }
}

/// A device enrolled at a hub: its name, its public key (64 hex digits), the logbook device it
/// speaks for once pinned or bound, and when it was enrolled or revoked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrolledDevice {
    pub name: String,
    pub public_key: String,
    pub device_id: Option<String>,
    pub enrolled_at: String,
    pub revoked_at: Option<String>,
}

const ENROLLED_COLUMNS: &str = "name, public_key, device_id, enrolled_at, revoked_at";

fn enrolled_from_row(row: &Row<'_>) -> rusqlite::Result<EnrolledDevice> {
    Ok(EnrolledDevice {
        name: row.get(0)?,
        public_key: row.get(1)?,
        device_id: row.get(2)?,
        enrolled_at: row.get(3)?,
        revoked_at: row.get(4)?,
    })
}

fn enrolled_by_name(
    connection: &rusqlite::Connection,
    name: &str,
) -> rusqlite::Result<Option<EnrolledDevice>> {
    connection
        .query_row(
            &format!("SELECT {ENROLLED_COLUMNS} FROM device_keys WHERE name = ?1"),
            [name],
            enrolled_from_row,
        )
        .optional()
}

/// A device name: 1 to 64 letters, digits, `.`, `_` or `-`, starting with a letter or digit.
pub fn check_device_name(name: &str) -> std::result::Result<(), String> {
    let valid = (1..=64).contains(&name.len())
        && name.bytes().all(|byte| byte.is_ascii_alphanumeric() || b"._-".contains(&byte))
        && name.bytes().next().is_some_and(|byte| byte.is_ascii_alphanumeric());
    if valid {
        Ok(())
    } else {
        Err(format!(
            "invalid device name `{}`: expected 1 to 64 letters, digits, `.`, `_` or `-`, starting with a letter or digit",
            name.chars().take(80).collect::<String>().escape_debug()
        ))
    }
}

/// A logbook device id as one travels in a batch: 1 to 128 printable ASCII characters.
pub fn check_device_id(id: &str) -> std::result::Result<(), String> {
    if (1..=128).contains(&id.len()) && id.bytes().all(|byte| byte.is_ascii_graphic()) {
        Ok(())
    } else {
        Err(format!(
            "`{}` is not a device id: expected 1 to 128 printable ASCII characters",
            id.chars().take(140).collect::<String>().escape_debug()
        ))
    }
}

fn status_from_row(row: &Row<'_>, index: usize) -> rusqlite::Result<RunStatus> {
    let text: String = row.get(index)?;
    text.parse().map_err(|message: String| {
        rusqlite::Error::FromSqlConversionFailure(
            index,
            rusqlite::types::Type::Text,
            message.into(),
        )
    })
}

/// A `runs` row selected as [`RUN_COLUMNS`].
pub(super) fn run_row_from_row(row: &Row<'_>) -> rusqlite::Result<RunRow> {
    let params = RawValue::from_string(row.get(4)?).map_err(|err| {
        rusqlite::Error::FromSqlConversionFailure(4, rusqlite::types::Type::Text, err.into())
    })?;
    Ok(RunRow {
        id: row.get(0)?,
        device_id: row.get(1)?,
        model_sha256: row.get(2)?,
        kind: row.get(3)?,
        params,
        started_at: row.get(5)?,
        finished_at: row.get(6)?,
        status: status_from_row(row, 7)?,
        message: row.get(8)?,
    })
}

fn model_row_from_row(row: &Row<'_>) -> rusqlite::Result<ModelRow> {
    let manifest = RawValue::from_string(row.get(1)?).map_err(|err| {
        rusqlite::Error::FromSqlConversionFailure(1, rusqlite::types::Type::Text, err.into())
    })?;
    Ok(ModelRow { sha256: row.get(0)?, manifest, registered_at: row.get(2)? })
}
