//! `synth-edge hub serve` (a workstation's HTTP hub that devices sync into) and
//! `synth-edge hub import` (apply batch files carried from a site with no link).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

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
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The hub's logbook (created if missing).
    #[arg(long)]
    pub db: PathBuf,
    /// Address to listen on; 0.0.0.0:8750 to serve the local network, port 0 for any free port.
    #[arg(long, default_value = "127.0.0.1:8750")]
    pub addr: String,
    /// A file holding the token devices must present.
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
    }
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
