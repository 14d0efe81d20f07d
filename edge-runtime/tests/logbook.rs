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

/// On a hub two devices may hold runs of the same id: they are two runs. This device's own
/// operations touch only its own run, listings keep each run's metrics apart, and a lookup
/// prefers this device's run or names the devices when it cannot choose.
#[test]
fn a_run_id_held_by_two_devices_is_two_runs() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hub.sqlite");
    let logbook = open(&db);
    let own = logbook.device_id().to_owned();
    let shared = logbook.start_run("evaluate", None, &serde_json::json!({"who": "own"})).unwrap();
    {
        let raw = rusqlite::Connection::open(&db).unwrap();
        for device in ["edge-1", "edge-2"] {
            raw.execute(
                "INSERT INTO devices (id, hostname, first_seen) VALUES (?1, 'edge', '2026-01-01T00:00:00.000Z')",
                [device],
            )
            .unwrap();
        }
        let longer = format!("{shared}-longer");
        for (id, device) in [
            (shared.as_str(), "edge-1"),
            (longer.as_str(), "edge-2"),
            ("mine-too", own.as_str()),
            ("mine-too", "edge-2"),
            ("theirs-only", "edge-1"),
            ("twice-elsewhere", "edge-1"),
            ("twice-elsewhere", "edge-2"),
        ] {
            raw.execute(
                "INSERT INTO runs (id, device_id, kind, params, started_at, status) VALUES (?1, ?2, 'generate', '{}', '2026-01-01T00:00:00.000Z', 'running')",
                [id, device],
            )
            .unwrap();
        }
    }
    logbook.finish_run(&shared, &sample_metrics()).unwrap();
    let err = logbook.fail_run("theirs-only", "not mine").unwrap_err().to_string();
    assert!(err.contains("no such run of this device"), "{err}");

    let runs = logbook.runs().unwrap();
    let of = |id: &str, device: &str| {
        runs.iter()
            .find(|run| run.id == id && run.device_id == device)
            .map(|run| (run.status, run.metrics.len()))
    };
    assert_eq!(of(&shared, &own), Some((RunStatus::Done, sample_metrics().len())));
    assert_eq!(of(&shared, "edge-1"), Some((RunStatus::Running, 0)), "edge-1's run is untouched");
    assert_eq!(of("theirs-only", "edge-1"), Some((RunStatus::Running, 0)));
    assert_eq!(runs.len(), 8);
    assert_eq!(logbook.recent_runs(10).unwrap().len(), 8);

    let found = |prefix: &str| {
        logbook.find_run(prefix).map(|run| run.map(|run| (run.device_id, run.metrics.len())))
    };
    // The whole id: this device's run, not edge-1's of that id nor edge-2's longer one.
    assert_eq!(found(&shared).unwrap(), Some((own.clone(), sample_metrics().len())));
    let err = found(&shared[..8]).unwrap_err().to_string();
    assert!(err.contains("more than one run starts with it"), "{err}");
    assert_eq!(found("mine").unwrap(), Some((own.clone(), 0)), "this device's run of that id");
    assert_eq!(found("theirs").unwrap(), Some(("edge-1".to_owned(), 0)));
    let err = found("twice-elsewhere").unwrap_err().to_string();
    assert!(err.contains("edge-1, edge-2") && err.contains("this device holds none"), "{err}");
    let err = found("t").unwrap_err().to_string();
    assert!(err.contains("more than one run starts with it"), "{err}");
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
            "INSERT INTO metrics (device_id, run_id, axis, name, value, ci_low, ci_high, n) VALUES (?1, ?2, 'speed', 'x', 1, 0, 2, 3)",
            [logbook.device_id(), &run],
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

// ---------------------------------------------------------------------------------------------
// Runs always settle: an error, a panic or an unsettled guard fails the run; a run whose process
// is gone is found interrupted by the next open, on this device only.

fn only_run(db: &Path) -> RunRecord {
    let runs = open(db).runs().unwrap();
    assert_eq!(runs.len(), 1, "{runs:?}");
    runs.into_iter().next().unwrap()
}

fn check_settled(db: &Path, status: RunStatus, message_part: &str) {
    let run = only_run(db);
    assert_eq!(run.status, status, "{run:?}");
    assert!(run.finished_at.is_some(), "{run:?}");
    assert!(run.message.as_deref().unwrap_or_default().contains(message_part), "{run:?}");
}

#[test]
fn a_guarded_run_is_failed_by_an_error_a_panic_or_being_dropped_unsettled() {
    let json = serde_json::json!({});
    // An error: the reason is the message.
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("error.sqlite");
    open(&db).begin_run("evaluate", None, &json).unwrap().fail("no space left on device").unwrap();
    check_settled(&db, RunStatus::Failed, "no space left on device");

    // A panic inside the guarded scope.
    let db = dir.path().join("panic.sqlite");
    let logbook = open(&db);
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _run = logbook.begin_run("generate", None, &json).unwrap();
        panic!("a bug in the sampler");
    }));
    assert!(outcome.is_err());
    drop(logbook);
    check_settled(&db, RunStatus::Failed, "panicked");

    // Dropped without finish or fail (an early return).
    let db = dir.path().join("dropped.sqlite");
    let logbook = open(&db);
    drop(logbook.begin_run("bench", None, &json).unwrap());
    check_settled(&db, RunStatus::Failed, "without being settled");

    // Metrics the logbook refuses: the run is failed with that reason, not left running.
    let db = dir.path().join("refused.sqlite");
    let logbook = open(&db);
    let run = logbook.begin_run("evaluate", None, &json).unwrap();
    let bad = [metric(Axis::Fidelity, "ks_mean", f64::NAN, 10)];
    assert!(run.finish(&bad).is_err());
    check_settled(&db, RunStatus::Failed, "could not be recorded");

    // A finished run is done, with its metrics, and nothing else touches it.
    let db = dir.path().join("done.sqlite");
    let logbook = open(&db);
    logbook.begin_run("evaluate", None, &json).unwrap().finish(&sample_metrics()).unwrap();
    let run = only_run(&db);
    assert_eq!((run.status, run.metrics.len(), run.message), (RunStatus::Done, 4, None));
}

const HOLD_CHILD_DB: &str = "FIELDSYNTH_HOLD_CHILD_DB";

#[test]
fn a_run_whose_process_was_killed_is_interrupted_on_the_next_open() {
    if let Ok(db) = std::env::var(HOLD_CHILD_DB) {
        // The child: start a run and never settle it.
        let logbook = open(Path::new(&db));
        let _run = logbook.begin_run("generate", None, &serde_json::json!({})).unwrap();
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("killed.sqlite");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["a_run_whose_process_was_killed_is_interrupted_on_the_next_open", "--exact"])
        .env(HOLD_CHILD_DB, &db)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    let mut running = None;
    while running.is_none() && started.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(20));
        if db.exists() {
            running = Logbook::open(&db).ok().and_then(|logbook| logbook.runs().ok());
            running = running.filter(|runs| !runs.is_empty());
        }
    }
    // While its process lives, opening the logbook leaves the run running.
    let run = only_run(&db);
    assert_eq!(run.status, RunStatus::Running, "{run:?}");
    child.kill().unwrap();
    child.wait().unwrap();
    if !Path::new("/proc/self/stat").exists() {
        // Without /proc no process is judged: the run stays running.
        assert_eq!(only_run(&db).status, RunStatus::Running);
        return;
    }
    check_settled(&db, RunStatus::Interrupted, "ended without settling it");
    let pid = child.id().to_string();
    assert!(
        only_run(&db).message.unwrap_or_default().contains(&pid),
        "the message names pid {pid}"
    );
}

#[test]
fn only_this_devices_runs_with_a_gone_process_are_interrupted() {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hub.sqlite");
    let own = open(&db).device_id().to_owned();
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    let namespace = std::fs::read_link("/proc/self/ns/pid").unwrap();
    let pid = stat.split_whitespace().next().unwrap();
    // This test process's pid with a start time it never had: a process that is gone.
    let gone = format!("{}/{}/{pid}/1", boot.trim(), namespace.display());
    {
        let raw = rusqlite::Connection::open(&db).unwrap();
        raw.execute(
            "INSERT INTO devices (id, hostname, first_seen) VALUES ('other-device', 'edge-7', '2026-01-01T00:00:00Z')",
            [],
        )
        .unwrap();
        for (id, device, process) in [
            ("own-gone", own.as_str(), Some(gone.as_str())),
            ("other-gone", "other-device", Some(gone.as_str())),
            ("own-unknown", own.as_str(), None),
        ] {
            raw.execute(
                "INSERT INTO runs (id, device_id, kind, params, started_at, status, process) VALUES (?1, ?2, 'generate', '{}', '2026-01-01T00:00:00Z', 'running', ?3)",
                rusqlite::params![id, device, process],
            )
            .unwrap();
        }
    }
    let status_of = |id: &str| {
        open(&db).runs().unwrap().into_iter().find(|run| run.id == id).map(|run| run.status)
    };
    assert_eq!(status_of("own-gone"), Some(RunStatus::Interrupted));
    assert_eq!(
        status_of("other-gone"),
        Some(RunStatus::Running),
        "a hub never judges an edge's run"
    );
    assert_eq!(
        status_of("own-unknown"),
        Some(RunStatus::Running),
        "no process recorded, no verdict"
    );
    // An interrupted run is settled: the next sync carries it, like a done or failed one.
    let pending = open(&db).pending_rows(10, false).unwrap();
    let ids: Vec<&str> = pending.runs.iter().map(|run| run.id.as_str()).collect();
    assert_eq!(ids, ["own-gone"]);
}
