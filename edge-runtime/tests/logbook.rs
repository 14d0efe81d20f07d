//! The logbook: schema creation and migration, refusing files it cannot read, atomic runs (also
//! under SIGKILL at random moments), and `generate --db` / `synth-edge log` on a real bundle.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers fail loudly too; clippy.toml's allow-unwrap-in-tests covers #[test] fns only"
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use edge_runtime::logbook::{Logbook, RunRecord, RunStatus, SCHEMA_VERSION};
use edge_runtime::metrics::{Axis, Metric, MetricId};
use rand::RngExt;

fn open(path: &Path) -> Logbook {
    Logbook::open(path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

fn metric(axis: Axis, name: &str, value: f64, n: u64) -> Metric {
    Metric { axis, name: name.to_owned(), value, ci_low: value - 0.25, ci_high: value + 0.25, n }
}

/// Values whose binary expansions do not terminate, to catch any rounding on the way.
fn sample_metrics() -> Vec<Metric> {
    vec![
        metric(Axis::Fidelity, "ks_mean", 0.1 + 0.2, 128),
        metric(Axis::Fidelity, "tv_mean", 1.0 / 3.0, 128),
        metric(Axis::Privacy, "dcr_p05", 1e-300, 64),
        metric(Axis::Efficiency, MetricId::SamplesPerSecond.name(), 12_345.678_9, 1000),
    ]
}

const MODEL_SHA: &str = "3f0e8a6b1c2d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7";

/// The schema version and journal mode as SQLite itself reports them.
fn raw_pragmas(path: &Path) -> (i64, String) {
    let connection = rusqlite::Connection::open(path).unwrap();
    let version = connection.pragma_query_value(None, "user_version", |row| row.get(0)).unwrap();
    let mode = connection.pragma_query_value(None, "journal_mode", |row| row.get(0)).unwrap();
    (version, mode)
}

fn open_error(path: &Path) -> String {
    match Logbook::open(path) {
        Ok(_) => panic!("{} opened, but it should have been refused", path.display()),
        Err(err) => err.to_string(),
    }
}

#[test]
fn a_new_file_is_migrated_and_reopening_keeps_device_and_runs() {
    let dir = tempfile::tempdir().unwrap();
    for path in [dir.path().join("missing.sqlite"), dir.path().join("empty.sqlite")] {
        if path.ends_with("empty.sqlite") {
            std::fs::write(&path, b"").unwrap();
        }
        let (device_id, run_id) = {
            let logbook = open(&path);
            assert_eq!(
                uuid::Uuid::parse_str(logbook.device_id()).map(|id| id.get_version_num()).ok(),
                Some(4),
                "device id is a v4 UUID"
            );
            let devices = logbook.devices().unwrap();
            assert_eq!(
                devices.iter().map(|device| device.id.as_str()).collect::<Vec<_>>(),
                [logbook.device_id()]
            );
            assert!(!devices[0].hostname.is_empty());
            logbook.register_model(MODEL_SHA, r#"{"family": "vae"}"#).unwrap();
            let run_id = logbook
                .start_run("evaluate", Some(MODEL_SHA), &serde_json::json!({"seed": 7}))
                .unwrap();
            logbook.finish_run(&run_id, &sample_metrics()).unwrap();
            (logbook.device_id().to_owned(), run_id)
        };
        assert_eq!(raw_pragmas(&path), (SCHEMA_VERSION, "wal".to_owned()), "{}", path.display());
        let reopened = open(&path);
        assert_eq!(reopened.device_id(), device_id, "the device is made once, at first open");
        assert_eq!(reopened.devices().map(|devices| devices.len()).ok(), Some(1));
        let runs = reopened.runs().unwrap();
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].id, run_id);
        assert_eq!(runs[0].metrics, sample_metrics());
        assert_eq!(raw_pragmas(&path).0, SCHEMA_VERSION, "reopening does not migrate again");
    }
}

#[test]
fn files_it_cannot_read_are_refused_with_their_name() {
    let dir = tempfile::tempdir().unwrap();
    let newer = dir.path().join("newer.sqlite");
    drop(open(&newer));
    let connection = rusqlite::Connection::open(&newer).unwrap();
    connection.pragma_update(None, "user_version", SCHEMA_VERSION + 1).unwrap();
    drop(connection);
    let message = open_error(&newer);
    assert!(message.contains("newer.sqlite"), "{message}");
    assert!(message.contains(&format!("schema version {}", SCHEMA_VERSION + 1)), "{message}");
    assert!(message.contains(&format!("reads up to {SCHEMA_VERSION}")), "{message}");

    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "field notes, not a database\n".repeat(200)).unwrap();
    let message = open_error(&text);
    assert!(message.contains("notes.txt") && message.contains("not a SQLite logbook"), "{message}");
    assert_eq!(
        std::fs::read_to_string(&text).ok(),
        Some("field notes, not a database\n".repeat(200)),
        "the file is left untouched"
    );
}

#[test]
fn a_run_commits_with_all_its_metrics_or_stays_running_with_none() {
    let dir = tempfile::tempdir().unwrap();
    let logbook = open(&dir.path().join("book.sqlite"));
    let params = serde_json::json!({"n": 50, "lr": 0.1});

    let done = logbook.start_run("generate", None, &params).unwrap();
    logbook.finish_run(&done, &sample_metrics()).unwrap();

    // The last metric repeats the first one's key: the insert fails after three rows went in,
    // and the transaction must take those three back with it.
    let duplicate = logbook.start_run("evaluate", None, &params).unwrap();
    let mut metrics = sample_metrics();
    metrics.push(metric(Axis::Fidelity, "ks_mean", 0.5, 10));
    let err = logbook
        .finish_run(&duplicate, &metrics)
        .err()
        .map(|err| err.to_string())
        .unwrap_or_default();
    assert!(err.contains("fidelity/ks_mean") && err.contains(&duplicate), "{err}");

    let not_finite = logbook.start_run("evaluate", None, &params).unwrap();
    let err = logbook
        .finish_run(&not_finite, &[metric(Axis::Utility, "auc", f64::NAN, 5)])
        .err()
        .map(|err| err.to_string())
        .unwrap_or_default();
    assert!(err.contains("utility/auc") && err.contains("finite"), "{err}");

    let failed = logbook.start_run("bench", None, &params).unwrap();
    logbook.fail_run(&failed, "engine refused the model").unwrap();

    let runs = logbook.runs().unwrap();
    let by_id = |id: &str| -> &RunRecord {
        runs.iter().find(|run| run.id == id).unwrap_or_else(|| panic!("run {id} missing"))
    };
    assert_eq!(
        (by_id(&done).status, by_id(&done).metrics.clone()),
        (RunStatus::Done, sample_metrics())
    );
    assert!(by_id(&done).finished_at.as_deref() >= Some(by_id(&done).started_at.as_str()));
    assert_eq!(by_id(&done).params, params);
    for id in [&duplicate, &not_finite] {
        assert_eq!(
            (by_id(id).status, by_id(id).metrics.len(), by_id(id).finished_at.clone()),
            (RunStatus::Running, 0, None),
            "run {id}"
        );
    }
    assert_eq!(
        (by_id(&failed).status, by_id(&failed).message.as_deref()),
        (RunStatus::Failed, Some("engine refused the model"))
    );

    let err = logbook.finish_run(&done, &[]).err().map(|err| err.to_string()).unwrap_or_default();
    assert!(err.contains("already done"), "a settled run is never rewritten: {err}");
    let err =
        logbook.fail_run(&failed, "again").err().map(|err| err.to_string()).unwrap_or_default();
    assert!(err.contains("already failed"), "{err}");
    assert_eq!(logbook.runs().map(|runs| runs.len()).ok(), Some(4));
}

#[test]
fn models_register_once_and_runs_must_name_a_registered_model() {
    let dir = tempfile::tempdir().unwrap();
    let logbook = open(&dir.path().join("book.sqlite"));
    logbook.register_model(MODEL_SHA, r#"{"family": "gan"}"#).unwrap();
    logbook.register_model(MODEL_SHA, r#"{"family": "changed"}"#).unwrap();
    let models = logbook.models().unwrap();
    assert_eq!(
        models
            .iter()
            .map(|model| (model.sha256.as_str(), model.manifest_json.as_str()))
            .collect::<Vec<_>>(),
        [(MODEL_SHA, r#"{"family": "gan"}"#)]
    );
    assert!(logbook.register_model("abc", "{}").is_err(), "not a SHA-256");
    assert!(logbook.register_model(&"0".repeat(64), "{not json").is_err());
    let unknown = "1".repeat(64);
    let err = logbook
        .start_run("generate", Some(&unknown), &serde_json::json!({}))
        .err()
        .map(|err| err.to_string())
        .unwrap_or_default();
    assert!(err.contains("not registered"), "{err}");
    assert_eq!(logbook.runs().map(|runs| runs.len()).ok(), Some(0));
}

#[test]
fn recent_runs_are_newest_first_with_one_headline_per_axis() {
    let dir = tempfile::tempdir().unwrap();
    let logbook = open(&dir.path().join("book.sqlite"));
    let mut ids = Vec::new();
    for index in 0..3 {
        let id =
            logbook.start_run("evaluate", None, &serde_json::json!({ "index": index })).unwrap();
        logbook.finish_run(&id, &sample_metrics()).unwrap();
        ids.push(id);
        // Timestamps have millisecond resolution; keep the three starts apart.
        std::thread::sleep(Duration::from_millis(3));
    }
    let recent = logbook.recent_runs(2).unwrap();
    assert_eq!(
        recent.iter().map(|run| run.id.as_str()).collect::<Vec<_>>(),
        [ids[2].as_str(), ids[1].as_str()]
    );
    let headline: Vec<String> = recent[0]
        .headline_metrics
        .iter()
        .map(|metric| format!("{}/{}", metric.axis, metric.name))
        .collect();
    let speed = format!("{}/{}", Axis::Efficiency, MetricId::SamplesPerSecond);
    assert_eq!(headline, ["fidelity/ks_mean".to_owned(), speed, "privacy/dcr_p05".to_owned()]);
    assert_eq!(recent[0].n_metrics, 4);
    let found = logbook.find_run(&ids[0][..8]).unwrap().map(|run| run.id);
    assert_eq!(found.as_deref(), Some(ids[0].as_str()));
    assert!(logbook.find_run("no-such-run").map(|run| run.is_none()).unwrap_or(false));
}

// ---------------------------------------------------------------------------------------------
// Crash test: the test binary runs itself as the writer (selected by an environment variable)
// and kills it with SIGKILL at seeded random moments.

const CRASH_CHILD_DB: &str = "FIELDSYNTH_CRASH_CHILD_DB";
const CRASH_CHILD_SEED: &str = "FIELDSYNTH_CRASH_CHILD_SEED";
const CRASH_SEED: u64 = 20_250_307;
const N_KILLS: usize = 25;

/// The writer: runs with a random number of metrics each, recorded in the run's params, forever.
fn write_runs_until_killed(db: &Path, seed: u64) -> ! {
    let logbook = open(db);
    let mut rng = models::rng::stream(seed, "crash-test/writer");
    loop {
        let expected: u64 = rng.random_range(1..=300);
        let id = logbook
            .start_run("crash-test", None, &serde_json::json!({ "expected_metrics": expected }))
            .unwrap();
        let metrics: Vec<Metric> = (0..expected)
            .map(|index| metric(Axis::Fidelity, &format!("m{index}"), index as f64 / 7.0, index))
            .collect();
        logbook.finish_run(&id, &metrics).unwrap();
    }
}

/// (done, running) runs; panics unless the file is sound and every done run is whole.
fn check_after_crash(db: &Path, kill: usize) -> (usize, usize) {
    let logbook = open(db);
    assert_eq!(logbook.integrity_check().unwrap(), ["ok"], "after kill {kill}");
    let mut counts = (0, 0);
    for run in logbook.runs().unwrap() {
        let expected = run.params["expected_metrics"]
            .as_u64()
            .unwrap_or_else(|| panic!("run {} has no expected_metrics", run.id));
        match run.status {
            RunStatus::Done => {
                assert_eq!(
                    run.metrics.len() as u64,
                    expected,
                    "after kill {kill}: done run {} is missing metrics",
                    run.id
                );
                counts.0 += 1;
            }
            // A killed writer's run is still running, or interrupted once a reader found its
            // process gone.
            RunStatus::Running | RunStatus::Interrupted => {
                assert!(
                    run.metrics.is_empty(),
                    "after kill {kill}: running run {} has metrics",
                    run.id
                );
                counts.1 += 1;
            }
            RunStatus::Failed => panic!("after kill {kill}: the writer never fails a run"),
        }
    }
    counts
}

#[test]
fn runs_survive_sigkill_at_random_moments() {
    if let Ok(db) = std::env::var(CRASH_CHILD_DB) {
        let seed =
            std::env::var(CRASH_CHILD_SEED).ok().and_then(|text| text.parse().ok()).unwrap_or(0);
        write_runs_until_killed(Path::new(&db), seed);
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crash.sqlite");
    let exe = std::env::current_exe().unwrap();
    let mut rng = models::rng::stream(CRASH_SEED, "crash-test/delays");
    println!("crash test seed {CRASH_SEED}");
    let mut counts = (0, 0);
    for kill in 0..N_KILLS {
        let mut child = Command::new(&exe)
            .args([
                "runs_survive_sigkill_at_random_moments",
                "--exact",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env(CRASH_CHILD_DB, &db)
            .env(CRASH_CHILD_SEED, (CRASH_SEED + kill as u64).to_string())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start the writer: {err}"));
        std::thread::sleep(Duration::from_millis(rng.random_range(20..=160)));
        child.kill().unwrap_or_else(|err| panic!("cannot kill the writer: {err}"));
        let status = child.wait().unwrap();
        assert!(
            !status.success(),
            "kill {kill}: the writer should have been killed, not exited ({status})"
        );
        counts = check_after_crash(&db, kill);
    }
    println!("after {N_KILLS} kills: {} done runs, all whole; {} left running", counts.0, counts.1);
    assert!(
        counts.0 >= N_KILLS,
        "the writers should have finished runs between kills, got {}",
        counts.0
    );
}

// ---------------------------------------------------------------------------------------------
// `generate --db` and `synth-edge log` on a real bundle.

fn synth_edge(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_synth-edge"))
        .args(args)
        .output()
        .unwrap_or_else(|err| panic!("cannot run synth-edge: {err}"))
}

fn bundle(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/bundles").join(name)
}

fn text(path: &Path) -> &str {
    path.to_str().unwrap_or_default()
}

#[test]
fn generate_with_db_logs_its_runs_and_log_lists_them() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("field.sqlite");
    let model = bundle("wheat-vae");
    let out = dir.path().join("x.csv");
    let output = synth_edge(&[
        "generate",
        "--model",
        text(&model),
        "--n",
        "50",
        "--seed",
        "3",
        "--out",
        text(&out),
        "--db",
        text(&db),
    ]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let unwritable = dir.path().join("no-such-folder/x.csv");
    let output = synth_edge(&[
        "generate",
        "--model",
        text(&model),
        "--n",
        "5",
        "--out",
        text(&unwritable),
        "--db",
        text(&db),
    ]);
    assert!(!output.status.success());

    let logbook = open(&db);
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(model.join("manifest.json")).unwrap_or_default(),
    )
    .unwrap();
    let sha = manifest["model_sha256"].as_str().unwrap_or_default().to_owned();
    assert_eq!(
        logbook
            .models()
            .map(|models| models.into_iter().map(|model| model.sha256).collect::<Vec<_>>())
            .ok(),
        Some(vec![sha.clone()])
    );
    let runs = logbook.runs().unwrap();
    assert_eq!(runs.len(), 2);
    let (done, failed) = (&runs[0], &runs[1]);
    assert_eq!(
        (done.kind.as_str(), done.status, done.model_sha256.as_deref()),
        ("generate", RunStatus::Done, Some(sha.as_str()))
    );
    assert_eq!((done.params["n"].as_u64(), done.params["seed"].as_u64()), (Some(50), Some(3)));
    let names: Vec<&str> = done.metrics.iter().map(|metric| metric.name.as_str()).collect();
    assert_eq!(names, [MetricId::SamplesPerSecond.name(), MetricId::MsPerSample.name()]);
    let (per_second, ms_each) = (done.metrics[0].value, done.metrics[1].value);
    assert!(
        per_second > 0.0 && ((per_second * ms_each) / 1e3 - 1.0).abs() < 1e-9,
        "{per_second} samples/s vs {ms_each} ms each"
    );
    assert_eq!(done.metrics[0].n, 50);
    assert_eq!(failed.status, RunStatus::Failed);
    assert!(
        failed.message.as_deref().is_some_and(|message| message.contains("no-such-folder")),
        "{:?}",
        failed.message
    );

    let output = synth_edge(&["log", "--db", text(&db)]);
    let listing = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let lines: Vec<&str> = listing.lines().collect();
    assert_eq!(lines.len(), 3, "header and two runs, newest first:\n{listing}");
    assert!(
        lines[1].starts_with(&failed.id[..8])
            && lines[1].contains("failed")
            && lines[1].contains("no-such-folder"),
        "{listing}"
    );
    assert!(
        lines[2].starts_with(&done.id[..8])
            && lines[2].contains("done")
            && lines[2].contains(&format!("{}/{}", Axis::Efficiency, MetricId::SamplesPerSecond)),
        "{listing}"
    );
    assert!(lines[2].contains(&sha[..12]), "{listing}");

    let output = synth_edge(&["log", "--db", text(&db), "--run", &done.id[..8]]);
    let detail = String::from_utf8_lossy(&output.stdout);
    assert!(
        detail.contains(&done.id)
            && detail.contains("\"seed\": 3")
            && detail.contains(&format!("{}/{}", Axis::Efficiency, MetricId::MsPerSample)),
        "{detail}"
    );
    let output = synth_edge(&["log", "--db", text(&dir.path().join("typo.sqlite"))]);
    assert!(
        !output.status.success()
            && String::from_utf8_lossy(&output.stderr).contains("no logbook there")
    );
    assert!(!dir.path().join("typo.sqlite").exists(), "log never creates a logbook");
}

/// A metric row on an axis this version does not know (put there by another program) is not
/// read, and every other row still is.
#[test]
fn a_stored_metric_on_an_unknown_axis_does_not_break_reading() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("logbook.sqlite");
    let logbook = open(&db);
    let run = logbook.start_run("generate", None, &serde_json::json!({})).unwrap();
    logbook.finish_run(&run, &sample_metrics()).unwrap();
    {
        let raw = rusqlite::Connection::open(&db).unwrap();
        raw.execute(
            "INSERT INTO metrics (run_id, axis, name, value, ci_low, ci_high, n) VALUES (?1, 'speed', 'x', 1, 0, 2, 3)",
            [&run],
        )
        .unwrap();
    }
    let logbook = open(&db);
    let expected: Vec<String> = sample_metrics().iter().map(|metric| metric.name.clone()).collect();
    let names =
        |metrics: &[Metric]| metrics.iter().map(|metric| metric.name.clone()).collect::<Vec<_>>();
    let runs = logbook.runs().unwrap();
    assert_eq!(names(&runs[0].metrics), expected);
    assert_eq!(names(&logbook.find_run(&run).unwrap().unwrap().metrics), expected);
    assert_eq!(logbook.recent_runs(5).unwrap()[0].n_metrics, expected.len());
    let pending = logbook.pending_rows(10, false).unwrap();
    assert!(pending.metrics.iter().all(|metric| metric.name != "x"), "{:?}", pending.metrics);
}
