//! The logbook's tables and the migrations that build them, applied in order by
//! `PRAGMA user_version`: version k means the first k migrations have run. A file whose version
//! is newer than this program's is refused rather than guessed at.
//!
//! Tables:
//! - `devices`: every device whose runs this logbook holds (its own, and on a hub, the edges').
//! - `this_device`: one row naming this logbook's own device.
//! - `models`: bundles by the SHA-256 of their `model.onnx`, with the manifest as JSON.
//! - `runs`: one row per command run, keyed by `(device_id, id)` (a hub may hold two devices'
//!   runs of the same id), `running` until it is settled as `done` or `failed`, or found
//!   `interrupted` (its process gone) when the logbook is next opened; `process` names the
//!   process of a running run on this device.
//! - `metrics`: the figures of a run, one per `(device_id, run_id, axis, name)`.
//! - `synced`: rows this logbook has handed to a hub, and the batch that carried them; a logbook
//!   only ever sends its own device's runs, so a run is named by its id alone.
//! - `device_keys`: on a hub, each enrolled device's name, public key, the logbook device it
//!   speaks for, and whether it was revoked.

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
    // 2 (issue 12): runs may be `interrupted` (the process that ran one is gone), and a running
    // run names its process (`process`, opaque to SQL: boot id, pid namespace, pid and start
    // time) so the next open can tell. Runs are keyed by (device, run id), and metrics by (device,
    // run id, axis, name), so a hub holds one device's run beside another device's run of the
    // same id: an id one device learnt from another cannot pre-empt that device's rows.
    // SQLite cannot change a CHECK or a primary key in place: runs and metrics are rebuilt inside
    // the migration's transaction, children first, so dropping the old tables never leaves a
    // dangling reference (renaming runs_v2 rewrites metrics_v2's reference to it). Each metric
    // takes its device from its run, in the order the metrics were recorded (listings read them
    // by rowid); a metric whose run is missing (only a file written with foreign keys off could
    // hold one, and no listing ever showed it) is not carried over.
    // `device_keys`: a hub's enrolled devices. Each name has one ed25519 public key (the device
    // keeps the secret half); `device_id` is the logbook device the key speaks for, pinned at
    // enrolment or bound by the key's first accepted batch, and a batch signed by the key may only
    // carry that device's rows. A revoked key stays listed (with `revoked_at`) so it is refused
    // by name.
    r#"
CREATE TABLE runs_v2 (
    id           TEXT NOT NULL,
    device_id    TEXT NOT NULL REFERENCES devices (id),
    model_id     TEXT REFERENCES models (sha256),
    kind         TEXT NOT NULL,
    params       TEXT NOT NULL CHECK (json_valid(params)),
    started_at   TEXT NOT NULL,
    finished_at  TEXT,
    status       TEXT NOT NULL CHECK (status IN ('running', 'done', 'failed', 'interrupted')),
    message      TEXT,
    process      TEXT,
    CHECK ((status = 'running') = (finished_at IS NULL)),
    PRIMARY KEY (device_id, id)
);
INSERT INTO runs_v2 (id, device_id, model_id, kind, params, started_at, finished_at, status, message)
    SELECT id, device_id, model_id, kind, params, started_at, finished_at, status, message FROM runs;

CREATE TABLE metrics_v2 (
    device_id  TEXT NOT NULL,
    run_id     TEXT NOT NULL,
    axis       TEXT NOT NULL,
    name       TEXT NOT NULL,
    value      REAL NOT NULL,
    ci_low     REAL NOT NULL,
    ci_high    REAL NOT NULL,
    n          INTEGER NOT NULL CHECK (n >= 0),
    PRIMARY KEY (device_id, run_id, axis, name),
    FOREIGN KEY (device_id, run_id) REFERENCES runs_v2 (device_id, id)
);
INSERT INTO metrics_v2 (device_id, run_id, axis, name, value, ci_low, ci_high, n)
    SELECT runs.device_id, metrics.run_id, metrics.axis, metrics.name, metrics.value,
           metrics.ci_low, metrics.ci_high, metrics.n
    FROM metrics JOIN runs ON runs.id = metrics.run_id
    ORDER BY metrics.rowid;

DROP TABLE metrics;
DROP TABLE runs;
ALTER TABLE runs_v2 RENAME TO runs;
ALTER TABLE metrics_v2 RENAME TO metrics;
CREATE INDEX runs_by_start ON runs (started_at);

CREATE TABLE device_keys (
    name         TEXT PRIMARY KEY NOT NULL CHECK (length(name) BETWEEN 1 AND 64),
    public_key   TEXT NOT NULL UNIQUE CHECK (length(public_key) = 64),
    device_id    TEXT UNIQUE,
    enrolled_at  TEXT NOT NULL,
    revoked_at   TEXT
);
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

#[cfg(test)]
mod tests {
    use rusqlite::params;

    use super::*;

    /// A file at schema version 1, as the last release left it: two devices, a done run with
    /// metrics recorded out of alphabetical order, a failed run, a running run.
    fn version_1_file(path: &Path) -> Connection {
        let connection = Connection::open(path).unwrap();
        connection.pragma_update(None, "foreign_keys", true).unwrap();
        connection.execute_batch(MIGRATIONS[0]).unwrap();
        connection.pragma_update(None, "user_version", 1).unwrap();
        connection
            .execute_batch(
                r#"
INSERT INTO devices VALUES ('dev-a', 'farm', '2026-01-01T00:00:00.000Z'),
                           ('dev-b', 'clinic', '2026-01-02T00:00:00.000Z');
INSERT INTO this_device VALUES (1, 'dev-a');
INSERT INTO runs (id, device_id, kind, params, started_at, finished_at, status, message)
VALUES ('run-1', 'dev-a', 'evaluate', '{"seed": 7}', '2026-01-01T01:00:00.000Z',
        '2026-01-01T01:05:00.000Z', 'done', NULL),
       ('run-2', 'dev-b', 'generate', '{}', '2026-01-01T02:00:00.000Z',
        '2026-01-01T02:01:00.000Z', 'failed', 'disk full'),
       ('run-3', 'dev-a', 'generate', '{"n": 5}', '2026-01-01T03:00:00.000Z',
        NULL, 'running', NULL);
INSERT INTO metrics VALUES ('run-1', 'privacy', 'dcr', 0.25, 0.2, 0.3, 50),
                           ('run-1', 'fidelity', 'tv_mean', 0.5, 0.4, 0.6, 50),
                           ('run-1', 'fidelity', 'ks_mean', 0.125, 0.1, 0.15, 50),
                           ('run-2', 'fidelity', 'ks_mean', 0.75, 0.7, 0.8, 9);
"#,
            )
            .unwrap();
        connection
    }

    fn strings(connection: &Connection, sql: &str) -> Vec<String> {
        let mut statement = connection.prepare(sql).unwrap();
        statement.query_map([], |row| row.get(0)).unwrap().collect::<rusqlite::Result<_>>().unwrap()
    }

    #[test]
    fn version_1_runs_and_metrics_are_rekeyed_by_device_and_kept_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1.sqlite");
        let connection = version_1_file(&path);
        let runs_before = strings(
            &connection,
            "SELECT json_array(id, device_id, model_id, kind, params, started_at, finished_at, status, message, NULL)
             FROM runs ORDER BY id",
        );
        migrate(&connection, &path).unwrap();
        let version: i64 =
            connection.pragma_query_value(None, "user_version", |row| row.get(0)).unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        assert_eq!(
            strings(
                &connection,
                "SELECT json_array(id, device_id, model_id, kind, params, started_at, finished_at, status, message, process)
                 FROM runs ORDER BY id",
            ),
            runs_before,
            "every run and every column (no process: version 1 did not record one)"
        );
        assert_eq!(
            strings(
                &connection,
                "SELECT device_id || '/' || run_id || '/' || axis || '/' || name || '=' || value || ',' || n
                 FROM metrics ORDER BY rowid",
            ),
            [
                "dev-a/run-1/privacy/dcr=0.25,50",
                "dev-a/run-1/fidelity/tv_mean=0.5,50",
                "dev-a/run-1/fidelity/ks_mean=0.125,50",
                "dev-b/run-2/fidelity/ks_mean=0.75,9",
            ],
            "each metric takes its run's device, in the order recorded"
        );
        assert_eq!(
            strings(
                &connection,
                "SELECT name FROM pragma_table_info('runs') WHERE pk > 0 ORDER BY pk"
            ),
            ["device_id", "id"]
        );
        assert_eq!(
            strings(
                &connection,
                "SELECT name FROM pragma_table_info('metrics') WHERE pk > 0 ORDER BY pk"
            ),
            ["device_id", "run_id", "axis", "name"]
        );
        assert_eq!(
            strings(
                &connection,
                "SELECT \"table\" || '.' || \"to\" || ' <- ' || \"from\" FROM pragma_foreign_key_list('metrics') ORDER BY seq",
            ),
            ["runs.device_id <- device_id", "runs.id <- run_id"],
            "the rename pointed metrics at the new runs"
        );
        assert_eq!(
            strings(
                &connection,
                "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'runs' AND sql IS NOT NULL"
            ),
            ["runs_by_start"]
        );
        assert!(
            strings(&connection, "SELECT name FROM sqlite_master WHERE name LIKE '%_v2'")
                .is_empty()
        );
        assert_eq!(
            strings(&connection, "SELECT name FROM sqlite_master WHERE name = 'device_keys'"),
            ["device_keys"]
        );
        assert_eq!(strings(&connection, "PRAGMA integrity_check"), ["ok"]);
        assert!(strings(&connection, "SELECT \"table\" FROM pragma_foreign_key_check").is_empty());

        // The same run id now fits under a second device, and a metric only attaches to a run
        // of its own device; the old CHECKs still hold.
        connection
            .execute(
                "INSERT INTO runs (id, device_id, kind, params, started_at, status) VALUES ('run-1', 'dev-b', 'generate', '{}', '2026-01-03T00:00:00.000Z', 'running')",
                [],
            )
            .unwrap();
        let metric = "INSERT INTO metrics VALUES (?1, ?2, 'fidelity', 'x', 1, 0, 2, 3)";
        connection.execute(metric, params!["dev-b", "run-1"]).unwrap();
        assert!(
            connection.execute(metric, params!["dev-b", "run-3"]).is_err(),
            "dev-b has no run-3"
        );
        assert!(
            connection
                .execute(
                    "INSERT INTO runs (id, device_id, kind, params, started_at, status) VALUES ('run-1', 'dev-a', 'x', '{}', 't', 'running')",
                    [],
                )
                .is_err(),
            "(device, id) is unique"
        );
        assert!(
            connection
                .execute(
                    "INSERT INTO runs (id, device_id, kind, params, started_at, status) VALUES ('run-9', 'dev-a', 'x', '{}', 't', 'bogus')",
                    [],
                )
                .is_err(),
            "the status CHECK is kept"
        );
        drop(connection);
        let logbook = crate::logbook::Logbook::open(&path).unwrap();
        let runs = logbook.runs().unwrap();
        let keys: Vec<(&str, &str, usize)> = runs
            .iter()
            .map(|run| (run.device_id.as_str(), run.id.as_str(), run.metrics.len()))
            .collect();
        assert_eq!(
            keys,
            [
                ("dev-a", "run-1", 3),
                ("dev-b", "run-2", 1),
                ("dev-a", "run-3", 0),
                ("dev-b", "run-1", 1)
            ]
        );
    }
}
