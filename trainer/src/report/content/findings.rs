//! The headline findings: which family led each axis on each dataset, by the axis score, and
//! whether one family won every axis anywhere.

use std::collections::BTreeMap;

use models::manifest::Family;

use crate::report::doc::{Block, Cell, Column, Document, Row, strong, text};
use crate::report::format::list;
use edge_runtime::metrics::Axis;

use crate::report::score::AxisScores;
use crate::report::study::Study;

pub fn findings(document: &mut Document, study: &Study, scores: &[Vec<AxisScores>]) {
    document.heading(1, "Headline findings", "findings");
    document.paragraph(vec![text(
        "Which family led each axis on each dataset, by the axis score (1 = best of the families at every fraction, 0 = worst; see Method).",
    )]);
    let mut columns = vec![Column { group: None, title: "dataset".to_owned(), label: true }];
    columns.extend(Axis::ALL.iter().map(|axis| Column {
        group: None,
        title: axis.to_string(),
        label: true,
    }));
    let mut rows = Vec::new();
    let mut statements = Vec::new();
    let mut leads: BTreeMap<Family, usize> = BTreeMap::new();
    let mut sole_winners = Vec::new();
    for (dataset, dataset_scores) in study.datasets.iter().zip(scores) {
        let mut cells = vec![Cell::Text(dataset.name.clone())];
        let mut axes_led: BTreeMap<Family, Vec<&str>> = BTreeMap::new();
        for axis_scores in dataset_scores {
            let leaders = axis_scores.leaders();
            let best = axis_scores
                .scores
                .iter()
                .filter_map(|(_, score)| *score)
                .fold(f64::NEG_INFINITY, f64::max);
            cells.push(if leaders.is_empty() {
                Cell::Empty
            } else {
                let names: Vec<&str> = leaders.iter().map(|leader| leader.as_str()).collect();
                Cell::Text(format!("{} ({best:.2})", names.join(" = ")))
            });
            for &leader in &leaders {
                axes_led.entry(leader).or_default().push(axis_scores.axis.as_str());
                *leads.entry(leader).or_default() += 1;
            }
        }
        rows.push(Row::Cells(cells));
        let parts: Vec<String> = dataset
            .families
            .iter()
            .filter_map(|family| {
                axes_led.get(family).map(|axes| format!("{family} led {}", list(axes)))
            })
            .collect();
        let every = dataset
            .families
            .iter()
            .find(|family| axes_led.get(family).is_some_and(|axes| axes.len() == Axis::ALL.len()));
        if let Some(&family) = every {
            sole_winners.push((dataset.name.clone(), family));
        }
        statements
            .push(vec![strong(dataset.name.clone()), text(format!(": {}.", parts.join("; ")))]);
    }
    document.blocks.push(Block::Table { columns, rows });
    document.blocks.push(Block::Bullets(statements));
    let mut verdict = match sole_winners.as_slice() {
        [] => vec![
            strong("No single family won every axis"),
            text(" on any dataset: each has its trade-offs."),
        ],
        winners => {
            let named: Vec<String> =
                winners.iter().map(|(dataset, family)| format!("{family} on {dataset}")).collect();
            vec![
                strong(format!(
                    "One family won every axis on {} of {} datasets",
                    winners.len(),
                    study.datasets.len()
                )),
                text(format!(": {}.", list(&named))),
            ]
        }
    };
    let total: usize = leads.values().sum();
    if total > 0 {
        let mut tally: Vec<(Family, usize)> = leads.into_iter().collect();
        // Most leads first; a tie by name.
        tally.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.as_str().cmp(b.0.as_str())));
        let tally: Vec<String> =
            tally.iter().map(|(family, count)| format!("{family} {count}")).collect();
        verdict.push(text(format!(
            " Axis leads over all datasets (ties count for each): {}.",
            list(&tally)
        )));
    }
    document.paragraph(verdict);
}
