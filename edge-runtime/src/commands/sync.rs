//! `synth-edge sync`: push a device's unsynced logbook rows to a hub over HTTP (`--to`), or write
//! them as batch files into a folder (`--to-dir`), every batch signed with the device's key
//! (`--key-file`, written by `synth-edge hub enroll`); with `--every`, keep syncing on an
//! interval until SIGTERM, backing off while the hub is unreachable and stopping with an error
//! when it refuses the key or a batch.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::Args;

use crate::cli::count_in;
use crate::error;
use crate::keys::SecretKey;
use crate::logbook::Logbook;
use crate::sync::client::HubClient;
use crate::sync::{self, DEFAULT_BATCH_RUNS, MAX_BATCH_RUNS, SyncReport, Token};

#[derive(Debug, Args)]
pub struct SyncArgs {
    /// The device's logbook.
    #[arg(long)]
    pub db: PathBuf,
    /// The hub, such as http://192.168.1.10:8750.
    #[arg(long, required_unless_present = "to_dir", conflicts_with = "to_dir")]
    pub to: Option<String>,
    /// Write batch files into this existing folder instead (a USB stick for a site with no link).
    #[arg(long)]
    pub to_dir: Option<PathBuf>,
    /// The device's secret key file, from `synth-edge hub enroll --key-out`; it signs every batch.
    #[arg(long)]
    pub key_file: PathBuf,
    /// A file holding the hub's read token; not needed to sync (batches never carry it).
    #[arg(long, requires = "to")]
    pub token_file: Option<PathBuf>,
    /// Keep syncing at this interval (30s, 15m, 1h) until SIGTERM.
    #[arg(long, value_parser = sync::parse_interval, requires = "to")]
    pub every: Option<Duration>,
    /// Done or failed runs per batch (fewer when a batch would be over the hub's size limit).
    #[arg(long, default_value_t = DEFAULT_BATCH_RUNS, value_parser = count_in::<1, MAX_BATCH_RUNS>)]
    pub batch_runs: usize,
}

enum Destination {
    Hub(HubClient),
    Folder(PathBuf, SecretKey),
}

pub fn run(args: &SyncArgs) -> anyhow::Result<ExitCode> {
    let key = SecretKey::read(&args.key_file)?;
    let token = args.token_file.as_deref().map(Token::read).transpose()?;
    let destination = match (&args.to, &args.to_dir) {
        (Some(url), None) => Destination::Hub(HubClient::new(url, key, token)?),
        (None, Some(dir)) => Destination::Folder(dir.clone(), key),
        _ => anyhow::bail!("expected either --to URL or --to-dir DIR, with --key-file FILE"),
    };
    let stop = sync::stop_flag_on_signals()?;
    let logbook = Logbook::open(&args.db)?;
    match (destination, args.every) {
        (Destination::Folder(dir, key), _) => {
            let report = sync::write_to_dir(&logbook, &key, &dir, args.batch_runs, &stop)?;
            print_report(&report, &dir.display().to_string());
            for file in &report.files {
                println!("  {}", file.display());
            }
        }
        (Destination::Hub(hub), None) => {
            let report = sync::push_to_hub(&logbook, &hub, args.batch_runs, &stop)?;
            print_report(&report, hub.base_url());
        }
        (Destination::Hub(hub), Some(interval)) => {
            sync_periodically(&logbook, &hub, args.batch_runs, interval, &stop)?
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Syncs, then waits `interval`; while the hub is unreachable waits less, doubling from
/// [`sync::FIRST_RETRY`] (a hub that is busy or timed out, 408, 429 or 503, counts as
/// unreachable). A refused key or batch (401, 403, 400, 413) ends the loop with the error.
fn sync_periodically(
    logbook: &Logbook,
    hub: &HubClient,
    batch_runs: usize,
    interval: Duration,
    stop: &AtomicBool,
) -> anyhow::Result<()> {
    let mut failures = 0_u32;
    eprintln!(
        "syncing {} to {} every {}s until SIGTERM",
        logbook.path().display(),
        hub.base_url(),
        interval.as_secs()
    );
    loop {
        match sync::push_to_hub(logbook, hub, batch_runs, stop) {
            Ok(report) => {
                failures = 0;
                if report.settled_runs > 0 {
                    print_report(&report, hub.base_url());
                }
            }
            Err(err) if err.is_hub_unreachable() => {
                failures = failures.saturating_add(1);
                eprintln!(
                    "{}; retrying in {}s",
                    error::chain(&err),
                    sync::next_delay(interval, failures).as_secs()
                );
            }
            Err(err) => return Err(err.into()),
        }
        if stop.load(Ordering::SeqCst)
            || sync::sleep_unless_stopped(sync::next_delay(interval, failures), stop)
        {
            eprintln!("stopping on signal");
            return Ok(());
        }
    }
}

fn print_report(report: &SyncReport, destination: &str) {
    println!(
        "synced {} done/failed run(s) with {} metric(s) and {} running run(s) to {destination} in {} batch(es)",
        report.settled_runs, report.metrics, report.running_runs, report.batches
    );
}
