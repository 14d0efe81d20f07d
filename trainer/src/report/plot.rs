//! The report's charts as SVG text (plotters' SVG backend: text stays text, so no font files are
//! needed to draw it). Each function returns a whole `<svg>` document; the legend sits in its own
//! strip on the right so it never covers data.

use std::ops::Range;
use std::path::Path;

use plotters::coord::ranged1d::{Ranged, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use crate::error::{Error, Result};

/// Colour-blind-safe colours (Okabe & Ito), the three families first.
const PALETTE: [RGBColor; 6] = [
    RGBColor(0, 114, 178),
    RGBColor(230, 159, 0),
    RGBColor(0, 158, 115),
    RGBColor(213, 94, 0),
    RGBColor(204, 121, 167),
    RGBColor(86, 180, 233),
];
/// The real data in marginals.
const REAL: RGBColor = RGBColor(120, 120, 120);
const FONT: &str = "sans-serif";
const LEGEND_WIDTH: u32 = 78;

/// The colour of the family at `idx` in the report's family order.
pub fn family_color(idx: usize) -> RGBColor {
    PALETTE[idx % PALETTE.len()]
}

/// One family's line in a metric-against-fraction chart.
#[derive(Debug, Clone)]
pub struct Line {
    pub name: String,
    pub color: RGBColor,
    /// `(fraction index, value, interval low, interval high)`.
    pub points: Vec<(usize, f64, f64, f64)>,
}

/// A metric against the scarcity fraction: the fractions equally spaced left (scarce) to right,
/// one line per family with its intervals as error bars (each family nudged sideways so bars do
/// not hide each other). `log_y` for figures that span orders of magnitude (all values > 0).
///
/// `ideal`, for metrics best at a value (an AUC at 0.5), is drawn as a dashed reference line.
pub fn metric_by_fraction(
    file: &Path,
    title: &str,
    fractions: &[f64],
    lines: &[Line],
    log_y: bool,
    ideal: Option<f64>,
) -> Result<String> {
    let fail = |err: String| Error::Report {
        path: file.to_owned(),
        message: format!("drawing the chart: {err}"),
    };
    let (width, height) = (360, 260);
    let mut finite: Vec<f64> = lines
        .iter()
        .flat_map(|line| line.points.iter())
        .flat_map(|&(_, value, low, high)| [value, low, high])
        .filter(|value| value.is_finite())
        .collect();
    finite.extend(ideal);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|err| fail(err.to_string()))?;
        let (plot_area, legend_area) = root.split_horizontally(width - LEGEND_WIDTH);
        let labels: Vec<String> = fractions.iter().map(|fraction| format!("{fraction}")).collect();
        let x_range = -0.5..(fractions.len() as f64 - 0.5);
        let n_fractions = fractions.len();
        let positive: Vec<f64> = finite.iter().copied().filter(|value| *value > 0.0).collect();
        if log_y && !positive.is_empty() {
            let low = positive.iter().copied().fold(f64::INFINITY, f64::min) / 1.5;
            let high = positive.iter().copied().fold(f64::NEG_INFINITY, f64::max) * 1.5;
            let chart = ChartBuilder::on(&plot_area)
                .caption(title, (FONT, 15))
                .margin(6)
                .x_label_area_size(34)
                .y_label_area_size(58)
                .build_cartesian_2d(x_range, (low..high).log_scale())
                .map_err(|err| fail(err.to_string()))?;
            draw_lines(chart, &labels, n_fractions, lines, None, ideal).map_err(fail)?;
        } else {
            let y_range = padded(&finite);
            let chart = ChartBuilder::on(&plot_area)
                .caption(title, (FONT, 15))
                .margin(6)
                .x_label_area_size(34)
                .y_label_area_size(58)
                .build_cartesian_2d(x_range, y_range.clone())
                .map_err(|err| fail(err.to_string()))?;
            draw_lines(
                chart,
                &labels,
                n_fractions,
                lines,
                Some(decimals_for(y_range.end - y_range.start)),
                ideal,
            )
            .map_err(fail)?;
        }
        let entries: Vec<(&str, RGBColor)> =
            lines.iter().map(|line| (line.name.as_str(), line.color)).collect();
        legend(&legend_area, &entries).map_err(fail)?;
        root.present().map_err(|err| fail(err.to_string()))?;
    }
    Ok(svg)
}

/// Draws the mesh and the lines; y ticks get `decimals` places, or [`tick`]'s short form (log axes).
fn draw_lines<Y>(
    mut chart: ChartContext<'_, SVGBackend<'_>, Cartesian2d<RangedCoordf64, Y>>,
    labels: &[String],
    n_fractions: usize,
    lines: &[Line],
    decimals: Option<usize>,
    ideal: Option<f64>,
) -> std::result::Result<(), String>
where
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let x_label = |position: &f64| label_at(labels, *position);
    let y_label = |value: &f64| match decimals {
        Some(decimals) if value.abs() < 1e4 => format!("{value:.decimals$}"),
        _ => tick(*value),
    };
    chart
        .configure_mesh()
        .x_labels(n_fractions + 1)
        .x_label_formatter(&x_label)
        .y_labels(6)
        .y_label_formatter(&y_label)
        .max_light_lines(1)
        .x_desc("share of the train part used")
        .disable_x_mesh()
        .light_line_style(RGBColor(235, 235, 235))
        .bold_line_style(RGBColor(225, 225, 225))
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 12))
        .draw()
        .map_err(|err| err.to_string())?;
    if let Some(ideal) = ideal {
        let (left, right) = (-0.5, n_fractions as f64 - 0.5);
        let dashes = (0..40).map(|idx| left + (right - left) * idx as f64 / 40.0).step_by(2);
        let style = ShapeStyle::from(&RGBColor(90, 90, 90)).stroke_width(1);
        chart
            .draw_series(dashes.map(|start| {
                PathElement::new(
                    vec![(start, ideal), (start + (right - left) / 40.0, ideal)],
                    style,
                )
            }))
            .map_err(|err| err.to_string())?;
    }
    let n_lines = lines.len().max(1) as f64;
    for (line_idx, line) in lines.iter().enumerate() {
        let nudge = (line_idx as f64 - (n_lines - 1.0) / 2.0) * 0.07;
        let points: Vec<(f64, f64, f64, f64)> = line
            .points
            .iter()
            .filter(|(_, value, _, _)| value.is_finite())
            .map(|&(x, value, low, high)| (x as f64 + nudge, value, low, high))
            .collect();
        let style = ShapeStyle::from(&line.color).stroke_width(2);
        chart
            .draw_series(LineSeries::new(points.iter().map(|&(x, value, _, _)| (x, value)), style))
            .map_err(|err| err.to_string())?;
        for &(x, value, low, high) in &points {
            if low.is_finite() && high.is_finite() {
                let bar = ShapeStyle::from(&line.color).stroke_width(1);
                chart
                    .draw_series([
                        PathElement::new(vec![(x, low), (x, high)], bar),
                        PathElement::new(vec![(x - 0.04, low), (x + 0.04, low)], bar),
                        PathElement::new(vec![(x - 0.04, high), (x + 0.04, high)], bar),
                    ])
                    .map_err(|err| err.to_string())?;
            }
            chart
                .draw_series([Circle::new((x, value), 3, line.color.filled())])
                .map_err(|err| err.to_string())?;
        }
    }
    Ok(())
}

/// The trade-off chart: one group of bars per axis, one bar per family, scores in [0, 1].
pub fn tradeoff(
    file: &Path,
    title: &str,
    axes: &[&str],
    families: &[(String, RGBColor, Vec<Option<f64>>)],
) -> Result<String> {
    let fail = |err: String| Error::Report {
        path: file.to_owned(),
        message: format!("drawing the chart: {err}"),
    };
    let (width, height) = (760, 330);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|err| fail(err.to_string()))?;
        let (plot_area, legend_area) = root.split_horizontally(width - LEGEND_WIDTH);
        let mut chart = ChartBuilder::on(&plot_area)
            .caption(title, (FONT, 16))
            .margin(8)
            .x_label_area_size(30)
            .y_label_area_size(48)
            .build_cartesian_2d(-0.5..(axes.len() as f64 - 0.5), 0.0..1.05)
            .map_err(|err| fail(err.to_string()))?;
        let labels: Vec<String> = axes.iter().map(|axis| (*axis).to_owned()).collect();
        let x_label = |position: &f64| label_at(&labels, *position);
        chart
            .configure_mesh()
            .x_labels(axes.len() + 1)
            .x_label_formatter(&x_label)
            .y_labels(6)
            .y_label_formatter(&|value| format!("{value:.1}"))
            .y_desc("score (1 = best family)")
            .disable_x_mesh()
            .max_light_lines(1)
            .light_line_style(RGBColor(235, 235, 235))
            .bold_line_style(RGBColor(225, 225, 225))
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 12))
            .draw()
            .map_err(|err| fail(err.to_string()))?;
        let bar_width = 0.8 / families.len().max(1) as f64;
        for (family_idx, (_, color, scores)) in families.iter().enumerate() {
            let left = |axis_idx: usize| axis_idx as f64 - 0.4 + family_idx as f64 * bar_width;
            let bars = scores.iter().enumerate().filter_map(|(axis_idx, score)| {
                // A zero score still shows as a sliver, so a missing bar means "not measured".
                score.map(|score| {
                    Rectangle::new(
                        [
                            (left(axis_idx) + 0.01, 0.0),
                            (left(axis_idx) + bar_width - 0.01, score.max(0.01)),
                        ],
                        color.filled(),
                    )
                })
            });
            chart.draw_series(bars).map_err(|err| fail(err.to_string()))?;
        }
        let entries: Vec<(&str, RGBColor)> =
            families.iter().map(|(name, color, _)| (name.as_str(), *color)).collect();
        legend(&legend_area, &entries).map_err(fail)?;
        root.present().map_err(|err| fail(err.to_string()))?;
    }
    Ok(svg)
}

/// Bars of a marginal distribution: `labels` (bin ranges or categories) along x, one bar per
/// source (the real data first) per label, heights are shares in [0, 1].
pub fn marginal(
    file: &Path,
    title: &str,
    labels: &[String],
    sources: &[(String, Option<RGBColor>, Vec<f64>)],
) -> Result<String> {
    let fail = |err: String| Error::Report {
        path: file.to_owned(),
        message: format!("drawing the chart: {err}"),
    };
    let (width, height) = (520, 290);
    let top = sources
        .iter()
        .flat_map(|(_, _, shares)| shares.iter().copied())
        .filter(|share| share.is_finite())
        .fold(0.0, f64::max);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|err| fail(err.to_string()))?;
        let (plot_area, legend_area) = root.split_horizontally(width - LEGEND_WIDTH);
        let mut chart = ChartBuilder::on(&plot_area)
            .caption(title, (FONT, 15))
            .margin(6)
            .x_label_area_size(34)
            .y_label_area_size(48)
            .build_cartesian_2d(-0.5..(labels.len() as f64 - 0.5), 0.0..(top * 1.1).max(0.05))
            .map_err(|err| fail(err.to_string()))?;
        // At most about eight labels fit; show every k-th.
        let every = labels.len().div_ceil(8).max(1);
        let thinned: Vec<String> = labels
            .iter()
            .enumerate()
            .map(|(idx, label)| if idx % every == 0 { label.clone() } else { String::new() })
            .collect();
        let x_label = |position: &f64| label_at(&thinned, *position);
        chart
            .configure_mesh()
            .x_labels(labels.len() + 1)
            .x_label_formatter(&x_label)
            .y_labels(5)
            .y_label_formatter(&|value| format!("{:.0}%", value * 100.0))
            .y_desc("share of rows")
            .disable_x_mesh()
            .max_light_lines(1)
            .light_line_style(RGBColor(235, 235, 235))
            .bold_line_style(RGBColor(225, 225, 225))
            .label_style((FONT, 11))
            .axis_desc_style((FONT, 12))
            .draw()
            .map_err(|err| fail(err.to_string()))?;
        let bar_width = 0.84 / sources.len().max(1) as f64;
        for (source_idx, (_, color, shares)) in sources.iter().enumerate() {
            let color = color.unwrap_or(REAL);
            let left = |idx: usize| idx as f64 - 0.42 + source_idx as f64 * bar_width;
            let bars = shares.iter().enumerate().map(|(idx, share)| {
                Rectangle::new([(left(idx), 0.0), (left(idx) + bar_width, *share)], color.filled())
            });
            chart.draw_series(bars).map_err(|err| fail(err.to_string()))?;
        }
        let entries: Vec<(&str, RGBColor)> =
            sources.iter().map(|(name, color, _)| (name.as_str(), color.unwrap_or(REAL))).collect();
        legend(&legend_area, &entries).map_err(fail)?;
        root.present().map_err(|err| fail(err.to_string()))?;
    }
    Ok(svg)
}

/// The label of the integer position nearest `position`, or nothing between positions.
fn label_at(labels: &[String], position: f64) -> String {
    let nearest = position.round();
    if (position - nearest).abs() > 1e-6 || nearest < 0.0 {
        return String::new();
    }
    labels.get(nearest as usize).cloned().unwrap_or_default()
}

/// Decimal places that tell apart ticks about a sixth of `span` apart.
fn decimals_for(span: f64) -> usize {
    let step = span / 6.0;
    if step.is_nan() || step <= 0.0 || step >= 1.0 {
        return 0;
    }
    (-step.log10()).ceil().clamp(0.0, 4.0) as usize
}

/// A y range around `values` with a little room above and below.
fn padded(values: &[f64]) -> Range<f64> {
    let low = values.iter().copied().fold(f64::INFINITY, f64::min);
    let high = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !low.is_finite() || !high.is_finite() {
        return 0.0..1.0;
    }
    let span = if high > low { high - low } else { low.abs().max(1.0) * 0.1 };
    (low - span * 0.08)..(high + span * 0.08)
}

/// An axis tick: few digits, thousands as `k`.
pub fn tick(value: f64) -> String {
    let magnitude = value.abs();
    if magnitude >= 1e6 {
        format!("{:.1}M", value / 1e6)
    } else if magnitude >= 1e4 {
        format!("{:.0}k", value / 1e3)
    } else if magnitude >= 1e3 {
        let text = format!("{:.1}", value / 1e3);
        format!("{}k", text.strip_suffix(".0").unwrap_or(&text))
    } else if magnitude >= 10.0 || magnitude == 0.0 {
        format!("{value:.0}")
    } else if magnitude >= 1.0 {
        format!("{value:.1}")
    } else {
        let text = format!("{value:.3}");
        text.trim_end_matches('0').to_owned()
    }
}

/// Colour swatches with names, top-down.
fn legend(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    entries: &[(&str, RGBColor)],
) -> std::result::Result<(), String> {
    for (idx, (name, color)) in entries.iter().enumerate() {
        let y = 40 + idx as i32 * 22;
        area.draw(&Rectangle::new([(4, y), (18, y + 12)], color.filled()))
            .map_err(|err| err.to_string())?;
        area.draw(&Text::new((*name).to_owned(), (24, y), (FONT, 13).into_font()))
            .map_err(|err| err.to_string())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_short() {
        let check = |value: f64, expected: &str| assert_eq!(tick(value), expected, "{value}");
        check(0.0, "0");
        check(0.25, "0.25");
        check(0.3000000004, "0.3");
        check(2.5, "2.5");
        check(42.0, "42");
        check(1500.0, "1.5k");
        check(1000.0, "1k");
        check(68_620.0, "69k");
        check(2_500_000.0, "2.5M");
    }

    #[test]
    fn tick_decimals_follow_the_spacing() {
        assert_eq!(decimals_for(0.12), 2, "ticks 0.02 apart");
        assert_eq!(decimals_for(0.6), 1);
        assert_eq!(decimals_for(30.0), 0);
        assert_eq!(decimals_for(0.0), 0);
    }

    #[test]
    fn labels_sit_on_integer_positions_only() {
        let labels = vec!["0.1".to_owned(), "1".to_owned()];
        assert_eq!(label_at(&labels, 0.0), "0.1");
        assert_eq!(label_at(&labels, 1.0), "1");
        assert_eq!(label_at(&labels, 0.5), "");
        assert_eq!(label_at(&labels, -1.0), "");
        assert_eq!(label_at(&labels, 2.0), "");
    }
}
