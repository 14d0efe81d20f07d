//! `synth-train report`: the study report (report.html, report.md, plots) of a study logbook.

use anyhow::Context;

use crate::cli::ReportArgs;
use crate::report::{HTML_FILE, MARKDOWN_FILE, write_report};

pub fn run(args: &ReportArgs) -> anyhow::Result<()> {
    write_report(&args.db, &args.out).with_context(|| {
        format!("writing the report of {} into {}", args.db.display(), args.out.display())
    })?;
    println!(
        "report: {} and {}",
        args.out.join(HTML_FILE).display(),
        args.out.join(MARKDOWN_FILE).display()
    );
    Ok(())
}
