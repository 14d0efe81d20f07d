//! The rows a sync moves from one logbook to another ([`SyncRows`]), as they travel in a batch:
//! JSON text from the file (parameters, manifests) is kept byte for byte, so a batch's checksum
//! covers exactly what is stored. An edge collects them with [`Logbook::pending_rows`] and
//! marks them with [`Logbook::mark_synced`] once delivered; a hub merges them with
//! [`Logbook::apply_rows`].

use std::collections::BTreeSet;
use std::fmt;

use rusqlite::{Row, params};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::{DeviceRecord, Logbook, RUN_COLUMNS, RunStatus, device_from_row, sql_count, timestamp};
use crate::error::Result;
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
    /// The next rows a sync should send: up to `max_runs` settled runs not yet synced (oldest
    /// first) with their metrics, with `include_running` also every running run, and the devices
    /// and models those runs refer to or that were never synced. Empty when nothing is left.
    pub fn pending_rows(&self, max_runs: usize, include_running: bool) -> Result<SyncRows> {
        let context = "collecting rows to sync";
        let max_runs = i64::try_from(max_runs).unwrap_or(i64::MAX);
        let mut runs: Vec<RunRow> = {
            let mut statement = self
                .connection
                .prepare(&format!(
                    "SELECT {RUN_COLUMNS} FROM runs WHERE status != 'running'
                     AND id NOT IN (SELECT row_key FROM synced WHERE row_kind = 'run')
                     ORDER BY started_at, id LIMIT ?1"
                ))
                .map_err(|err| self.failure(context, err))?;
            statement
                .query_map([max_runs], run_row_from_row)
                .and_then(Iterator::collect)
                .map_err(|err| self.failure(context, err))?
        };
        if include_running {
            let mut statement = self
                .connection
                .prepare(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE status = 'running' ORDER BY started_at, id"))
                .map_err(|err| self.failure(context, err))?;
            let running: Vec<RunRow> = statement
                .query_map([], run_row_from_row)
                .and_then(Iterator::collect)
                .map_err(|err| self.failure(context, err))?;
            runs.extend(running);
        }
        let mut metrics = Vec::new();
        for run in runs.iter().filter(|run| run.status.is_settled()) {
            metrics.extend(self.metrics_of(&run.id)?.into_iter().map(|metric| MetricRow {
                run_id: run.id.clone(),
                axis: metric.axis,
                name: metric.name,
                value: metric.value,
                ci_low: metric.ci_low,
                ci_high: metric.ci_high,
                n: metric.n,
            }));
        }
        let wanted_devices: BTreeSet<&str> =
            runs.iter().map(|run| run.device_id.as_str()).collect();
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
        let mut device_ids = unsynced("device")?;
        device_ids.extend(wanted_devices.into_iter().map(str::to_owned));
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

    /// Merges rows from another logbook in one transaction: rows are inserted or ignored by
    /// primary key, and a run held as `running` is settled when the rows say it is done or
    /// failed. Applying the same rows twice changes nothing the second time. Rows that break a
    /// constraint (a metric of an unknown run, a bad status) abort the whole transaction.
    pub fn apply_rows(&self, rows: &SyncRows) -> Result<ApplySummary> {
        let context = "applying a sync batch";
        let fail = |err: rusqlite::Error| self.failure(context, err);
        let mut summary = ApplySummary::default();
        let transaction = self.connection.unchecked_transaction().map_err(fail)?;
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
                .prepare_cached("UPDATE runs SET status = ?2, finished_at = ?3, message = ?4 WHERE id = ?1 AND status = 'running'")
                .map_err(fail)?;
            for run in &rows.runs {
                let added = insert_run
                    .execute(params![
                        run.id,
                        run.device_id,
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
                        .execute(params![run.id, run.status.as_str(), run.finished_at, run.message])
                        .map_err(fail)?;
                }
            }
            let mut insert_metric = transaction
                .prepare_cached("INSERT OR IGNORE INTO metrics (run_id, axis, name, value, ci_low, ci_high, n) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")
                .map_err(fail)?;
            for metric in &rows.metrics {
                summary.metrics_added += sql_count(metric.n)
                    .and_then(|n| {
                        insert_metric.execute(params![
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
        transaction.commit().map_err(fail)?;
        Ok(summary)
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
