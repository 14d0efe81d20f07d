//! The appendix of runs: every study cell in the logbook, whatever its status, with its bundle,
//! samples and message.

use crate::report::doc::{Block, Cell, Column, Document, Row, text};
use crate::report::study::Study;

pub fn runs_section(document: &mut Document, study: &Study) {
    document.heading(1, "Runs", "runs");
    document.paragraph(vec![text("Every study cell in the logbook, oldest first. Bundles and samples are relative to the study folder.")]);
    let titles = ["cell", "status", "run", "metrics", "bundle", "samples", "message"];
    let columns = titles
        .iter()
        .map(|title| Column { group: None, title: (*title).to_owned(), label: true })
        .collect();
    let rows = study
        .runs
        .iter()
        .map(|run| {
            Row::Cells(vec![
                Cell::Text(run.params.cell.clone()),
                Cell::Text(run.status.to_string()),
                Cell::Text(run.run_id.get(..8).unwrap_or(&run.run_id).to_owned()),
                Cell::Text(run.n_metrics.to_string()),
                Cell::Text(run.params.bundle.clone()),
                Cell::Text(run.params.samples.clone()),
                run.message.as_deref().map_or(Cell::Empty, |message| {
                    Cell::Text(message.lines().next().unwrap_or_default().to_owned())
                }),
            ])
        })
        .collect();
    document.blocks.push(Block::Table { columns, rows });
}
