//! `synth-edge metrics`: the metric catalogue — every figure's name, axis, direction, whether a
//! release policy may bound it, and what it measures — as a table, Markdown (the README's) or
//! JSON.

use std::process::ExitCode;

use clap::Args;
use serde::Serialize;

use crate::metrics::catalogue::{CATALOGUE, Direction, Source, markdown_table};

#[derive(Debug, Args)]
pub struct MetricsArgs {
    /// Print the README's Markdown table.
    #[arg(long, conflicts_with = "json")]
    pub markdown: bool,
    /// Print a JSON array, one object per metric.
    #[arg(long)]
    pub json: bool,
}

/// One catalogue entry as JSON.
#[derive(Debug, Serialize)]
struct MetricLine {
    name: &'static str,
    axis: &'static str,
    /// `higher`, `lower`, `target` or `unranked`.
    better: &'static str,
    /// The ideal value of a `target` metric.
    target: Option<f64>,
    /// `assessment`, `generation`, `bench` or `training`.
    source: &'static str,
    gateable: bool,
    description: &'static str,
}

pub fn run(args: &MetricsArgs) -> anyhow::Result<ExitCode> {
    if args.markdown {
        print!("{}", markdown_table());
        return Ok(ExitCode::SUCCESS);
    }
    if args.json {
        let lines: Vec<MetricLine> = CATALOGUE
            .iter()
            .map(|spec| {
                let (better, target) = match spec.direction {
                    Direction::Higher => ("higher", None),
                    Direction::Lower => ("lower", None),
                    Direction::Target(ideal) => ("target", Some(ideal)),
                    Direction::Unranked => ("unranked", None),
                };
                let source = match spec.source {
                    Source::Assessment => "assessment",
                    Source::Generation => "generation",
                    Source::Bench => "bench",
                    Source::Training => "training",
                };
                MetricLine {
                    name: spec.name,
                    axis: spec.axis.as_str(),
                    better,
                    target,
                    source,
                    gateable: spec.gateable,
                    description: spec.description,
                }
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&lines)?);
        return Ok(ExitCode::SUCCESS);
    }
    let width = CATALOGUE.iter().map(|spec| spec.name.len()).max().unwrap_or(10);
    println!(
        "{:<10}  {:<width$}  {:<16}  {:<4}  what it measures",
        "axis", "metric", "better", "gate"
    );
    for spec in CATALOGUE {
        println!(
            "{:<10}  {:<width$}  {:<16}  {:<4}  {}",
            spec.axis.as_str(),
            spec.name,
            spec.direction.describe(),
            if spec.gateable { "yes" } else { "" },
            spec.description
        );
    }
    Ok(ExitCode::SUCCESS)
}
