//! Fuzzing the trust boundary on stable Rust: seeded mutations of a committed corpus
//! (`fixtures/fuzz/<target>/`) fed to the four places hostile bytes come in.
//!
//! - `csv`: a data CSV and its optional `<stem>.schema.toml`, through [`data::read_dataset`];
//! - `manifest`: a bundle manifest through [`Manifest::from_json`]; one it accepts is
//!   re-serialised and re-read, decoded with, and written out by [`output::write_samples`] into
//!   a nested folder that must hold nothing else afterwards: validation must make all that safe;
//! - `batch`: a sync batch through [`Batch::decode`] and, when it decodes, [`sync::import_files`]
//!   into a hub logbook (most mutations recompute the payload checksum and sign the batch again
//!   with the corpus's enrolled device key, so the rows' checks are reached, not only the
//!   checksum's and the signature's);
//! - `hub`: raw HTTP requests to a running `synth-edge hub serve`, which must stay up, answer
//!   no 5xx, and answer a good `GET /api/runs` afterwards, also while a client stalls mid-body.
//!
//! Each target passes when no input panics, aborts or hangs and every refusal is an error that
//! names its input. There is no coverage feedback: input `i` is a pure function of the base seed,
//! `i` and the corpus, so one input replays alone. The hub target sends 8 requests at a time,
//! each on its own connection; when the hub fails it replays them one by one to find the culprit.
//! `synth-edge` is the one beside the test (`target/debug/`), as the last build left it: run
//! `cargo build -p edge-runtime` first when only this test is run. Settings (environment
//! variables):
//!
//! - `FIELDSYNTH_FUZZ_SECONDS`: time per target (default 2; `.ci/run` gives 60);
//! - `FIELDSYNTH_FUZZ_SEED`: the base seed (default [`DEFAULT_SEED`]), printed with the result;
//! - `FIELDSYNTH_SYNTH_EDGE`: the `synth-edge` binary for the hub target, if not the one beside
//!   the test;
//! - `FIELDSYNTH_FUZZ_ITER`: run only this iteration (and save its input under the findings
//!   folder), to reproduce a finding.
//!
//! Findings are saved in `target/tmp/fuzz-findings/<target>/`; each one becomes a file in
//! `fixtures/fuzz/<target>/regressions/`, replayed before the mutations on every run. A process
//! abort cannot be caught: the iteration being tried (the first of the hub's group) is kept in
//! `target/tmp/fuzz-<target>.progress`, so the input that killed the run can be replayed.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers fail loudly too; clippy.toml's allow-unwrap-in-tests covers #[test] fns only"
)]

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use edge_runtime::data::{self, DataOptions};
use edge_runtime::keys::SecretKey;
use edge_runtime::logbook::{Logbook, timestamp};
use edge_runtime::output;
use edge_runtime::sampler::Samples;
use edge_runtime::sync::client::{DEVICE_KEY_HEADER, request_auth_headers};
use edge_runtime::sync::{self, Batch, batch};
use models::transform::MAX_ENCODED_WIDTH;
use models::{ColumnKind, Encoder, ImageShape, Manifest, MissingPolicy, Modality};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The base seed unless `FIELDSYNTH_FUZZ_SEED` gives another.
const DEFAULT_SEED: u64 = 0x5eed_f1e1_d5a7_0012;

/// Distinct findings kept per target before the run stops looking.
const MAX_FINDINGS: usize = 20;

/// Requests the hub target sends at once.
const HUB_GROUP: u64 = 8;

/// How long the hub target waits for the answer to a hostile request; an unanswered one is
/// followed by good requests, which get longer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(1);

// ---------------------------------------------------------------------------------------------
// The four targets.

#[test]
fn fuzz_csv() {
    let seeds = CsvSeeds::load();
    let dir = tempfile::tempdir().unwrap();
    let mut campaign = Campaign::new("csv");
    for regression in regression_files("csv", "csv") {
        let case = CsvCase {
            csv: fs::read(&regression).unwrap(),
            schema: fs::read(data::schema_path(&regression)).ok(),
            options: read_options(&regression.with_extension("options")),
        };
        campaign.replay(&regression, || check_csv(dir.path(), &case));
    }
    for seed in &seeds.cases {
        let outcome = check_csv(dir.path(), seed);
        assert_eq!(outcome, Ok(Verdict::Accepted), "a csv seed is refused: {:?}", seed.options);
    }
    campaign.run(
        |rng| seeds.mutate(rng),
        |case| check_csv(dir.path(), case),
        |case, path| {
            fs::write(path.with_extension("csv"), &case.csv)?;
            if let Some(schema) = &case.schema {
                fs::write(path.with_extension("schema.toml"), schema)?;
            }
            fs::write(path.with_extension("options"), write_options(&case.options))
        },
    );
}

#[test]
fn fuzz_manifest() {
    let seeds = corpus("manifest", "json");
    let dir = tempfile::tempdir().unwrap();
    let mut campaign = Campaign::new("manifest");
    for regression in regression_files("manifest", "json") {
        let bytes = fs::read(&regression).unwrap();
        campaign.replay(&regression, || check_manifest(dir.path(), &bytes));
    }
    for seed in &seeds {
        let outcome = check_manifest(dir.path(), seed);
        assert_eq!(outcome, Ok(Verdict::Accepted), "a manifest seed is refused");
    }
    campaign.run(
        |rng| mutate_json_document(rng, &seeds, MANIFEST_TOKENS),
        |bytes| check_manifest(dir.path(), bytes),
        |bytes, path| fs::write(path.with_extension("json"), bytes),
    );
}

#[test]
fn fuzz_batch() {
    let seeds = corpus("batch", "json");
    let dir = tempfile::tempdir().unwrap();
    let signer = Signer::load(dir.path());
    let hub = Logbook::open(&dir.path().join("hub.db")).unwrap();
    signer.enroll(&hub);
    let mut campaign = Campaign::new("batch");
    for regression in regression_files("batch", "json") {
        let bytes = fs::read(&regression).unwrap();
        campaign.replay(&regression, || check_batch(&hub, dir.path(), &bytes));
    }
    for seed in &seeds {
        let outcome = check_batch(&hub, dir.path(), seed);
        assert_eq!(outcome, Ok(Verdict::Accepted), "a batch seed is refused");
    }
    campaign.run(
        |rng| mutate_batch(rng, &seeds, &signer),
        |bytes| check_batch(&hub, dir.path(), bytes),
        |bytes, path| fs::write(path.with_extension("json"), bytes),
    );
    let problems = hub.integrity_check().unwrap();
    assert_eq!(problems, ["ok"], "the hub logbook is damaged after the batches");
    // What was stored reads back: the listing the hub serves is built from these.
    let runs = hub.runs().unwrap();
    assert!(!runs.is_empty(), "the hub holds no runs, though the seeds were imported");
    hub.devices().unwrap();
}

#[test]
fn fuzz_hub() {
    let Some(binary) = synth_edge() else {
        eprintln!(
            "fuzz hub: SKIPPED: no synth-edge binary beside the test (build it with \
             `cargo build -p edge-runtime`, or name it in FIELDSYNTH_SYNTH_EDGE)"
        );
        return;
    };
    let batches = corpus("batch", "json");
    let templates = corpus("hub", "http");
    let dir = tempfile::tempdir().unwrap();
    let signer = Signer::load(dir.path());
    signer.enroll(&Logbook::open(&dir.path().join("hub.db")).unwrap());
    let mut hub = HubProcess::start(&binary, dir.path());
    let mut campaign = Campaign::new("hub");
    for regression in regression_files("hub", "http") {
        let request = fs::read(&regression).unwrap();
        campaign.replay(&regression, || hub.check(&request));
    }
    for batch in &batches {
        let request = http_request("POST", "/api/batches", &hub.token, Some(&signer), batch);
        let status = hub.send(&request, Duration::from_secs(10)).status;
        assert_eq!(status, Some(200), "the hub refuses a batch seed");
    }
    let stalled = "the hub does not answer GET /api/runs while another client stalls mid-body";
    assert!(hub.answers_listing_beside_a_stalled_client(&signer), "{stalled}");
    let token = hub.token.clone();
    campaign.run_groups(
        HUB_GROUP,
        |rng| mutate_request(rng, &templates, &batches, &signer, &token),
        |requests| hub.check_group(requests),
        |request, path| fs::write(path.with_extension("http"), request),
    );
    eprintln!("fuzz hub: answers by status (None: no answer): {:?}", hub.statuses);
    assert!(hub.answers_listing(), "the hub does not answer GET /api/runs after the run");
    assert!(hub.answers_listing_beside_a_stalled_client(&signer), "{stalled}");
    assert_eq!(hub.child.try_wait().unwrap(), None, "the hub exited");
}

/// The harness itself: a panic is caught with its message and place, and input `i` is the same
/// on every run.
#[test]
fn harness_catches_panics_and_replays_inputs() {
    install_panic_capture();
    let caught = guarded(|| -> u32 { panic!("boom {}", 7) }).unwrap_err();
    assert!(caught.starts_with("panic: boom 7 at "), "{caught}");
    assert!(caught.contains("fuzz.rs:"), "{caught}");
    assert_eq!(guarded(|| 5), Ok(5));

    let seeds = corpus("manifest", "json");
    let input = |iteration| {
        mutate_json_document(
            &mut Rng::for_iteration(DEFAULT_SEED, iteration),
            &seeds,
            MANIFEST_TOKENS,
        )
    };
    assert_eq!(input(12), input(12));
    assert_ne!(input(12), input(13));
    let options = DataOptions {
        label: Some("gen".to_owned()),
        missing: Some(MissingPolicy::Impute),
        image_shape: Some("2x2x3".parse().unwrap()),
        kinds: BTreeMap::from([("row".to_owned(), ColumnKind::Categorical)]),
        expect_header: Some(vec!["row".to_owned(), "gen".to_owned()]),
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("case.options");
    fs::write(&path, write_options(&options)).unwrap();
    assert_eq!(read_options(&path), options);
}

// ---------------------------------------------------------------------------------------------
// What each target checks.

/// What a target did with one input; an `Err` is a finding.
#[derive(Debug, Clone, PartialEq)]
enum Verdict {
    Accepted,
    Refused,
}

type Outcome = Result<Verdict, String>;

/// A refusal must name the input it refuses (its file, or the origin it was given).
fn refusal(error: &dyn std::error::Error, names: &[&str]) -> Outcome {
    let text = edge_runtime::error::chain(error);
    if names.iter().any(|name| text.contains(name)) {
        Ok(Verdict::Refused)
    } else {
        Err(format!("the error does not name its input ({}): {text}", names.join(" or ")))
    }
}

#[derive(Debug, Clone)]
struct CsvCase {
    csv: Vec<u8>,
    schema: Option<Vec<u8>>,
    options: DataOptions,
}

/// The options of a CSV case as `name = value` lines (`label`, `missing`, `image_shape`,
/// `categorical`, `header`), beside a saved CSV.
fn write_options(options: &DataOptions) -> String {
    let mut lines = String::new();
    if let Some(label) = &options.label {
        lines.push_str(&format!("label = {label}\n"));
    }
    if options.missing == Some(MissingPolicy::Impute) {
        lines.push_str("missing = impute\n");
    }
    if let Some(shape) = options.image_shape {
        let ImageShape { height, width, channels } = shape;
        lines.push_str(&format!("image_shape = {height}x{width}x{channels}\n"));
    }
    for name in options.kinds.keys() {
        lines.push_str(&format!("categorical = {name}\n"));
    }
    if let Some(header) = &options.expect_header {
        lines.push_str(&format!("header = {}\n", header.join(",")));
    }
    lines
}

/// Reads what [`write_options`] wrote; no file is the default options.
fn read_options(path: &Path) -> DataOptions {
    let mut options = DataOptions::default();
    for line in fs::read_to_string(path).unwrap_or_default().lines() {
        let (name, value) = line.split_once(" = ").unwrap();
        match name {
            "label" => options.label = Some(value.to_owned()),
            "missing" => options.missing = Some(value.parse().unwrap()),
            "image_shape" => options.image_shape = Some(value.parse().unwrap()),
            "categorical" => drop(options.kinds.insert(value.to_owned(), ColumnKind::Categorical)),
            "header" => options.expect_header = Some(value.split(',').map(str::to_owned).collect()),
            other => panic!("{}: unknown option `{other}`", path.display()),
        }
    }
    options
}

fn check_csv(dir: &Path, case: &CsvCase) -> Outcome {
    let csv_path = dir.join("fuzz-input.csv");
    let schema_path = data::schema_path(&csv_path);
    fs::write(&csv_path, &case.csv).map_err(|err| err.to_string())?;
    match &case.schema {
        Some(schema) => fs::write(&schema_path, schema).map_err(|err| err.to_string())?,
        None => match fs::remove_file(&schema_path) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => return Err(err.to_string()),
            _ => {}
        },
    }
    match guarded(|| data::read_dataset(&csv_path, &case.options))? {
        Ok(_) => Ok(Verdict::Accepted),
        Err(err) => refusal(&err, &["fuzz-input.csv", "fuzz-input.schema.toml"]),
    }
}

fn check_manifest(dir: &Path, bytes: &[u8]) -> Outcome {
    let source = "fuzz-manifest.json";
    let Ok(text) = std::str::from_utf8(bytes) else {
        // A manifest is read with `read_to_string`, which refuses invalid UTF-8 itself.
        return Ok(Verdict::Refused);
    };
    let manifest = match guarded(|| Manifest::from_json(text, source))? {
        Ok(manifest) => manifest,
        Err(err) => return refusal(&err, &[source]),
    };
    guarded(|| use_manifest(&manifest))??;
    write_from_manifest(&manifest, dir)
}

/// What the edge does with an accepted manifest, short of running a graph: re-serialise it and
/// read it back (it must validate again, unchanged), decode rows of extreme values, and write
/// them out.
fn use_manifest(manifest: &Manifest) -> Outcome {
    let again = Manifest::from_json(&manifest.to_json(), "re-serialised")
        .map_err(|err| format!("an accepted manifest fails after a round trip: {err}"))?;
    if &again != manifest {
        return Err("an accepted manifest changes in a round trip".to_owned());
    }
    let width = manifest.transform.width();
    if width == 0 || width > MAX_ENCODED_WIDTH {
        return Err(format!("an accepted manifest has an encoded width of {width}"));
    }
    let _ = manifest.transform.bounds();
    let _ = manifest.transform.blocks();
    for extreme in [0.0f32, 1.0, -1.0, 1e30, -1e30, f32::MAX, f32::MIN, f32::NAN] {
        let row = vec![extreme; width];
        match &manifest.transform {
            Encoder::Tabular(encoder) => {
                for decoded in encoder.decode(&row) {
                    for (column_idx, value) in decoded.into_iter().enumerate() {
                        let _ = encoder.format_value(column_idx, value);
                    }
                }
            }
            Encoder::Image(encoder) => {
                let _ = encoder.decode(&row);
                let _ = encoder.decode_to_u8(&row);
            }
        }
    }
    Ok(Verdict::Accepted)
}

/// Writes samples of each class (up to 16) as `generate` does, into `dir/a/b/out.csv` and, for
/// images, the folder `dir/a/b/out`: whatever the class and column names, nothing may appear
/// outside the output, and a refusal is an error, not a panic.
fn write_from_manifest(manifest: &Manifest, dir: &Path) -> Outcome {
    let width = manifest.transform.width();
    if width > 4096 {
        // Large images cost time in PNG encoding, not coverage.
        return Ok(Verdict::Accepted);
    }
    let n_samples = manifest.n_classes().min(16);
    let extremes = [0.0f32, 1.0, -1.0, 1e30, -1e30];
    let samples = Samples {
        x: (0..n_samples * width).map(|idx| extremes[idx % extremes.len()]).collect(),
        labels: (0..n_samples as u32).collect(),
        width,
        elapsed: Duration::ZERO,
        steps: 1,
        batch_times: vec![(n_samples, Duration::ZERO)],
    };
    let nest = dir.join("a").join("b");
    fs::create_dir_all(&nest).map_err(|err| err.to_string())?;
    let mut outs = vec![nest.join("out.csv")];
    if manifest.modality == Modality::Image {
        outs.push(nest.join("out"));
    }
    for out in &outs {
        if let Err(err) = guarded(|| output::write_samples(manifest, &samples, out))?
            && err.to_string().is_empty()
        {
            return Err("writing samples failed with an empty message".to_owned());
        }
    }
    let mut stray = Vec::new();
    let mut folders = vec![dir.to_owned()];
    while let Some(folder) = folders.pop() {
        for entry in fs::read_dir(&folder).map_err(|err| err.to_string())? {
            let path = entry.map_err(|err| err.to_string())?.path();
            if outs.contains(&path) {
                continue;
            }
            if path == dir.join("a") || path == nest {
                folders.push(path);
            } else {
                stray.push(path);
            }
        }
    }
    for out in &outs {
        let removed = if out.is_dir() { fs::remove_dir_all(out) } else { fs::remove_file(out) };
        match removed {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => return Err(err.to_string()),
            _ => {}
        }
    }
    if !stray.is_empty() {
        for path in &stray {
            let _ = fs::remove_dir_all(path).or_else(|_| fs::remove_file(path));
        }
        return Err(format!("writing samples left {stray:?} outside the output"));
    }
    Ok(Verdict::Accepted)
}

fn check_batch(hub: &Logbook, dir: &Path, bytes: &[u8]) -> Outcome {
    let origin = "fuzz-batch";
    if let Err(err) = guarded(|| Batch::decode(bytes, origin, |_| Ok(())))? {
        return refusal(&err, &[origin]);
    }
    // A batch that decodes is imported through the hub's entry point for batch files.
    let path = dir.join("fuzz-batch.json");
    fs::write(&path, bytes).map_err(|err| err.to_string())?;
    match guarded(|| sync::import_files(hub, std::slice::from_ref(&path)))? {
        Ok(_) => Ok(Verdict::Accepted),
        // The rows were checked and still broke a query or a constraint: at the hub, a 500.
        Err(err @ edge_runtime::Error::LogbookSql { .. }) => Err(format!(
            "a batch that decodes fails in SQLite: {}",
            edge_runtime::error::chain(&err)
        )),
        Err(err) => refusal(&err, &[origin, "fuzz-batch.json"]),
    }
}

// ---------------------------------------------------------------------------------------------
// The campaign: replay, mutate, catch, record.

struct Campaign {
    target: &'static str,
    base_seed: u64,
    budget: Duration,
    only_iteration: Option<u64>,
    findings_dir: PathBuf,
    progress: fs::File,
    findings: Vec<String>,
    seen: Vec<String>,
    n_inputs: u64,
    n_accepted: u64,
}

impl Campaign {
    fn new(target: &'static str) -> Campaign {
        install_panic_capture();
        let base_seed = env_number("FIELDSYNTH_FUZZ_SEED").unwrap_or(DEFAULT_SEED);
        let seconds: f64 =
            std::env::var("FIELDSYNTH_FUZZ_SECONDS").ok().map_or(2.0, |text| text.parse().unwrap());
        let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
        let findings_dir = tmp.join("fuzz-findings").join(target);
        fs::create_dir_all(&findings_dir).unwrap();
        let progress = fs::File::create(tmp.join(format!("fuzz-{target}.progress"))).unwrap();
        Campaign {
            target,
            base_seed,
            budget: Duration::from_secs_f64(seconds),
            only_iteration: env_number("FIELDSYNTH_FUZZ_ITER"),
            findings_dir,
            progress,
            findings: Vec::new(),
            seen: Vec::new(),
            n_inputs: 0,
            n_accepted: 0,
        }
    }

    /// A committed regression input: it must not panic, whatever it is refused for.
    fn replay(&mut self, path: &Path, check: impl FnOnce() -> Outcome) {
        if let Err(message) = check() {
            self.findings.push(format!("regression {}: {message}", path.display()));
        }
    }

    /// Tries input after input until the time budget is spent.
    fn run<I>(
        self,
        generate: impl FnMut(&mut Rng) -> I,
        mut check: impl FnMut(&I) -> Outcome,
        save: impl Fn(&I, &Path) -> std::io::Result<()>,
    ) {
        self.run_groups(1, generate, |inputs| inputs.iter().map(&mut check).collect(), save);
    }

    /// Tries `group` inputs at a time (iterations `k * group ..`), for a target that takes them
    /// together; `check` gives one outcome per input.
    fn run_groups<I>(
        mut self,
        group: u64,
        mut generate: impl FnMut(&mut Rng) -> I,
        mut check: impl FnMut(&[I]) -> Vec<Outcome>,
        save: impl Fn(&I, &Path) -> std::io::Result<()>,
    ) {
        let started = Instant::now();
        for first in (0..u64::MAX).step_by(group as usize) {
            let iterations = match self.only_iteration {
                Some(_) if first > 0 => break,
                Some(iteration) => iteration..iteration + 1,
                None => first..first + group,
            };
            if self.only_iteration.is_none() && started.elapsed() >= self.budget {
                break;
            }
            if self.findings.len() >= MAX_FINDINGS {
                break;
            }
            let record = format!("{} {}\n", self.base_seed, iterations.start);
            self.progress.write_at(format!("{record:<48}").as_bytes(), 0).unwrap();
            let inputs: Vec<(u64, I)> = iterations
                .map(|iteration| {
                    (iteration, generate(&mut Rng::for_iteration(self.base_seed, iteration)))
                })
                .collect();
            let (numbers, inputs): (Vec<u64>, Vec<I>) = inputs.into_iter().unzip();
            let outcomes = check(&inputs);
            for ((iteration, input), outcome) in numbers.into_iter().zip(&inputs).zip(outcomes) {
                self.record(iteration, input, outcome, &save);
            }
        }
        self.finish(started);
    }

    fn record<I>(
        &mut self,
        iteration: u64,
        input: &I,
        outcome: Outcome,
        save: &impl Fn(&I, &Path) -> std::io::Result<()>,
    ) {
        self.n_inputs += 1;
        if self.only_iteration.is_some() {
            save(input, &self.findings_dir.join(format!("iteration-{iteration}"))).unwrap();
            eprintln!("fuzz {}: iteration {iteration}: {outcome:?}", self.target);
        }
        match outcome {
            Ok(Verdict::Accepted) => self.n_accepted += 1,
            Ok(Verdict::Refused) => {}
            Err(message) => {
                let key = finding_key(&message);
                if !self.seen.contains(&key) {
                    self.seen.push(key);
                    let path = self.findings_dir.join(format!("iteration-{iteration}"));
                    save(input, &path).unwrap();
                    self.findings.push(format!(
                        "iteration {iteration} (input saved as {}.*): {message}",
                        path.display()
                    ));
                }
            }
        }
    }

    fn finish(self, started: Instant) {
        let (n_inputs, n_accepted) = (self.n_inputs, self.n_accepted);
        let seconds = started.elapsed().as_secs_f64();
        eprintln!(
            "fuzz {}: seed {}: {n_inputs} inputs in {seconds:.1} s ({:.0}/s), {n_accepted} \
             accepted, {} finding(s)",
            self.target,
            self.base_seed,
            n_inputs as f64 / seconds.max(1e-9),
            self.findings.len()
        );
        assert!(
            self.findings.is_empty(),
            "fuzz {}: seed {}: {} finding(s); replay one with FIELDSYNTH_FUZZ_SEED={} \
             FIELDSYNTH_FUZZ_ITER=N:\n{}",
            self.target,
            self.base_seed,
            self.findings.len(),
            self.base_seed,
            self.findings.join("\n")
        );
    }
}

/// Two findings are the same when they panic at the same place, or fail the same way.
fn finding_key(message: &str) -> String {
    match message.rsplit_once(" at ") {
        Some((_, location)) if message.starts_with("panic") => location.to_owned(),
        _ => message.chars().take(60).collect(),
    }
}

fn env_number(name: &str) -> Option<u64> {
    let text = std::env::var(name).ok()?;
    let parsed = match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => text.parse(),
    };
    Some(parsed.unwrap_or_else(|err| panic!("{name}={text}: {err}; expected an integer")))
}

thread_local! {
    static CAPTURING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    static CAPTURED: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// A panic hook that, on a thread inside [`guarded`], records the message and place quietly;
/// any other panic (a failing assertion of the test itself) goes to the usual hook.
fn install_panic_capture() {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        let usual = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if CAPTURING.with(std::cell::Cell::get) {
                let message = info
                    .payload()
                    .downcast_ref::<&str>()
                    .map(|text| (*text).to_owned())
                    .or_else(|| info.payload().downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                let place = info.location().map(ToString::to_string).unwrap_or_default();
                CAPTURED.with(|captured| {
                    *captured.borrow_mut() = Some(format!("panic: {message} at {place}"));
                });
            } else {
                usual(info);
            }
        }));
    });
}

/// Runs `call`, turning a panic into an `Err` with its message and place.
fn guarded<T>(call: impl FnOnce() -> T) -> Result<T, String> {
    CAPTURING.with(|capturing| capturing.set(true));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(call));
    CAPTURING.with(|capturing| capturing.set(false));
    result.map_err(|_| {
        CAPTURED.with(|captured| captured.borrow_mut().take()).unwrap_or_else(|| "panic".into())
    })
}

// ---------------------------------------------------------------------------------------------
// Corpus.

fn fuzz_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/fuzz").join(target)
}

fn files_ending(dir: &Path, ending: &str) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else { return Vec::new() };
    let mut files: Vec<PathBuf> = entries
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file() && path.to_string_lossy().ends_with(ending))
        .collect();
    files.sort();
    files
}

/// The seed inputs of `target` (files ending `.ext`, not in `regressions/`).
fn corpus(target: &str, ext: &str) -> Vec<Vec<u8>> {
    let files = files_ending(&fuzz_dir(target), &format!(".{ext}"));
    assert!(!files.is_empty(), "no .{ext} seeds in {}", fuzz_dir(target).display());
    files.iter().map(|path| fs::read(path).unwrap()).collect()
}

fn regression_files(target: &str, ext: &str) -> Vec<PathBuf> {
    let dir = fuzz_dir(target).join("regressions");
    files_ending(&dir, &format!(".{ext}"))
        .into_iter()
        .filter(|path| !path.to_string_lossy().ends_with(".schema.toml"))
        .collect()
}

/// The CSV seeds: each `<stem>.csv` with its label, alone and with its `<stem>.schema.toml`.
struct CsvSeeds {
    cases: Vec<CsvCase>,
    schemas: Vec<Vec<u8>>,
}

impl CsvSeeds {
    fn load() -> CsvSeeds {
        // The label of each seed CSV: its schema's, or else its last column.
        let mut cases = Vec::new();
        let mut schemas = Vec::new();
        for path in files_ending(&fuzz_dir("csv"), ".csv") {
            let csv = fs::read(&path).unwrap();
            let schema = fs::read(data::schema_path(&path)).ok();
            let header = csv.split(|&byte| byte == b'\n').next().unwrap_or_default();
            let header = String::from_utf8_lossy(header);
            let label = match &schema {
                Some(schema) => models::table::SchemaFile::parse(
                    std::str::from_utf8(schema).unwrap(),
                    path.as_path(),
                )
                .unwrap()
                .label
                .unwrap(),
                None => header.trim().rsplit(',').next().unwrap().to_owned(),
            };
            let options = DataOptions { label: Some(label), ..DataOptions::default() };
            cases.push(CsvCase { csv: csv.clone(), schema: None, options: options.clone() });
            if let Some(schema) = schema {
                schemas.push(schema.clone());
                cases.push(CsvCase { csv, schema: Some(schema), options: DataOptions::default() });
            }
        }
        CsvSeeds { cases, schemas }
    }

    fn mutate(&self, rng: &mut Rng) -> CsvCase {
        let mut case = rng.pick(&self.cases).clone();
        let pool: Vec<Vec<u8>> = self.cases.iter().map(|seed| seed.csv.clone()).collect();
        match rng.below(8) {
            // The schema alone.
            0 | 1 => {
                let schema = case.schema.take().unwrap_or_else(|| rng.pick(&self.schemas).clone());
                case.schema = Some(mutate_bytes(rng, &schema, &self.schemas, SCHEMA_TOKENS));
            }
            // The CSV and maybe the schema.
            _ => {
                case.csv = mutate_bytes(rng, &case.csv, &pool, CSV_TOKENS);
                if let Some(schema) = &case.schema
                    && rng.below(4) == 0
                {
                    case.schema = Some(mutate_bytes(rng, schema, &self.schemas, SCHEMA_TOKENS));
                }
            }
        }
        // The options a command could pass.
        if rng.below(8) == 0 {
            case.options.missing = Some(MissingPolicy::Impute);
        }
        if rng.below(16) == 0 {
            let label = *rng.pick(CSV_TOKENS);
            case.options.label = Some(String::from_utf8_lossy(label).into_owned());
        }
        if rng.below(16) == 0 {
            let shape = rng.pick(&["8x8", "1x1", "2x2x3", "4096x4096"]);
            case.options.image_shape = Some(shape.parse::<ImageShape>().unwrap());
        }
        if rng.below(16) == 0 {
            let header = case.csv.split(|&byte| byte == b'\n').next().unwrap_or_default();
            let names: Vec<String> =
                String::from_utf8_lossy(header).trim().split(',').map(str::to_owned).collect();
            if let Some(first) = names.first() {
                case.options.kinds = BTreeMap::from([(first.clone(), ColumnKind::Categorical)]);
            }
            if rng.below(2) == 0 {
                case.options.expect_header = Some(names);
            }
        }
        case
    }
}

// ---------------------------------------------------------------------------------------------
// Mutations.

/// splitmix64: small, fast, and enough for choosing mutations.
struct Rng(u64);

impl Rng {
    fn for_iteration(base_seed: u64, iteration: u64) -> Rng {
        let mut rng = Rng(base_seed ^ iteration.wrapping_mul(0xa076_1d64_78bd_642f));
        rng.next();
        rng
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n` > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// Small counts are likelier: 1 half the time, then 2, ...
    fn small_count(&mut self, max: usize) -> usize {
        let mut count = 1;
        while count < max && self.below(2) == 0 {
            count += 1;
        }
        count
    }
}

/// Values that break parsers: extremes, non-numbers, path tricks, separators, odd text.
const INTERESTING: &[&[u8]] = &[
    b"1e308",
    b"-1e308",
    b"1e309",
    b"1e-320",
    b"NaN",
    b"nan",
    b"inf",
    b"-inf",
    b"-0",
    b"0",
    b"-1",
    b"4294967296",
    b"18446744073709551615",
    b"18446744073709551616",
    b"-9223372036854775809",
    b"99999999999999999999999999999",
    b"1000000000000",
    b"0.000000000000000000001",
    b"../",
    b"../../x",
    b"/etc/passwd",
    b"C:\\x",
    b"\"",
    b"\"\"",
    b",",
    b"\n",
    b"\r\n",
    b"\r",
    b"\0",
    b"\xef\xbb\xbf",
    b"\xff\xfe",
    b"\xc3",
    "é".as_bytes(),
    "\u{202e}".as_bytes(),
    b"{}",
    b"[]",
    b"null",
    b"true",
    b"",
    b" ",
    b"\t",
];

const CSV_TOKENS: &[&[u8]] = &[
    b"NA",
    b"N/A",
    b"?",
    b"",
    b"gen",
    b"site",
    b"digit",
    b"diagnosis",
    b"Marquis",
    b"px_0_0",
    b"label",
    b",,",
    b"\"a,b\"",
    b"\"a\nb\"",
    b"1.5",
    b"-3",
    b"#",
];

const SCHEMA_TOKENS: &[&[u8]] = &[
    b"label = \"gen\"\n",
    b"label = \"\"\n",
    b"missing = \"impute\"\n",
    b"missing = \"refuse\"\n",
    b"missing = \"drop\"\n",
    b"image_shape = \"8x8\"\n",
    b"image_shape = \"0x0\"\n",
    b"image_shape = \"4096x4096x3\"\n",
    b"image_shape = \"99999999999x99999999999\"\n",
    b"image_shape = \"8x8x0\"\n",
    b"pixel_max = 1e308\n",
    b"pixel_max = nan\n",
    b"pixel_max = -1\n",
    b"pixel_max = 0\n",
    b"pixel_max = inf\n",
    b"[columns]\n",
    b"row = \"numeric\"\n",
    b"gen = \"categorical\"\n",
    b"nope = \"numeric\"\n",
    b"x = 1\n",
    b"\"\" = \"numeric\"\n",
    b"[[columns]]\n",
    b"unknown = 1\n",
];

const MANIFEST_TOKENS: &[&[u8]] = &[
    b"\"format_version\"",
    b"\"categorical\"",
    b"\"numeric\"",
    b"\"label\"",
    b"\"ddpm\"",
    b"\"vae\"",
    b"\"gan\"",
    b"\"image\"",
    b"\"tabular\"",
    b"\"decimals\"",
    b"\"categories\"",
    b"\"latent_dim\"",
    b"\"steps\"",
    b"\"betas\"",
];

const BATCH_TOKENS: &[&[u8]] = &[
    b"\"running\"",
    b"\"done\"",
    b"\"failed\"",
    b"\"interrupted\"",
    b"\"quality\"",
    b"\"privacy\"",
    b"\"run_id\"",
    b"\"device_id\"",
    b"\"2026-12-02T05:57:00.040Z\"",
    b"\"2026-13-45T99:99:99Z\"",
    b"\"9999-12-31T23:59:59.999Z\"",
    b"\"\"",
];

/// One to four byte-level mutations of `seed`: flips, inserts, deletes, duplicated ranges,
/// splices from `pool`, and `tokens` or [`INTERESTING`] values put over a field or in between.
fn mutate_bytes(rng: &mut Rng, seed: &[u8], pool: &[Vec<u8>], tokens: &[&[u8]]) -> Vec<u8> {
    let mut bytes = seed.to_vec();
    for _ in 0..rng.small_count(4) {
        let len = bytes.len();
        let at = if len == 0 { 0 } else { rng.below(len + 1) };
        let token = *if rng.below(2) == 0 { rng.pick(tokens) } else { rng.pick(INTERESTING) };
        match rng.below(11) {
            0 if len > 0 => {
                let idx = rng.below(len);
                bytes[idx] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let idx = rng.below(len);
                bytes[idx] = rng.next() as u8;
            }
            2 => {
                let n = rng.small_count(8);
                let insert: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                bytes.splice(at..at, insert);
            }
            3 if len > 0 => {
                let end = (at + rng.small_count(len.min(64))).min(len);
                bytes.drain(at.min(end)..end);
            }
            4 if len > 0 => {
                let start = rng.below(len);
                let end = (start + rng.small_count(len - start)).min(len);
                let copy = bytes[start..end].to_vec();
                bytes.splice(at..at, copy);
            }
            5 => {
                let other = rng.pick(pool);
                if !other.is_empty() {
                    let from = rng.below(other.len());
                    let to = (from + rng.below(other.len() - from + 1)).min(other.len());
                    bytes.splice(at.., other[from..to].iter().copied());
                }
            }
            6 => {
                bytes.splice(at..at, token.iter().copied());
            }
            7 | 8 => {
                let (start, end) = field_around(&bytes, at);
                bytes.splice(start..end, token.iter().copied());
            }
            9 => {
                // Lines: drop, duplicate or swap one.
                let lines = line_starts(&bytes);
                let line = rng.below(lines.len());
                let start = lines[line];
                let end = lines.get(line + 1).copied().unwrap_or(bytes.len());
                let copy = bytes[start..end].to_vec();
                match rng.below(3) {
                    0 => drop(bytes.drain(start..end)),
                    1 => drop(bytes.splice(start..start, copy)),
                    _ => {
                        let other = rng.below(lines.len());
                        bytes.drain(start..end);
                        let target = lines.get(other).copied().unwrap_or(0).min(bytes.len());
                        bytes.splice(target..target, copy);
                    }
                }
            }
            _ => bytes.truncate(at),
        }
    }
    bytes
}

/// The maximal run around `at` holding no separator of CSV, TOML, JSON or HTTP.
fn field_around(bytes: &[u8], at: usize) -> (usize, usize) {
    let separator = |byte: &u8| b",\n\r\"=:{}[] ".contains(byte);
    let at = at.min(bytes.len());
    let start = bytes[..at].iter().rposition(separator).map_or(0, |idx| idx + 1);
    let end = bytes[at..].iter().position(separator).map_or(bytes.len(), |idx| at + idx);
    (start, end)
}

fn line_starts(bytes: &[u8]) -> Vec<usize> {
    let mut starts = vec![0];
    starts.extend(
        bytes.iter().enumerate().filter(|(_, byte)| **byte == b'\n').map(|(idx, _)| idx + 1),
    );
    starts
}

/// A JSON document (manifest) mutated: mostly in its values (so validation is reached, not only
/// the JSON parser), sometimes byte-wise.
fn mutate_json_document(rng: &mut Rng, seeds: &[Vec<u8>], tokens: &[&[u8]]) -> Vec<u8> {
    let seed = rng.pick(seeds);
    if rng.below(4) == 0 {
        return mutate_bytes(rng, seed, seeds, tokens);
    }
    let mut value: Value = serde_json::from_slice(seed).unwrap();
    for _ in 0..rng.small_count(3) {
        mutate_json_value(rng, &mut value);
    }
    let text = serde_json::to_vec_pretty(&value).unwrap();
    if rng.below(8) == 0 { mutate_bytes(rng, &text, seeds, tokens) } else { text }
}

/// Changes one node of `value`, chosen uniformly among all its nodes.
fn mutate_json_value(rng: &mut Rng, value: &mut Value) {
    let n_nodes = count_nodes(value);
    let target = rng.below(n_nodes);
    let mut counter = 0;
    let node = nth_node(value, target, &mut counter).unwrap();
    *node = match std::mem::take(node) {
        Value::Number(_) => match rng.below(13) {
            0 => Value::from(1e308),
            1 => Value::from(-1e308),
            2 => Value::from(u64::MAX),
            3 => Value::from(i64::MIN),
            4 => Value::from(0),
            5 => Value::from(-1),
            6 => Value::from(4_294_967_296u64),
            7 => Value::from(1e-308),
            8 => Value::from(1_000_000_000_000u64),
            9 => Value::from(9_007_199_254_740_993u64),
            10 => Value::from(0.5),
            11 => Value::String("1".to_owned()),
            _ => Value::Null,
        },
        Value::String(text) => match rng.below(10) {
            0 => Value::String("../..".to_owned()),
            1 => Value::String(String::new()),
            2 => Value::String("/etc/passwd".to_owned()),
            3 => Value::String("a/b\\c\0d".to_owned()),
            4 => Value::String("x".repeat(100_000)),
            5 => Value::String(format!("{text}{text}")),
            6 => Value::String(text.to_uppercase()),
            7 => Value::from(1),
            8 => Value::String("Marquis".to_owned()),
            _ => Value::String(text.chars().rev().collect()),
        },
        Value::Array(mut items) => {
            match rng.below(6) {
                0 => items.clear(),
                1 if !items.is_empty() => {
                    let item = rng.pick(&items).clone();
                    items.push(item);
                }
                2 => items.truncate(items.len() / 2),
                3 => items.reverse(),
                4 if !items.is_empty() => {
                    let item = items[0].clone();
                    items.extend(std::iter::repeat_n(item, 1000));
                }
                _ => items.push(Value::Null),
            }
            Value::Array(items)
        }
        Value::Object(mut fields) => {
            let keys: Vec<String> = fields.keys().cloned().collect();
            match rng.below(4) {
                0 if !keys.is_empty() => drop(fields.remove(rng.pick(&keys))),
                1 if !keys.is_empty() => {
                    fields.insert(rng.pick(&keys).clone(), Value::Null);
                }
                2 => drop(fields.insert("unexpected".to_owned(), Value::from(1))),
                _ => fields.clear(),
            }
            Value::Object(fields)
        }
        Value::Bool(flag) => Value::Bool(!flag),
        Value::Null => Value::from(0),
    };
}

fn count_nodes(value: &Value) -> usize {
    1 + match value {
        Value::Array(items) => items.iter().map(count_nodes).sum(),
        Value::Object(fields) => fields.values().map(count_nodes).sum(),
        _ => 0,
    }
}

fn nth_node<'a>(value: &'a mut Value, target: usize, counter: &mut usize) -> Option<&'a mut Value> {
    if *counter == target {
        return Some(value);
    }
    *counter += 1;
    match value {
        Value::Array(items) => {
            items.iter_mut().find_map(|item| nth_node_checked(item, target, counter))
        }
        Value::Object(fields) => {
            fields.values_mut().find_map(|item| nth_node_checked(item, target, counter))
        }
        _ => None,
    }
}

/// [`nth_node`] for a child: skips the whole subtree when the target lies past it.
fn nth_node_checked<'a>(
    value: &'a mut Value,
    target: usize,
    counter: &mut usize,
) -> Option<&'a mut Value> {
    let size = count_nodes(value);
    if target >= *counter + size {
        *counter += size;
        return None;
    }
    nth_node(value, target, counter)
}

/// The fuzzer's device key (`fixtures/fuzz/batch/fuzz-device.key`, a test key and nothing
/// else), enrolled at each hub the fuzzer feeds, so that mutated batches signed again with it
/// reach the checks behind the signature.
struct Signer {
    key: SecretKey,
}

impl Signer {
    fn load(dir: &Path) -> Signer {
        // Copied private first: the key is read with a warning when others may read it.
        let path = dir.join("fuzz-device.key");
        fs::copy(fuzz_dir("batch").join("fuzz-device.key"), &path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        Signer { key: SecretKey::read(&path).unwrap() }
    }

    fn key_hex(&self) -> String {
        self.key.public().to_hex()
    }

    /// The header lines that sign a request (the hub reads no body without them), for the
    /// batch `body` carries when it carries one.
    fn request_headers(&self, method: &str, path: &str, length: usize, body: &[u8]) -> String {
        let batch_sha256 = serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|document| document.get("payload_sha256")?.as_str().map(str::to_owned))
            .unwrap_or_else(|| "none".to_owned());
        request_auth_headers(
            &self.key,
            method,
            path,
            length as u64,
            &timestamp::now(),
            &batch_sha256,
        )
        .iter()
        .map(|(name, value)| format!("{name}: {value}\r\n"))
        .collect()
    }

    fn enroll(&self, hub: &Logbook) {
        hub.enroll_device("fuzz-device", &self.key.public(), None, false, || Ok(())).unwrap();
    }

    /// The envelope's text with `payload` as its payload: the checksum recomputed unless
    /// `keep_checksum`, then signed again unless `keep_signature`.
    fn seal(
        &self,
        mut envelope: serde_json::Map<String, Value>,
        payload: &Value,
        keep_checksum: bool,
        keep_signature: bool,
    ) -> Vec<u8> {
        let payload_text = serde_json::to_string(payload).unwrap();
        envelope.remove("payload");
        if !keep_checksum {
            let digest = hex::encode(Sha256::digest(payload_text.as_bytes()));
            envelope.insert("payload_sha256".to_owned(), Value::String(digest));
        }
        if !keep_signature {
            let field = |name: &str| match envelope.get(name) {
                Some(Value::String(text)) => text.clone(),
                Some(other) => other.to_string(),
                None => String::new(),
            };
            let header = batch::signed_header(
                &field("source_device"),
                &field("created_at"),
                &field("payload_sha256"),
                &field("device_key"),
            );
            envelope.insert("signature".to_owned(), Value::String(self.key.sign(&header)));
        }
        let head = serde_json::to_string(&Value::Object(envelope)).unwrap();
        let head = head.strip_suffix('}').unwrap_or(&head);
        let comma = if head.ends_with('{') { "" } else { "," };
        format!("{head}{comma}\"payload\":{payload_text}}}").into_bytes()
    }
}

/// A batch mutated in its payload with the checksum recomputed and signed again (so the rows'
/// checks and the import are reached), in its envelope, or byte-wise (the checksum or the
/// signature then refuses most).
fn mutate_batch(rng: &mut Rng, seeds: &[Vec<u8>], signer: &Signer) -> Vec<u8> {
    let seed = rng.pick(seeds);
    if rng.below(8) == 0 {
        return mutate_bytes(rng, seed, seeds, BATCH_TOKENS);
    }
    let mut envelope: Value = serde_json::from_slice(seed).unwrap();
    let mut payload = envelope["payload"].take();
    for _ in 0..rng.small_count(3) {
        if rng.below(6) == 0 {
            mutate_json_value(rng, &mut envelope);
        } else {
            mutate_json_value(rng, &mut payload);
        }
    }
    let bytes = match envelope {
        Value::Object(fields) => {
            signer.seal(fields, &payload, rng.below(16) == 0, rng.below(16) == 0)
        }
        other => serde_json::to_vec(&other).unwrap(),
    };
    if rng.below(16) == 0 { mutate_bytes(rng, &bytes, seeds, BATCH_TOKENS) } else { bytes }
}

// ---------------------------------------------------------------------------------------------
// The hub, as a black box.

/// The `synth-edge` of this build: `FIELDSYNTH_SYNTH_EDGE`, or beside the test's own folder
/// (`target/debug/deps/fuzz-*` → `target/debug/synth-edge`).
fn synth_edge() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("FIELDSYNTH_SYNTH_EDGE") {
        return Some(PathBuf::from(path));
    }
    let exe = std::env::current_exe().ok()?;
    let binary = exe.parent()?.parent()?.join("synth-edge");
    binary.is_file().then_some(binary)
}

struct HubProcess {
    binary: PathBuf,
    dir: PathBuf,
    child: Child,
    address: SocketAddr,
    token: String,
    n_starts: usize,
    /// How often each status was answered (`None`: no answer).
    statuses: BTreeMap<Option<u16>, u64>,
}

struct Answer {
    status: Option<u16>,
}

impl HubProcess {
    fn start(binary: &Path, dir: &Path) -> HubProcess {
        let token = "fuzz-token-4c1f09d2".to_owned();
        let token_file = dir.join("token");
        fs::write(&token_file, &token).unwrap();
        fs::set_permissions(&token_file, fs::Permissions::from_mode(0o600)).unwrap();
        let (child, address) = spawn_hub(binary, dir, 0);
        HubProcess {
            binary: binary.to_owned(),
            dir: dir.to_owned(),
            child,
            address,
            token,
            n_starts: 1,
            statuses: BTreeMap::new(),
        }
    }

    fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let (child, address) = spawn_hub(&self.binary, &self.dir, self.n_starts);
        self.child = child;
        self.address = address;
        self.n_starts += 1;
    }

    /// Sends one request on its own connection; reads the answer for up to `timeout`.
    fn send(&self, request: &[u8], timeout: Duration) -> Answer {
        let Ok(mut stream) = TcpStream::connect_timeout(&self.address, timeout) else {
            return Answer { status: None };
        };
        stream.set_read_timeout(Some(timeout)).unwrap();
        stream.set_write_timeout(Some(timeout)).unwrap();
        let _ = stream.write_all(request);
        let _ = stream.shutdown(Shutdown::Write);
        let mut answer = Vec::new();
        let mut chunk = [0u8; 16 * 1024];
        while answer.len() < 1 << 20 {
            match stream.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&chunk[..n]),
            }
        }
        Answer { status: final_status(&answer) }
    }

    /// Whether a good request is answered while another client has announced a body and stalls
    /// (its connection held open, the body never finished): the hub must not wait on it.
    fn answers_listing_beside_a_stalled_client(&self, signer: &Signer) -> bool {
        let Ok(mut stalled) = TcpStream::connect_timeout(&self.address, REQUEST_TIMEOUT) else {
            return false;
        };
        let head = format!(
            "POST /api/batches HTTP/1.1\r\nHost: hub\r\n{}\
             Content-Length: 100000\r\n\r\n{{\"format\":",
            signer.request_headers("POST", "/api/batches", 100_000, b"")
        );
        let _ = stalled.write_all(head.as_bytes());
        let request = http_request("GET", "/api/runs", &self.token, None, b"");
        let answered = self.send(&request, Duration::from_secs(3)).status == Some(200);
        drop(stalled);
        answered
    }

    fn answers_listing(&self) -> bool {
        let request = http_request("GET", "/api/runs", &self.token, None, b"");
        (0..3).any(|_| self.send(&request, Duration::from_secs(10)).status == Some(200))
    }

    /// One hostile request alone: the hub must not exit, must not answer 5xx, and after
    /// anything unanswered must still answer a good request.
    fn check(&mut self, request: &[u8]) -> Outcome {
        let answer = self.send(request, REQUEST_TIMEOUT);
        if let Some(message) = self.failure(std::slice::from_ref(&answer)) {
            self.restart();
            return Err(message);
        }
        self.verdict(&answer)
    }

    /// Requests sent together, each on its own connection (the hub serves them concurrently,
    /// and a sequential client would spend most of its time waiting for the hub's accept loop).
    /// When the hub exits or stops answering, each is tried again alone, to find which did it.
    fn check_group(&mut self, requests: &[Vec<u8>]) -> Vec<Outcome> {
        let hub = &*self;
        let answers: Vec<Answer> = std::thread::scope(|scope| {
            let sending: Vec<_> = requests
                .iter()
                .map(|request| scope.spawn(|| hub.send(request, REQUEST_TIMEOUT)))
                .collect();
            sending.into_iter().map(|thread| thread.join().unwrap()).collect()
        });
        if let Some(message) = self.failure(&answers) {
            self.restart();
            let alone: Vec<Outcome> = requests.iter().map(|request| self.check(request)).collect();
            if alone.iter().all(Result::is_ok) {
                let together =
                    format!("{message}, after these {} requests together", answers.len());
                return alone.iter().map(|_| Err(together.clone())).collect();
            }
            return alone;
        }
        answers.iter().map(|answer| self.verdict(answer)).collect()
    }

    /// Whether the hub failed as a whole: it exited, or it answered nothing and then no good
    /// request either.
    fn failure(&mut self, answers: &[Answer]) -> Option<String> {
        if let Ok(Some(status)) = self.child.try_wait() {
            return Some(format!(
                "the hub exited ({status}); its stderr ends: {}",
                self.stderr_tail()
            ));
        }
        if answers.iter().any(|answer| answer.status.is_none()) && !self.answers_listing() {
            return Some("the hub stopped answering good requests".to_owned());
        }
        None
    }

    /// A 5xx is for the hub's own faults, never for what a client sent.
    fn verdict(&mut self, answer: &Answer) -> Outcome {
        *self.statuses.entry(answer.status).or_default() += 1;
        match answer.status {
            Some(status) if status >= 500 => Err(format!(
                "the hub answered {status} (5xx is for the hub's own faults); its stderr ends: {}",
                self.stderr_tail()
            )),
            Some(200) => Ok(Verdict::Accepted),
            _ => Ok(Verdict::Refused),
        }
    }

    fn stderr_tail(&self) -> String {
        let text = fs::read(self.dir.join(format!("hub-{}.stderr", self.n_starts - 1)))
            .unwrap_or_default();
        let text = String::from_utf8_lossy(&text);
        let lines: Vec<&str> = text.lines().rev().take(4).collect();
        lines.into_iter().rev().collect::<Vec<_>>().join(" | ")
    }
}

/// The status of the final answer in `answer`, past any `100 Continue`.
fn final_status(mut answer: &[u8]) -> Option<u16> {
    loop {
        let rest = answer.strip_prefix(b"HTTP/1.")?;
        let status: u16 = std::str::from_utf8(rest.get(2..5)?).ok()?.parse().ok()?;
        if !(100..200).contains(&status) {
            return Some(status);
        }
        let end = answer.windows(4).position(|window| window == b"\r\n\r\n")?;
        answer = &answer[end + 4..];
    }
}

impl Drop for HubProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `synth-edge hub serve` on a free port and reads the address it announces.
fn spawn_hub(binary: &Path, dir: &Path, n: usize) -> (Child, SocketAddr) {
    let stderr = fs::File::create(dir.join(format!("hub-{n}.stderr"))).unwrap();
    let mut child = Command::new(binary)
        .args(["hub", "serve", "--addr", "127.0.0.1:0", "--db"])
        .arg(dir.join("hub.db"))
        .arg("--token-file")
        .arg(dir.join("token"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while stdout.read(&mut byte).unwrap_or(0) == 1 && byte[0] != b'\n' {
        line.push(byte[0]);
    }
    let line = String::from_utf8_lossy(&line).into_owned();
    let address = line
        .split_whitespace()
        .find_map(|word| word.strip_prefix("http://"))
        .and_then(|address| address.parse().ok())
        .unwrap_or_else(|| panic!("the hub did not announce its address: `{line}`"));
    // Keep the pipe open (and drained) so the hub's later prints never block.
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    (child, address)
}

/// A good request: the read token, and for a body the fuzzer's device key and request signature.
fn http_request(
    method: &str,
    path: &str,
    token: &str,
    signer: Option<&Signer>,
    body: &[u8],
) -> Vec<u8> {
    let signed = signer
        .map_or_else(String::new, |signer| signer.request_headers(method, path, body.len(), body));
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: hub\r\nAuthorization: Bearer {token}\r\n\
         {signed}Content-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    request
}

/// A request from a template (`fixtures/fuzz/hub/*.http`, with `@TOKEN@`, `@LEN@`, `@BODY@`
/// and `@CHUNKED@` filled in), changed in its request line and headers, sometimes byte-wise.
fn mutate_request(
    rng: &mut Rng,
    templates: &[Vec<u8>],
    batches: &[Vec<u8>],
    signer: &Signer,
    token: &str,
) -> Vec<u8> {
    let body = match rng.below(5) {
        0 | 1 => rng.pick(batches).clone(),
        2 | 3 => mutate_batch(rng, batches, signer),
        _ => {
            let seed = rng.pick(batches).clone();
            mutate_bytes(rng, &seed, batches, BATCH_TOKENS)
        }
    };
    let key = signer.key_hex();
    let template = String::from_utf8_lossy(rng.pick(templates).as_slice()).into_owned();
    let (head, _) = template.split_once("\r\n\r\n").unwrap_or((&template, ""));
    let mut lines: Vec<String> = head.split("\r\n").map(str::to_owned).collect();
    let chunked = template.contains("@CHUNKED@");
    for _ in 0..rng.below(4) {
        let line = 1 + rng.below(lines.len().max(2) - 1);
        let replacement = match rng.below(10) {
            0 => format!("Authorization: {}", rng.pick(&AUTHORIZATIONS).replace("@TOKEN@", token)),
            1 => format!("Content-Length: {}", rng.pick(&LENGTHS)),
            2 => format!("Transfer-Encoding: {}", rng.pick(&["chunked", "gzip, chunked", "x"])),
            3 => {
                format!("X-Filler: {}", "a".repeat(rng.pick(&[10usize, 8_000, 70_000]).to_owned()))
            }
            4 => "Expect: 100-continue".to_owned(),
            5 => "Connection: keep-alive".to_owned(),
            6 => format!("{DEVICE_KEY_HEADER}: {}", rng.pick(&DEVICE_KEYS).replace("@KEY@", &key)),
            7 => " folded continuation".to_owned(),
            8 => "no colon here".to_owned(),
            _ => String::new(),
        };
        if rng.below(2) == 0 || line >= lines.len() {
            lines.insert(line.min(lines.len()), replacement);
        } else {
            lines[line] = replacement;
        }
    }
    if rng.below(4) == 0 {
        let method = rng.pick(&["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "post", "G\0T"]);
        let path = rng.pick(&PATHS);
        let version = rng.pick(&["HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/9.9", ""]);
        lines[0] = format!("{method} {path} {version}");
    }
    let body_bytes = if chunked { chunk(rng, &body) } else { body };
    // Mostly signed for the request as it stands (so the body is read and the batch decoded);
    // sometimes not, or for another length.
    if rng.below(4) != 0 {
        let mut parts = lines[0].split(' ');
        let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let length = if rng.below(8) == 0 { body_bytes.len() + 1 } else { body_bytes.len() };
        let signed = signer.request_headers(method, path, length, &body_bytes);
        lines.insert(1, signed.trim_end_matches("\r\n").to_owned());
    }
    let head = lines
        .join("\r\n")
        .replace("@TOKEN@", token)
        .replace("@KEY@", &key)
        .replace("@LEN@", &body_bytes.len().to_string());
    let mut request = head.into_bytes();
    request.extend_from_slice(b"\r\n\r\n");
    if template.contains("@BODY@") || template.contains("@CHUNKED@") {
        request.extend_from_slice(&body_bytes);
    }
    if rng.below(4) == 0 {
        request = mutate_bytes(rng, &request, templates, &[b"\r\n", b"Content-Length: ", b": "]);
    }
    request
}

const AUTHORIZATIONS: [&str; 9] = [
    "Bearer @TOKEN@",
    "Bearer wrong",
    "bearer @TOKEN@",
    "Bearer  @TOKEN@ ",
    "Basic Zm9vOmJhcg==",
    "Bearer @TOKEN@x",
    "Bearer ",
    "",
    "Bearer @TOKEN@\r\nAuthorization: Bearer wrong",
];

const DEVICE_KEYS: [&str; 6] = [
    "@KEY@",
    " @KEY@ ",
    "@KEY@@KEY@",
    "0000000000000000000000000000000000000000000000000000000000000000",
    "9401aeb7b8bb8ea24277098db5c015c4df786834ef22d4ae6905e7cce26f349b",
    "zz",
];

const LENGTHS: [&str; 10] = [
    "0",
    "-1",
    "1000000000000",
    "18446744073709551616",
    "99999999999999999999999",
    "abc",
    " 12",
    "+12",
    "12, 13",
    "67108865",
];

const PATHS: [&str; 9] = [
    "/api/batches",
    "/api/runs",
    "/api/runs?x=1&y",
    "/../../etc/passwd",
    "//api/runs",
    "/api/batches/..",
    "/api/%2e%2e/runs",
    "*",
    "http://hub/api/runs",
];

/// The body in chunked transfer coding, with now and then a lying or broken chunk size.
fn chunk(rng: &mut Rng, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for piece in body.chunks(1 + rng.below(4096)) {
        let size = match rng.below(40) {
            0 => "ffffffffffffffff".to_owned(),
            1 => "-1".to_owned(),
            2 => format!("{:x}", piece.len() + 10),
            _ => format!("{:x}", piece.len()),
        };
        out.extend_from_slice(size.as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(piece);
        out.extend_from_slice(b"\r\n");
    }
    if rng.below(8) != 0 {
        out.extend_from_slice(b"0\r\n\r\n");
    }
    out
}
