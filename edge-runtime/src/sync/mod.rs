//! Sync: moving logbook rows from an edge to a hub, over HTTP ([`client`], [`hub`]) or as batch
//! files in a folder for a site with no link ([`write_to_dir`], [`import_files`]).
//!
//! Every way goes through the same loop: collect up to `max_runs` unsynced settled runs (and, in
//! the first batch, the runs still running, so the hub sees work in progress), wrap them in a
//! checksummed [`Batch`], deliver it, and only then mark its rows synced. A delivery that fails
//! or is cut short leaves the rows unsynced and they go again next time; the hub inserts or
//! ignores by primary key, so a batch delivered twice changes nothing.

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
use crate::logbook::{ApplySummary, Logbook};

/// Settled runs per batch unless `--batch-runs` says otherwise.
pub const DEFAULT_BATCH_RUNS: usize = 200;

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
    pub fn read(path: &Path) -> Result<Token> {
        let text = fs::read_to_string(path).map_err(|err| Error::io(path, err))?;
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

/// Delivers every unsynced row, batch by batch, with `deliver`; rows are marked synced only
/// after `deliver` returns `Ok`. Stops early, between batches, once `stop` is set.
pub fn sync_with(
    logbook: &Logbook,
    max_runs: usize,
    stop: &AtomicBool,
    mut deliver: impl FnMut(&Batch) -> Result<()>,
) -> Result<SyncReport> {
    if max_runs == 0 {
        return Err(Error::Invalid(
            "invalid --batch-runs 0: expected at least 1 run per batch".to_owned(),
        ));
    }
    let mut report = SyncReport::default();
    let mut include_running = true;
    while !stop.load(Ordering::SeqCst) {
        let rows = logbook.pending_rows(max_runs, include_running)?;
        include_running = false;
        if rows.is_empty() {
            break;
        }
        let batch = Batch::new(logbook.device_id(), rows)?;
        deliver(&batch)?;
        logbook.mark_synced(&batch.rows, &batch.payload_sha256)?;
        report.batches += 1;
        report.settled_runs += batch.rows.n_settled_runs();
        report.running_runs += batch.rows.runs.len() - batch.rows.n_settled_runs();
        report.metrics += batch.rows.metrics.len();
    }
    Ok(report)
}

/// Syncs to a hub over HTTP.
pub fn push_to_hub(
    logbook: &Logbook,
    hub: &client::HubClient,
    max_runs: usize,
    stop: &AtomicBool,
) -> Result<SyncReport> {
    sync_with(logbook, max_runs, stop, |batch| hub.push(batch).map(|_| ()))
}

/// Syncs into batch files in `dir` (which must exist: an unmounted stick must not turn into a
/// folder on the device's own disk). A file written completely counts as delivered.
pub fn write_to_dir(
    logbook: &Logbook,
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
    let mut report = sync_with(logbook, max_runs, stop, |batch| {
        let path = dir.join(batch.file_name());
        write_atomically(&path, &batch.encode()?)?;
        files.push(path);
        Ok(())
    })?;
    report.files = files;
    Ok(report)
}

/// Applies batch files to a hub logbook. Every file is read and verified before any is applied,
/// so one damaged file stops the import with nothing written; each file is then applied in its
/// own transaction. A file imported before changes nothing.
pub fn import_files(logbook: &Logbook, files: &[PathBuf]) -> Result<Vec<(PathBuf, ApplySummary)>> {
    let mut batches = Vec::with_capacity(files.len());
    for path in files {
        let bytes = fs::read(path).map_err(|err| Error::io(path, err))?;
        batches.push((path, Batch::decode(&bytes, &path.display().to_string())?));
    }
    let mut summaries = Vec::with_capacity(batches.len());
    for (path, batch) in batches {
        summaries.push((path.clone(), logbook.apply_rows(&batch.rows)?));
    }
    Ok(summaries)
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
pub fn sleep_unless_stopped(duration: Duration, stop: &AtomicBool) -> bool {
    let deadline = Instant::now() + duration;
    while !stop.load(Ordering::SeqCst) {
        let left = deadline.saturating_duration_since(Instant::now());
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

/// Parses an interval such as `30s`, `15m` or `1h`.
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
    if count == 0 {
        return Err(format!("invalid interval `{text}`: expected more than zero"));
    }
    count
        .checked_mul(unit_seconds)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("invalid interval `{text}`: too long"))
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
