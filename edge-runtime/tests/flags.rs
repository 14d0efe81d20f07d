//! Hostile and careless flag values: every one is refused where the command line enters, with a
//! message naming the flag and what it accepts, no panic, a non-zero exit and nothing written;
//! `k` against the data's size is refused by the metrics (as "neighbours") and the logged run is
//! failed with that reason; a run stopped by SIGTERM is failed and leaves no output.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers fail loudly too; clippy.toml's allow-unwrap-in-tests covers #[test] fns only"
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use edge_runtime::logbook::{Logbook, RunStatus};

fn synth_edge(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_synth-edge"))
        .args(args)
        .output()
        .unwrap_or_else(|err| panic!("cannot run synth-edge: {err}"))
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures").join(name)
}

fn text(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Runs `args` in a fresh folder (where `OUT` and `DB` in `args` point), expects a failure whose
/// stderr holds every part of `expected` and no panic, and an untouched folder.
fn check_refused(args: &[&str], expected: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let (out, db) = (dir.path().join("out.csv"), dir.path().join("field.sqlite"));
    let args: Vec<&str> = args
        .iter()
        .map(|&arg| match arg {
            "OUT" => text(&out),
            "DB" => text(&db),
            other => other,
        })
        .collect();
    let output = synth_edge(&args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{args:?} should fail; stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    for part in expected {
        assert!(stderr.contains(part), "{args:?}: stderr `{stderr}` should contain `{part}`");
    }
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().collect();
    assert!(left.is_empty(), "{args:?} wrote {left:?}");
}

#[test]
fn numeric_flags_out_of_range_are_refused_naming_the_flag_and_the_range() {
    let vae = fixture("bundles/wheat-vae");
    let ddpm = fixture("bundles/wheat-ddpm");
    let real = fixture("wheat_splitsplit.csv");
    let (vae, ddpm, real) = (text(&vae), text(&ddpm), text(&real));
    let generate = ["generate", "--model", vae, "--out", "OUT", "--db", "DB"];
    let evaluate = ["evaluate", "--model", vae, "--real", real, "--json", "OUT", "--db", "DB"];
    let bench = ["bench", "--model", ddpm, "--json", "OUT", "--db", "DB"];
    let wine = fixture("wine.csv");
    let wine = text(&wine);
    let files = [
        "evaluate",
        "--real-train",
        wine,
        "--real-holdout",
        wine,
        "--synthetic",
        wine,
        "--label",
        "cultivar",
        "--json",
        "OUT",
        "--db",
        "DB",
    ];
    let huge = "1000000000000";
    let cases: &[(&[&str], &[&str], &str, &str)] = &[
        // (command, extra flags, the flag, the range)
        (&generate, &["--n", "0"], "--n", "1 to 10000000"),
        (&generate, &["--n", huge], "--n", "1 to 10000000"),
        (&generate, &["--n", "1e12"], "--n", "1 to 10000000"),
        (&generate, &["--n=-5"], "--n", "1 to 10000000"),
        (&generate, &["--n", "10", "--threads", huge], "--threads", "0 to 1024"),
        (&generate, &["--n", "10", "--batch", "0"], "--batch", "1 to 65536"),
        (&generate, &["--n", "10", "--batch", huge], "--batch", "1 to 65536"),
        (&generate, &["--n", "10", "--steps", "0"], "--steps", "1 to 10000"),
        (&generate, &["--n", "10", "--steps", "10001"], "--steps", "1 to 10000"),
        (&generate, &["--n", "10", "--guidance=-0.5"], "--guidance", "0 to 20"),
        (&generate, &["--n", "10", "--guidance", "20.5"], "--guidance", "0 to 20"),
        (&generate, &["--n", "10", "--guidance", "NaN"], "--guidance", "0 to 20"),
        (&evaluate, &["--k", "0"], "--k", "1 to 16"),
        (&evaluate, &["--k", "17"], "--k", "1 to 16"),
        (&evaluate, &["--k", huge], "--k", "1 to 16"),
        (&evaluate, &["--bootstrap", huge], "--bootstrap", "1 to 100000"),
        (&evaluate, &["--bootstrap", "0"], "--bootstrap", "1 to 100000"),
        (&evaluate, &["--n", huge], "--n", "1 to 10000000"),
        (&evaluate, &["--threads", huge], "--threads", "0 to 1024"),
        (&bench, &["--repeats", huge], "--repeats", "1 to 10000"),
        (&bench, &["--threads", huge], "--threads", "0 to 1024"),
        (&bench, &["--steps", "10,0"], "--steps", "1 to 10000"),
        (
            &bench,
            &["--steps", "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17"],
            "--steps",
            "at most 16",
        ),
        (&["log", "--db", "DB"], &["--limit", "0"], "--limit", "1 to 100000"),
        (&files, &["--image-shape", "4294967296x4294967296x3"], "--image-shape", "1 to 4096"),
        (&files, &["--image-shape", "8x8x2"], "--image-shape", "HxWxC"),
    ];
    for (command, extra, flag, range) in cases {
        let args: Vec<&str> = command.iter().chain(extra.iter()).copied().collect();
        check_refused(&args, &[flag, range]);
    }
}

/// A site's own files: `n_train`, `n_holdout` and `n_synthetic` rows of the wine table.
fn small_files(dir: &Path, n_train: usize, n_holdout: usize, n_synthetic: usize) -> [PathBuf; 3] {
    let wine = std::fs::read_to_string(fixture("wine.csv")).unwrap();
    let mut lines = wine.lines();
    let header = lines.next().unwrap();
    // Every third row, so that all three cultivars appear in each file.
    let rows: Vec<&str> = lines.collect();
    let spread: Vec<&str> =
        (0..3).flat_map(|start| rows.iter().skip(start).step_by(3)).copied().collect();
    let mut offset = 0;
    [("train.csv", n_train), ("holdout.csv", n_holdout), ("synthetic.csv", n_synthetic)].map(
        |(name, n)| {
            let path = dir.join(name);
            let picked: Vec<&str> =
                (0..n).map(|idx| spread[(offset + idx * 7) % spread.len()]).collect();
            offset += 1;
            std::fs::write(&path, format!("{header}\n{}\n", picked.join("\n"))).unwrap();
            path
        },
    )
}

#[test]
fn k_beyond_the_data_is_refused_by_the_metrics_and_the_run_is_failed_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let [train, holdout, synthetic] = small_files(dir.path(), 12, 6, 30);
    let (db, json) = (dir.path().join("field.sqlite"), dir.path().join("figures.json"));
    let files = [
        "evaluate",
        "--real-train",
        text(&train),
        "--real-holdout",
        text(&holdout),
        "--synthetic",
        text(&synthetic),
        "--label",
        "cultivar",
        "--bootstrap",
        "20",
        "--db",
        text(&db),
        "--json",
        text(&json),
    ];
    let args: Vec<&str> = files.iter().copied().chain(["--k", "12"]).collect();
    let output = synth_edge(&args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let expected = "k (neighbours) is 12 but the real train set has 12 rows";
    assert!(stderr.contains(expected), "{stderr}");
    assert!(!json.exists(), "no figures are written for a refused k");
    let runs = Logbook::open(&db).unwrap().runs().unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].status, RunStatus::Failed);
    assert!(runs[0].message.as_deref().unwrap_or_default().contains(expected), "{:?}", runs[0]);

    // One fewer neighbour fits: the same files are assessed and the run is done.
    let args: Vec<&str> = files.iter().copied().chain(["--k", "11"]).collect();
    let output = synth_edge(&args);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(json.is_file());
    let runs = Logbook::open(&db).unwrap().runs().unwrap();
    assert_eq!(
        runs.iter().map(|run| run.status).collect::<Vec<_>>(),
        [RunStatus::Failed, RunStatus::Done]
    );
}

/// An output that cannot be written (here: its folder is missing; a full disk takes the same
/// path) fails the run with the reason instead of leaving it running or calling it done.
#[test]
fn an_output_that_cannot_be_written_fails_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let [train, holdout, synthetic] = small_files(dir.path(), 30, 10, 30);
    let db = dir.path().join("field.sqlite");
    let json = dir.path().join("missing").join("figures.json");
    let output = synth_edge(&[
        "evaluate",
        "--real-train",
        text(&train),
        "--real-holdout",
        text(&holdout),
        "--synthetic",
        text(&synthetic),
        "--label",
        "cultivar",
        "--bootstrap",
        "20",
        "--db",
        text(&db),
        "--json",
        text(&json),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success() && !stderr.contains("panicked"), "{stderr}");
    let runs = Logbook::open(&db).unwrap().runs().unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].status, RunStatus::Failed, "{:?}", runs[0]);
    let message = runs[0].message.as_deref().unwrap_or_default();
    assert!(message.contains("writing") && message.contains("figures.json"), "{message}");
    assert!(runs[0].metrics.is_empty());
}

/// The running run of the logbook at `db`, once one is there (`None` after `timeout`).
fn wait_for_running_run(db: &Path, timeout: Duration) -> Option<String> {
    let started = Instant::now();
    while started.elapsed() < timeout {
        if db.exists()
            && let Ok(logbook) = Logbook::open(db)
            && let Ok(runs) = logbook.runs()
            && let Some(run) = runs.iter().find(|run| run.status == RunStatus::Running)
        {
            return Some(run.id.clone());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

#[cfg(unix)]
#[test]
fn sigterm_during_a_long_generate_fails_the_run_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (db, out) = (dir.path().join("field.sqlite"), dir.path().join("samples.csv"));
    let ddpm = fixture("bundles/wheat-ddpm");
    // All 200 diffusion steps for 2,000,000 samples: minutes of work, stopped long before.
    let child = Command::new(env!("CARGO_BIN_EXE_synth-edge"))
        .args(["generate", "--model", text(&ddpm), "--n", "2000000", "--threads", "1"])
        .args(["--out", text(&out), "--db", text(&db)])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let run_id = wait_for_running_run(&db, Duration::from_secs(60));
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let run_id = run_id.unwrap_or_else(|| panic!("no running run appeared; stderr: {stderr}"));
    assert_eq!(output.status.code(), Some(143), "exit status 128 + SIGTERM; stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let run = Logbook::open(&db).unwrap().find_run(&run_id).unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Failed, "{run:?}");
    assert!(run.message.as_deref().unwrap_or_default().contains("SIGTERM"), "{run:?}");
    let left: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| !name.starts_with("field.sqlite"))
        .collect();
    assert!(left.is_empty(), "nothing but the logbook is left: {left:?}");
}

#[test]
fn sync_intervals_and_batch_sizes_out_of_range_are_refused_without_a_panic() {
    for every in ["9223372036854775807s", "5000000000000000h", "169h", "0s"] {
        check_refused(
            &[
                "sync",
                "--db",
                "DB",
                "--to",
                "http://127.0.0.1:9",
                "--key-file",
                "OUT",
                "--every",
                every,
            ],
            &["--every", "1 s to 604800 s"],
        );
    }
    for runs in ["0", "100001", "18446744073709551616", "1e9"] {
        check_refused(
            &["sync", "--db", "DB", "--to-dir", "OUT", "--key-file", "OUT", "--batch-runs", runs],
            &["--batch-runs", "1 to 100000"],
        );
    }
}

/// Paths that are not plain files: a device or a FIFO given as an input is refused before it is
/// opened (a FIFO would block, `/dev/zero` never ends), and given as an output it is kept, never
/// replaced by the output file.
#[cfg(unix)]
#[test]
fn devices_and_fifos_are_neither_read_nor_replaced() {
    use std::os::unix::fs::FileTypeExt as _;
    let model = fixture("bundles/wheat-vae");
    let model = text(&model);
    for (flag, value) in [("--trust", "/dev/zero"), ("--gate", "/dev/zero")] {
        let mut args = vec!["generate", "--model", model, "--n", "5", "--out", "OUT", flag, value];
        if flag == "--gate" {
            args.extend(["--real", "/dev/zero"]);
        }
        check_refused(&args, &["/dev/zero", "not a plain file"]);
    }
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("samples.csv");
    let made = Command::new("mkfifo").arg(&fifo).status();
    if !made.is_ok_and(|status| status.success()) {
        eprintln!("skipping the FIFO cases: mkfifo is not available");
        return;
    }
    let output = synth_edge(&["generate", "--model", model, "--n", "5", "--out", text(&fifo)]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success() && stderr.contains("not a plain file"), "{stderr}");
    assert!(std::fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo(), "the FIFO is kept");
    let output = synth_edge(&[
        "evaluate",
        "--real-train",
        text(&fifo),
        "--real-holdout",
        text(&fifo),
        "--synthetic",
        text(&fifo),
        "--label",
        "variety",
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success() && stderr.contains("not a plain file"), "{stderr}");
}
