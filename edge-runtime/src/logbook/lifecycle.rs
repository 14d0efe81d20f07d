//! How a run always settles: [`RunningRun`] fails its run when it is dropped unsettled (an early
//! return, a panic unwinding through it), [`settle_runs_on_signals`] fails the current run on
//! SIGINT or SIGTERM before the process exits, and a run whose process is gone (killed with
//! SIGKILL, a power cut, a full disk that refused even the failure) is found `interrupted` the
//! next time its logbook is opened.
//!
//! A running run names its process in `runs.process` as `BOOT/PIDNS/PID/START`: the kernel's boot
//! id, the pid namespace, the pid and the process's start time in clock ticks since boot
//! (`/proc/self/stat`, field 22), so a pid reused by a later process, or after a reboot, is not
//! taken for the same process. A platform without `/proc` leaves it NULL, and such runs are never
//! judged.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use rusqlite::{Connection, params};

use super::{Logbook, timestamp};
use crate::error::{Error, Result};
use crate::metrics::Metric;

/// A run committed as `running` that has not been settled yet. [`finish`](Self::finish) or
/// [`fail`](Self::fail) settles it; dropping it unsettled marks it failed.
#[derive(Debug)]
pub struct RunningRun<'a> {
    logbook: &'a Logbook,
    id: String,
    settled: bool,
}

impl<'a> RunningRun<'a> {
    pub(super) fn new(logbook: &'a Logbook, id: String) -> RunningRun<'a> {
        let mut current = CURRENT_RUN.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *current = Some((logbook.path().to_owned(), id.clone()));
        RunningRun { logbook, id, settled: false }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Stores the metrics and marks the run done ([`Logbook::finish_run`]). When that fails (a
    /// full disk, a metric the logbook refuses), the run is marked failed with the reason, if the
    /// file still takes that much, and the error is returned.
    pub fn finish(mut self, metrics: &[Metric]) -> Result<()> {
        self.settled = true;
        clear_current(&self.id);
        let outcome = self.logbook.finish_run(&self.id, metrics);
        if let Err(err) = &outcome {
            let reason = format!("its metrics could not be recorded: {}", crate::error::chain(err));
            // If even this fails, the next open finds the run interrupted (its process gone).
            let _ = self.logbook.fail_run(&self.id, &reason);
        }
        outcome
    }

    /// Marks the run failed with `message`.
    pub fn fail(mut self, message: &str) -> Result<()> {
        self.settled = true;
        clear_current(&self.id);
        self.logbook.fail_run(&self.id, message)
    }
}

impl Drop for RunningRun<'_> {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        clear_current(&self.id);
        let message = if std::thread::panicking() {
            "the program panicked during the run"
        } else {
            "the run ended without being settled"
        };
        // Nothing to report to: a failure here leaves the row to the next open's check.
        let _ = self.logbook.fail_run(&self.id, message);
    }
}

/// The run this process started last and has not settled (logbook file, run id), for the signal
/// handler. A command runs one run at a time; of runs started side by side (tests), the latest.
static CURRENT_RUN: Mutex<Option<(PathBuf, String)>> = Mutex::new(None);

/// Forgets the current run if it is `run_id`.
fn clear_current(run_id: &str) {
    let mut current = CURRENT_RUN.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if current.as_ref().is_some_and(|(_, id)| id == run_id) {
        *current = None;
    }
}

/// From now on SIGINT and SIGTERM fail the run in progress (if any) with the signal's name, then
/// end the process with status 128 + the signal (130, 143). A second signal while the first is
/// being handled ends the process at once. Call it once, from a program's command layer.
pub fn settle_runs_on_signals() -> Result<()> {
    static INSTALLED: AtomicBool = AtomicBool::new(false);
    if INSTALLED.swap(true, Ordering::SeqCst) {
        return Ok(());
    }
    use signal_hook::consts::{SIGINT, SIGTERM};
    static HANDLING: std::sync::OnceLock<std::sync::Arc<AtomicBool>> = std::sync::OnceLock::new();
    let handling = HANDLING.get_or_init(|| std::sync::Arc::new(AtomicBool::new(false)));
    for signal in [SIGINT, SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(signal, 128 + signal, handling.clone())
            .map_err(|source| Error::Signal { signal, source })?;
    }
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])
        .map_err(|source| Error::Signal { signal: SIGTERM, source })?;
    std::thread::Builder::new()
        .name("settle-on-signal".to_owned())
        .spawn(move || {
            if let Some(signal) = signals.forever().next() {
                handling.store(true, Ordering::SeqCst);
                let name = if signal == SIGINT { "SIGINT" } else { "SIGTERM" };
                let current =
                    CURRENT_RUN.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
                if let Some((path, run_id)) = current {
                    let message = format!("stopped by {name} before it finished");
                    match Logbook::open(&path).and_then(|logbook| logbook.fail_run(&run_id, &message))
                    {
                        Ok(()) => eprintln!("{name}: run {run_id} marked failed"),
                        Err(err) => eprintln!(
                            "{name}: could not mark run {run_id} failed ({}); the next open of {} marks it interrupted",
                            crate::error::chain(&err),
                            path.display()
                        ),
                    }
                }
                std::process::exit(128 + signal);
            }
        })
        .map_err(|source| Error::Signal { signal: SIGTERM, source })?;
    Ok(())
}

/// This process as `runs.process` names it; `None` without `/proc`.
pub(super) fn this_process() -> Option<String> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let (pid, start) = pid_and_start(&stat)?;
    Some(format!("{}/{}/{pid}/{start}", boot_id()?, pid_namespace(Path::new("/proc/self"))?))
}

/// The pid (field 1) and start time (field 22) of a `/proc/PID/stat` line. The command name
/// (field 2, in parentheses) may hold spaces and parentheses itself: fields are counted after its
/// last `)`.
fn pid_and_start(stat: &str) -> Option<(u32, u64)> {
    let (head, rest) = stat.rsplit_once(')')?;
    let pid = head.split_whitespace().next()?.parse().ok()?;
    // After the name come field 3 (state) onwards: field 22 is the 20th.
    let start = rest.split_whitespace().nth(19)?.parse().ok()?;
    Some((pid, start))
}

fn boot_id() -> Option<String> {
    let text = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    Some(text.trim().to_owned()).filter(|id| !id.is_empty() && !id.contains('/'))
}

fn pid_namespace(process: &Path) -> Option<String> {
    let link = std::fs::read_link(process.join("ns/pid")).ok()?;
    Some(link.to_string_lossy().into_owned()).filter(|ns| !ns.contains('/'))
}

/// Whether the process `recorded` (as [`this_process`] wrote it) is certainly gone, judged from
/// `this` process's boot and pid namespace: another boot means gone; another pid namespace (a
/// container sharing the file) cannot be judged; otherwise gone unless a process with that pid
/// and start time exists.
fn is_gone(recorded: &str, this: &str) -> bool {
    let fields: Vec<&str> = recorded.split('/').collect();
    let ours: Vec<&str> = this.split('/').collect();
    let ([boot, namespace, pid, start], [our_boot, our_namespace, ..]) =
        (fields.as_slice(), ours.as_slice())
    else {
        return false;
    };
    if boot != our_boot {
        return true;
    }
    if namespace != our_namespace {
        return false;
    }
    let Ok(pid) = pid.parse::<u32>() else {
        return false;
    };
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => pid_and_start(&stat).is_none_or(|(_, now)| now.to_string() != *start),
        Err(err) => err.kind() == std::io::ErrorKind::NotFound,
    }
}

/// Marks this device's running runs whose process is gone `interrupted`; returns how many.
pub(super) fn interrupt_orphans(
    connection: &Connection,
    path: &Path,
    device_id: &str,
) -> Result<usize> {
    let Some(this) = this_process() else {
        return Ok(0);
    };
    let failure = |source| Error::LogbookSql {
        path: path.to_owned(),
        context: "marking runs whose process is gone interrupted".to_owned(),
        source,
    };
    let mut statement = connection
        .prepare(
            "SELECT id, process FROM runs WHERE status = 'running' AND device_id = ?1 AND process IS NOT NULL",
        )
        .map_err(failure)?;
    let running: Vec<(String, String)> = statement
        .query_map([device_id], |row| Ok((row.get(0)?, row.get(1)?)))
        .and_then(Iterator::collect)
        .map_err(failure)?;
    let mut interrupted = 0;
    for (run_id, process) in running.iter().filter(|(_, process)| is_gone(process, &this)) {
        let pid = process.split('/').nth(2).unwrap_or("?");
        let message = format!(
            "interrupted: the process that ran it (pid {pid}) ended without settling it (killed, crashed or powered off)"
        );
        interrupted += connection
            .execute(
                "UPDATE runs SET status = 'interrupted', finished_at = ?3, message = ?4, process = NULL
                 WHERE device_id = ?5 AND id = ?1 AND status = 'running' AND process = ?2",
                params![run_id, process, timestamp::now(), message, device_id],
            )
            .map_err(failure)?;
    }
    Ok(interrupted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_last_parenthesis() {
        let stat = "4242 (a) b) (c) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 987654 19 20";
        assert_eq!(pid_and_start(stat), Some((4242, 987_654)));
        assert_eq!(pid_and_start("4242 (short) S 1 2"), None);
    }

    #[test]
    fn this_process_is_alive_and_others_are_judged_by_boot_namespace_and_start() {
        let Some(this) = this_process() else { return };
        assert!(!is_gone(&this, &this), "{this}");
        let fields: Vec<&str> = this.split('/').collect();
        let (boot, namespace, pid, start) = (fields[0], fields[1], fields[2], fields[3]);
        // The same pid with another start time: a reused pid.
        assert!(is_gone(&format!("{boot}/{namespace}/{pid}/{}1", start), &this));
        assert!(is_gone(&format!("another-boot/{namespace}/{pid}/{start}"), &this));
        assert!(!is_gone(&format!("{boot}/pid:[1]/{pid}/1"), &this), "another namespace");
        assert!(!is_gone("not a process", &this));
    }
}
