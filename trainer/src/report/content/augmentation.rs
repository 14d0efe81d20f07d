//! Which way of adding rows to the scarce train part helps a classifier most: synthetic rows
//! (`augmentation_gain`), classical augmentation (`classical_augmentation_gain`) or half of each
//! (`combined_augmentation_gain`), per dataset and scarcity fraction.
//!
//! Each gain is a cell's figure, already the mean over its seeds. The synthetic and combined
//! gains depend on the generator, so each is shown for the family with the largest mean gain at
//! that fraction; the classical gain does not (every family's cell augments the same train part),
//! so it is the mean over the families' cells. The winner is the largest of the three.

use edge_runtime::metrics::MetricId;
use models::manifest::Family;

use crate::report::doc::{Block, Cell, Column, Document, Row, strong, text};
use crate::report::format::{interval, number};
use crate::report::study::{DatasetResults, Figure, Study};

/// The three ways, in the order the table shows them.
const WAYS: [(MetricId, &str); 3] = [
    (MetricId::AugmentationGain, "synthetic"),
    (MetricId::ClassicalAugmentationGain, "classical"),
    (MetricId::CombinedAugmentationGain, "combined"),
];

/// One way's gain at one fraction: the family it is shown for (`None` for the classical mean)
/// and the figure.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gain {
    pub family: Option<Family>,
    pub figure: Figure,
}

/// The best family's figure of `id` at `fraction` (the first family on a tie).
fn best_family(dataset: &DatasetResults, fraction: f64, id: MetricId) -> Option<Gain> {
    dataset
        .families
        .iter()
        .filter_map(|&family| {
            let figure = dataset.figure(family, fraction, id.name())?;
            figure.value.is_finite().then_some(Gain { family: Some(family), figure: *figure })
        })
        .fold(None, |best: Option<Gain>, gain| match best {
            Some(best) if best.figure.value >= gain.figure.value => Some(best),
            _ => Some(gain),
        })
}

/// The mean over the families' cells of `id` at `fraction`, its interval the envelope.
fn family_mean(dataset: &DatasetResults, fraction: f64, id: MetricId) -> Option<Gain> {
    let figures: Vec<&Figure> = dataset
        .families
        .iter()
        .filter_map(|&family| dataset.figure(family, fraction, id.name()))
        .filter(|figure| figure.value.is_finite())
        .collect();
    let first = figures.first()?;
    let value = figures.iter().map(|figure| figure.value).sum::<f64>() / figures.len() as f64;
    let figure = Figure {
        value,
        low: figures.iter().map(|figure| figure.low).fold(f64::INFINITY, f64::min),
        high: figures.iter().map(|figure| figure.high).fold(f64::NEG_INFINITY, f64::max),
        n: figures.iter().map(|figure| figure.n).min().unwrap_or(first.n),
        n_seeds: figures.iter().map(|figure| figure.n_seeds).sum(),
        seed_sd: None,
    };
    Some(Gain { family: None, figure })
}

/// The three gains of `dataset` at `fraction`, in [`WAYS`] order.
pub fn gains(dataset: &DatasetResults, fraction: f64) -> [Option<Gain>; 3] {
    [
        best_family(dataset, fraction, MetricId::AugmentationGain),
        family_mean(dataset, fraction, MetricId::ClassicalAugmentationGain),
        best_family(dataset, fraction, MetricId::CombinedAugmentationGain),
    ]
}

/// The index in [`WAYS`] of the largest gain (the first on a tie).
fn winner(gains: &[Option<Gain>; 3]) -> Option<usize> {
    gains
        .iter()
        .enumerate()
        .filter_map(|(idx, gain)| gain.map(|gain| (idx, gain.figure.value)))
        .fold(None, |best: Option<(usize, f64)>, (idx, value)| match best {
            Some((_, top)) if top >= value => best,
            _ => Some((idx, value)),
        })
        .map(|(idx, _)| idx)
}

fn named(way: usize, gain: &Gain) -> String {
    match gain.family {
        Some(family) => format!("{} ({family})", WAYS[way].1),
        None => WAYS[way].1.to_owned(),
    }
}

fn signed(value: f64) -> String {
    if value > 0.0 { format!("+{}", number(value)) } else { number(value) }
}

/// Whether any dataset has a fraction with one of the three gains (the section is shown).
pub fn has_gains(study: &Study) -> bool {
    study.datasets.iter().any(|dataset| {
        dataset.fractions.iter().any(|&fraction| winner(&gains(dataset, fraction)).is_some())
    })
}

/// The section: a table dataset × fraction → winner and the three gains, and one line per row.
/// Nothing when no cell has any of the three figures.
pub fn augmentation(document: &mut Document, study: &Study) {
    let mut rows = Vec::new();
    let mut statements = Vec::new();
    for dataset in &study.datasets {
        for &fraction in &dataset.fractions {
            let gains = gains(dataset, fraction);
            let Some(best) = winner(&gains) else { continue };
            let mut cells = vec![
                Cell::Text(dataset.name.clone()),
                Cell::Text(fraction.to_string()),
                Cell::Text(WAYS[best].1.to_owned()),
            ];
            for (way, gain) in gains.iter().enumerate() {
                cells.push(match gain {
                    Some(gain) => Cell::Figure {
                        value: signed(gain.figure.value),
                        interval: interval(&gain.figure),
                        note: gain.family.map(|family| format!("({family})")),
                        best: way == best,
                    },
                    None => Cell::Empty,
                });
            }
            rows.push(Row::Cells(cells));
            let others: Vec<String> = gains
                .iter()
                .enumerate()
                .filter(|(way, _)| *way != best)
                .filter_map(|(way, gain)| {
                    gain.map(|gain| format!("{} {}", named(way, &gain), signed(gain.figure.value)))
                })
                .collect();
            let Some(top) = gains[best] else { continue };
            let against = if others.is_empty() {
                String::new()
            } else {
                format!(" against {}", others.join(" and "))
            };
            statements.push(vec![
                strong(format!("{} at fraction {fraction}", dataset.name)),
                text(": "),
                strong(named(best, &top)),
                text(format!(" wins with {}{against}.", signed(top.figure.value))),
            ]);
        }
    }
    if rows.is_empty() {
        return;
    }
    document.heading(1, "Synthetic or classical augmentation", "augmentation");
    document.paragraph(vec![text(
        "Hold-out accuracy gain over the real train part alone when a logistic regression also \
         trains on synthetic rows, on as many classical augmentations of the train part (images: \
         flips, rotations, shifts, crops; tables: jitter and SMOTE), or on half of each. The \
         synthetic and combined gains are the best family's at that fraction (named beside it); \
         the classical gain is the mean over the families' cells. Means over seeds, intervals \
         the envelope of the seeds' 95 % intervals.",
    )]);
    let mut columns: Vec<Column> = ["dataset", "fraction", "winner"]
        .into_iter()
        .map(|title| Column { group: None, title: title.to_owned(), label: true })
        .collect();
    columns.extend(WAYS.iter().map(|(id, _)| Column {
        group: None,
        title: format!("{} ↑", id.name()),
        label: false,
    }));
    document.blocks.push(Block::Table { columns, rows });
    document.blocks.push(Block::Bullets(statements));
}
