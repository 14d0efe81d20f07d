//! `synth-edge report`: the study report (report.html, report.md, plots) of a study logbook.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use crate::report::{HTML_FILE, MARKDOWN_FILE, write_report};

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The study logbook (`DIR/study.sqlite`, written by `synth-train study`).
    #[arg(long)]
    pub db: PathBuf,
    /// The report folder: created, or replaced when it holds an earlier report.
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run(args: &ReportArgs) -> anyhow::Result<ExitCode> {
    write_report(&args.db, &args.out).with_context(|| {
        format!("writing the report of {} into {}", args.db.display(), args.out.display())
    })?;
    println!(
        "report: {} and {}",
        args.out.join(HTML_FILE).display(),
        args.out.join(MARKDOWN_FILE).display()
    );
    Ok(ExitCode::SUCCESS)
}
