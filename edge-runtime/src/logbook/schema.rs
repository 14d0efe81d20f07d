//! The logbook's tables and the migrations that build them, applied in order by
//! `PRAGMA user_version`: version k means the first k migrations have run. A file whose version
//! is newer than this program's is refused rather than guessed at.
//!
//! Tables:
//! - `devices`: every device whose runs this logbook holds (its own, and on a hub, the edges').
//! - `this_device`: one row naming this logbook's own device.
//! - `models`: bundles by the SHA-256 of their `model.onnx`, with the manifest as JSON.
//! - `runs`: one row per command run, `running` until it is settled as `done` or `failed`, or
//!   found `interrupted` (its process gone) when the logbook is next opened; `process` names the
//!   process of a running run on this device.
//! - `metrics`: the figures of a run, one per `(run_id, axis, name)`.
//! - `synced`: rows this logbook has handed to a hub, and the batch that carried them.

use std::path::Path;

use rusqlite::Connection;

use super::sql_failure;
use crate::error::{Error, Result};

/// Each entry moves the schema from version `index` to `index + 1`. Never edit one that has
/// shipped: add a new one.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE devices (
    id          TEXT PRIMARY KEY NOT NULL,
    hostname    TEXT NOT NULL,
    first_seen  TEXT NOT NULL
);

CREATE TABLE this_device (
    singleton   INTEGER PRIMARY KEY NOT NULL CHECK (singleton = 1),
    device_id   TEXT NOT NULL REFERENCES devices (id)
);

CREATE TABLE models (
    sha256         TEXT PRIMARY KEY NOT NULL CHECK (length(sha256) = 64),
    manifest       TEXT NOT NULL CHECK (json_valid(manifest)),
    registered_at  TEXT NOT NULL
);

CREATE TABLE runs (
    id           TEXT PRIMARY KEY NOT NULL,
    device_id    TEXT NOT NULL REFERENCES devices (id),
    model_id     TEXT REFERENCES models (sha256),
    kind         TEXT NOT NULL,
    params       TEXT NOT NULL CHECK (json_valid(params)),
    started_at   TEXT NOT NULL,
    finished_at  TEXT,
    status       TEXT NOT NULL CHECK (status IN ('running', 'done', 'failed')),
    message      TEXT,
    CHECK ((status = 'running') = (finished_at IS NULL))
);
CREATE INDEX runs_by_start ON runs (started_at);

CREATE TABLE metrics (
    run_id   TEXT NOT NULL REFERENCES runs (id),
    axis     TEXT NOT NULL,
    name     TEXT NOT NULL,
    value    REAL NOT NULL,
    ci_low   REAL NOT NULL,
    ci_high  REAL NOT NULL,
    n        INTEGER NOT NULL CHECK (n >= 0),
    PRIMARY KEY (run_id, axis, name)
);

CREATE TABLE synced (
    row_kind      TEXT NOT NULL CHECK (row_kind IN ('device', 'model', 'run')),
    row_key       TEXT NOT NULL,
    batch_sha256  TEXT NOT NULL,
    synced_at     TEXT NOT NULL,
    PRIMARY KEY (row_kind, row_key)
);
"#,
    // 2: runs may be `interrupted` (the process that ran one is gone), and a running run names its
    // process (`process`, opaque to SQL: the pid and the process's start time) so the next open can
    // tell. SQLite cannot change a CHECK in place: runs is rebuilt, and metrics with it (children
    // first, so dropping the old tables never leaves a dangling reference; renaming runs_v2 rewrites
    // metrics_v2's reference to it).
    r#"
CREATE TABLE runs_v2 (
    id           TEXT PRIMARY KEY NOT NULL,
    device_id    TEXT NOT NULL REFERENCES devices (id),
    model_id     TEXT REFERENCES models (sha256),
    kind         TEXT NOT NULL,
    params       TEXT NOT NULL CHECK (json_valid(params)),
    started_at   TEXT NOT NULL,
    finished_at  TEXT,
    status       TEXT NOT NULL CHECK (status IN ('running', 'done', 'failed', 'interrupted')),
    message      TEXT,
    process      TEXT,
    CHECK ((status = 'running') = (finished_at IS NULL))
);
INSERT INTO runs_v2 (id, device_id, model_id, kind, params, started_at, finished_at, status, message)
    SELECT id, device_id, model_id, kind, params, started_at, finished_at, status, message FROM runs;

CREATE TABLE metrics_v2 (
    run_id   TEXT NOT NULL REFERENCES runs_v2 (id),
    axis     TEXT NOT NULL,
    name     TEXT NOT NULL,
    value    REAL NOT NULL,
    ci_low   REAL NOT NULL,
    ci_high  REAL NOT NULL,
    n        INTEGER NOT NULL CHECK (n >= 0),
    PRIMARY KEY (run_id, axis, name)
);
INSERT INTO metrics_v2 SELECT run_id, axis, name, value, ci_low, ci_high, n FROM metrics;

DROP TABLE metrics;
DROP TABLE runs;
ALTER TABLE runs_v2 RENAME TO runs;
ALTER TABLE metrics_v2 RENAME TO metrics;
CREATE INDEX runs_by_start ON runs (started_at);
"#,
];

/// The schema version this program writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Brings the file at `path` up to [`SCHEMA_VERSION`] in one transaction, or refuses a newer one.
pub fn migrate(connection: &Connection, path: &Path) -> Result<()> {
    let refusal = |message: String| Error::Logbook { path: path.to_owned(), message };
    let current: i64 = connection
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(sql_failure(path, "is not a readable SQLite logbook"))?;
    if current == SCHEMA_VERSION {
        return Ok(());
    }
    // Check again under the write lock: another process may be migrating the same file.
    let transaction = connection
        .unchecked_transaction()
        .map_err(sql_failure(path, "cannot start the migration"))?;
    let found: i64 = transaction
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(sql_failure(path, "is not a readable SQLite logbook"))?;
    if found > SCHEMA_VERSION {
        return Err(refusal(format!(
            "was written by a newer synth-edge (schema version {found}; this one reads up to {SCHEMA_VERSION}); refusing to open it"
        )));
    }
    if found < 0 {
        return Err(refusal(format!("has schema version {found}; expected 0 to {SCHEMA_VERSION}")));
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        transaction.execute_batch(sql).map_err(sql_failure(
            path,
            &format!("migration to schema version {} failed", index + 1),
        ))?;
    }
    if found < SCHEMA_VERSION {
        transaction.pragma_update(None, "user_version", SCHEMA_VERSION).map_err(sql_failure(
            path,
            &format!("cannot record schema version {SCHEMA_VERSION}"),
        ))?;
    }
    transaction.commit().map_err(sql_failure(path, "cannot commit the migration"))
}
