//! The logbook: a SQLite file (WAL, foreign keys on, `synchronous = FULL`) holding this device,
//! the models it ran, every run with its parameters and status, and each run's metrics. This
//! module is the only code in the program that touches SQLite.
//!
//! A run is written twice: [`Logbook::start_run`] commits a `running` row at once, and
//! [`Logbook::finish_run`] commits all of its metrics together with `done` in one transaction.
//! A power cut or a kill therefore leaves either a whole run or a `running` row, never a `done`
//! run missing metrics; that `running` row names its process, and the next open marks it
//! `interrupted` once the process is gone (`lifecycle.rs`, which also holds the guard that fails a
//! run left unsettled by an error, a panic or a signal). The same file serves as a hub:
//! [`Logbook::apply_rows`] merges rows from other devices, each batch only under the enrolled
//! device that signed it, inserting or ignoring by primary key, so a repeated batch changes
//! nothing. Runs are keyed by (device, run id): two devices' runs of the same id are two runs,
//! and everything a logbook does to its own runs names its own device.
//!
//! This file holds the run store (opening, registering models, starting and settling runs,
//! listing them); `sync_rows.rs` holds the rows a sync moves between logbooks and a hub's
//! enrolled devices.

mod lifecycle;
mod schema;
mod sync_rows;
pub mod timestamp;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};
use serde::{Deserialize, Serialize};

pub use lifecycle::{RunningRun, settle_runs_on_signals};
pub use schema::SCHEMA_VERSION;
pub use sync_rows::{
    ApplySummary, EnrolledDevice, MetricRow, ModelRow, RunRow, SyncRows, check_device_id,
    check_device_name,
};

use crate::error::{Error, Result};
use crate::metrics::Metric;
use crate::metrics::catalogue::UnknownAxis;
use sync_rows::run_row_from_row;

/// How long a writer waits for another process holding the file (a sync beside a generate).
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Running,
    Done,
    Failed,
    /// The process running it ended without settling it (killed, power cut); found when the
    /// logbook was next opened.
    Interrupted,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Done => "done",
            RunStatus::Failed => "failed",
            RunStatus::Interrupted => "interrupted",
        }
    }

    /// Done, failed and interrupted runs never change again; only they are marked synced.
    pub fn is_settled(self) -> bool {
        self != RunStatus::Running
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RunStatus {
    type Err = String;

    fn from_str(text: &str) -> std::result::Result<Self, Self::Err> {
        match text {
            "running" => Ok(RunStatus::Running),
            "done" => Ok(RunStatus::Done),
            "failed" => Ok(RunStatus::Failed),
            "interrupted" => Ok(RunStatus::Interrupted),
            other => Err(format!(
                "unknown run status `{other}`; expected running, done, failed or interrupted"
            )),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceRecord {
    pub id: String,
    pub hostname: String,
    pub first_seen: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelRecord {
    /// SHA-256 of the bundle's `model.onnx`, as in its manifest.
    pub sha256: String,
    pub manifest_json: String,
    pub registered_at: String,
}

/// A run with its parameters and every metric, for reports and the hub's read endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub id: String,
    pub device_id: String,
    pub model_sha256: Option<String>,
    pub kind: String,
    pub params: serde_json::Value,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub status: RunStatus,
    /// Why a failed run failed.
    pub message: Option<String>,
    /// In the order they were recorded.
    pub metrics: Vec<Metric>,
}

/// A run as `synth-edge log` lists it: its headline figure on each axis.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSummary {
    pub id: String,
    pub kind: String,
    pub status: RunStatus,
    pub model_sha256: Option<String>,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub message: Option<String>,
    pub n_metrics: usize,
    /// The first metric recorded on each axis, axes in [`Axis::ALL`](crate::metrics::Axis::ALL) order, then `training`.
    pub headline_metrics: Vec<Metric>,
}

pub struct Logbook {
    connection: Connection,
    path: PathBuf,
    device_id: String,
}

impl fmt::Debug for Logbook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Logbook")
            .field("path", &self.path)
            .field("device_id", &self.device_id)
            .finish()
    }
}

impl Logbook {
    /// Opens the logbook at `path`, creating it or migrating it to [`SCHEMA_VERSION`]; on first
    /// open it records this device (a new UUID and the hostname).
    pub fn open(path: &Path) -> Result<Logbook> {
        let mut connection = Connection::open(path).map_err(sql_failure(path, "cannot open"))?;
        connection
            .busy_timeout(BUSY_TIMEOUT)
            .map_err(sql_failure(path, "cannot set the busy timeout"))?;
        let journal_mode: String = connection
            .pragma_update_and_check(None, "journal_mode", "wal", |row| row.get(0))
            .map_err(sql_failure(path, "is not a SQLite logbook (switching to WAL failed)"))?;
        if !journal_mode.eq_ignore_ascii_case("wal") {
            return Err(Error::Logbook {
                path: path.to_owned(),
                message: format!(
                    "journal mode is `{journal_mode}`; expected WAL (is the file on a filesystem without shared memory?)"
                ),
            });
        }
        // FULL, not NORMAL: in WAL mode NORMAL cannot corrupt the file, but a power cut may undo
        // the last commits, and a run reported done must stay done.
        connection
            .pragma_update(None, "synchronous", "FULL")
            .map_err(sql_failure(path, "cannot set synchronous"))?;
        connection
            .pragma_update(None, "foreign_keys", true)
            .map_err(sql_failure(path, "cannot enable foreign keys"))?;
        // Writers take the lock when the transaction begins, so two processes never deadlock
        // upgrading read locks; the busy timeout makes the second one wait.
        connection.set_transaction_behavior(TransactionBehavior::Immediate);
        schema::migrate(&connection, path)?;
        let device_id =
            own_device(&connection).map_err(sql_failure(path, "cannot record this device"))?;
        lifecycle::interrupt_orphans(&connection, path, &device_id)?;
        Ok(Logbook { connection, path: path.to_owned(), device_id })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// This logbook's own device, as stored in `devices`.
    pub fn device_id(&self) -> &str {
        &self.device_id
    }

    /// SQLite failed while the logbook was doing `context`.
    fn failure(&self, context: impl Into<String>, source: rusqlite::Error) -> Error {
        Error::LogbookSql { path: self.path.clone(), context: context.into(), source }
    }

    /// The logbook refuses a request that SQLite would have taken.
    fn refusal(&self, message: String) -> Error {
        Error::Logbook { path: self.path.clone(), message }
    }

    /// Records a bundle by the SHA-256 of its `model.onnx`; a bundle already known is left as it is.
    pub fn register_model(&self, bundle_sha256: &str, manifest_json: &str) -> Result<()> {
        let context = || format!("registering model {bundle_sha256}");
        if bundle_sha256.len() != 64 || !bundle_sha256.bytes().all(|byte| byte.is_ascii_hexdigit())
        {
            return Err(
                self.refusal(format!("{}: expected a SHA-256 as 64 hexadecimal digits", context()))
            );
        }
        serde_json::from_str::<serde::de::IgnoredAny>(manifest_json).map_err(|err| {
            Error::json(
                format!("logbook {}: {}: the manifest is not JSON", self.path.display(), context()),
                err,
            )
        })?;
        self.connection
            .execute(
                "INSERT OR IGNORE INTO models (sha256, manifest, registered_at) VALUES (?1, ?2, ?3)",
                params![bundle_sha256.to_ascii_lowercase(), manifest_json, timestamp::now()],
            )
            .map_err(|err| self.failure(context(), err))?;
        Ok(())
    }

    /// Commits a `running` row for a new run and returns its UUID. The model, if given, must have
    /// been registered.
    pub fn start_run(
        &self,
        kind: &str,
        model_sha256: Option<&str>,
        params: &serde_json::Value,
    ) -> Result<String> {
        let run_id = uuid::Uuid::new_v4().to_string();
        let model_id = model_sha256.map(str::to_ascii_lowercase);
        let context = || format!("starting a {kind} run");
        if let Some(model_id) = &model_id {
            let known: Option<i64> = self
                .connection
                .query_row("SELECT 1 FROM models WHERE sha256 = ?1", [model_id], |row| row.get(0))
                .optional()
                .map_err(|err| self.failure(context(), err))?;
            if known.is_none() {
                return Err(self.refusal(format!(
                    "{}: model {model_id} is not registered; register the bundle first",
                    context()
                )));
            }
        }
        self.connection
            .execute(
                "INSERT INTO runs (id, device_id, model_id, kind, params, started_at, status, process) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'running', ?7)",
                params![
                    run_id,
                    self.device_id,
                    model_id,
                    kind,
                    params.to_string(),
                    timestamp::now(),
                    lifecycle::this_process()
                ],
            )
            .map_err(|err| self.failure(context(), err))?;
        Ok(run_id)
    }

    /// Stores all of a run's metrics and marks it done, in one transaction: either all of it is
    /// in the file or none of it. Metrics must be finite and unique by `(axis, name)`.
    pub fn finish_run(&self, run_id: &str, metrics: &[Metric]) -> Result<()> {
        let context = || format!("finishing run {run_id}");
        for metric in metrics {
            for (field, value) in
                [("value", metric.value), ("ci_low", metric.ci_low), ("ci_high", metric.ci_high)]
            {
                if !value.is_finite() {
                    return Err(self.refusal(format!(
                        "{}: metric {}/{} has {field} = {value}; the logbook stores finite numbers only",
                        context(),
                        metric.axis,
                        metric.name
                    )));
                }
            }
        }
        let transaction =
            self.connection.unchecked_transaction().map_err(|err| self.failure(context(), err))?;
        self.settle_run(&transaction, run_id, RunStatus::Done, None)?;
        {
            let mut insert = transaction
                .prepare_cached("INSERT INTO metrics (device_id, run_id, axis, name, value, ci_low, ci_high, n) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)")
                .map_err(|err| self.failure(context(), err))?;
            for metric in metrics {
                sql_count(metric.n)
                    .and_then(|n| {
                        insert.execute(params![
                            self.device_id,
                            run_id,
                            metric.axis.as_str(),
                            metric.name,
                            metric.value,
                            metric.ci_low,
                            metric.ci_high,
                            n
                        ])
                    })
                    .map_err(|err| {
                        self.failure(
                            format!(
                                "{}: recording metric {}/{}",
                                context(),
                                metric.axis,
                                metric.name
                            ),
                            err,
                        )
                    })?;
            }
        }
        transaction.commit().map_err(|err| self.failure(context(), err))
    }

    /// [`start_run`](Self::start_run), returning a guard that settles the run: it is marked
    /// failed if the guard is dropped before [`RunningRun::finish`] or [`RunningRun::fail`].
    pub fn begin_run(
        &self,
        kind: &str,
        model_sha256: Option<&str>,
        params: &serde_json::Value,
    ) -> Result<RunningRun<'_>> {
        let run_id = self.start_run(kind, model_sha256, params)?;
        Ok(RunningRun::new(self, run_id))
    }

    /// Marks a running run of this device failed, with the reason.
    pub fn fail_run(&self, run_id: &str, message: &str) -> Result<()> {
        self.settle_run(&self.connection, run_id, RunStatus::Failed, Some(message))
    }

    fn settle_run(
        &self,
        connection: &Connection,
        run_id: &str,
        status: RunStatus,
        message: Option<&str>,
    ) -> Result<()> {
        let context = || format!("marking run {run_id} {status}");
        let changed = connection
            .execute(
                "UPDATE runs SET status = ?2, finished_at = ?3, message = ?4, process = NULL WHERE device_id = ?5 AND id = ?1 AND status = 'running'",
                params![run_id, status.as_str(), timestamp::now(), message, self.device_id],
            )
            .map_err(|err| self.failure(context(), err))?;
        if changed == 1 {
            return Ok(());
        }
        let current: Option<String> = connection
            .query_row(
                "SELECT status FROM runs WHERE device_id = ?1 AND id = ?2",
                [&self.device_id, run_id],
                |row| row.get(0),
            )
            .optional()
            .map_err(|err| self.failure(context(), err))?;
        Err(self.refusal(match current {
            Some(current) => {
                format!("{}: the run is already {current}; expected a running run", context())
            }
            None => format!("{}: no such run of this device", context()),
        }))
    }

    /// The latest `limit` runs, newest first, with their headline figures.
    pub fn recent_runs(&self, limit: usize) -> Result<Vec<RunSummary>> {
        let context = "listing recent runs";
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut statement = self
            .connection
            .prepare(&format!(
                "SELECT {RUN_COLUMNS} FROM runs ORDER BY started_at DESC, id DESC, device_id DESC LIMIT ?1"
            ))
            .map_err(|err| self.failure(context, err))?;
        let runs =
            statement.query_map([limit], run_from_row).map_err(|err| self.failure(context, err))?;
        let mut summaries = Vec::new();
        for run in runs {
            let run = run.map_err(|err| self.failure(context, err))?;
            let metrics = self.metrics_of(&run.device_id, &run.id)?;
            summaries.push(RunSummary {
                n_metrics: metrics.len(),
                headline_metrics: headline_metrics(&metrics),
                id: run.id,
                kind: run.kind,
                status: run.status,
                model_sha256: run.model_sha256,
                started_at: run.started_at,
                finished_at: run.finished_at,
                message: run.message,
            });
        }
        Ok(summaries)
    }

    /// The run whose id starts with `id_prefix`, if exactly one does; a run whose id is
    /// `id_prefix` itself is preferred to longer ones. On a hub two devices may hold runs of the
    /// same id: this device's own is preferred, and among other devices' it is an error that
    /// names them.
    pub fn find_run(&self, id_prefix: &str) -> Result<Option<RunRecord>> {
        /// Holders of one id named in the refusal when none is this device.
        const MAX_HOLDERS: i64 = 8;
        let context = format!("looking up run {id_prefix}");
        let ids: Vec<String> = self
            .connection
            .prepare(
                "SELECT DISTINCT id FROM runs WHERE substr(id, 1, length(?1)) = ?1
                 ORDER BY id = ?1 DESC, id LIMIT 2",
            )
            .and_then(|mut statement| statement.query_map([id_prefix], |row| row.get(0))?.collect())
            .map_err(|err| self.failure(&context, err))?;
        let id = match ids.as_slice() {
            [] => return Ok(None),
            [exact, ..] if exact == id_prefix => exact,
            [only] => only,
            [_, _, ..] => {
                return Err(self.refusal(format!(
                    "{context}: more than one run starts with it; give more of the id"
                )));
            }
        };
        let mut holders: Vec<RunRecord> = self
            .connection
            .prepare(&format!(
                "SELECT {RUN_COLUMNS} FROM runs WHERE id = ?1
                 ORDER BY device_id = ?2 DESC, device_id LIMIT ?3"
            ))
            .and_then(|mut statement| {
                statement
                    .query_map(params![id, self.device_id, MAX_HOLDERS], run_from_row)?
                    .collect()
            })
            .map_err(|err| self.failure(&context, err))?;
        if holders.len() > 1 && holders.first().is_some_and(|run| run.device_id != self.device_id) {
            let devices: Vec<&str> = holders.iter().map(|run| run.device_id.as_str()).collect();
            return Err(self.refusal(format!(
                "{context}: devices {} each hold a run {id}; this device holds none",
                devices.join(", ")
            )));
        }
        if holders.is_empty() {
            return Ok(None);
        }
        let mut run = holders.swap_remove(0);
        run.metrics = self.metrics_of(&run.device_id, &run.id)?;
        Ok(Some(run))
    }

    /// Every run, oldest first, with its parameters and metrics.
    pub fn runs(&self) -> Result<Vec<RunRecord>> {
        let context = "listing runs";
        let mut metrics_by_run: HashMap<(String, String), Vec<Metric>> = HashMap::new();
        let mut statement = self
            .connection
            .prepare(&format!(
                "SELECT device_id, run_id, {METRIC_COLUMNS} FROM metrics WHERE {} ORDER BY rowid",
                known_axes()
            ))
            .map_err(|err| self.failure(context, err))?;
        let rows = statement
            .query_map([], |row| Ok(((row.get(0)?, row.get(1)?), metric_from_row(row, 2)?)))
            .map_err(|err| self.failure(context, err))?;
        for row in rows {
            let (run, metric) = row.map_err(|err| self.failure(context, err))?;
            metrics_by_run.entry(run).or_default().push(metric);
        }
        let mut statement = self
            .connection
            .prepare(&format!("SELECT {RUN_COLUMNS} FROM runs ORDER BY started_at, id, device_id"))
            .map_err(|err| self.failure(context, err))?;
        let mut runs: Vec<RunRecord> = statement
            .query_map([], run_from_row)
            .and_then(Iterator::collect)
            .map_err(|err| self.failure(context, err))?;
        for run in &mut runs {
            let key = (run.device_id.clone(), run.id.clone());
            run.metrics = metrics_by_run.remove(&key).unwrap_or_default();
        }
        Ok(runs)
    }

    pub fn models(&self) -> Result<Vec<ModelRecord>> {
        let context = "listing models";
        let mut statement = self
            .connection
            .prepare(
                "SELECT sha256, manifest, registered_at FROM models ORDER BY registered_at, sha256",
            )
            .map_err(|err| self.failure(context, err))?;
        statement
            .query_map([], |row| {
                Ok(ModelRecord {
                    sha256: row.get(0)?,
                    manifest_json: row.get(1)?,
                    registered_at: row.get(2)?,
                })
            })
            .and_then(Iterator::collect)
            .map_err(|err| self.failure(context, err))
    }

    pub fn devices(&self) -> Result<Vec<DeviceRecord>> {
        let context = "listing devices";
        let mut statement = self
            .connection
            .prepare("SELECT id, hostname, first_seen FROM devices ORDER BY first_seen, id")
            .map_err(|err| self.failure(context, err))?;
        statement
            .query_map([], device_from_row)
            .and_then(Iterator::collect)
            .map_err(|err| self.failure(context, err))
    }

    /// The lines of `PRAGMA integrity_check`: `["ok"]` for a sound file.
    pub fn integrity_check(&self) -> Result<Vec<String>> {
        let context = "checking integrity";
        let mut lines = Vec::new();
        self.connection
            .pragma_query(None, "integrity_check", |row| {
                lines.push(row.get(0)?);
                Ok(())
            })
            .map_err(|err| self.failure(context, err))?;
        Ok(lines)
    }

    /// The metrics of the run `run_id` of device `device_id`, in the order they were recorded.
    fn metrics_of(&self, device_id: &str, run_id: &str) -> Result<Vec<Metric>> {
        let context = || format!("reading the metrics of run {run_id} of device {device_id}");
        let mut statement = self
            .connection
            .prepare_cached(&format!(
                "SELECT {METRIC_COLUMNS} FROM metrics WHERE device_id = ?1 AND run_id = ?2 AND {} ORDER BY rowid",
                known_axes()
            ))
            .map_err(|err| self.failure(context(), err))?;
        statement
            .query_map([device_id, run_id], |row| metric_from_row(row, 0))
            .and_then(Iterator::collect)
            .map_err(|err| self.failure(context(), err))
    }
}

/// Turns a SQLite error met while the logbook at `path` was doing `context` into an [`Error`].
fn sql_failure(path: &Path, context: &str) -> impl FnOnce(rusqlite::Error) -> Error {
    move |source| Error::LogbookSql { path: path.to_owned(), context: context.to_owned(), source }
}

/// This logbook's own device, recorded on first open.
fn own_device(connection: &Connection) -> rusqlite::Result<String> {
    let query = "SELECT device_id FROM this_device WHERE singleton = 1";
    if let Some(device_id) = connection.query_row(query, [], |row| row.get(0)).optional()? {
        return Ok(device_id);
    }
    // Check again under the write lock: another process may be opening the same new file.
    let transaction = connection.unchecked_transaction()?;
    let existing: Option<String> = transaction.query_row(query, [], |row| row.get(0)).optional()?;
    let device_id = match existing {
        Some(device_id) => device_id,
        None => {
            let device_id = uuid::Uuid::new_v4().to_string();
            transaction.execute(
                "INSERT INTO devices (id, hostname, first_seen) VALUES (?1, ?2, ?3)",
                params![device_id, hostname(), timestamp::now()],
            )?;
            transaction.execute(
                "INSERT INTO this_device (singleton, device_id) VALUES (1, ?1)",
                [&device_id],
            )?;
            device_id
        }
    };
    transaction.commit()?;
    Ok(device_id)
}

/// The machine's name as the kernel reports it, or `unknown`.
fn hostname() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|path| {
            std::fs::read_to_string(path)
                .ok()
                .map(|text| text.trim().to_owned())
                .filter(|name| !name.is_empty())
        })
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|name| !name.is_empty()))
        .unwrap_or_else(|| "unknown".to_owned())
}

const RUN_COLUMNS: &str =
    "id, device_id, model_id, kind, params, started_at, finished_at, status, message";

/// A run as listed: [`run_row_from_row`] with its params parsed into a JSON value.
fn run_from_row(row: &Row<'_>) -> rusqlite::Result<RunRecord> {
    let RunRow {
        id,
        device_id,
        model_sha256,
        kind,
        params,
        started_at,
        finished_at,
        status,
        message,
    } = run_row_from_row(row)?;
    let params = serde_json::from_str(params.get()).map_err(|err| {
        rusqlite::Error::FromSqlConversionFailure(4, rusqlite::types::Type::Text, err.into())
    })?;
    Ok(RunRecord {
        id,
        device_id,
        model_sha256,
        kind,
        params,
        started_at,
        finished_at,
        status,
        message,
        metrics: Vec::new(),
    })
}

/// The columns [`metric_from_row`] reads, in its order.
const METRIC_COLUMNS: &str = "axis, name, value, ci_low, ci_high, n";

/// The SQL condition `axis IN ('fidelity', …, 'training')`. The logbook only stores metrics on
/// these axes (`Metric.axis` is an [`Axis`](crate::metrics::Axis), and a sync batch naming
/// another is refused whole); a row on another axis, written into the file by some other
/// program, is not read rather than failing every read of the logbook.
fn known_axes() -> String {
    let names: Vec<String> = crate::metrics::Axis::ALL
        .into_iter()
        .chain([crate::metrics::Axis::Training])
        .map(|axis| format!("'{axis}'"))
        .collect();
    format!("axis IN ({})", names.join(", "))
}

fn metric_from_row(row: &Row<'_>, first: usize) -> rusqlite::Result<Metric> {
    Ok(Metric {
        axis: row.get::<_, String>(first)?.parse().map_err(|err: UnknownAxis| {
            rusqlite::Error::FromSqlConversionFailure(
                first,
                rusqlite::types::Type::Text,
                err.into(),
            )
        })?,
        name: row.get(first + 1)?,
        value: row.get(first + 2)?,
        ci_low: row.get(first + 3)?,
        ci_high: row.get(first + 4)?,
        n: u64::try_from(row.get::<_, i64>(first + 5)?).map_err(|err| {
            rusqlite::Error::FromSqlConversionFailure(
                first + 5,
                rusqlite::types::Type::Integer,
                err.into(),
            )
        })?,
    })
}

/// A count as SQLite's signed 64-bit integer.
fn sql_count(n: u64) -> rusqlite::Result<i64> {
    i64::try_from(n).map_err(|err| rusqlite::Error::ToSqlConversionFailure(err.into()))
}

fn device_from_row(row: &Row<'_>) -> rusqlite::Result<DeviceRecord> {
    Ok(DeviceRecord { id: row.get(0)?, hostname: row.get(1)?, first_seen: row.get(2)? })
}

/// The first metric on each axis, axes in report order ([`Axis::rank`]).
fn headline_metrics(metrics: &[Metric]) -> Vec<Metric> {
    let mut first_by_axis: BTreeMap<usize, &Metric> = BTreeMap::new();
    for metric in metrics {
        first_by_axis.entry(metric.axis.rank()).or_insert(metric);
    }
    first_by_axis.into_values().cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Axis;

    fn metric(axis: Axis, name: &str) -> Metric {
        Metric { axis, name: name.to_owned(), value: 1.0, ci_low: 0.5, ci_high: 1.5, n: 10 }
    }

    fn check(metrics: &[Metric], expected: &[(Axis, &str)]) {
        let headlines = headline_metrics(metrics);
        let got: Vec<(Axis, &str)> =
            headlines.iter().map(|metric| (metric.axis, metric.name.as_str())).collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn headline_is_the_first_metric_of_each_axis_in_axis_order() {
        check(&[], &[]);
        check(
            &[
                metric(Axis::Privacy, "dcr"),
                metric(Axis::Fidelity, "ks"),
                metric(Axis::Fidelity, "tv"),
                metric(Axis::Training, "x"),
                metric(Axis::Efficiency, "sps"),
            ],
            &[
                (Axis::Fidelity, "ks"),
                (Axis::Efficiency, "sps"),
                (Axis::Privacy, "dcr"),
                (Axis::Training, "x"),
            ],
        );
    }
}
