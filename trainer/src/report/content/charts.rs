//! A dataset's charts: the trade-off of the six axis scores, and the key figures against the
//! scarcity fraction. Each chart is an SVG file beside the report, shown as an image.

use std::path::Path;

use models::manifest::Family;
use plotters::style::RGBColor;

use crate::error::Result;
use crate::report::content::{PLOTS_DIR, Report, charted};
use crate::report::doc::{Block, Image, Layout, file_safe, text};
use crate::report::plot::{self, Line};
use crate::report::score::{AxisScores, Direction};
use crate::report::study::DatasetResults;

/// A family keeps its colour across every chart of the report.
pub fn family_color(family: Family) -> RGBColor {
    match family {
        Family::Vae => plot::family_color(0),
        Family::Gan => plot::family_color(1),
        Family::Ddpm => plot::family_color(2),
        Family::Ldm => plot::family_color(3),
    }
}

/// The trade-off chart (a bar per family and axis score) with its explanation.
pub fn tradeoff(
    report: &mut Report,
    dataset: &DatasetResults,
    scores: &[AxisScores],
    out: &Path,
) -> Result<()> {
    let axes: Vec<&str> = scores.iter().map(|axis_scores| axis_scores.axis.as_str()).collect();
    let bars: Vec<(String, RGBColor, Vec<Option<f64>>)> = dataset
        .families
        .iter()
        .map(|&family| {
            let family_scores = scores
                .iter()
                .map(|axis_scores| {
                    axis_scores
                        .scores
                        .iter()
                        .find(|(name, _)| *name == family)
                        .and_then(|(_, score)| *score)
                })
                .collect();
            (family.to_string(), family_color(family), family_scores)
        })
        .collect();
    let path = format!("{PLOTS_DIR}/{}-tradeoff.svg", file_safe(&dataset.name));
    let svg = plot::tradeoff(
        &out.join(&path),
        &format!("{}: axis scores per family", dataset.name),
        &axes,
        &bars,
    )?;
    report.files.insert(path.clone(), svg.into_bytes());
    report.document.paragraph(vec![text(
        "Each bar is a family's score on one axis: 1 = the best family on every metric of that axis at every fraction, 0 = the worst \
         (see Method for the metrics). Efficiency is sampling speed.",
    )]);
    report.document.blocks.push(Block::Images(
        vec![Image {
            path,
            caption: format!("{}: trade-off of the six axes", dataset.name),
            pixelated: false,
        }],
        Layout::Single,
    ));
    Ok(())
}

/// One chart per charted metric the dataset has: a line per family over the fractions.
pub fn against_fraction(report: &mut Report, dataset: &DatasetResults, out: &Path) -> Result<()> {
    let stem = file_safe(&dataset.name);
    let mut images = Vec::new();
    for spec in charted() {
        let (axis, metric, direction) = (spec.axis, spec.name, spec.direction);
        let lines: Vec<Line> = dataset
            .families
            .iter()
            .map(|&family| Line {
                name: family.to_string(),
                color: family_color(family),
                points: dataset
                    .fractions
                    .iter()
                    .enumerate()
                    .filter_map(|(x, &fraction)| {
                        dataset
                            .figure(family, fraction, metric)
                            .map(|figure| (x, figure.value, figure.low, figure.high))
                    })
                    .collect(),
            })
            .collect();
        if lines.iter().all(|line| line.points.is_empty()) {
            continue;
        }
        let path = format!("{PLOTS_DIR}/{stem}-{metric}.svg");
        let title = format!("{axis}: {metric} {}", direction.mark());
        let ideal = match direction {
            Direction::Target(ideal) => Some(ideal),
            _ => None,
        };
        let svg = plot::metric_by_fraction(
            &out.join(&path),
            &title,
            &dataset.fractions,
            &lines,
            spec.log_scale,
            ideal,
        )?;
        report.files.insert(path.clone(), svg.into_bytes());
        images.push(Image {
            path,
            caption: format!("{}: {metric} ({}) by fraction", dataset.name, direction.describe()),
            pixelated: false,
        });
    }
    report.document.blocks.push(Block::Images(images, Layout::Small));
    Ok(())
}
