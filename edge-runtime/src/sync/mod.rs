//! Sync: moving logbook rows from an edge to a hub, over HTTP ([`client`], [`hub`]) or as batch
//! files in a folder for a site with no link ([`write_to_dir`], [`import_files`]).
//!
//! Every way goes through the same loop: collect up to `max_runs` of this device's unsynced
//! settled runs (and, in the first batch, its runs still running, so the hub sees work in
//! progress), wrap them in a [`Batch`] signed with the device's key, deliver it, and only then
//! mark its rows synced. A delivery that fails or is cut short leaves the rows unsynced and they
//! go again next time; the hub inserts or ignores by primary key, so a batch delivered twice
//! changes nothing.
//!
//! Trust: a hub accepts a batch only when it is signed by the key of an enrolled device
//! ([`Logbook::enroll_device`]), and stores its rows only under the logbook device that key
//! speaks for. The shared [`Token`] guards the hub's read endpoint only.

pub mod batch;
pub mod client;
pub mod hub;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

pub use batch::Batch;

use crate::data::write_atomically;
use crate::error::{Error, Result};
use crate::keys::{SecretKey, exposure_warning};
use crate::logbook::{ApplySummary, Logbook};

/// Settled runs per batch unless the caller says otherwise.
pub const DEFAULT_BATCH_RUNS: usize = 200;

/// The most settled runs one batch may be asked to carry.
pub const MAX_BATCH_RUNS: usize = 100_000;

/// The shortest and longest interval of a periodic sync.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);
pub const MAX_INTERVAL: Duration = Duration::from_secs(7 * 24 * 3600);

/// The first wait after a failed periodic sync; it doubles on each further failure, up to the
/// interval.
pub const FIRST_RETRY: Duration = Duration::from_secs(5);

/// A shared secret read from a file; its content, trimmed, is the bearer token.
#[derive(Clone)]
pub struct Token(String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(..)")
    }
}

impl Token {
    /// Reads a token file (at most 4 KiB), warning on stderr when the group or others may read it.
    pub fn read(path: &Path) -> Result<Token> {
        if let Some(warning) = exposure_warning(path) {
            eprintln!("warning: {warning}");
        }
        let text = crate::data::read_bounded_text(path, 4096, "a token file (one short line)")?;
        Token::new(text.trim())
            .map_err(|message| Error::Invalid(format!("{}: {message}", path.display())))
    }

    pub fn new(secret: &str) -> std::result::Result<Token, String> {
        if secret.is_empty() {
            return Err(
                "the token file is empty; expected a secret shared by the hub and its devices"
                    .to_owned(),
            );
        }
        if secret.chars().any(|ch| ch.is_control() || ch.is_whitespace()) {
            return Err("the token contains whitespace or control characters; expected one line without spaces".to_owned());
        }
        Ok(Token(secret.to_owned()))
    }

    pub fn bearer_header(&self) -> String {
        format!("Bearer {}", self.0)
    }

    /// Whether `presented` is this token, in time that depends on neither's content: both are
    /// hashed and the digests compared without an early exit.
    pub fn matches(&self, presented: &str) -> bool {
        let expected = Sha256::digest(self.0.as_bytes());
        let presented = Sha256::digest(presented.as_bytes());
        expected.iter().zip(presented.iter()).fold(0_u8, |difference, (a, b)| difference | (a ^ b))
            == 0
    }
}

/// What one sync delivered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    pub batches: usize,
    /// Done or failed runs delivered and now marked synced.
    pub settled_runs: usize,
    /// Runs still running, delivered so the hub sees them, and to be sent again when settled.
    pub running_runs: usize,
    pub metrics: usize,
    /// The batch files written, for a sync to a folder.
    pub files: Vec<PathBuf>,
}

/// Delivers every unsynced row of this device, batch by batch signed with `key`, with `deliver`;
/// rows are marked synced only after `deliver` returns `Ok`. Stops early, between batches, once
/// `stop` is set. No batch is over [`hub::MAX_BATCH_BYTES`] encoded: one that would be is built
/// again with half the runs, and a single run (with its metrics and model) that alone is over
/// it is an error naming the run.
pub fn sync_with(
    logbook: &Logbook,
    key: &SecretKey,
    max_runs: usize,
    stop: &AtomicBool,
    mut deliver: impl FnMut(&Batch) -> Result<()>,
) -> Result<SyncReport> {
    if !(1..=MAX_BATCH_RUNS).contains(&max_runs) {
        return Err(Error::Invalid(format!(
            "runs per batch is {max_runs}; expected 1 to {MAX_BATCH_RUNS}"
        )));
    }
    let mut report = SyncReport::default();
    let mut include_running = true;
    let mut runs_now = max_runs;
    while !stop.load(Ordering::SeqCst) {
        let rows = logbook.pending_rows(runs_now, include_running)?;
        if rows.is_empty() {
            break;
        }
        let batch = Batch::new(logbook.device_id(), rows, key)?;
        let size = batch.encode()?.len();
        if size > hub::MAX_BATCH_BYTES {
            let settled = batch.rows.n_settled_runs();
            if settled > 1 {
                runs_now = settled / 2;
                continue;
            }
            return Err(Error::Invalid(format!(
                "{}: a batch of {} is {size} bytes encoded, over the {} bytes a hub takes; it cannot be synced",
                logbook.path().display(),
                oversized_rows(&batch.rows),
                hub::MAX_BATCH_BYTES
            )));
        }
        include_running = false;
        runs_now = max_runs;
        deliver(&batch)?;
        logbook.mark_synced(&batch.rows, &batch.payload_sha256)?;
        report.batches += 1;
        report.settled_runs += batch.rows.n_settled_runs();
        report.running_runs += batch.rows.runs.len() - batch.rows.n_settled_runs();
        report.metrics += batch.rows.metrics.len();
    }
    Ok(report)
}

/// Names what a batch too big to split carries: its settled run, its running runs, its models.
fn oversized_rows(rows: &crate::logbook::SyncRows) -> String {
    let mut parts: Vec<String> = rows
        .runs
        .iter()
        .map(|run| format!("run {} ({})", run.id, run.status))
        .chain(rows.models.iter().map(|model| format!("model {}", model.sha256)))
        .take(8)
        .collect();
    let total = rows.runs.len() + rows.models.len();
    if total > parts.len() {
        parts.push(format!("{} more", total - parts.len()));
    }
    if parts.is_empty() { "device rows".to_owned() } else { parts.join(", ") }
}

/// Syncs to a hub over HTTP.
pub fn push_to_hub(
    logbook: &Logbook,
    hub: &client::HubClient,
    max_runs: usize,
    stop: &AtomicBool,
) -> Result<SyncReport> {
    sync_with(logbook, hub.key(), max_runs, stop, |batch| hub.push(batch).map(|_| ()))
}

/// Syncs into batch files in `dir` (which must exist: an unmounted stick must not turn into a
/// folder on the device's own disk). A file written completely counts as delivered.
pub fn write_to_dir(
    logbook: &Logbook,
    key: &SecretKey,
    dir: &Path,
    max_runs: usize,
    stop: &AtomicBool,
) -> Result<SyncReport> {
    if !dir.is_dir() {
        return Err(Error::Invalid(format!(
            "{}: is not a folder; expected an existing folder for batch files (is the drive mounted?)",
            dir.display()
        )));
    }
    let mut files = Vec::new();
    let mut report = sync_with(logbook, key, max_runs, stop, |batch| {
        let path = dir.join(batch.file_name());
        write_atomically(&path, &batch.encode()?)?;
        files.push(path);
        Ok(())
    })?;
    report.files = files;
    Ok(report)
}

/// Applies batch files to a hub logbook. Every file is read (up to [`hub::MAX_BATCH_BYTES`])
/// and verified before any is applied: signed by an enrolled, unrevoked device, its checksum
/// and rows sound. All are then applied in one transaction, each under its signer's device only
/// ([`Logbook::apply_batches`]), so one damaged, forged or unsigned file stops the import with
/// nothing written. A file imported before changes nothing.
pub fn import_files(logbook: &Logbook, files: &[PathBuf]) -> Result<Vec<(PathBuf, ApplySummary)>> {
    let mut batches = Vec::with_capacity(files.len());
    for path in files {
        let origin = path.display().to_string();
        let bytes = read_batch_file(path, &origin)?;
        let mut sender = None;
        let batch = Batch::decode(&bytes, &origin, |key| {
            sender = Some(enrolled_sender(logbook, key, &origin)?);
            Ok(())
        })?;
        let sender = sender.ok_or_else(|| {
            Error::Sync(format!("{origin}: the batch's key was not checked; nothing imported"))
        })?;
        batches.push((path, origin, sender, batch));
    }
    let applied = logbook.apply_batches(
        &batches
            .iter()
            .map(|(_, origin, sender, batch)| {
                (
                    origin.as_str(),
                    sender.as_str(),
                    &batch.device_key,
                    batch.source_device.as_str(),
                    &batch.rows,
                )
            })
            .collect::<Vec<_>>(),
    )?;
    Ok(batches.iter().map(|(path, ..)| (*path).clone()).zip(applied).collect())
}

/// A batch file's bytes. Anything but a regular file (a FIFO, a device such as `/dev/zero`, a
/// directory) is refused before it is opened, and at most [`hub::MAX_BATCH_BYTES`] are read
/// whatever the file's size says, so a file that grows or lies about its size is refused
/// (`413`) at the limit.
fn read_batch_file(path: &Path, origin: &str) -> Result<Vec<u8>> {
    use std::io::Read;
    let too_big = |size: String| Error::Refused {
        status: 413,
        message: format!(
            "{origin}: is {size} bytes; a batch is at most {} bytes; the batch was rejected whole",
            hub::MAX_BATCH_BYTES
        ),
    };
    let metadata = fs::metadata(path).map_err(|err| Error::io(path, err))?;
    if !metadata.is_file() {
        let kind = if metadata.is_dir() { "a directory" } else { "a FIFO, device or socket" };
        return Err(Error::Refused {
            status: 400,
            message: format!(
                "{origin}: is {kind}, not a regular file; a batch is imported from the file a \
                 sync to a folder wrote; nothing imported"
            ),
        });
    }
    if metadata.len() > hub::MAX_BATCH_BYTES as u64 {
        return Err(too_big(metadata.len().to_string()));
    }
    let file = fs::File::open(path).map_err(|err| Error::io(path, err))?;
    let mut bytes = Vec::new();
    file.take(hub::MAX_BATCH_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|err| Error::io(path, err))?;
    if bytes.len() > hub::MAX_BATCH_BYTES {
        return Err(too_big(format!("more than {}", hub::MAX_BATCH_BYTES)));
    }
    Ok(bytes)
}

/// The name of the enrolled, unrevoked device whose key is `key`, or the refusal (401 unknown,
/// 403 revoked) that names `origin`.
pub fn enrolled_sender(
    logbook: &Logbook,
    key: &crate::keys::PublicKey,
    origin: &str,
) -> Result<String> {
    match logbook.device_by_key(key)? {
        None => Err(Error::Refused {
            status: 401,
            message: format!(
                "{origin}: key {} is not the key of any device enrolled at this hub; enrol the device and sync with the key file the enrolment wrote",
                key.fingerprint()
            ),
        }),
        Some(device) => match device.revoked_at {
            Some(revoked_at) => Err(Error::Refused {
                status: 403,
                message: format!(
                    "{origin}: key {} of device `{}` was revoked at {revoked_at}",
                    key.fingerprint(),
                    device.name
                ),
            }),
            None => Ok(device.name),
        },
    }
}

/// How long to wait after `consecutive_failures` failed attempts (0: after a success).
pub fn next_delay(interval: Duration, consecutive_failures: u32) -> Duration {
    if consecutive_failures == 0 {
        return interval;
    }
    let doublings = (consecutive_failures - 1).min(20);
    FIRST_RETRY.saturating_mul(1 << doublings).min(interval)
}

/// Sleeps for `duration`, waking early once `stop` is set; returns whether it was set.
/// A duration too long to add to the clock sleeps until `stop` is set.
pub fn sleep_unless_stopped(duration: Duration, stop: &AtomicBool) -> bool {
    let deadline = Instant::now().checked_add(duration);
    while !stop.load(Ordering::SeqCst) {
        let left = deadline
            .map_or(Duration::MAX, |deadline| deadline.saturating_duration_since(Instant::now()));
        if left.is_zero() {
            return false;
        }
        std::thread::sleep(left.min(Duration::from_millis(100)));
    }
    true
}

/// A flag set by SIGTERM or SIGINT, for loops that stop cleanly between steps; a second signal
/// of the same kind ends the process at once.
pub fn stop_flag_on_signals() -> Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        let register = |source| Error::Signal { signal, source };
        signal_hook::flag::register_conditional_shutdown(signal, 1, Arc::clone(&stop))
            .map_err(register)?;
        signal_hook::flag::register(signal, Arc::clone(&stop)).map_err(register)?;
    }
    Ok(stop)
}

/// Parses an interval such as `30s`, `15m` or `1h`, from [`MIN_INTERVAL`] to [`MAX_INTERVAL`].
pub fn parse_interval(text: &str) -> std::result::Result<Duration, String> {
    let expected = "expected a whole number followed by s, m or h, such as 30s, 15m or 1h";
    let text = text.trim();
    let split = text.find(|ch: char| !ch.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let count: u64 =
        number.parse().map_err(|_| format!("invalid interval `{text}`: {expected}"))?;
    let unit_seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => return Err(format!("invalid interval `{text}`: {expected}")),
    };
    let range = format!(
        "expected {} s to {} s ({} days)",
        MIN_INTERVAL.as_secs(),
        MAX_INTERVAL.as_secs(),
        MAX_INTERVAL.as_secs() / 86_400
    );
    match count.checked_mul(unit_seconds).map(Duration::from_secs) {
        Some(interval) if (MIN_INTERVAL..=MAX_INTERVAL).contains(&interval) => Ok(interval),
        _ => Err(format!("invalid interval `{text}`: {range}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_interval(text: &str, expected: Option<u64>) {
        assert_eq!(
            parse_interval(text).ok().map(|duration| duration.as_secs()),
            expected,
            "{text}"
        );
    }

    #[test]
    fn intervals_parse_in_seconds_minutes_and_hours() {
        check_interval("30s", Some(30));
        check_interval("15m", Some(900));
        check_interval("1h", Some(3600));
        check_interval(" 2h ", Some(7200));
        check_interval("0s", None);
        check_interval("15", None);
        check_interval("m", None);
        check_interval("1.5h", None);
        check_interval("-1m", None);
        check_interval("10d", None);
        check_interval("604800s", Some(604_800));
        check_interval("168h", Some(604_800));
        check_interval("169h", None);
        check_interval("9223372036854775807s", None);
        check_interval("5000000000000000h", None);
        check_interval("99999999999999999999999s", None);
        assert!(parse_interval("169h").unwrap_err().contains("1 s to 604800 s"));
    }

    #[test]
    fn a_sleep_too_long_for_the_clock_ends_on_stop() {
        let stop = AtomicBool::new(true);
        assert!(sleep_unless_stopped(Duration::MAX, &stop));
        let stop = AtomicBool::new(false);
        assert!(!sleep_unless_stopped(Duration::ZERO, &stop));
    }

    fn check_delays(interval_seconds: u64, expected: &[u64]) {
        let delays: Vec<u64> = (0..expected.len() as u32)
            .map(|failures| next_delay(Duration::from_secs(interval_seconds), failures).as_secs())
            .collect();
        assert_eq!(delays, expected, "interval {interval_seconds} s");
    }

    #[test]
    fn retries_back_off_exponentially_up_to_the_interval() {
        check_delays(900, &[900, 5, 10, 20, 40, 80, 160, 320, 640, 900, 900]);
        check_delays(30, &[30, 5, 10, 20, 30, 30]);
        check_delays(2, &[2, 2, 2]);
        assert_eq!(next_delay(Duration::from_secs(3600), u32::MAX), Duration::from_secs(3600));
    }

    #[test]
    fn tokens_match_only_themselves() {
        let token = Token::new("s3cret-token").unwrap();
        assert!(token.matches("s3cret-token"));
        assert!(!token.matches("s3cret-tokeN"));
        assert!(!token.matches("s3cret-token "));
        assert!(!token.matches(""));
        assert!(Token::new("").is_err());
        assert!(Token::new("two words").is_err());
    }
}
