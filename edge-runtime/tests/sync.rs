//! Sync from edge logbooks to a hub: over HTTP (a hub on loopback, started in the test and
//! stopped at its end) and through batch files, each edge enrolled at the hub and signing its
//! batches with its key. The hub must end up holding exactly the union of the edges — also after
//! an interrupted or killed sync, a batch delivered twice, or a file imported twice — and must
//! refuse an unenrolled sender, a read without the token or a damaged batch without writing
//! anything. Attacks by one enrolled device on another, and on the server itself, are in
//! `hub_security.rs`.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers fail loudly too; clippy.toml's allow-unwrap-in-tests covers #[test] fns only"
)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use edge_runtime::Error;
use edge_runtime::keys::SecretKey;
use edge_runtime::logbook::{Logbook, RunRecord, RunStatus, timestamp};
use edge_runtime::metrics::{Axis, Metric};
use edge_runtime::sync::client::{HubClient, request_auth_headers};
use edge_runtime::sync::hub::{Hub, Listing};
use edge_runtime::sync::{self, Batch, Token};
use sha2::{Digest, Sha256};

use common::{key, manifest_for, model_sha, never, open, sorted_runs, text};

mod common;

const TOKEN: &str = "field-token-7f3a";

fn token() -> Token {
    Token::new(TOKEN).unwrap()
}

/// A hub served on a loopback port by a thread of the test; dropping it stops the hub.
struct TestHub {
    address: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<edge_runtime::Result<()>>>,
}

impl TestHub {
    fn start(db: &Path) -> TestHub {
        TestHub::start_on(db, "127.0.0.1:0")
    }

    fn start_on(db: &Path, address: &str) -> TestHub {
        let hub = Hub::bind(open(db), address, token()).unwrap();
        let address = hub.address();
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = Arc::clone(&stop);
        let thread = std::thread::spawn(move || hub.serve_until(&thread_stop));
        TestHub { address, stop, thread: Some(thread) }
    }

    fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// A client signing with the key in `key_file`, holding the read token.
    fn client(&self, key_file: &Path) -> HubClient {
        HubClient::new(&self.url(), key(key_file), Some(token())).unwrap()
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

fn metrics_for(label: &str, index: usize) -> Vec<Metric> {
    let base = (label.len() * 31 + index) as f64;
    ["ks_mean", "tv_mean", "corr_gap"]
        .iter()
        .enumerate()
        .map(|(rank, name)| {
            let value = (base + rank as f64) / 7.0;
            Metric {
                axis: Axis::Fidelity,
                name: (*name).to_owned(),
                value,
                ci_low: value - 0.1,
                ci_high: value + 0.1,
                n: 100 + index as u64,
            }
        })
        .collect()
}

/// Registers `models` and records runs on them: `n_done` done, then one failed and one left
/// running.
fn fill(logbook: &Logbook, label: &str, models: &[&str], n_done: usize) {
    for model in models {
        logbook.register_model(&model_sha(model), &manifest_for(model)).unwrap();
    }
    let start = |index: usize| {
        let model = model_sha(models[index % models.len()]);
        let params =
            serde_json::json!({ "label": label, "index": index, "rate": 0.1 * index as f64 });
        logbook.start_run("evaluate", Some(&model), &params).unwrap()
    };
    for index in 0..n_done {
        let id = start(index);
        logbook.finish_run(&id, &metrics_for(label, index)).unwrap();
    }
    let failed = start(n_done);
    logbook.fail_run(&failed, "out of memory").unwrap();
    start(n_done + 1);
}

/// The hub holds exactly the edges' runs (statuses, params and metrics equal, no duplicates),
/// their devices besides its own, and their models.
fn check_union(hub: &Path, edges: &[&Path]) {
    let hub_book = open(hub);
    let edge_books: Vec<Logbook> = edges.iter().map(|path| open(path)).collect();
    let mut expected_runs: Vec<RunRecord> = edge_books.iter().flat_map(sorted_runs).collect();
    expected_runs.sort_by(|a, b| (&a.id, &a.device_id).cmp(&(&b.id, &b.device_id)));
    assert_eq!(sorted_runs(&hub_book), expected_runs, "the hub's runs are the union of the edges'");

    let mut expected_devices: Vec<String> =
        edge_books.iter().map(|book| book.device_id().to_owned()).collect();
    expected_devices.push(hub_book.device_id().to_owned());
    expected_devices.sort();
    let mut devices: Vec<String> =
        hub_book.devices().unwrap().into_iter().map(|device| device.id).collect();
    devices.sort();
    assert_eq!(devices, expected_devices);

    let models = |book: &Logbook| -> Vec<(String, String)> {
        book.models()
            .unwrap()
            .into_iter()
            .map(|model| (model.sha256, model.manifest_json))
            .collect()
    };
    let mut expected_models: Vec<(String, String)> = edge_books.iter().flat_map(models).collect();
    expected_models.sort();
    expected_models.dedup();
    let mut hub_models = models(&hub_book);
    hub_models.sort();
    assert_eq!(hub_models, expected_models);
}

/// Enrols device `name` at the hub logbook `hub_db` and writes its secret key to `key_file`.
fn enroll(hub_db: &Path, name: &str, key_file: &Path) {
    let secret = SecretKey::generate().unwrap();
    open(hub_db)
        .enroll_device(name, &secret.public(), None, false, || secret.write(key_file))
        .unwrap();
}

struct Site {
    dir: tempfile::TempDir,
}

impl Site {
    fn new() -> Site {
        Site { dir: tempfile::tempdir().unwrap() }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Two edges with overlapping models, and a hub with no rows where both are enrolled,
    /// their keys in `edge-a.key` and `edge-b.key`.
    fn two_edges(&self) -> (PathBuf, PathBuf, PathBuf) {
        let (a, b) = (self.path("edge-a.sqlite"), self.path("edge-b.sqlite"));
        fill(&open(&a), "farm-a", &["wheat-vae", "wheat-gan"], 7);
        fill(&open(&b), "clinic-b", &["wheat-gan", "digits-vae"], 4);
        let hub = self.path("hub.sqlite");
        enroll(&hub, "farm-a", &self.path("edge-a.key"));
        enroll(&hub, "clinic-b", &self.path("edge-b.key"));
        (a, b, hub)
    }
}

#[test]
fn two_edges_sync_into_one_hub_as_exactly_their_union() {
    let site = Site::new();
    let (a, b, hub_db) = site.two_edges();
    let hub = TestHub::start(&hub_db);
    let (key_a, key_b) = (site.path("edge-a.key"), site.path("edge-b.key"));
    for (edge, key_file) in [(&a, &key_a), (&b, &key_b)] {
        let report = sync::push_to_hub(&open(edge), &hub.client(key_file), 3, &never()).unwrap();
        assert_eq!(report.running_runs, 1);
        assert!(report.batches >= 2, "small batches: {report:?}");
    }
    check_union(&hub_db, &[&a, &b]);
    // Nothing settled is left to send; the running run goes again, and changes nothing.
    let again = sync::push_to_hub(&open(&a), &hub.client(&key_a), 3, &never()).unwrap();
    assert_eq!(
        (again.batches, again.settled_runs, again.running_runs, again.metrics),
        (1, 0, 1, 0)
    );
    check_union(&hub_db, &[&a, &b]);

    let listing: Listing = serde_json::from_str(&hub.client(&key_b).list_runs().unwrap()).unwrap();
    let hub_book = open(&hub_db);
    assert_eq!(listing.runs, hub_book.runs().unwrap());
    assert_eq!(listing.devices, hub_book.devices().unwrap());
    let enrolled: Vec<(String, Option<String>)> = listing
        .enrolled
        .iter()
        .map(|device| (device.name.clone(), device.device_id.clone()))
        .collect();
    assert_eq!(
        enrolled,
        [
            ("clinic-b".to_owned(), Some(open(&b).device_id().to_owned())),
            ("farm-a".to_owned(), Some(open(&a).device_id().to_owned())),
        ],
        "the listing names each enrolled device and the logbook device its key speaks for"
    );
    assert_eq!(listing.runs.len(), 9 + 6);
}

#[test]
fn a_run_synced_while_running_is_settled_by_a_later_sync() {
    let site = Site::new();
    let (edge_db, hub_db) = (site.path("edge.sqlite"), site.path("hub.sqlite"));
    let key_file = site.path("edge.key");
    enroll(&hub_db, "edge", &key_file);
    let hub = TestHub::start(&hub_db);
    let edge = open(&edge_db);
    let run = edge.start_run("generate", None, &serde_json::json!({"n": 10})).unwrap();
    let while_running = edge.pending_rows(10, true).unwrap();
    let report = sync::push_to_hub(&edge, &hub.client(&key_file), 10, &never()).unwrap();
    assert_eq!((report.settled_runs, report.running_runs), (0, 1));
    let on_hub = |id: &str| sorted_runs(&open(&hub_db)).into_iter().find(|record| record.id == id);
    assert_eq!(
        on_hub(&run).map(|record| (record.status, record.metrics.len())),
        Some((RunStatus::Running, 0))
    );

    edge.finish_run(&run, &metrics_for("late", 1)).unwrap();
    let report = sync::push_to_hub(&edge, &hub.client(&key_file), 10, &never()).unwrap();
    assert_eq!((report.settled_runs, report.running_runs, report.metrics), (1, 0, 3));
    assert_eq!(
        on_hub(&run).map(|record| (record.status, record.metrics)),
        Some((RunStatus::Done, metrics_for("late", 1)))
    );
    check_union(&hub_db, &[&edge_db]);

    // A stale batch from before the run finished, arriving late, does not undo it.
    let stale = open(&hub_db)
        .apply_rows("edge", &key(&key_file).public(), edge.device_id(), &while_running)
        .unwrap();
    assert!(!stale.changed_anything(), "{stale:?}");
    check_union(&hub_db, &[&edge_db]);
}

#[test]
fn an_interrupted_sync_resumes_and_a_batch_delivered_twice_changes_nothing() {
    let site = Site::new();
    let (a, b, hub_db) = site.two_edges();
    let hub = TestHub::start(&hub_db);
    let (key_a, key_b) = (site.path("edge-a.key"), site.path("edge-b.key"));
    let client = hub.client(&key_a);
    let edge = open(&a);

    // The link drops after two batches were delivered: those are marked, the rest is not.
    let mut delivered = 0;
    let outcome = sync::sync_with(&edge, &key(&key_a), 2, &never(), |batch| {
        if delivered == 2 {
            return Err(Error::HubUnreachable {
                url: hub.url(),
                message: "link dropped".to_owned(),
            });
        }
        delivered += 1;
        client.push(batch).map(|_| ())
    });
    assert!(matches!(outcome, Err(Error::HubUnreachable { .. })), "{outcome:?}");
    let left = edge.pending_rows(100, false).unwrap();
    assert_eq!(left.n_settled_runs(), 8 - 4, "two batches of two settled runs were acknowledged");

    // The hub applied a batch but its answer was lost: the edge sends the same batch again.
    let rows = edge.pending_rows(2, false).unwrap();
    let batch = Batch::new(edge.device_id(), rows, &key(&key_a)).unwrap();
    let first = client.push(&batch).unwrap();
    assert_eq!(
        (first.summary.runs_added, first.payload_sha256.as_str()),
        (2, batch.payload_sha256.as_str())
    );
    let second = client.push(&batch).unwrap();
    assert!(
        !second.summary.changed_anything(),
        "a repeated batch changes nothing: {:?}",
        second.summary
    );

    for (edge, key_file) in [(&a, &key_a), (&b, &key_b)] {
        sync::push_to_hub(&open(edge), &hub.client(key_file), 2, &never()).unwrap();
    }
    check_union(&hub_db, &[&a, &b]);
}

#[test]
fn a_sync_process_killed_midway_resumes_without_duplicates() {
    let site = Site::new();
    let (edge_db, hub_db) = (site.path("edge.sqlite"), site.path("hub.sqlite"));
    fill(&open(&edge_db), "big-farm", &["wheat-ddpm"], 80);
    let key_file = site.path("edge.key");
    enroll(&hub_db, "big-farm", &key_file);
    let hub = TestHub::start(&hub_db);
    let url = hub.url();
    let args = [
        "sync",
        "--db",
        text(&edge_db),
        "--to",
        &url,
        "--key-file",
        text(&key_file),
        "--batch-runs",
        "1",
    ];
    let mut child = Command::new(env!("CARGO_BIN_EXE_synth-edge"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill once the hub holds some but not all runs.
    let deadline = Instant::now() + Duration::from_secs(20);
    while open(&hub_db).runs().map(|runs| runs.len()).unwrap_or(0) < 10 && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    let status = child.wait().unwrap();
    let on_hub = open(&hub_db).runs().map(|runs| runs.len()).unwrap_or(0);
    assert!(
        !status.success() && on_hub < 82,
        "the sync should have been killed midway ({status}, {on_hub} runs on the hub)"
    );

    let output = Command::new(env!("CARGO_BIN_EXE_synth-edge")).args(args).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    check_union(&hub_db, &[&edge_db]);
}

/// The encoded batch of everything `edge` has not synced yet (up to 100 runs), signed with the
/// key in `key_file`.
fn pending_batch_bytes(edge: &Logbook, key_file: &Path) -> Vec<u8> {
    let batch = Batch::new(edge.device_id(), edge.pending_rows(100, true).unwrap(), &key(key_file))
        .unwrap();
    batch.encode().unwrap()
}

/// The public key in `key_file` as the device-key header carries it.
fn key_header(key_file: &Path) -> String {
    key(key_file).public().to_hex()
}

/// An HTTP client that hands back 4xx and 5xx answers instead of turning them into errors.
fn agent_seeing_every_status() -> ureq::Agent {
    ureq::Agent::config_builder().http_status_as_error(false).build().into()
}

#[test]
fn a_batch_without_an_enrolled_key_or_a_read_without_the_token_gets_401_and_writes_nothing() {
    let site = Site::new();
    let (a, _, hub_db) = site.two_edges();
    let hub = TestHub::start(&hub_db);
    let edge = open(&a);
    let key_a = site.path("edge-a.key");
    let body = pending_batch_bytes(&edge, &key_a);
    let agent = agent_seeing_every_status();
    let url = format!("{}/api/batches", hub.url());
    let answer = |headers: &[(&str, &str)]| -> (u16, String) {
        let mut request = agent.post(&url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let mut response = request.send(&body[..]).unwrap();
        let text = response.body_mut().read_to_string().unwrap_or_default();
        (response.status().as_u16(), text)
    };
    let stranger = SecretKey::generate().unwrap().public().to_hex();
    let bearer = format!("Bearer {TOKEN}");
    for headers in [
        vec![],
        vec![("Authorization", bearer.as_str())],
        vec![("X-Fieldsynth-Device-Key", stranger.as_str())],
        vec![("X-Fieldsynth-Device-Key", "not-a-key")],
    ] {
        let (status, text) = answer(&headers);
        assert_eq!(status, 401, "{headers:?}: {text}");
    }
    let (_, text) = answer(&[("Authorization", &bearer)]);
    assert!(text.contains("enrol"), "a token-only batch is told how to move over: {text}");
    let listing = |authorization: Option<&str>| -> u16 {
        let mut request = agent.get(format!("{}/api/runs", hub.url()));
        if let Some(value) = authorization {
            request = request.header("Authorization", value);
        }
        request.call().map(|response| response.status().as_u16()).unwrap()
    };
    assert_eq!(listing(None), 401, "the read endpoint needs the token");
    assert_eq!(listing(Some("Bearer wrong-token")), 401);
    assert_eq!(listing(Some(TOKEN)), 401, "the scheme is required");
    assert_eq!(listing(Some(&format!("Bearer {TOKEN}x"))), 401);
    assert_eq!(listing(Some(&bearer)), 200);

    let unenrolled = HubClient::new(&hub.url(), SecretKey::generate().unwrap(), None).unwrap();
    let outcome = sync::push_to_hub(&edge, &unenrolled, 100, &never());
    assert!(
        matches!(&outcome, Err(Error::Refused { status: 401, message }) if message.contains("not the key of any device enrolled")),
        "{outcome:?}"
    );
    let hub_book = open(&hub_db);
    assert_eq!(hub_book.runs().map(|runs| runs.len()).ok(), Some(0), "nothing written");
    assert_eq!(
        hub_book.devices().map(|devices| devices.len()).ok(),
        Some(1),
        "only the hub's own device"
    );
    assert_eq!(
        edge.pending_rows(100, false).map(|rows| rows.n_settled_runs()).ok(),
        Some(8),
        "nothing marked synced"
    );

    let key_a_hex = key_header(&key_a);
    let (status, text) = answer(&[("X-Fieldsynth-Device-Key", &key_a_hex)]);
    assert_eq!(status, 401, "an enrolled public key alone is not enough: {text}");
    let batch_sha256 =
        serde_json::from_slice::<serde_json::Value>(&body).unwrap()["payload_sha256"]
            .as_str()
            .unwrap()
            .to_owned();
    let signed = request_auth_headers(
        &key(&key_a),
        "POST",
        "/api/batches",
        body.len() as u64,
        &timestamp::now(),
        &batch_sha256,
    );
    let signed: Vec<(&str, &str)> =
        signed.iter().map(|(name, value)| (*name, value.as_str())).collect();
    let (status, text) = answer(&signed);
    assert_eq!(status, 200, "{text}");
    assert_eq!(hub_book.runs().map(|runs| runs.len()).ok(), Some(9));
}

/// A copy of `bytes` with one digit inside the payload changed: still JSON, wrong checksum.
fn with_a_digit_changed(bytes: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(bytes).into_owned();
    let value_at = text.find("\"value\":").unwrap_or_else(|| panic!("a batch has metric values"));
    let digit_at =
        value_at + text[value_at..].find(|ch: char| ch.is_ascii_digit()).unwrap_or_default();
    let mut changed = text.into_bytes();
    changed[digit_at] = if changed[digit_at] == b'9' { b'8' } else { changed[digit_at] + 1 };
    changed
}

#[test]
fn a_corrupt_batch_over_http_gets_400_and_writes_nothing() {
    let site = Site::new();
    let (a, _, hub_db) = site.two_edges();
    let hub = TestHub::start(&hub_db);
    let edge = open(&a);
    let key_a = site.path("edge-a.key");
    let body = pending_batch_bytes(&edge, &key_a);
    let agent = agent_seeing_every_status();
    let batch_sha256 =
        serde_json::from_slice::<serde_json::Value>(&body).unwrap()["payload_sha256"]
            .as_str()
            .unwrap()
            .to_owned();
    for damaged in [with_a_digit_changed(&body), body[..body.len() / 2].to_vec()] {
        let mut request = agent.post(format!("{}/api/batches", hub.url()));
        for (name, value) in request_auth_headers(
            &key(&key_a),
            "POST",
            "/api/batches",
            damaged.len() as u64,
            &timestamp::now(),
            &batch_sha256,
        ) {
            request = request.header(name, value);
        }
        let mut response = request.send(&damaged[..]).unwrap();
        let answer = response.body_mut().read_to_string().unwrap_or_default();
        assert_eq!(response.status().as_u16(), 400, "{answer}");
        assert!(answer.contains("rejected whole"), "{answer}");
    }
    assert_eq!(open(&hub_db).runs().map(|runs| runs.len()).ok(), Some(0));
}

#[test]
fn batch_files_import_once_and_a_second_import_changes_nothing() {
    let site = Site::new();
    let (a, b, hub_db) = site.two_edges();
    let stick = site.path("stick");
    std::fs::create_dir(&stick).unwrap();
    let mut files = Vec::new();
    let (key_a, key_b) = (site.path("edge-a.key"), site.path("edge-b.key"));
    for (edge, key_file) in [(&a, &key_a), (&b, &key_b)] {
        let report = sync::write_to_dir(&open(edge), &key(key_file), &stick, 3, &never()).unwrap();
        assert_eq!(report.files.len(), report.batches);
        files.extend(report.files);
    }
    let nothing_new =
        sync::write_to_dir(&open(&a), &key(&key_a), &site.path("stick"), 3, &never()).unwrap();
    assert_eq!(nothing_new.settled_runs, 0, "written rows count as synced");

    let hub = open(&hub_db);
    let first = sync::import_files(&hub, &files).unwrap();
    assert_eq!(first.iter().map(|(_, summary)| summary.runs_added).sum::<usize>(), 15);
    check_union(&hub_db, &[&a, &b]);
    let second = sync::import_files(&hub, &files).unwrap();
    assert!(second.iter().all(|(_, summary)| !summary.changed_anything()), "{second:?}");
    check_union(&hub_db, &[&a, &b]);

    let missing = sync::write_to_dir(&open(&a), &key(&key_a), &site.path("unmounted"), 3, &never());
    assert!(
        missing.is_err() && !site.path("unmounted").exists(),
        "a missing folder is not created"
    );
}

#[test]
fn a_corrupt_or_truncated_batch_file_is_rejected_whole() {
    let site = Site::new();
    let (a, b, hub_db) = site.two_edges();
    let good_dir = site.path("good");
    std::fs::create_dir(&good_dir).unwrap();
    let (key_a, key_b) = (site.path("edge-a.key"), site.path("edge-b.key"));
    let good = sync::write_to_dir(&open(&b), &key(&key_b), &good_dir, 100, &never()).unwrap().files;
    let edge = open(&a);
    let bytes = pending_batch_bytes(&edge, &key_a);

    let flipped = site.path("flipped.json");
    std::fs::write(&flipped, with_a_digit_changed(&bytes)).unwrap();
    let truncated = site.path("truncated.json");
    std::fs::write(&truncated, &bytes[..bytes.len() * 2 / 3]).unwrap();
    // A checksum made over rows that do not hang together: a metric of a run the batch lacks.
    let mut orphan_rows = edge.pending_rows(100, false).unwrap();
    orphan_rows.runs.remove(0);
    let orphan = site.path("orphan.json");
    let orphan_batch = Batch::new(edge.device_id(), orphan_rows, &key(&key_a)).unwrap();
    std::fs::write(&orphan, orphan_batch.encode().unwrap()).unwrap();

    // A correct checksum and signature over a metric on an axis this version does not know.
    let mut document: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    document["payload"]["metrics"][0]["axis"] = serde_json::json!("speed");
    let payload = serde_json::to_string(&document["payload"]).unwrap();
    let digest = hex::encode(Sha256::digest(payload.as_bytes()));
    let header = sync::batch::signed_header(
        document["source_device"].as_str().unwrap(),
        document["created_at"].as_str().unwrap(),
        &digest,
        &key_header(&key_a),
    );
    document["payload_sha256"] = serde_json::json!(digest);
    document["signature"] = serde_json::json!(key(&key_a).sign(&header));
    let unknown_axis = site.path("unknown-axis.json");
    std::fs::write(&unknown_axis, serde_json::to_string(&document).unwrap()).unwrap();

    let hub = open(&hub_db);
    for (damaged, expected) in [
        (&flipped, "SHA-256"),
        (&truncated, "not a readable"),
        (&orphan, "not a done or failed run"),
        (&unknown_axis, "metrics[0]: unknown variant `speed`"),
    ] {
        let files = [good.clone(), vec![damaged.clone()]].concat();
        let message = sync::import_files(&hub, &files)
            .err()
            .map(|err| edge_runtime::error::chain(&err))
            .unwrap_or_default();
        assert!(
            message.contains(text(damaged))
                && message.contains(expected)
                && message.contains("rejected whole"),
            "{message}"
        );
        assert_eq!(
            hub.runs().map(|runs| runs.len()).ok(),
            Some(0),
            "one damaged file stops the whole import"
        );
    }
    sync::import_files(&hub, &good).unwrap();
    check_union(&hub_db, &[&b]);
}

/// A child process that is killed if a test fails before it stops it.
struct ChildGuard(Child);

impl ChildGuard {
    fn terminate_and_wait(mut self, within: Duration) -> std::process::ExitStatus {
        let pid = self.0.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap_or_else(|err| panic!("cannot run kill: {err}"));
        assert!(sent.success());
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "pid {pid} did not stop within {within:?} of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn wait_for(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn periodic_sync_backs_off_until_the_hub_appears_and_both_stop_on_sigterm() {
    let site = Site::new();
    let (edge_db, hub_db) = (site.path("edge.sqlite"), site.path("hub.sqlite"));
    fill(&open(&edge_db), "solar-farm", &["wheat-vae"], 3);
    let token_file = site.path("token");
    std::fs::write(&token_file, format!("  {TOKEN}\n")).unwrap();
    let key_file = site.path("edge.key");
    enroll(&hub_db, "solar-farm", &key_file);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let synth_edge = env!("CARGO_BIN_EXE_synth-edge");

    // The hub is not up yet: the device keeps retrying.
    let syncer = ChildGuard(
        Command::new(synth_edge)
            .args([
                "sync",
                "--db",
                text(&edge_db),
                "--to",
                &url,
                "--key-file",
                text(&key_file),
                "--every",
                "1s",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    std::thread::sleep(Duration::from_millis(1500));

    let mut hub = Command::new(synth_edge)
        .args([
            "hub",
            "serve",
            "--db",
            text(&hub_db),
            "--addr",
            &format!("127.0.0.1:{port}"),
            "--token-file",
            text(&token_file),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut hub_stdout =
        BufReader::new(hub.stdout.take().unwrap_or_else(|| panic!("piped stdout")));
    let hub = ChildGuard(hub);
    let mut first_line = String::new();
    hub_stdout.read_line(&mut first_line).unwrap();
    assert!(first_line.contains(&format!("listening on {url}")), "{first_line}");

    let hub_runs = || open(&hub_db).runs().map(|runs| runs.len()).unwrap_or(0);
    wait_for("the first periodic sync", Duration::from_secs(15), || hub_runs() == 5);
    let edge = open(&edge_db);
    let late = edge.start_run("bench", None, &serde_json::json!({})).unwrap();
    edge.finish_run(&late, &metrics_for("late", 0)).unwrap();
    wait_for("the next periodic sync", Duration::from_secs(15), || {
        open(&hub_db)
            .runs()
            .map(|runs| runs.iter().any(|run| run.id == late && run.metrics.len() == 3))
            .unwrap_or(false)
    });
    check_union(&hub_db, &[&edge_db]);

    let client = HubClient::new(&url, key(&key_file), Some(token())).unwrap();
    let listing: Listing = serde_json::from_str(&client.list_runs().unwrap()).unwrap();
    assert_eq!(listing.runs.len(), 6);

    let status = syncer.terminate_and_wait(Duration::from_secs(5));
    assert!(status.success(), "periodic sync stops cleanly: {status}");
    let status = hub.terminate_and_wait(Duration::from_secs(5));
    assert!(status.success(), "hub serve stops cleanly: {status}");
}
