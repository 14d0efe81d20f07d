//! The method: how figures, axis scores and the recommendation are computed, and which metrics
//! make up each axis score.

use edge_runtime::metrics::Axis;

use crate::report::doc::{Block, Document, strong, text};
use crate::report::score::score_metrics;

pub fn method(document: &mut Document) {
    document.heading(1, "Method", "method");
    let mut bullets = vec![
        vec![text(
            "Figures: each cell (dataset × family × fraction × seed) was trained, sampled and assessed by the edge runtime; intervals are the 95 % intervals \
             the assessment reports (bootstrap or Wilson). With several seeds a figure is the mean over seeds, its interval the envelope of the seeds' \
             intervals (lowest low to highest high), and the standard deviation across seeds is shown beside it.",
        )],
        vec![text(
            "Axis score: at each fraction, each scoring metric is oriented so that higher is better (lower-is-better metrics negated, AUCs and density \
             by their distance to the ideal, sampling speed on a log scale), then min-max normalised across the families: 1 for the best family, 0 for \
             the worst, 0.5 each when all are equal. A family's axis score is the mean over the axis's metrics and all fractions.",
        )],
        vec![text(
            "Recommendation: one deciding figure per priority, compared at the smallest and the largest fraction; the margin is the difference to the \
             runner-up, and a lead is called uncertain when the two intervals overlap (for AUCs, the intervals of the distance to 0.5).",
        )],
    ];
    for axis in Axis::ALL {
        let described: Vec<String> = score_metrics(axis)
            .map(|spec| format!("{} ({})", spec.name, spec.direction.describe()))
            .collect();
        bullets.push(vec![
            strong(format!("{axis} score:")),
            text(format!(" {}", described.join(", "))),
        ]);
    }
    document.blocks.push(Block::Bullets(bullets));
}
