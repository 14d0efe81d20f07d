//! One dataset's section: its heading, the six-axis table, the trade-off chart with the axis
//! scores, the charts against the fraction, the samples, and every metric in a folded table.

use std::path::Path;

use edge_runtime::metrics::Axis;
use models::Modality;
use models::manifest::Family;

use crate::error::Result;
use crate::report::assets::DatasetAssets;
use crate::report::content::{Report, charts, samples, summary};
use crate::report::doc::{Block, Cell, Column, Row, anchor, text};
use crate::report::format::{interval, number, seeds_text};
use crate::report::score::{AxisScores, direction};
use crate::report::study::DatasetResults;

/// Writes the section of `dataset`, showing the files in `assets` (loaded for it).
pub fn dataset_section(
    report: &mut Report,
    dataset: &DatasetResults,
    scores: &[AxisScores],
    assets: &DatasetAssets,
    out: &Path,
) -> Result<()> {
    let modality = match dataset.modality {
        Modality::Tabular => "table",
        Modality::Image => "images",
    };
    let label =
        if dataset.label.is_empty() { String::new() } else { format!(", label {}", dataset.label) };
    report.document.heading(
        1,
        &format!("Dataset {} ({modality}{label})", dataset.name),
        &anchor(&["dataset", &dataset.name]),
    );

    report.document.heading(2, "Six-axis table", &anchor(&["table", &dataset.name]));
    report.document.blocks.push(summary_table(dataset));

    report.document.heading(2, "Trade-offs", &anchor(&["tradeoff", &dataset.name]));
    charts::tradeoff(report, dataset, scores, out)?;
    report.document.blocks.push(scores_table(dataset, scores));

    report.document.heading(
        2,
        "Against the scarcity fraction",
        &anchor(&["fractions", &dataset.name]),
    );
    report.document.paragraph(vec![text("Key figures as the training data shrinks (left: least data). Bars are 95 % intervals; the full table below has every metric.")]);
    charts::against_fraction(report, dataset, out)?;

    match assets {
        DatasetAssets::Grids(grids) => samples::sample_grids(report, dataset, grids),
        DatasetAssets::Marginals { real, samples } => {
            samples::marginal_plots(report, dataset, real, samples, out)?
        }
    }

    report.document.blocks.push(Block::Folded {
        summary: format!(
            "Every metric on {} ({} metrics; click to open)",
            dataset.name,
            dataset.metrics.len()
        ),
        blocks: vec![full_table(dataset)],
    });
    Ok(())
}

fn summary_table(dataset: &DatasetResults) -> Block {
    let several_seeds = dataset.groups.iter().any(|group| group.seeds.len() > 1);
    let mut columns =
        vec![Column { group: Some(String::new()), title: "family".to_owned(), label: true }];
    if several_seeds {
        columns.push(Column { group: Some(String::new()), title: "seeds".to_owned(), label: true });
    }
    columns.extend(summary().map(|spec| Column {
        group: Some(spec.axis.to_string()),
        title: titled(spec.name),
        label: false,
    }));
    let mut rows = Vec::new();
    for &fraction in dataset.fractions.iter().rev() {
        rows.push(Row::Section(format!("fraction {fraction}")));
        for &family in &dataset.families {
            let Some(group) = dataset.group(family, fraction) else {
                continue;
            };
            let mut cells = vec![Cell::Text(family.to_string())];
            if several_seeds {
                cells.push(Cell::Text(seeds_text(&group.seeds)));
            }
            for spec in summary() {
                cells.push(figure_cell(dataset, family, fraction, spec.name, false));
            }
            rows.push(Row::Cells(cells));
        }
    }
    Block::Table { columns, rows }
}

fn scores_table(dataset: &DatasetResults, scores: &[AxisScores]) -> Block {
    let mut columns = vec![Column { group: None, title: "family".to_owned(), label: true }];
    columns.extend(scores.iter().map(|axis_scores| Column {
        group: None,
        title: format!("{} score", axis_scores.axis),
        label: false,
    }));
    let rows = dataset
        .families
        .iter()
        .map(|&family| {
            let mut cells = vec![Cell::Text(family.to_string())];
            for axis_scores in scores {
                let leaders = axis_scores.leaders();
                let score = axis_scores
                    .scores
                    .iter()
                    .find(|(name, _)| *name == family)
                    .and_then(|(_, score)| *score);
                cells.push(match score {
                    Some(score) => Cell::Figure {
                        value: format!("{score:.2}"),
                        interval: String::new(),
                        note: None,
                        best: leaders.contains(&family),
                    },
                    None => Cell::Empty,
                });
            }
            Row::Cells(cells)
        })
        .collect();
    Block::Table { columns, rows }
}

fn full_table(dataset: &DatasetResults) -> Block {
    let mut columns =
        vec![Column { group: Some(String::new()), title: "metric".to_owned(), label: true }];
    for &fraction in dataset.fractions.iter().rev() {
        for family in &dataset.families {
            columns.push(Column {
                group: Some(format!("fraction {fraction}")),
                title: family.to_string(),
                label: false,
            });
        }
    }
    let mut rows = Vec::new();
    let mut current_axis: Option<Axis> = None;
    for (axis, metric) in &dataset.metrics {
        if current_axis != Some(*axis) {
            rows.push(Row::Section(axis.to_string()));
            current_axis = Some(*axis);
        }
        let mut cells = vec![Cell::Text(titled(metric))];
        for &fraction in dataset.fractions.iter().rev() {
            for &family in &dataset.families {
                cells.push(figure_cell(dataset, family, fraction, metric, true));
            }
        }
        rows.push(Row::Cells(cells));
    }
    Block::Table { columns, rows }
}

/// A metric's name with its direction mark, kept on one line with it.
fn titled(metric: &str) -> String {
    let mark = direction(metric).mark();
    if mark.is_empty() { metric.to_owned() } else { format!("{metric}\u{a0}{mark}") }
}

/// A figure's cell, highlighted when it is the best of the families at its fraction (and not
/// all of them are equal).
fn figure_cell(
    dataset: &DatasetResults,
    family: Family,
    fraction: f64,
    metric: &str,
    with_n: bool,
) -> Cell {
    let Some(figure) = dataset.figure(family, fraction, metric) else {
        return Cell::Empty;
    };
    let direction = direction(metric);
    let others: Vec<f64> = dataset
        .families
        .iter()
        .filter_map(|&other| dataset.figure(other, fraction, metric))
        .filter_map(|other| direction.goodness(other.value))
        .collect();
    let tolerance = |value: f64| 1e-12 * value.abs().max(1.0);
    let best = direction.goodness(figure.value).is_some_and(|goodness| {
        others.iter().all(|other| goodness >= *other - tolerance(*other))
            && others.iter().any(|other| goodness > *other + tolerance(*other))
    });
    let mut notes = Vec::new();
    if let Some(sd) = figure.seed_sd {
        notes.push(format!("±{} sd, {} seeds", number(sd), figure.n_seeds));
    }
    if with_n {
        notes.push(format!("n={}", figure.n));
    }
    Cell::Figure {
        value: number(figure.value),
        interval: interval(figure),
        note: (!notes.is_empty()).then(|| notes.join(" · ")),
        best,
    }
}
