//! The hub's trust boundary, tried as an attacker would: an enrolled device posting another
//! device's rows (over HTTP and on a USB stick), or its own rows under another device's run ids
//! to pre-empt that device's sync, an unenrolled, revoked or forged sender, an
//! edited batch with a recomputed checksum, a request announcing a terabyte body, a client that
//! stalls mid-body, invalid row fields; and on the device side, exposed key and token files and
//! a periodic sync whose key is refused. Each refusal must write nothing, name what was wrong,
//! and leave the hub serving.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers fail loudly too; clippy.toml's allow-unwrap-in-tests covers #[test] fns only"
)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use edge_runtime::Error;
use edge_runtime::keys::SecretKey;
use edge_runtime::logbook::timestamp;
use edge_runtime::logbook::{Logbook, RunRecord, RunStatus, SyncRows};
use edge_runtime::metrics::{Axis, Metric};
use edge_runtime::sync::client::{
    BATCH_SHA256_HEADER, DEVICE_KEY_HEADER, HubClient, REQUEST_SIGNATURE_HEADER,
    REQUEST_TIME_HEADER, request_auth_headers,
};
use edge_runtime::sync::hub::{Hub, HubOptions, MAX_BATCH_BYTES};
use edge_runtime::sync::{self, Batch, Token, batch};
use sha2::{Digest, Sha256};

use common::{key, manifest_for, model_sha, never, open, sorted_runs, text};

mod common;

const TOKEN: &str = "read-token-91c2";

struct TestHub {
    address: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<edge_runtime::Result<()>>>,
}

impl TestHub {
    fn start(db: &Path, options: HubOptions) -> TestHub {
        TestHub::start_on(db, "127.0.0.1:0", options).unwrap()
    }

    /// A hub listening on `address`, or why it cannot (an address this machine lacks).
    fn start_on(db: &Path, address: &str, options: HubOptions) -> edge_runtime::Result<TestHub> {
        let hub = Hub::bind_with(open(db), address, Token::new(TOKEN).unwrap(), options)?;
        let address = hub.address();
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = Arc::clone(&stop);
        let thread = std::thread::spawn(move || hub.serve_until(&thread_stop));
        Ok(TestHub { address, stop, thread: Some(thread) })
    }

    fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    fn client(&self, key_file: &Path) -> HubClient {
        HubClient::new(&self.url(), key(key_file), None).unwrap()
    }

    /// Sends `body` signed as `key_file`'s device; the status and the answer's text.
    fn post(&self, key_file: &Path, body: &[u8]) -> (u16, String) {
        let head = format!(
            "POST /api/batches HTTP/1.1\r\nHost: hub\r\n{}Content-Length: {}\r\n\r\n",
            auth_headers(&key(key_file), body.len() as u64, &timestamp::now(), body),
            body.len()
        );
        raw_exchange(self.address, head.as_bytes(), body)
    }
}

impl Drop for TestHub {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let outcome = thread.join();
            if !std::thread::panicking() {
                assert!(matches!(outcome, Ok(Ok(()))), "the hub stopped with {outcome:?}");
            }
        }
    }
}

/// The header lines that sign a batch request of `length` bytes as `secret`'s device at `time`,
/// for the batch `body` carries (its checksum; none when it has none).
fn auth_headers(secret: &SecretKey, length: u64, time: &str, body: &[u8]) -> String {
    let batch_sha256 = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|document| document.get("payload_sha256")?.as_str().map(str::to_owned))
        .unwrap_or_else(|| "none".to_owned());
    request_auth_headers(secret, "POST", "/api/batches", length, time, &batch_sha256)
        .iter()
        .map(|(name, value)| format!("{name}: {value}\r\n"))
        .collect()
}

/// Writes `head` and `body` on a new connection and reads the whole answer: its status and body.
fn raw_exchange(address: SocketAddr, head: &[u8], body: &[u8]) -> (u16, String) {
    let mut stream = TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    stream.write_all(head).unwrap();
    let _ = stream.write_all(body);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    parse_answer(&answer)
}

fn parse_answer(answer: &[u8]) -> (u16, String) {
    let text = String::from_utf8_lossy(answer).into_owned();
    let status = text.get(9..12).and_then(|code| code.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, body)| body.to_owned()).unwrap_or_default();
    (status, body)
}

fn metrics(seed: usize) -> Vec<Metric> {
    ["ks_mean", "tv_mean"]
        .iter()
        .enumerate()
        .map(|(rank, name)| Metric {
            axis: Axis::Fidelity,
            name: (*name).to_owned(),
            value: (seed * 10 + rank) as f64 / 9.0,
            ci_low: 0.0,
            ci_high: 5.0,
            n: 50,
        })
        .collect()
}

/// `n_done` done runs on one model, then one left running; the running run's id.
fn fill(logbook: &Logbook, model: &str, n_done: usize) -> String {
    logbook.register_model(&model_sha(model), &manifest_for(model)).unwrap();
    for index in 0..n_done {
        let id = logbook
            .start_run("evaluate", Some(&model_sha(model)), &serde_json::json!({"i": index}))
            .unwrap();
        logbook.finish_run(&id, &metrics(index)).unwrap();
    }
    logbook.start_run("generate", None, &serde_json::json!({"n": 5})).unwrap()
}

fn synth_edge() -> Command {
    Command::new(env!("CARGO_BIN_EXE_synth-edge"))
}

/// `synth-edge ARGS`: whether it succeeded, its stdout and its stderr.
fn run_cli(args: &[&str]) -> (bool, String, String) {
    let output = synth_edge().args(args).output().unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A hub with devices `farm-a` and `clinic-b` enrolled through the command line; farm-a has
/// synced 3 done runs and 1 running one, clinic-b has rows of its own not yet synced.
struct Fleet {
    dir: tempfile::TempDir,
    hub_db: PathBuf,
    a_db: PathBuf,
    b_db: PathBuf,
    a_key: PathBuf,
    b_key: PathBuf,
    a_running: String,
}

impl Fleet {
    fn new() -> Fleet {
        let dir = tempfile::tempdir().unwrap();
        let path = |name: &str| dir.path().join(name);
        let (hub_db, a_db, b_db) = (path("hub.sqlite"), path("a.sqlite"), path("b.sqlite"));
        let (a_key, b_key) = (path("a.key"), path("b.key"));
        for (name, key_file) in [("farm-a", &a_key), ("clinic-b", &b_key)] {
            let (ok, stdout, stderr) = run_cli(&[
                "hub",
                "enroll",
                "--db",
                text(&hub_db),
                "--device",
                name,
                "--key-out",
                text(key_file),
            ]);
            assert!(ok && stdout.contains(name), "{stdout}{stderr}");
        }
        let a_running = fill(&open(&a_db), "wheat-vae", 3);
        fill(&open(&b_db), "wheat-gan", 2);
        let fleet = Fleet { dir, hub_db, a_db, b_db, a_key, b_key, a_running };
        let report = sync::import_files(&open(&fleet.hub_db), &fleet.write_batches("a-stick")).map(
            |summaries| summaries.iter().map(|(_, summary)| summary.runs_added).sum::<usize>(),
        );
        assert_eq!(report.ok(), Some(4), "farm-a's first sync");
        fleet
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// farm-a's pending rows written to a new folder `name` as batch files.
    fn write_batches(&self, name: &str) -> Vec<PathBuf> {
        let stick = self.path(name);
        std::fs::create_dir(&stick).unwrap();
        sync::write_to_dir(&open(&self.a_db), &key(&self.a_key), &stick, 100, &never())
            .unwrap()
            .files
    }

    fn hub_runs(&self) -> Vec<RunRecord> {
        sorted_runs(&open(&self.hub_db))
    }

    /// The hub's runs of the logbook device of `db`.
    fn hub_runs_of(&self, db: &Path) -> Vec<RunRecord> {
        let device = self.device_id(db);
        self.hub_runs().into_iter().filter(|run| run.device_id == device).collect()
    }

    fn device_id(&self, db: &Path) -> String {
        open(db).device_id().to_owned()
    }
}

/// What the hub must do with a batch clinic-b forged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// 403, nothing written: the rows claim farm-a's device.
    Refused,
    /// Stored, and only under clinic-b's device: farm-a's run of the same id is another run.
    UnderB,
}

/// Batches clinic-b might forge from farm-a's rows (which it saw in the hub's listing) and its
/// own: each one's name, the logbook device it claims, its rows and what the hub must do.
fn forgeries(fleet: &Fleet) -> Vec<(&'static str, String, SyncRows, Verdict)> {
    let a_id = fleet.device_id(&fleet.a_db);
    let b_id = fleet.device_id(&fleet.b_db);
    let a_rows = open(&fleet.hub_db);
    let a_runs: Vec<RunRecord> = a_rows.runs().unwrap();
    let b_rows = open(&fleet.b_db).pending_rows(100, false).unwrap();
    let done_a = a_runs.iter().find(|run| run.status == RunStatus::Done).unwrap().id.clone();

    // B's own rows, its run ids replaced by farm-a's (B's device, A's ids).
    let mut taken_ids = b_rows.clone();
    for (run, a_run) in taken_ids.runs.iter_mut().zip(&a_runs) {
        for metric in &mut taken_ids.metrics {
            if metric.run_id == run.id {
                metric.run_id.clone_from(&a_run.id);
            }
        }
        run.id.clone_from(&a_run.id);
    }
    // B "settles" A's running run: a done run of B's with that id.
    let mut settle = b_rows.clone();
    settle.metrics.clear();
    settle.runs.truncate(1);
    settle.runs[0].id.clone_from(&fleet.a_running);
    // B "attaches" metrics to A's done run: a run of B's with that id, and metrics on it.
    let mut attach = b_rows.clone();
    attach.runs.truncate(1);
    let first_b_run = attach.runs[0].id.clone();
    attach.metrics.retain(|metric| metric.run_id == first_b_run);
    attach.runs[0].id.clone_from(&done_a);
    for metric in &mut attach.metrics {
        metric.run_id.clone_from(&done_a);
        metric.name = format!("forged_{}", metric.name);
    }
    // B's rows under A's device id (signed by B's key).
    let mut as_a = b_rows.clone();
    for run in &mut as_a.runs {
        run.device_id.clone_from(&a_id);
    }
    for device in &mut as_a.devices {
        device.id.clone_from(&a_id);
    }
    // B's batch carrying an extra device row for A, and a run of A's.
    let mut with_a_device = b_rows.clone();
    let mut a_device = with_a_device.devices[0].clone();
    a_device.id.clone_from(&a_id);
    with_a_device.devices.push(a_device);
    with_a_device.runs[0].device_id.clone_from(&a_id);
    vec![
        ("B's runs with A's run ids", b_id.clone(), taken_ids, Verdict::UnderB),
        ("B's done run with A's running run's id", b_id.clone(), settle, Verdict::UnderB),
        ("B's metrics on a run with A's done run's id", b_id.clone(), attach, Verdict::UnderB),
        ("B's rows claiming A's device", a_id, as_a, Verdict::Refused),
        ("B's batch with A's device row", b_id, with_a_device, Verdict::Refused),
    ]
}

/// Every run and metric of `rows` is on the hub under clinic-b's device, as sent.
fn check_stored_under_b(fleet: &Fleet, name: &str, rows: &SyncRows) {
    let b_runs = fleet.hub_runs_of(&fleet.b_db);
    for run in &rows.runs {
        let stored = b_runs
            .iter()
            .find(|stored| stored.id == run.id)
            .unwrap_or_else(|| panic!("{name}: run {} is not on the hub under B", run.id));
        assert_eq!(
            (stored.status, &stored.started_at, &stored.kind),
            (run.status, &run.started_at, &run.kind),
            "{name}: run {}",
            run.id
        );
        for metric in rows.metrics.iter().filter(|metric| metric.run_id == run.id) {
            assert!(
                stored.metrics.iter().any(|got| got.axis == metric.axis
                    && got.name == metric.name
                    && got.value == metric.value),
                "{name}: metric {}/{} of run {} under B",
                metric.axis,
                metric.name,
                run.id
            );
        }
    }
}

/// Sends each forgery signed by clinic-b with `deliver` (the status it got, and its answer),
/// and checks the verdict: farm-a's runs never change; a refused batch writes nothing and says
/// why; an accepted one is stored under clinic-b.
fn check_forgeries(
    fleet: &Fleet,
    forged: &[(&str, String, SyncRows, Verdict)],
    deliver: impl Fn(&str, Vec<u8>) -> (u16, String),
) {
    let a_before = fleet.hub_runs_of(&fleet.a_db);
    assert_eq!(a_before.len(), 4);
    for (name, claimed_device, rows, verdict) in forged.iter().cloned() {
        let before = fleet.hub_runs();
        let body = Batch::new(&claimed_device, rows.clone(), &key(&fleet.b_key))
            .unwrap()
            .encode()
            .unwrap();
        let (status, answer) = deliver(name, body);
        match verdict {
            Verdict::Refused => {
                assert_eq!(status, 403, "{name}: {answer}");
                assert!(
                    answer.contains("not the sender's device")
                        || answer.contains("belongs to enrolled device")
                        || answer.contains("speaks for logbook device"),
                    "{name}: {answer}"
                );
                assert_eq!(fleet.hub_runs(), before, "{name}: nothing written");
            }
            Verdict::UnderB => {
                assert_eq!(status, 200, "{name}: {answer}");
                check_stored_under_b(fleet, name, &rows);
            }
        }
        assert_eq!(fleet.hub_runs_of(&fleet.a_db), a_before, "{name}: farm-a's runs are unchanged");
    }
}

#[test]
fn an_enrolled_device_cannot_write_settle_or_attach_to_another_devices_runs() {
    let fleet = Fleet::new();
    let hub = TestHub::start(&fleet.hub_db, HubOptions::default());
    let a_before = fleet.hub_runs_of(&fleet.a_db);
    let forged = forgeries(&fleet);
    check_forgeries(&fleet, &forged, |_, body| hub.post(&fleet.b_key, &body));
    let b_id = fleet.device_id(&fleet.b_db);
    let forged_ids: std::collections::BTreeSet<String> =
        fleet.hub_runs_of(&fleet.b_db).into_iter().map(|run| run.id).collect();
    assert!(forged_ids.contains(&fleet.a_running), "{forged_ids:?}");
    let status_of = |device: &str| {
        let runs = fleet.hub_runs();
        runs.into_iter()
            .find(|run| run.id == fleet.a_running && run.device_id == device)
            .map(|run| run.status)
    };
    assert_eq!(
        status_of(&fleet.device_id(&fleet.a_db)),
        Some(RunStatus::Running),
        "farm-a's run is still running"
    );
    assert_eq!(status_of(&b_id), Some(RunStatus::Done), "clinic-b's run of that id is its own");
    // clinic-b's own sync still works, and it is stored under its own device, beside farm-a's.
    let report =
        sync::push_to_hub(&open(&fleet.b_db), &hub.client(&fleet.b_key), 100, &never()).unwrap();
    assert_eq!((report.settled_runs, report.running_runs), (2, 1));
    let after = fleet.hub_runs();
    assert_eq!(after.len(), 4 + forged_ids.len() + 3);
    assert_eq!(after.iter().filter(|run| run.device_id == b_id).count(), forged_ids.len() + 3);
    assert_eq!(fleet.hub_runs_of(&fleet.a_db), a_before);
    // Once bound, the refused forgeries are refused again and the stored ones change nothing.
    for (name, claimed_device, rows, verdict) in forged {
        let body = Batch::new(&claimed_device, rows, &key(&fleet.b_key)).unwrap().encode().unwrap();
        let expected = if verdict == Verdict::Refused { 403 } else { 200 };
        assert_eq!(hub.post(&fleet.b_key, &body).0, expected, "{name}, after binding");
    }
    assert_eq!(fleet.hub_runs(), after);
}

#[test]
fn forged_rows_on_a_usb_stick_are_refused_or_kept_apart_by_hub_import() {
    let fleet = Fleet::new();
    check_forgeries(&fleet, &forgeries(&fleet), |name, body| {
        let file = fleet.path(&format!("forged-{}.json", name.len()));
        std::fs::write(&file, body).unwrap();
        match sync::import_files(&open(&fleet.hub_db), &[file]) {
            Ok(_) => (200, String::new()),
            Err(Error::Refused { status, message }) => (status, message),
            Err(other) => panic!("{name}: {other}"),
        }
    });
}

/// The pre-emption attack: clinic-b learns the id of a run farm-a has not synced yet (from the
/// listing of it while it ran, or off a USB stick) and posts a run of its own under that id
/// first. farm-a's later sync of that run must still land, beside clinic-b's, and farm-a's
/// periodic sync goes on.
#[test]
fn a_run_id_taken_first_by_another_device_does_not_block_its_owner() {
    let fleet = Fleet::new();
    let hub = TestHub::start(&fleet.hub_db, HubOptions::default());
    let a = open(&fleet.a_db);
    a.finish_run(&fleet.a_running, &metrics(4)).unwrap();
    let fresh =
        a.start_run("evaluate", Some(&model_sha("wheat-vae")), &serde_json::json!({})).unwrap();
    a.finish_run(&fresh, &metrics(5)).unwrap();

    let b = open(&fleet.b_db);
    let mut stolen = b.pending_rows(1, false).unwrap();
    let b_run = stolen.runs[0].id.clone();
    stolen.metrics.retain(|metric| metric.run_id == b_run);
    stolen.runs[0].id.clone_from(&fresh);
    for metric in &mut stolen.metrics {
        metric.run_id.clone_from(&fresh);
    }
    let body =
        Batch::new(b.device_id(), stolen.clone(), &key(&fleet.b_key)).unwrap().encode().unwrap();
    let (status, answer) = hub.post(&fleet.b_key, &body);
    assert_eq!(status, 200, "{answer}");

    let (ok, stdout, stderr) = run_cli(&[
        "sync",
        "--db",
        text(&fleet.a_db),
        "--to",
        &hub.url(),
        "--key-file",
        text(&fleet.a_key),
    ]);
    assert!(ok, "farm-a's sync of run {fresh} lands: {stdout}{stderr}");
    assert_eq!(
        fleet.hub_runs_of(&fleet.a_db),
        sorted_runs(&a),
        "farm-a's runs on the hub are exactly its own, the pre-empted id included"
    );
    let holders: Vec<(String, Vec<Metric>)> = fleet
        .hub_runs()
        .into_iter()
        .filter(|run| run.id == fresh)
        .map(|run| (run.device_id, run.metrics))
        .collect();
    assert_eq!(holders.len(), 2, "both runs of id {fresh} exist: {holders:?}");
    let metrics_of = |device: &str| {
        holders.iter().find(|(holder, _)| holder == device).map(|(_, metrics)| metrics.clone())
    };
    assert_eq!(metrics_of(a.device_id()), Some(metrics(5)), "farm-a's run has farm-a's metrics");
    let b_values: Vec<f64> = stolen.metrics.iter().map(|metric| metric.value).collect();
    assert_eq!(
        metrics_of(b.device_id())
            .map(|metrics| metrics.iter().map(|metric| metric.value).collect::<Vec<_>>()),
        Some(b_values),
        "clinic-b's run has clinic-b's metrics"
    );
    assert_ne!(metrics(5)[0].value, stolen.metrics[0].value, "the two runs' metrics differ");
    assert_eq!(open(&fleet.hub_db).integrity_check().unwrap(), ["ok"]);
}

/// `document` (a parsed batch) with its payload checksum recomputed, and re-signed when
/// `signer` is given: what someone editing a batch file would produce.
fn reseal(mut document: serde_json::Value, signer: Option<&SecretKey>) -> Vec<u8> {
    let payload = serde_json::to_string(&document["payload"]).unwrap();
    let digest = hex::encode(Sha256::digest(payload.as_bytes()));
    document["payload_sha256"] = serde_json::json!(digest);
    if let Some(signer) = signer {
        let header = batch::signed_header(
            document["source_device"].as_str().unwrap(),
            document["created_at"].as_str().unwrap(),
            &digest,
            &signer.public().to_hex(),
        );
        document["device_key"] = serde_json::json!(signer.public().to_hex());
        document["signature"] = serde_json::json!(signer.sign(&header));
    }
    serde_json::to_vec(&document).unwrap()
}

#[test]
fn an_edited_batch_file_with_a_recomputed_checksum_is_refused_by_hub_import() {
    let fleet = Fleet::new();
    let a = open(&fleet.a_db);
    a.finish_run(&fleet.a_running, &metrics(7)).unwrap();
    let files = fleet.write_batches("second-stick");
    assert_eq!(files.len(), 1);
    let original: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&files[0]).unwrap()).unwrap();
    let before = fleet.hub_runs();

    let mut edited = original.clone();
    edited["payload"]["metrics"][0]["value"] = serde_json::json!(0.001);
    let stranger = SecretKey::generate().unwrap();
    let mut unsigned = original.clone();
    unsigned["version"] = serde_json::json!(1);
    let cases = [
        ("edited, checksum recomputed", reseal(edited.clone(), None), 401, "does not verify"),
        (
            "edited, re-signed by an unenrolled key",
            reseal(edited.clone(), Some(&stranger)),
            401,
            "not the key of any device enrolled",
        ),
        (
            "edited, re-signed by clinic-b",
            reseal(edited, Some(&key(&fleet.b_key))),
            403,
            "speaks for",
        ),
        ("an unsigned version-1 batch", serde_json::to_vec(&unsigned).unwrap(), 401, "enrol"),
    ];
    // clinic-b's key is bound to its device first, so its signature over farm-a's rows is refused
    // as a claim on another device.
    sync::write_to_dir(&open(&fleet.b_db), &key(&fleet.b_key), &fleet.path("."), 100, &never())
        .and_then(|report| sync::import_files(&open(&fleet.hub_db), &report.files))
        .unwrap();
    let before_b = fleet.hub_runs();
    assert_eq!(before_b.len(), before.len() + 3);
    for (name, bytes, status, expected) in cases {
        let file = fleet.path("edited.json");
        std::fs::write(&file, bytes).unwrap();
        let outcome = sync::import_files(&open(&fleet.hub_db), &[files[0].clone(), file]);
        let message = outcome.as_ref().err().map(|err| edge_runtime::error::chain(err));
        assert!(
            matches!(&outcome, Err(Error::Refused { status: got, .. }) if *got == status)
                && message.as_deref().is_some_and(|message| message.contains(expected)),
            "{name}: {outcome:?}"
        );
        assert_eq!(
            fleet.hub_runs(),
            before_b,
            "{name}: the good file beside it is not applied either"
        );
    }
    let summaries = sync::import_files(&open(&fleet.hub_db), &files).unwrap();
    assert_eq!(summaries[0].1.runs_settled, 1, "the genuine file settles farm-a's run");
}

#[test]
fn a_revoked_or_replaced_key_is_refused_and_the_new_key_works() {
    let fleet = Fleet::new();
    let hub = TestHub::start(&fleet.hub_db, HubOptions::default());
    let db = text(&fleet.hub_db);
    let (ok, stdout, stderr) = run_cli(&["hub", "revoke", "--db", db, "--device", "farm-a"]);
    assert!(ok && stdout.contains("revoked"), "{stdout}{stderr}");
    let a = open(&fleet.a_db);
    a.finish_run(&fleet.a_running, &metrics(9)).unwrap();
    let outcome = sync::push_to_hub(&a, &hub.client(&fleet.a_key), 100, &never());
    assert!(
        matches!(&outcome, Err(Error::Refused { status: 403, message }) if message.contains("revoked")),
        "{outcome:?}"
    );
    let running_on_hub =
        |fleet: &Fleet| fleet.hub_runs().iter().any(|run| run.status == RunStatus::Running);
    assert!(running_on_hub(&fleet), "the revoked key settled nothing");

    let new_key = fleet.path("a-new.key");
    let enroll = |key_out: &Path, replace: bool| {
        let mut args =
            vec!["hub", "enroll", "--db", db, "--device", "farm-a", "--key-out", text(key_out)];
        if replace {
            args.push("--replace");
        }
        run_cli(&args)
    };
    let (ok, _, stderr) = enroll(&new_key, false);
    assert!(!ok && stderr.contains("--replace"), "re-enrolling needs --replace: {stderr}");
    assert!(!new_key.exists(), "no key file is left by a refused enrolment");
    let (ok, _, stderr) = enroll(&fleet.a_key, true);
    assert!(!ok && stderr.contains("already exists"), "a key file is never overwritten: {stderr}");
    let (ok, stdout, stderr) = enroll(&new_key, true);
    assert!(ok && stdout.contains("speaks for logbook device"), "{stdout}{stderr}");

    let outcome = sync::push_to_hub(&a, &hub.client(&fleet.a_key), 100, &never());
    assert!(matches!(&outcome, Err(Error::Refused { status: 401, .. })), "old key: {outcome:?}");
    let report = sync::push_to_hub(&a, &hub.client(&new_key), 100, &never()).unwrap();
    assert_eq!(report.settled_runs, 1);
    assert!(!running_on_hub(&fleet), "the new key settles farm-a's run");

    let (ok, stdout, _) = run_cli(&["hub", "devices", "--db", db]);
    assert!(ok && stdout.contains("farm-a") && stdout.contains("clinic-b"), "{stdout}");
    let (ok, _, stderr) = run_cli(&["hub", "revoke", "--db", db, "--device", "nobody"]);
    assert!(!ok && stderr.contains("no such enrolled device"), "{stderr}");
    let (ok, _, stderr) = run_cli(&[
        "hub",
        "enroll",
        "--db",
        db,
        "--device",
        "../x",
        "--key-out",
        text(&fleet.path("x.key")),
    ]);
    assert!(!ok && stderr.contains("invalid device name"), "{stderr}");
}

#[test]
fn a_device_that_synced_before_enrolment_is_taken_over_only_by_a_pinned_enrolment() {
    let fleet = Fleet::new();
    // An old hub holds clinic-b's rows from the shared-token days: its device row is there.
    let b_id = fleet.device_id(&fleet.b_db);
    {
        let raw = rusqlite::Connection::open(&fleet.hub_db).unwrap();
        raw.execute(
            "INSERT INTO devices (id, hostname, first_seen) VALUES (?1, 'old-b', '2025-01-01T00:00:00.000Z')",
            [&b_id],
        )
        .unwrap();
    }
    let b = open(&fleet.b_db);
    let batch_file = |key_file: &Path, name: &str| {
        let rows = b.pending_rows(100, true).unwrap();
        let file = fleet.path(name);
        std::fs::write(&file, Batch::new(&b_id, rows, &key(key_file)).unwrap().encode().unwrap())
            .unwrap();
        file
    };
    let outcome = sync::import_files(&open(&fleet.hub_db), &[batch_file(&fleet.b_key, "b1.json")]);
    assert!(
        matches!(&outcome, Err(Error::Refused { status: 403, message }) if message.contains("before")),
        "{outcome:?}"
    );
    let (ok, stdout, stderr) = run_cli(&[
        "hub",
        "enroll",
        "--db",
        text(&fleet.hub_db),
        "--device",
        "clinic-b",
        "--key-out",
        text(&fleet.path("b2.key")),
        "--replace",
        "--device-id",
        &b_id,
    ]);
    assert!(ok && stdout.contains(&b_id), "{stdout}{stderr}");
    let file = batch_file(&fleet.path("b2.key"), "b2.json");
    let summaries = sync::import_files(&open(&fleet.hub_db), &[file]).unwrap();
    assert_eq!(summaries[0].1.runs_added, 3);
    // farm-a's device id cannot be pinned to a second name.
    let (ok, _, stderr) = run_cli(&[
        "hub",
        "enroll",
        "--db",
        text(&fleet.hub_db),
        "--device",
        "impostor",
        "--key-out",
        text(&fleet.path("i.key")),
        "--device-id",
        &fleet.device_id(&fleet.a_db),
    ]);
    assert!(!ok && stderr.contains("already belongs to enrolled device `farm-a`"), "{stderr}");
}

#[test]
fn a_terabyte_content_length_or_an_oversized_body_gets_an_answer_and_the_hub_keeps_serving() {
    let fleet = Fleet::new();
    let hub = TestHub::start(&fleet.hub_db, HubOptions::default());
    let huge = "Content-Length: 1000000000000\r\n";
    let a_key_header = format!("{DEVICE_KEY_HEADER}: {}\r\n", key(&fleet.a_key).public().to_hex());
    let signed = |length: u64| auth_headers(&key(&fleet.a_key), length, &timestamp::now(), b"{");
    let too_long = format!("Content-Length: {}\r\n", MAX_BATCH_BYTES + 1);
    for (name, headers, status) in [
        ("unauthenticated, 1 TB", huge.to_owned(), 401),
        ("bearer token only, 1 TB", format!("Authorization: Bearer {TOKEN}\r\n{huge}"), 401),
        (
            "enrolled public key without a request signature, 1 TB",
            format!("{a_key_header}{huge}"),
            401,
        ),
        ("signed for another length, 1 TB", format!("{}{huge}", signed(1)), 401),
        ("signed, 1 TB", format!("{}{huge}", signed(1_000_000_000_000)), 413),
        ("signed, one byte over", format!("{}{too_long}", signed(MAX_BATCH_BYTES as u64 + 1)), 413),
        ("enrolled key, no length", a_key_header.clone(), 411),
        ("enrolled key, chunked", format!("{a_key_header}Transfer-Encoding: chunked\r\n"), 411),
        ("enrolled key, length -1", format!("{a_key_header}Content-Length: -1\r\n"), 400),
        (
            "enrolled key, two lengths",
            format!("{a_key_header}Content-Length: 5\r\nContent-Length: 6\r\n"),
            400,
        ),
    ] {
        let head = format!("POST /api/batches HTTP/1.1\r\nHost: hub\r\n{headers}\r\n");
        let (got, answer) = raw_exchange(hub.address, head.as_bytes(), b"{");
        assert_eq!(got, status, "{name}: {answer}");
    }
    let (status, _) = raw_exchange(hub.address, b"GET /api/runs HTTP/1.1\r\n\r\n", b"");
    assert_eq!(status, 401);
    let (status, answer) = raw_exchange(
        hub.address,
        format!("GET /api/runs HTTP/1.1\r\nAuthorization: Bearer {TOKEN}\r\n\r\n").as_bytes(),
        b"",
    );
    assert_eq!(status, 200, "{answer}");
    let a = open(&fleet.a_db);
    a.finish_run(&fleet.a_running, &metrics(3)).unwrap();
    let report = sync::push_to_hub(&a, &hub.client(&fleet.a_key), 100, &never()).unwrap();
    assert_eq!(report.settled_runs, 1, "a normal sync works after the attacks");
}

#[test]
fn a_client_stalling_mid_body_neither_blocks_other_devices_nor_holds_on_forever() {
    let fleet = Fleet::new();
    let options = HubOptions {
        workers: 2,
        max_per_peer: 64,
        head_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(2),
        idle_timeout: Duration::from_secs(1),
    };
    let hub = TestHub::start(&fleet.hub_db, options);
    let head = format!(
        "POST /api/batches HTTP/1.1\r\n{}Content-Length: 5000\r\n\r\n{{\"for",
        auth_headers(&key(&fleet.a_key), 5000, &timestamp::now(), b"")
    );
    let mut stalled = TcpStream::connect(hub.address).unwrap();
    stalled.write_all(head.as_bytes()).unwrap();
    let mut silent = TcpStream::connect(hub.address).unwrap();
    silent.write_all(b"POST /api/batches HTTP/1.1\r\nHost:").unwrap();

    // Both workers may be holding a stalled client: the good sync waits for a timeout at most.
    let b = open(&fleet.b_db);
    let report = sync::push_to_hub(&b, &hub.client(&fleet.b_key), 100, &never()).unwrap();
    assert_eq!(report.settled_runs, 2);

    for (name, mut stream) in [("stalled body", stalled), ("stalled head", silent)] {
        stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        let (status, text) = parse_answer(&answer);
        assert_eq!(status, 408, "{name}: the hub cuts it off: {text}");
    }
    assert_eq!(fleet.hub_runs().len(), 4 + 3, "the stalled batch wrote nothing");
}

#[test]
fn a_stalled_client_does_not_delay_a_concurrent_sync_on_the_default_hub() {
    let fleet = Fleet::new();
    let hub = TestHub::start(&fleet.hub_db, HubOptions::default());
    let head = format!(
        "POST /api/batches HTTP/1.1\r\n{}Content-Length: 100000\r\n\r\n",
        auth_headers(&key(&fleet.a_key), 100_000, &timestamp::now(), b"")
    );
    let mut stalled = TcpStream::connect(hub.address).unwrap();
    stalled.write_all(head.as_bytes()).unwrap();
    // The default hub waits 15 s on a silent client; the stalled connection holds one worker of
    // sixteen, and this sync is served by another.
    let b = open(&fleet.b_db);
    let report = sync::push_to_hub(&b, &hub.client(&fleet.b_key), 100, &never()).unwrap();
    assert_eq!(report.settled_runs, 2);
    assert_eq!(fleet.hub_runs().len(), 4 + 3);
    drop(stalled);
}

#[test]
fn an_invalid_row_gets_400_naming_the_field_and_writes_nothing() {
    let fleet = Fleet::new();
    let hub = TestHub::start(&fleet.hub_db, HubOptions::default());
    let b = open(&fleet.b_db);
    let b_key = key(&fleet.b_key);
    let rows = b.pending_rows(100, true).unwrap();
    let document: serde_json::Value =
        serde_json::from_slice(&Batch::new(b.device_id(), rows, &b_key).unwrap().encode().unwrap())
            .unwrap();
    let edit = |pointer: &str, value: serde_json::Value| {
        let mut edited = document.clone();
        *edited.pointer_mut(pointer).unwrap_or_else(|| panic!("{pointer}")) = value;
        reseal(edited, Some(&b_key))
    };
    let cases = [
        ("/payload/runs/1/started_at", serde_json::json!("yesterday"), "runs[1].started_at"),
        (
            "/payload/runs/0/finished_at",
            serde_json::json!("2025-13-01T00:00:00.000Z"),
            "runs[0].finished_at",
        ),
        ("/payload/runs/0/status", serde_json::json!("bogus"), "runs[0]: unknown variant `bogus`"),
        ("/payload/runs/0/id", serde_json::json!(""), "runs[0].id"),
        ("/payload/runs/0/kind", serde_json::json!("x".repeat(100)), "runs[0].kind"),
        ("/payload/runs/0/model_sha256", serde_json::json!("../../etc"), "runs[0].model_sha256"),
        ("/payload/models/0/sha256", serde_json::json!("ABC"), "models[0].sha256"),
        ("/payload/devices/0/first_seen", serde_json::json!(""), "devices[0].first_seen"),
        ("/payload/devices/0/hostname", serde_json::json!("a\u{0}b"), "devices[0].hostname"),
        ("/payload/metrics/1/n", serde_json::json!(u64::MAX), "metrics[1].n"),
        ("/payload/metrics/0/n", serde_json::json!(-3), "metrics[0]: invalid value"),
        ("/payload/metrics/0/name", serde_json::json!(""), "metrics[0].name"),
        ("/payload/metrics/0/value", serde_json::json!("NaN"), "metrics[0]: invalid type"),
        ("/source_device", serde_json::json!("two words"), "source_device"),
        ("/created_at", serde_json::json!("now"), "created_at"),
    ];
    let before = fleet.hub_runs();
    for (pointer, value, expected) in cases {
        let (status, answer) = hub.post(&fleet.b_key, &edit(pointer, value));
        assert_eq!(status, 400, "{pointer}: {answer}");
        assert!(answer.contains(expected), "{pointer}: expected `{expected}` in {answer}");
        assert_eq!(fleet.hub_runs(), before, "{pointer}: nothing written");
    }
    // A number too large for a float does not parse at all; the answer is still a 400.
    let mut payload = document["payload"].clone();
    payload["metrics"][0]["value"] = serde_json::json!(1.5);
    let payload =
        serde_json::to_string(&payload).unwrap().replacen("\"value\":1.5", "\"value\":1e999", 1);
    assert!(payload.contains("1e999"));
    let body = reseal_text(&payload, b.device_id(), &b_key);
    let (status, answer) = hub.post(&fleet.b_key, &body);
    assert_eq!(status, 400, "{answer}");
    // A body signed by one enrolled key but sent under another's name is refused.
    let genuine = reseal(document.clone(), Some(&b_key));
    let (status, answer) = hub.post(&fleet.a_key, &genuine);
    assert_eq!(status, 403, "{answer}");
    let (status, answer) = hub.post(&fleet.b_key, &genuine);
    assert_eq!(status, 200, "{answer}");
}

#[test]
fn a_model_row_needs_a_valid_manifest_of_its_own_graph_and_keeps_the_manifest_it_has() {
    let fleet = Fleet::new();
    let hub = TestHub::start(&fleet.hub_db, HubOptions::default());
    open(&fleet.hub_db)
        .register_model(&model_sha("wheat-gan"), &manifest_for("wheat-gan"))
        .unwrap();
    let b = open(&fleet.b_db);
    let b_key = key(&fleet.b_key);
    let rows = b.pending_rows(100, true).unwrap();
    assert_eq!(rows.models.len(), 1);
    let document: serde_json::Value =
        serde_json::from_slice(&Batch::new(b.device_id(), rows, &b_key).unwrap().encode().unwrap())
            .unwrap();
    let edit = |pointer: &str, value: serde_json::Value| {
        let mut edited = document.clone();
        *edited.pointer_mut(pointer).unwrap_or_else(|| panic!("{pointer}")) = value;
        reseal(edited, Some(&b_key))
    };
    let before = fleet.hub_runs();
    for (name, pointer, value, status, expected) in [
        (
            "not a manifest",
            "/payload/models/0/manifest",
            serde_json::json!({"name": "wheat-gan"}),
            400,
            "models[0]",
        ),
        (
            "a manifest of another graph",
            "/payload/models/0/manifest/model_sha256",
            serde_json::json!(model_sha("other")),
            400,
            "models[0]: the manifest's model_sha256",
        ),
        (
            "another manifest for a held model",
            "/payload/models/0/manifest/architecture",
            serde_json::json!("tampered"),
            403,
            "is registered with another manifest",
        ),
    ] {
        let (got, answer) = hub.post(&fleet.b_key, &edit(pointer, value));
        assert_eq!(got, status, "{name}: {answer}");
        assert!(answer.contains(expected), "{name}: expected `{expected}` in {answer}");
        assert_eq!(fleet.hub_runs(), before, "{name}: nothing written");
    }
    let (status, answer) = hub.post(&fleet.b_key, &reseal(document.clone(), Some(&b_key)));
    assert_eq!(status, 200, "the genuine batch, same manifest: {answer}");
    assert_eq!(fleet.hub_runs_of(&fleet.b_db).len(), 3);
}

#[test]
fn a_batch_verified_before_its_key_was_replaced_is_refused_when_applied() {
    let fleet = Fleet::new();
    let a = open(&fleet.a_db);
    a.finish_run(&fleet.a_running, &metrics(4)).unwrap();
    let old_key = key(&fleet.a_key);
    let encoded = Batch::new(a.device_id(), a.pending_rows(100, false).unwrap(), &old_key)
        .unwrap()
        .encode()
        .unwrap();
    let hub = open(&fleet.hub_db);
    let mut sender = None;
    let verified = Batch::decode(&encoded, "test batch", |signer| {
        sender = Some(sync::enrolled_sender(&hub, signer, "test batch")?);
        Ok(())
    })
    .unwrap();
    let sender = sender.unwrap();
    let db = text(&fleet.hub_db);
    let new_key = fleet.path("a-new.key");
    let (ok, stdout, stderr) = run_cli(&[
        "hub",
        "enroll",
        "--db",
        db,
        "--device",
        "farm-a",
        "--key-out",
        text(&new_key),
        "--replace",
    ]);
    assert!(ok, "{stdout}{stderr}");
    let before = fleet.hub_runs();
    let outcome =
        hub.apply_rows(&sender, &verified.device_key, &verified.source_device, &verified.rows);
    assert!(
        matches!(&outcome, Err(Error::Refused { status: 403, message }) if message.contains("replaced")),
        "{outcome:?}"
    );
    let outcome = hub.apply_batches(&[(
        "stick/a.json",
        &sender,
        &verified.device_key,
        &verified.source_device,
        &verified.rows,
    )]);
    assert!(
        matches!(&outcome, Err(Error::Refused { status: 403, message }) if message.starts_with("stick/a.json")),
        "{outcome:?}"
    );
    assert_eq!(fleet.hub_runs(), before, "nothing written");
    let applied =
        hub.apply_rows(&sender, &key(&new_key).public(), &verified.source_device, &verified.rows);
    assert_eq!(applied.unwrap().runs_settled, 1, "the current key's rows land");
}

#[test]
fn a_public_key_without_a_fresh_request_signature_gets_401_before_any_body_is_read() {
    let fleet = Fleet::new();
    // The hub would wait a minute for a body; each answer below comes without one.
    let options = HubOptions {
        workers: 2,
        max_per_peer: 64,
        head_timeout: Duration::from_secs(60),
        request_timeout: Duration::from_secs(120),
        idle_timeout: Duration::from_secs(60),
    };
    let hub = TestHub::start(&fleet.hub_db, options);
    let (a_key, b_key) = (key(&fleet.a_key), key(&fleet.b_key));
    let (a_hex, b_hex) = (a_key.public().to_hex(), b_key.public().to_hex());
    let key_header = format!("{DEVICE_KEY_HEADER}: {a_hex}\r\n");
    let now = timestamp::now();
    let hours = |hours: i64| {
        let shift = Duration::from_secs(hours.unsigned_abs() * 3600);
        let time = if hours < 0 { SystemTime::now() - shift } else { SystemTime::now() + shift };
        timestamp::rfc3339_utc(time)
    };
    let length = 1000;
    for (name, headers, expected) in [
        ("the public key alone", key_header.clone(), REQUEST_SIGNATURE_HEADER),
        (
            "a signature of the wrong bytes",
            format!(
                "{key_header}{REQUEST_TIME_HEADER}: {now}\r\n{BATCH_SHA256_HEADER}: none\r\n{REQUEST_SIGNATURE_HEADER}: {}\r\n",
                "ab".repeat(64)
            ),
            "does not verify",
        ),
        (
            "signed by another enrolled key",
            auth_headers(&b_key, length, &now, b"").replace(&b_hex, &a_hex),
            "does not verify",
        ),
        (
            "signed for another length",
            auth_headers(&a_key, length + 1, &now, b""),
            "does not verify",
        ),
        (
            "signed two hours ago",
            auth_headers(&a_key, length, &hours(-2), b""),
            "check the device's clock",
        ),
        (
            "signed two hours ahead",
            auth_headers(&a_key, length, &hours(2), b""),
            "check the device's clock",
        ),
        ("signed at no time", auth_headers(&a_key, length, "yesterday", b""), "is not RFC 3339"),
    ] {
        let head = format!(
            "POST /api/batches HTTP/1.1\r\nHost: hub\r\n{headers}Content-Length: {length}\r\n\r\n"
        );
        let mut stream = TcpStream::connect(hub.address).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        stream.write_all(head.as_bytes()).unwrap();
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        let (status, text) = parse_answer(&answer);
        assert_eq!(status, 401, "{name}: answered without reading the body: {text}");
        assert!(text.contains(expected), "{name}: expected `{expected}` in {text}");
    }
    let a = open(&fleet.a_db);
    a.finish_run(&fleet.a_running, &metrics(5)).unwrap();
    let body = Batch::new(a.device_id(), a.pending_rows(100, false).unwrap(), &a_key)
        .unwrap()
        .encode()
        .unwrap();
    let head = format!(
        "POST /api/batches HTTP/1.1\r\n{}Content-Length: {}\r\n\r\n",
        auth_headers(&a_key, body.len() as u64, &now, b"{\"payload_sha256\": \"another\"}"),
        body.len()
    );
    let (status, answer) = raw_exchange(hub.address, head.as_bytes(), &body);
    assert_eq!(status, 401, "a request signed for another batch: {answer}");
    assert!(answer.contains("signed for batch another"), "{answer}");
    let report = sync::push_to_hub(&a, &hub.client(&fleet.a_key), 100, &never()).unwrap();
    assert_eq!(report.settled_runs, 1, "a signed sync still works");
}

/// A batch around `payload` taken as it stands (for numbers serde cannot hold), its checksum and
/// signature made over that text.
fn reseal_text(payload: &str, source_device: &str, signer: &SecretKey) -> Vec<u8> {
    let digest = hex::encode(Sha256::digest(payload.as_bytes()));
    let created_at = "2025-03-07T14:05:09.123Z";
    let public = signer.public().to_hex();
    let header = batch::signed_header(source_device, created_at, &digest, &public);
    format!(
        r#"{{"format":"fieldsynth-logbook-batch","version":2,"source_device":"{source_device}","created_at":"{created_at}","payload_sha256":"{digest}","device_key":"{public}","signature":"{}","payload":{payload}}}"#,
        signer.sign(&header)
    )
    .into_bytes()
}

#[cfg(unix)]
#[test]
fn exposed_key_and_token_files_are_warned_about() {
    use std::os::unix::fs::PermissionsExt;
    let fleet = Fleet::new();
    let token = fleet.path("token");
    std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
    for file in [&token, &fleet.a_key] {
        std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let stick = fleet.path("warned-stick");
    std::fs::create_dir(&stick).unwrap();
    let (ok, _, stderr) = run_cli(&[
        "sync",
        "--db",
        text(&fleet.a_db),
        "--to-dir",
        text(&stick),
        "--key-file",
        text(&fleet.a_key),
    ]);
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains(&format!("{}: holds a secret", fleet.a_key.display()))
            && stderr.contains("chmod 600"),
        "{stderr}"
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut hub = synth_edge()
        .args([
            "hub",
            "serve",
            "--db",
            text(&fleet.hub_db),
            "--addr",
            &format!("127.0.0.1:{port}"),
            "--token-file",
            text(&token),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = hub.stdout.take().unwrap();
    let mut first = [0_u8; 64];
    let read = stdout.read(&mut first).unwrap_or(0);
    let _ = hub.kill();
    let _ = hub.wait();
    let mut stderr = String::new();
    hub.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert!(String::from_utf8_lossy(&first[..read]).contains("hub listening on http://"));
    assert!(stderr.contains(&format!("{}: holds a secret", token.display())), "{stderr}");
}

#[test]
fn a_periodic_sync_whose_key_is_refused_stops_with_an_error() {
    let fleet = Fleet::new();
    let hub = TestHub::start(&fleet.hub_db, HubOptions::default());
    let stranger = fleet.path("stranger.key");
    SecretKey::generate().unwrap().write(&stranger).unwrap();
    for key_file in [&stranger, &fleet.b_key] {
        if key_file == &fleet.b_key {
            let (ok, _, stderr) =
                run_cli(&["hub", "revoke", "--db", text(&fleet.hub_db), "--device", "clinic-b"]);
            assert!(ok, "{stderr}");
        }
        let mut child = synth_edge()
            .args([
                "sync",
                "--db",
                text(&fleet.b_db),
                "--to",
                &hub.url(),
                "--key-file",
                text(key_file),
                "--every",
                "1s",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // A hang guard, not a timing assertion: a refused key must end the loop, not retry.
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break Some(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut stderr = String::new();
        child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
        assert!(
            status.is_some_and(|status| !status.success()),
            "{key_file:?}: {status:?} {stderr}"
        );
        assert!(stderr.contains("refused this device's credentials"), "{stderr}");
        assert!(!stderr.contains("retrying"), "{stderr}");
    }
}

#[test]
fn devices_syncing_at_once_all_land_under_their_own_device() {
    let dir = tempfile::tempdir().unwrap();
    let hub_db = dir.path().join("hub.sqlite");
    let edges: Vec<(PathBuf, PathBuf)> = (0..4)
        .map(|index| {
            let (db, key_file) = (
                dir.path().join(format!("edge-{index}.sqlite")),
                dir.path().join(format!("edge-{index}.key")),
            );
            let secret = SecretKey::generate().unwrap();
            open(&hub_db)
                .enroll_device(&format!("edge-{index}"), &secret.public(), None, false, || {
                    secret.write(&key_file)
                })
                .unwrap();
            fill(&open(&db), &format!("model-{}", index % 2), 6);
            (db, key_file)
        })
        .collect();
    let hub = TestHub::start(&hub_db, HubOptions::default());
    std::thread::scope(|scope| {
        for (db, key_file) in &edges {
            let client = hub.client(key_file);
            scope.spawn(move || {
                let report = sync::push_to_hub(&open(db), &client, 1, &never()).unwrap();
                assert_eq!((report.settled_runs, report.running_runs), (6, 1));
            });
        }
    });
    let hub_book = open(&hub_db);
    let runs = hub_book.runs().unwrap();
    assert_eq!(runs.len(), 4 * 7);
    for (db, _) in &edges {
        let edge = open(db);
        let mine: Vec<RunRecord> = sorted_runs(&hub_book)
            .into_iter()
            .filter(|run| run.device_id == edge.device_id())
            .collect();
        assert_eq!(mine, sorted_runs(&edge), "each edge's runs, whole, under its own device");
    }
    assert_eq!(hub_book.integrity_check().unwrap(), ["ok"]);
}

/// Answers one request on a new local port with `status`, after reading its head and body.
fn answer_once(status: u16) -> (String, JoinHandle<String>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let thread = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut request = Vec::new();
        let mut buffer = [0_u8; 65536];
        let (head, length) = loop {
            let read = stream.read(&mut buffer).unwrap();
            request.extend_from_slice(&buffer[..read]);
            let text = String::from_utf8_lossy(&request).into_owned();
            if let Some((head, _)) = text.split_once("\r\n\r\n") {
                let length = head
                    .lines()
                    .find_map(|line| line.strip_prefix("content-length: "))
                    .or_else(|| head.lines().find_map(|line| line.strip_prefix("Content-Length: ")))
                    .map_or(0, |length| length.trim().parse::<usize>().unwrap());
                break (head.to_owned(), length);
            }
        };
        while request.len() < head.len() + 4 + length {
            let read = stream.read(&mut buffer).unwrap();
            assert!(read > 0);
            request.extend_from_slice(&buffer[..read]);
        }
        let body = r#"{"error": "try later"}"#;
        let answer = format!(
            "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(answer.as_bytes()).unwrap();
        head
    });
    (url, thread)
}

#[test]
fn a_busy_or_timed_out_hub_is_retried_and_a_refusal_is_not_and_batches_carry_no_token() {
    let fleet = Fleet::new();
    let b = open(&fleet.b_db);
    let batch =
        Batch::new(b.device_id(), b.pending_rows(100, true).unwrap(), &key(&fleet.b_key)).unwrap();
    for (status, retryable) in [
        (408, true),
        (429, true),
        (503, true),
        (500, true),
        (400, false),
        (401, false),
        (403, false),
        (413, false),
    ] {
        let (url, server) = answer_once(status);
        let client =
            HubClient::new(&url, key(&fleet.b_key), Some(Token::new(TOKEN).unwrap())).unwrap();
        let outcome = client.push(&batch);
        let head = server.join().unwrap();
        let err = outcome.unwrap_err();
        assert_eq!(err.is_hub_unreachable(), retryable, "{status}: {err}");
        if !retryable {
            assert!(matches!(&err, Error::Refused { status: got, .. } if *got == status), "{err}");
        }
        assert!(!head.contains(TOKEN), "a batch request carries no read token: {head}");
        assert!(head.to_ascii_lowercase().contains("x-fieldsynth-request-signature"), "{head}");
    }
}

#[test]
fn batches_too_big_for_the_hub_are_split_and_a_run_too_big_alone_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("edge.key");
    SecretKey::generate().unwrap().write(&key_file).unwrap();
    let logbook = open(&dir.path().join("edge.sqlite"));
    let blob = "x".repeat(MAX_BATCH_BYTES / 8);
    for index in 0..12 {
        let id = logbook
            .start_run("evaluate", None, &serde_json::json!({"i": index, "blob": blob}))
            .unwrap();
        logbook.finish_run(&id, &metrics(index)).unwrap();
    }
    let stick = dir.path().join("stick");
    std::fs::create_dir(&stick).unwrap();
    let report = sync::write_to_dir(&logbook, &key(&key_file), &stick, 100, &never()).unwrap();
    assert_eq!(report.settled_runs, 12);
    assert!(report.batches >= 2, "{report:?}");
    for file in &report.files {
        let size = std::fs::metadata(file).unwrap().len();
        assert!(size <= MAX_BATCH_BYTES as u64, "{}: {size} bytes", file.display());
    }
    let huge = logbook
        .start_run("evaluate", None, &serde_json::json!({"blob": "y".repeat(MAX_BATCH_BYTES)}))
        .unwrap();
    logbook.finish_run(&huge, &metrics(1)).unwrap();
    let outcome = sync::write_to_dir(&logbook, &key(&key_file), &stick, 100, &never());
    assert!(
        matches!(&outcome, Err(Error::Invalid(message)) if message.contains(&huge) && message.contains("over the")),
        "{outcome:?}"
    );
    assert_eq!(std::fs::read_dir(&stick).unwrap().count(), report.files.len(), "no file added");
}

#[test]
fn a_batch_with_a_field_its_signature_does_not_cover_or_a_bad_device_id_is_refused() {
    let fleet = Fleet::new();
    let b = open(&fleet.b_db);
    let b_key = key(&fleet.b_key);
    let rows = b.pending_rows(100, true).unwrap();
    let genuine = Batch::new(b.device_id(), rows.clone(), &b_key).unwrap().encode().unwrap();
    let mut document: serde_json::Value = serde_json::from_slice(&genuine).unwrap();
    document["note"] = serde_json::json!("not covered by the signature");
    let edited = reseal(document, Some(&b_key));
    let outcome = Batch::decode(&edited, "edited.json", |_| Ok(()));
    assert!(
        matches!(&outcome, Err(Error::BatchUnreadable { .. }))
            && format!("{:?}", outcome.as_ref().err()).contains("unknown field"),
        "{outcome:?}"
    );
    assert!(Batch::decode(&genuine, "genuine.json", |_| Ok(())).is_ok());
    for device in ["", "two words", &"x".repeat(200)] {
        let outcome = Batch::new(device, rows.clone(), &b_key);
        assert!(
            matches!(&outcome, Err(Error::Invalid(message)) if message.contains("device id")),
            "{device:?}: {outcome:?}"
        );
    }
}

#[test]
fn a_flood_of_silent_connections_gets_busy_answers_without_stalling_the_accepting_thread() {
    let fleet = Fleet::new();
    let options = HubOptions {
        workers: 1,
        max_per_peer: 64,
        head_timeout: Duration::from_secs(5),
        request_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(5),
    };
    let hub = TestHub::start(&fleet.hub_db, options);
    // One held by the worker, four queued: the other 30 are answered 503 by the accepting
    // thread, which must not linger a second on each (they send nothing and never close).
    let connections: Vec<TcpStream> =
        (0..35).map(|_| TcpStream::connect(hub.address).unwrap()).collect();
    let readers: Vec<JoinHandle<(u16, TcpStream)>> = connections
        .into_iter()
        .map(|mut stream| {
            std::thread::spawn(move || {
                // A hang guard: with a one-second linger per busy answer, the last ones would
                // come after half a minute.
                stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                let mut answer = Vec::new();
                let _ = stream.read_to_end(&mut answer);
                (parse_answer(&answer).0, stream)
            })
        })
        .collect();
    let answers: Vec<(u16, TcpStream)> =
        readers.into_iter().map(|reader| reader.join().unwrap()).collect();
    let busy = answers.iter().filter(|(status, _)| *status == 503).count();
    assert!(
        busy >= 30,
        "{busy} busy answers: {:?}",
        answers.iter().map(|(s, _)| s).collect::<Vec<_>>()
    );
    drop(answers);
    let (status, answer) = raw_exchange(
        hub.address,
        format!("GET /api/runs HTTP/1.1\r\nAuthorization: Bearer {TOKEN}\r\n\r\n").as_bytes(),
        b"",
    );
    assert_eq!(status, 200, "the hub serves again: {answer}");
}

/// Connects to `address` and sends the start of a request head that never ends, as a slowloris
/// does.
fn half_head(address: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(address).unwrap();
    stream.write_all(b"GET /api/runs HTTP/1.1\r\n").unwrap();
    stream
}

/// What the hub did with a connection within `guard`: `Some(status)` when it answered (0 when it
/// closed without an answer), `None` while it still holds the connection open.
fn answered_within(mut stream: TcpStream, guard: Duration) -> (Option<u16>, TcpStream) {
    stream.set_read_timeout(Some(guard)).unwrap();
    let mut answer = Vec::new();
    match stream.read_to_end(&mut answer) {
        Ok(_) => (Some(parse_answer(&answer).0), stream),
        Err(err)
            if answer.is_empty()
                && matches!(
                    err.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
        {
            (None, stream)
        }
        Err(_) => (Some(parse_answer(&answer).0), stream),
    }
}

#[test]
fn slow_connections_from_one_address_are_capped_and_a_good_sync_from_another_is_served_meanwhile() {
    let fleet = Fleet::new();
    // Long head deadline, so the slow connections the hub took are still open at the end.
    let options = HubOptions {
        workers: 4,
        max_per_peer: 2,
        head_timeout: Duration::from_secs(60),
        request_timeout: Duration::from_secs(120),
        idle_timeout: Duration::from_secs(60),
    };
    // Listening on IPv6 and IPv4 both, the attacker comes from 127.0.0.1 and the good device
    // from ::1: two addresses on one machine.
    let hub = match TestHub::start_on(&fleet.hub_db, "[::]:0", options) {
        Ok(hub) => hub,
        Err(err) => {
            eprintln!("SKIPPED: no dual-stack IPv6 listener on this machine: {err}");
            return;
        }
    };
    let port = hub.address.port();
    let attacker = SocketAddr::from(([127, 0, 0, 1], port));
    let slow: Vec<TcpStream> = (0..20).map(|_| half_head(attacker)).collect();
    let outcomes: Vec<JoinHandle<(Option<u16>, TcpStream)>> = slow
        .into_iter()
        .map(|stream| std::thread::spawn(move || answered_within(stream, Duration::from_secs(3))))
        .collect();
    let outcomes: Vec<(Option<u16>, TcpStream)> =
        outcomes.into_iter().map(|outcome| outcome.join().unwrap()).collect();
    let statuses: Vec<Option<u16>> = outcomes.iter().map(|(status, _)| *status).collect();
    let held = statuses.iter().filter(|status| status.is_none()).count();
    let refused = statuses.iter().filter(|status| **status == Some(429)).count();
    assert_eq!((held, refused), (2, 18), "{statuses:?}");

    // Two of four workers are held by the slow client; the good device is served at once.
    let good = HubClient::new(&format!("http://[::1]:{port}"), key(&fleet.b_key), None).unwrap();
    let report = sync::push_to_hub(&open(&fleet.b_db), &good, 100, &never()).unwrap();
    assert_eq!(report.settled_runs, 2);
    assert_eq!(fleet.hub_runs().len(), 4 + 3);
    // ... while the slow connections it holds are still open.
    for (status, stream) in &outcomes {
        if status.is_none() {
            stream.set_nonblocking(true).unwrap();
            let mut byte = [0_u8; 1];
            let still_open = matches!(
                (&mut &*stream).read(&mut byte),
                Err(err) if err.kind() == std::io::ErrorKind::WouldBlock
            );
            assert!(still_open, "a slow connection the hub took was closed already");
        }
    }
    // Once they are gone, the address may connect again.
    drop(outcomes);
    let again = SocketAddr::from(([127, 0, 0, 1], port));
    let mut answered = None;
    for _ in 0..50 {
        let (status, _) = raw_exchange(
            again,
            format!("GET /api/runs HTTP/1.1\r\nAuthorization: Bearer {TOKEN}\r\n\r\n").as_bytes(),
            b"",
        );
        answered = Some(status);
        if status == 200 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(answered, Some(200), "the slow address is served once its connections closed");
}

#[test]
fn a_connection_that_never_finishes_its_head_is_cut_off_at_the_head_deadline_even_when_queued() {
    let fleet = Fleet::new();
    let options = HubOptions {
        workers: 1,
        max_per_peer: 8,
        head_timeout: Duration::from_secs(1),
        request_timeout: Duration::from_secs(120),
        idle_timeout: Duration::from_secs(60),
    };
    let hub = TestHub::start(&fleet.hub_db, options);
    // One worker: the second and third wait in the queue, their deadline counting all along.
    let slow: Vec<TcpStream> = (0..3).map(|_| half_head(hub.address)).collect();
    let outcomes: Vec<JoinHandle<(Option<u16>, TcpStream)>> = slow
        .into_iter()
        .map(|stream| {
            // A hang guard, far past the one-second deadline.
            std::thread::spawn(move || answered_within(stream, Duration::from_secs(30)))
        })
        .collect();
    for outcome in outcomes {
        let (status, _) = outcome.join().unwrap();
        assert_eq!(status, Some(408), "the hub cuts off a head that never ends");
    }
    let (status, answer) = raw_exchange(
        hub.address,
        format!("GET /api/runs HTTP/1.1\r\nAuthorization: Bearer {TOKEN}\r\n\r\n").as_bytes(),
        b"",
    );
    assert_eq!(status, 200, "{answer}");
}

/// `synth-edge ARGS`, killed if it runs past a minute (a hang is a failure, not a stuck test).
#[cfg(unix)]
fn run_cli_guarded(args: &[&str]) -> (bool, String) {
    let mut child =
        synth_edge().args(args).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
            return (status.success(), stderr);
        }
        if started.elapsed() > Duration::from_secs(60) {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("synth-edge {args:?} hung");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(unix)]
#[test]
fn hub_import_refuses_a_fifo_and_a_device_without_reading_them() {
    let fleet = Fleet::new();
    let fifo = fleet.dir.path().join("batch.json");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let before = fleet.hub_runs();
    for file in [text(&fifo), "/dev/zero", text(fleet.dir.path())] {
        let (ok, stderr) = run_cli_guarded(&["hub", "import", "--db", text(&fleet.hub_db), file]);
        assert!(!ok, "{file}: imported");
        assert!(stderr.contains(file) && stderr.contains("not a regular file"), "{file}: {stderr}");
    }
    assert_eq!(fleet.hub_runs(), before, "nothing imported");
}

#[test]
fn a_batch_file_over_the_limit_is_refused_at_the_limit() {
    let fleet = Fleet::new();
    let big = fleet.dir.path().join("big.json");
    std::fs::write(&big, vec![b' '; MAX_BATCH_BYTES + 1]).unwrap();
    let err = sync::import_files(&open(&fleet.hub_db), std::slice::from_ref(&big)).unwrap_err();
    assert!(
        matches!(&err, Error::Refused { status: 413, message } if message.contains(text(&big))),
        "{err}"
    );
}
