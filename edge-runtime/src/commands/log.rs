//! `synth-edge log`: the latest runs in a logbook with their headline figure on each axis, or
//! one run in full (`--run ID`, any unique prefix of its id).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::logbook::{Logbook, RunRecord};
use crate::metrics::Metric;

#[derive(Debug, Args)]
pub struct LogArgs {
    /// The logbook.
    #[arg(long)]
    pub db: PathBuf,
    /// How many runs to list, newest first, 1 to 100,000.
    #[arg(long, default_value_t = 20, value_parser = crate::cli::count_in::<1, 100_000>)]
    pub limit: usize,
    /// Show one run in full: parameters and every metric.
    #[arg(long)]
    pub run: Option<String>,
}

pub fn run(args: &LogArgs) -> anyhow::Result<ExitCode> {
    if !args.db.is_file() {
        anyhow::bail!(
            "{}: no logbook there; expected the file given to --db by generate, bench or evaluate",
            args.db.display()
        );
    }
    let logbook = Logbook::open(&args.db)?;
    if let Some(id) = &args.run {
        let run = logbook
            .find_run(id)?
            .ok_or_else(|| anyhow::anyhow!("{}: no run with id {id}", args.db.display()))?;
        print(&run_text(&run)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    let runs = logbook.recent_runs(args.limit)?;
    if runs.is_empty() {
        print(&format!("no runs in {}\n", args.db.display()))?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut text = format!(
        "{:<8}  {:<19}  {:<8}  {:<11}  {:<12}  headline figures\n",
        "run", "started (UTC)", "kind", "status", "model"
    );
    for run in &runs {
        let figures: Vec<String> = run.headline_metrics.iter().map(describe).collect();
        let figures = match (&run.message, figures.is_empty()) {
            (Some(message), _) => message.lines().next().unwrap_or_default().to_owned(),
            (None, true) => "-".to_owned(),
            (None, false) => figures.join("; "),
        };
        text.push_str(&format!(
            "{:<8}  {:<19}  {:<8}  {:<11}  {:<12}  {figures}\n",
            run.id.get(..8).unwrap_or(&run.id),
            run.started_at.get(..19).unwrap_or(&run.started_at).replace('T', " "),
            run.kind,
            run.status.as_str(),
            run.model_sha256.as_deref().and_then(|sha| sha.get(..12)).unwrap_or("-"),
        ));
    }
    print(&text)?;
    Ok(ExitCode::SUCCESS)
}

/// Writes `text` to stdout; a reader that stopped reading (`synth-edge log | head`) is not an
/// error.
fn print(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(err) if err.kind() != std::io::ErrorKind::BrokenPipe => Err(err.into()),
        _ => Ok(()),
    }
}

fn run_text(run: &RunRecord) -> anyhow::Result<String> {
    let mut lines = vec![
        format!("run       {}", run.id),
        format!("kind      {}", run.kind),
        format!("status    {}", run.status),
        format!("device    {}", run.device_id),
        format!("model     {}", run.model_sha256.as_deref().unwrap_or("-")),
        format!("started   {}", run.started_at),
        format!("finished  {}", run.finished_at.as_deref().unwrap_or("-")),
    ];
    if let Some(message) = &run.message {
        lines.push(format!("message   {message}"));
    }
    lines.push(format!(
        "params    {}",
        serde_json::to_string_pretty(&run.params)?.replace('\n', "\n          ")
    ));
    lines.extend(run.metrics.iter().map(|metric| format!("  {}", describe(metric))));
    Ok(lines.join("\n") + "\n")
}

/// `efficiency/samples_per_second 1234 [1200, 1270] n=50`
fn describe(metric: &Metric) -> String {
    format!(
        "{}/{} {} [{}, {}] n={}",
        metric.axis,
        metric.name,
        figure(metric.value),
        figure(metric.ci_low),
        figure(metric.ci_high),
        metric.n
    )
}

/// A figure with precision to match its size.
fn figure(value: f64) -> String {
    match value.abs() {
        magnitude if magnitude >= 1000.0 => format!("{value:.0}"),
        magnitude if magnitude >= 1.0 => format!("{value:.2}"),
        _ => format!("{value:.4}"),
    }
}
