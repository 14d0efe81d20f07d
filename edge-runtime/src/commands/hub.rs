//! `synth-edge hub serve` (a workstation's HTTP hub that devices sync into), `synth-edge hub
//! import` (apply batch files carried from a site with no link), and `synth-edge hub enroll` /
//! `revoke` / `devices` (the devices whose signed batches the hub accepts).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use crate::keys::SecretKey;
use crate::logbook::Logbook;
use crate::sync::hub::Hub;
use crate::sync::{self, Token};

#[derive(Debug, Args)]
pub struct HubArgs {
    #[command(subcommand)]
    pub command: HubCommand,
}

#[derive(Debug, Subcommand)]
pub enum HubCommand {
    /// Serve POST /api/batches (devices' syncs) and GET /api/runs until SIGTERM.
    Serve(ServeArgs),
    /// Apply batch files written by `synth-edge sync --to-dir`; a file applied twice changes nothing.
    Import(ImportArgs),
    /// Enrol a device: write its secret key file and keep its public key, so the hub accepts the
    /// batches it signs (and stores them under that device only).
    Enroll(EnrollArgs),
    /// Revoke a device's key: its batches are refused from now on; its rows stay.
    Revoke(RevokeArgs),
    /// List the enrolled devices.
    Devices(DevicesArgs),
}

#[derive(Debug, Args)]
pub struct EnrollArgs {
    /// The hub's logbook (created if missing).
    #[arg(long)]
    pub db: PathBuf,
    /// The device's name at the hub: letters, digits, `.`, `_`, `-`.
    #[arg(long)]
    pub device: String,
    /// Where to write the device's secret key (a new file, mode 0600); copy it to the device and
    /// sync with `--key-file`.
    #[arg(long)]
    pub key_out: PathBuf,
    /// Give an enrolled (or revoked) device a new key: key rotation, or a lost key file. The old
    /// key is refused from now on.
    #[arg(long)]
    pub replace: bool,
    /// The logbook device id this key speaks for, for a device that synced into this hub before
    /// it was enrolled (its id is in `GET /api/runs`); otherwise its first batch binds it.
    #[arg(long)]
    pub device_id: Option<String>,
}

#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// The hub's logbook.
    #[arg(long)]
    pub db: PathBuf,
    /// The enrolled device's name.
    #[arg(long)]
    pub device: String,
}

#[derive(Debug, Args)]
pub struct DevicesArgs {
    /// The hub's logbook.
    #[arg(long)]
    pub db: PathBuf,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The hub's logbook (created if missing).
    #[arg(long)]
    pub db: PathBuf,
    /// Address to listen on; 0.0.0.0:8750 to serve the local network, port 0 for any free port.
    #[arg(long, default_value = "127.0.0.1:8750")]
    pub addr: String,
    /// A file holding the token that reading the hub's runs (GET /api/runs) needs; devices sync
    /// with their own keys (`hub enroll`).
    #[arg(long)]
    pub token_file: PathBuf,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The hub's logbook (created if missing).
    #[arg(long)]
    pub db: PathBuf,
    /// Batch files.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

pub fn run(args: &HubArgs) -> anyhow::Result<ExitCode> {
    match &args.command {
        HubCommand::Serve(args) => serve(args),
        HubCommand::Import(args) => import(args),
        HubCommand::Enroll(args) => enroll(args),
        HubCommand::Revoke(args) => revoke(args),
        HubCommand::Devices(args) => devices(args),
    }
}

fn enroll(args: &EnrollArgs) -> anyhow::Result<ExitCode> {
    crate::data::refuse_existing(&args.key_out).map_err(|err| {
        anyhow::Error::from(err).context("cannot enrol (choose another --key-out)")
    })?;
    let logbook = Logbook::open(&args.db)?;
    let key = SecretKey::generate()?;
    let written = std::cell::Cell::new(false);
    let enrolled = logbook
        .enroll_device(&args.device, &key.public(), args.device_id.as_deref(), args.replace, || {
            key.write(&args.key_out)?;
            written.set(true);
            Ok(())
        })
        .map_err(|err| {
            // The key file was written but the enrolment not committed: a key the hub does not
            // know must not be left behind to be mistaken for an enrolled one.
            if written.get() {
                let _ = std::fs::remove_file(&args.key_out);
            }
            let hint = if !args.replace && err.to_string().contains("already enrolled") {
                " (pass --replace to give it a new key)"
            } else {
                ""
            };
            // The name is shown escaped and cut short: it may be what was refused.
            let name = args.device.chars().take(80).collect::<String>();
            anyhow::Error::from(err)
                .context(format!("cannot enrol `{}`{hint}", name.escape_debug()))
        })?;
    let binding = match &enrolled.device_id {
        Some(device_id) => format!("speaks for logbook device {device_id}"),
        None => "its first batch binds it to its logbook's device".to_owned(),
    };
    println!(
        "enrolled device `{}` with key {} ({binding}); secret key written to {}",
        enrolled.name,
        key.public().fingerprint(),
        args.key_out.display()
    );
    println!(
        "copy it to the device (keep it mode 0600) and sync with: synth-edge sync --db LOGBOOK --to URL --key-file {}",
        args.key_out.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn revoke(args: &RevokeArgs) -> anyhow::Result<ExitCode> {
    let logbook = Logbook::open(&args.db)?;
    let revoked = logbook.revoke_device(&args.device)?;
    println!(
        "revoked device `{}` at {}; its batches are refused from now on (re-enrol it with --replace to give it a new key)",
        revoked.name,
        revoked.revoked_at.as_deref().unwrap_or("now")
    );
    Ok(ExitCode::SUCCESS)
}

fn devices(args: &DevicesArgs) -> anyhow::Result<ExitCode> {
    let logbook = Logbook::open(&args.db)?;
    for device in logbook.enrolled_devices()? {
        let state = match &device.revoked_at {
            Some(revoked_at) => format!("revoked {revoked_at}"),
            None => "active".to_owned(),
        };
        println!(
            "{}\tkey {}\t{}\tenrolled {}\t{state}",
            device.name,
            crate::keys::fingerprint_of_hex(&device.public_key),
            device.device_id.as_deref().unwrap_or("(not bound yet)"),
            device.enrolled_at
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn serve(args: &ServeArgs) -> anyhow::Result<ExitCode> {
    let token = Token::read(&args.token_file)?;
    let stop = sync::stop_flag_on_signals()?;
    let hub = Hub::bind(Logbook::open(&args.db)?, &args.addr, token)?;
    println!("hub listening on http://{} with logbook {}", hub.address(), args.db.display());
    hub.serve_until(&stop)?;
    eprintln!("hub stopped on signal");
    Ok(ExitCode::SUCCESS)
}

fn import(args: &ImportArgs) -> anyhow::Result<ExitCode> {
    let logbook = Logbook::open(&args.db)?;
    for (path, summary) in sync::import_files(&logbook, &args.files)? {
        let note = if summary.changed_anything() { "" } else { " (already imported)" };
        println!("{}: {summary}{note}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}
