//! What the report says: the findings, the recommendation, and per dataset the six-axis table,
//! the trade-off chart, the metric-against-fraction charts, the samples (grids for images,
//! marginals for tables) and every metric; then the runs and the method. Builds the document
//! and the files beside it (plots, sample grids), writing nothing itself.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;

use crate::error::{Error, Result};
use crate::logbook::RunStatus;
use crate::report::doc::{
    Block, Cell, Column, Document, Image, Inline, Layout, Row, anchor, caveat, code, file_safe,
    strong, text,
};
use crate::report::marginals::{self, Marginal};
use crate::report::plot::{self, Line};
use crate::report::score::{
    self, AxisScores, Direction, PRIORITIES, Priority, SCORE_METRICS, Verdict, direction,
};
use crate::report::study::{DatasetResults, Figure, Modality, Study};

/// The metrics charted against the fraction, by axis (the full table has every metric).
const CHARTED: [(&str, &str); 8] = [
    ("fidelity", "precision"),
    ("fidelity", "frechet_distance"),
    ("diversity", "recall"),
    ("efficiency", "samples_per_second"),
    ("utility", "tstr_accuracy"),
    ("robustness", "tstr_perturbed_accuracy_ratio"),
    ("privacy", "mia_auc"),
    ("privacy", "dcr_train_median"),
];

/// The columns of the six-axis table: a figure or two per axis.
const SUMMARY: [(&str, &str); 10] = [
    ("fidelity", "precision"),
    ("fidelity", "frechet_distance"),
    ("diversity", "recall"),
    ("diversity", "coverage"),
    ("efficiency", "samples_per_second"),
    ("utility", "tstr_accuracy"),
    ("utility", "tstr_trtr_ratio"),
    ("robustness", "tstr_perturbed_accuracy_ratio"),
    ("privacy", "mia_auc"),
    ("privacy", "dcr_train_median"),
];

pub const PLOTS_DIR: &str = "plots";
pub const SAMPLES_DIR: &str = "samples";

/// The report's document and the files it shows, by path relative to the report folder.
#[derive(Debug, Clone)]
pub struct Report {
    pub document: Document,
    pub files: BTreeMap<String, Vec<u8>>,
}

/// Builds the report of `study`. `study_dir` is the folder holding the logbook (samples paths are
/// relative to it); `out` only names files in error messages.
pub fn build(
    study: &Study,
    db: &Path,
    study_dir: &Path,
    out: &Path,
    written_at: &str,
) -> Result<Report> {
    let mut report = Report {
        document: Document { title: "fieldsynth study report".to_owned(), blocks: Vec::new() },
        files: BTreeMap::new(),
    };
    let scores: Vec<Vec<AxisScores>> = study.datasets.iter().map(score::axis_scores).collect();

    let mut contents = vec![
        ("Headline findings".to_owned(), "findings".to_owned()),
        ("Recommendation".to_owned(), "recommendation".to_owned()),
    ];
    for dataset in &study.datasets {
        contents.push((format!("Dataset {}", dataset.name), anchor(&["dataset", &dataset.name])));
    }
    contents.extend([
        ("Runs".to_owned(), "runs".to_owned()),
        ("Method".to_owned(), "method".to_owned()),
    ]);

    introduction(&mut report.document, study, db, written_at);
    report.document.blocks.push(Block::Contents(contents));
    findings(&mut report.document, study, &scores);
    recommendation(&mut report.document, study, &scores);
    for (dataset, dataset_scores) in study.datasets.iter().zip(&scores) {
        dataset_section(&mut report, dataset, dataset_scores, study_dir, out)?;
    }
    runs_section(&mut report.document, study);
    method(&mut report.document);
    Ok(report)
}

fn introduction(document: &mut Document, study: &Study, db: &Path, written_at: &str) {
    let count = |status: RunStatus| study.runs.iter().filter(|run| run.status == status).count();
    let (done, failed, running) =
        (count(RunStatus::Done), count(RunStatus::Failed), count(RunStatus::Running));
    let mut families: Vec<&str> = Vec::new();
    let mut fractions: Vec<f64> = Vec::new();
    let mut seeds: Vec<u64> = Vec::new();
    for run in &study.runs {
        if !families.contains(&run.params.family.as_str()) {
            families.push(&run.params.family);
        }
        if !fractions.contains(&run.params.fraction) {
            fractions.push(run.params.fraction);
        }
        if !seeds.contains(&run.params.seed) {
            seeds.push(run.params.seed);
        }
    }
    fractions.sort_by(f64::total_cmp);
    let datasets: Vec<&str> = study.datasets.iter().map(|dataset| dataset.name.as_str()).collect();
    let mut status = format!("{done} done");
    if failed > 0 {
        let _ = write!(status, ", {failed} failed");
    }
    if running > 0 {
        let _ = write!(status, ", {running} not finished");
    }
    document.paragraph(vec![
        text(format!(
            "{} cells ({status}): datasets {}; families {}; scarcity fractions {}; {} per cell. Logbook ",
            study.runs.len(),
            list(&datasets),
            list(&families),
            list(&fractions.iter().map(|fraction| fraction.to_string()).collect::<Vec<_>>()),
            if seeds.len() == 1 { "1 seed".to_owned() } else { format!("{} seeds", seeds.len()) },
        )),
        code(db.display().to_string()),
        text(format!(", report written {written_at}.")),
    ]);
    document.paragraph(vec![text(
        "Every figure is shown as value [95 % interval]; the scarcity fraction is the share of the train part a model was trained on. \
         Arrows in table headers say which way is better (↑ higher, ↓ lower, →0.5 closest to 0.5); the best family at each fraction is highlighted.",
    )]);
}

fn findings(document: &mut Document, study: &Study, scores: &[Vec<AxisScores>]) {
    document.heading(1, "Headline findings", "findings");
    document.paragraph(vec![text(
        "Which family led each axis on each dataset, by the axis score (1 = best of the families at every fraction, 0 = worst; see Method).",
    )]);
    let mut columns = vec![Column { group: None, title: "dataset".to_owned(), label: true }];
    columns.extend(SCORE_METRICS.iter().map(|(axis, _)| Column {
        group: None,
        title: (*axis).to_owned(),
        label: true,
    }));
    let mut rows = Vec::new();
    let mut statements = Vec::new();
    let mut leads: BTreeMap<String, usize> = BTreeMap::new();
    let mut sole_winners = Vec::new();
    for (dataset, dataset_scores) in study.datasets.iter().zip(scores) {
        let mut cells = vec![Cell::Text(dataset.name.clone())];
        let mut axes_led: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
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
                Cell::Text(format!("{} ({best:.2})", leaders.join(" = ")))
            });
            for leader in &leaders {
                axes_led.entry(leader).or_default().push(axis_scores.axis);
                *leads.entry((*leader).to_owned()).or_default() += 1;
            }
        }
        rows.push(Row::Cells(cells));
        let parts: Vec<String> = dataset
            .families
            .iter()
            .filter_map(|family| {
                axes_led.get(family.as_str()).map(|axes| format!("{family} led {}", list(axes)))
            })
            .collect();
        let every = dataset.families.iter().find(|family| {
            axes_led.get(family.as_str()).is_some_and(|axes| axes.len() == SCORE_METRICS.len())
        });
        if let Some(family) = every {
            sole_winners.push((dataset.name.clone(), family.clone()));
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
        let mut tally: Vec<(String, usize)> = leads.into_iter().collect();
        tally.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let tally: Vec<String> =
            tally.iter().map(|(family, count)| format!("{family} {count}")).collect();
        verdict.push(text(format!(
            " Axis leads over all datasets (ties count for each): {}.",
            list(&tally)
        )));
    }
    document.paragraph(verdict);
}

fn recommendation(document: &mut Document, study: &Study, scores: &[Vec<AxisScores>]) {
    document.heading(1, "Recommendation", "recommendation");
    document.paragraph(vec![text(
        "For each priority, the family with the best value of one deciding figure wins, judged twice per dataset: with the least data \
         (the smallest fraction, the case this project is for) and with the most. The margin is the difference to the runner-up; when \
         their 95 % intervals overlap the lead may be chance, and the text says so. The axis score (all of the axis's metrics, every \
         fraction) is quoted as a cross-check.",
    )]);
    for priority in &PRIORITIES {
        document.heading(2, priority.title, &anchor(&["priority", priority.title]));
        document.paragraph(vec![
            text("Deciding figure: "),
            code(priority.metric),
            text(format!(", {}.", priority.meaning)),
        ]);
        let mut bullets = Vec::new();
        let mut scarce_winners: Vec<(String, String, bool)> = Vec::new();
        for (dataset, dataset_scores) in study.datasets.iter().zip(scores) {
            let mut inlines = vec![strong(dataset.name.clone()), text(": ")];
            let (Some(&smallest), Some(&largest)) =
                (dataset.fractions.first(), dataset.fractions.last())
            else {
                continue;
            };
            let judged: Vec<f64> =
                if smallest == largest { vec![smallest] } else { vec![smallest, largest] };
            let mut any = false;
            for &fraction in &judged {
                let Some(verdict) = score::verdict(dataset, priority.metric, fraction) else {
                    continue;
                };
                any = true;
                if fraction == smallest && !verdict.tie {
                    scarce_winners.push((
                        dataset.name.clone(),
                        verdict.winner().0.clone(),
                        verdict.overlap,
                    ));
                }
                inlines.extend(verdict_inlines(
                    priority,
                    &verdict,
                    &fraction_phrase(fraction, smallest, largest),
                ));
            }
            if !any {
                inlines.push(text(format!(
                    "fewer than two families have {}, nothing to compare. ",
                    priority.metric
                )));
            }
            if let Some(axis_scores) =
                dataset_scores.iter().find(|scores| scores.axis == priority.axis)
            {
                let ranked = ranked_scores(axis_scores);
                if !ranked.is_empty() {
                    inlines.push(text(format!(
                        "{} score over all fractions: {}.",
                        capitalise_first(priority.axis),
                        ranked
                    )));
                }
            }
            bullets.push(inlines);
        }
        if !scarce_winners.is_empty() {
            let named: Vec<String> = scarce_winners
                .iter()
                .map(|(dataset, family, _)| format!("{family} on {dataset}"))
                .collect();
            let uncertain = scarce_winners.iter().filter(|(_, _, overlap)| *overlap).count();
            let mut summary = vec![
                strong("In short:"),
                text(format!(" with the least data the winner is {}.", list(&named))),
            ];
            if uncertain > 0 {
                summary.push(caveat(format!(
                    " {uncertain} of these {} leads are within overlapping intervals: treat them as ties until more seeds or data say otherwise.",
                    scarce_winners.len()
                )));
            }
            document.paragraph(summary);
        }
        document.blocks.push(Block::Bullets(bullets));
    }
}

fn fraction_phrase(fraction: f64, smallest: f64, largest: f64) -> String {
    if smallest == largest {
        format!("at fraction {fraction}")
    } else if fraction == smallest {
        format!("with the least data (fraction {fraction})")
    } else if fraction == 1.0 {
        "with all the data (fraction 1)".to_owned()
    } else {
        format!("with the most data (fraction {fraction})")
    }
}

fn verdict_inlines(priority: &Priority, verdict: &Verdict, phrase: &str) -> Vec<Inline> {
    let (winner, winner_figure) = verdict.winner();
    let (runner_up, runner_figure) = verdict.runner_up();
    if verdict.tie {
        return vec![text(format!(
            "{}, {winner} and {runner_up} tie at {} and {}. ",
            capitalise_first(phrase),
            with_interval(winner_figure),
            with_interval(runner_figure)
        ))];
    }
    let mut inlines = vec![text(format!("{}, ", capitalise_first(phrase))), strong(winner.clone())];
    inlines.push(text(format!(
        " wins: {} against {runner_up}'s {} ({}). ",
        with_interval(winner_figure),
        with_interval(runner_figure),
        margin(priority.metric, winner_figure.value, runner_figure.value)
    )));
    if verdict.overlap {
        inlines.push(caveat("The intervals overlap, so this lead may be chance. "));
    } else {
        inlines.push(text("The intervals do not overlap. "));
    }
    inlines
}

/// How much better `best` is than `other`, in words.
fn margin(metric: &str, best: f64, other: f64) -> String {
    match direction(metric) {
        Direction::Higher if metric == "samples_per_second" && other > 0.0 => {
            format!("{:.1}× as fast", best / other)
        }
        Direction::Higher => format!("{} higher", number(best - other)),
        Direction::Lower => format!("{} lower", number(other - best)),
        Direction::Target(ideal) => {
            format!("{} closer to {ideal}", number((other - ideal).abs() - (best - ideal).abs()))
        }
        Direction::Unranked => format!("{} against {}", number(best), number(other)),
    }
}

/// `vae 0.83, gan 0.50, ddpm 0.17`, best first.
fn ranked_scores(axis_scores: &AxisScores) -> String {
    let mut scored: Vec<(&str, f64)> = axis_scores
        .scores
        .iter()
        .filter_map(|(family, score)| score.map(|score| (family.as_str(), score)))
        .collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1));
    scored
        .iter()
        .map(|(family, score)| format!("{family} {score:.2}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn dataset_section(
    report: &mut Report,
    dataset: &DatasetResults,
    scores: &[AxisScores],
    study_dir: &Path,
    out: &Path,
) -> Result<()> {
    let stem = file_safe(&dataset.name);
    let modality = match dataset.modality {
        Modality::Tabular => "table",
        Modality::Image => "images",
    };
    let label =
        dataset.label.as_deref().map(|label| format!(", label {label}")).unwrap_or_default();
    report.document.heading(
        1,
        &format!("Dataset {} ({modality}{label})", dataset.name),
        &anchor(&["dataset", &dataset.name]),
    );

    report.document.heading(2, "Six-axis table", &anchor(&["table", &dataset.name]));
    report.document.blocks.push(summary_table(dataset));

    report.document.heading(2, "Trade-offs", &anchor(&["tradeoff", &dataset.name]));
    let axes: Vec<&str> = scores.iter().map(|axis_scores| axis_scores.axis).collect();
    let bars: Vec<(String, plotters::style::RGBColor, Vec<Option<f64>>)> = dataset
        .families
        .iter()
        .enumerate()
        .map(|(idx, family)| {
            let family_scores = scores
                .iter()
                .map(|axis_scores| {
                    axis_scores
                        .scores
                        .iter()
                        .find(|(name, _)| name == family)
                        .and_then(|(_, score)| *score)
                })
                .collect();
            (family.clone(), family_color_of(dataset, family, idx), family_scores)
        })
        .collect();
    let path = format!("{PLOTS_DIR}/{stem}-tradeoff.svg");
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
    report.document.blocks.push(scores_table(dataset, scores));

    report.document.heading(
        2,
        "Against the scarcity fraction",
        &anchor(&["fractions", &dataset.name]),
    );
    report.document.paragraph(vec![text("Key figures as the training data shrinks (left: least data). Bars are 95 % intervals; the full table below has every metric.")]);
    let mut images = Vec::new();
    for (axis, metric) in CHARTED {
        let lines: Vec<Line> = dataset
            .families
            .iter()
            .enumerate()
            .map(|(idx, family)| Line {
                name: family.clone(),
                color: family_color_of(dataset, family, idx),
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
        let title = format!("{axis}: {metric} {}", direction(metric).mark());
        let ideal = match direction(metric) {
            Direction::Target(ideal) => Some(ideal),
            _ => None,
        };
        let svg = plot::metric_by_fraction(
            &out.join(&path),
            &title,
            &dataset.fractions,
            &lines,
            metric == "samples_per_second",
            ideal,
        )?;
        report.files.insert(path.clone(), svg.into_bytes());
        images.push(Image {
            path,
            caption: format!(
                "{}: {metric} ({}) by fraction",
                dataset.name,
                direction(metric).describe()
            ),
            pixelated: false,
        });
    }
    report.document.blocks.push(Block::Images(images, Layout::Small));

    match dataset.modality {
        Modality::Image => sample_grids(report, dataset, study_dir)?,
        Modality::Tabular => marginal_plots(report, dataset, study_dir, out)?,
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

/// A family keeps its colour across every chart of the report (vae, gan, ddpm first).
fn family_color_of(
    dataset: &DatasetResults,
    family: &str,
    idx: usize,
) -> plotters::style::RGBColor {
    match family {
        "vae" => plot::family_color(0),
        "gan" => plot::family_color(1),
        "ddpm" => plot::family_color(2),
        _ => plot::family_color(
            3 + idx.saturating_sub(
                dataset
                    .families
                    .iter()
                    .filter(|name| ["vae", "gan", "ddpm"].contains(&name.as_str()))
                    .count(),
            ),
        ),
    }
}

fn summary_table(dataset: &DatasetResults) -> Block {
    let several_seeds = dataset.groups.iter().any(|group| group.seeds.len() > 1);
    let mut columns =
        vec![Column { group: Some(String::new()), title: "family".to_owned(), label: true }];
    if several_seeds {
        columns.push(Column { group: Some(String::new()), title: "seeds".to_owned(), label: true });
    }
    columns.extend(SUMMARY.iter().map(|(axis, metric)| Column {
        group: Some((*axis).to_owned()),
        title: titled(metric),
        label: false,
    }));
    let mut rows = Vec::new();
    for &fraction in dataset.fractions.iter().rev() {
        rows.push(Row::Section(format!("fraction {fraction}")));
        for family in &dataset.families {
            let Some(group) = dataset.group(family, fraction) else {
                continue;
            };
            let mut cells = vec![Cell::Text(family.clone())];
            if several_seeds {
                cells.push(Cell::Text(seeds_text(&group.seeds)));
            }
            for (_, metric) in SUMMARY {
                cells.push(figure_cell(dataset, family, fraction, metric, false));
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
        .map(|family| {
            let mut cells = vec![Cell::Text(family.clone())];
            for axis_scores in scores {
                let leaders = axis_scores.leaders();
                let score = axis_scores
                    .scores
                    .iter()
                    .find(|(name, _)| name == family)
                    .and_then(|(_, score)| *score);
                cells.push(match score {
                    Some(score) => Cell::Figure {
                        value: format!("{score:.2}"),
                        interval: String::new(),
                        note: None,
                        best: leaders.contains(&family.as_str()),
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
                title: family.clone(),
                label: false,
            });
        }
    }
    let mut rows = Vec::new();
    let mut current_axis: Option<&str> = None;
    for (axis, metric) in &dataset.metrics {
        if current_axis != Some(axis.as_str()) {
            rows.push(Row::Section(axis.clone()));
            current_axis = Some(axis);
        }
        let mut cells = vec![Cell::Text(titled(metric))];
        for &fraction in dataset.fractions.iter().rev() {
            for family in &dataset.families {
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
    family: &str,
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
        .filter_map(|other| dataset.figure(other, fraction, metric))
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

fn sample_grids(report: &mut Report, dataset: &DatasetResults, study_dir: &Path) -> Result<()> {
    report.document.heading(2, "Samples", &anchor(&["samples", &dataset.name]));
    report.document.paragraph(vec![text("The samples each cell was judged on (first seed): one row per class, enlarged without smoothing.")]);
    let mut missing = Vec::new();
    for family in &dataset.families {
        let mut images = Vec::new();
        for &fraction in &dataset.fractions {
            let Some(group) = dataset.group(family, fraction) else {
                continue;
            };
            let (Some(seed), Some(Some(relative))) = (group.seeds.first(), group.samples.first())
            else {
                continue;
            };
            let source = study_dir.join(relative);
            let bytes = match std::fs::read(&source) {
                Ok(bytes) => bytes,
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                    missing.push(source.display().to_string());
                    continue;
                }
                Err(err) => return Err(Error::io(&source, err)),
            };
            let name = Path::new(relative)
                .file_name()
                .map(|name| file_safe(&name.to_string_lossy()))
                .unwrap_or_else(|| file_safe(relative));
            let path = format!("{SAMPLES_DIR}/{name}");
            report.files.insert(path.clone(), bytes);
            images.push(Image {
                path,
                caption: format!("{family}, fraction {fraction}, seed {seed}"),
                pixelated: true,
            });
        }
        if !images.is_empty() {
            report.document.paragraph(vec![strong(family.clone())]);
            report.document.blocks.push(Block::Images(images, Layout::Small));
        }
    }
    if !missing.is_empty() {
        report
            .document
            .paragraph(vec![caveat(format!("Sample grids not found: {}.", missing.join(", ")))]);
    }
    Ok(())
}

fn marginal_plots(
    report: &mut Report,
    dataset: &DatasetResults,
    study_dir: &Path,
    out: &Path,
) -> Result<()> {
    report.document.heading(
        2,
        "Real against synthetic marginals",
        &anchor(&["marginals", &dataset.name]),
    );
    let Some(&largest) = dataset.fractions.last() else {
        return Ok(());
    };
    let Some(real_path) =
        dataset.data_path.as_deref().and_then(|path| marginals::find_real_data(path, study_dir))
    else {
        report.document.paragraph(vec![caveat(format!(
            "The real data ({}) was not found from here or the study folder, so no marginals are drawn; run the report from the folder the study ran in.",
            dataset.data_path.as_deref().unwrap_or("not recorded")
        ))]);
        return Ok(());
    };
    let samples: Vec<(String, std::path::PathBuf)> = dataset
        .families
        .iter()
        .filter_map(|family| {
            let group = dataset.group(family, largest)?;
            let relative = group.samples.first()?.as_deref()?;
            Some((family.clone(), study_dir.join(relative)))
        })
        .collect();
    let (real, synthetic, notes) = marginals::load(&real_path, dataset.label.as_deref(), &samples);
    let shown: Vec<Marginal> =
        real.map(|real| marginals::marginals(&real, &synthetic, plot::tick)).unwrap_or_default();
    report.document.paragraph(vec![text(format!(
        "Share of rows per bin (numbers) or category for the first {} columns, numeric first: all of the real data against each family's samples at fraction {largest} (first seed).",
        marginals::MAX_COLUMNS
    ))]);
    let mut images = Vec::new();
    for (idx, marginal) in shown.iter().enumerate() {
        let path = format!(
            "{PLOTS_DIR}/{}-marginal-{}-{}.svg",
            file_safe(&dataset.name),
            idx + 1,
            file_safe(&marginal.column)
        );
        let mut sources = vec![("real".to_owned(), None, marginal.real.clone())];
        for (family, shares) in &marginal.synthetic {
            let idx = dataset.families.iter().position(|name| name == family).unwrap_or(0);
            sources.push((
                family.clone(),
                Some(family_color_of(dataset, family, idx)),
                shares.clone(),
            ));
        }
        let svg = plot::marginal(
            &out.join(&path),
            &format!("{}: {}", dataset.name, marginal.column),
            &marginal.labels,
            &sources,
        )?;
        report.files.insert(path.clone(), svg.into_bytes());
        images.push(Image {
            path,
            caption: format!(
                "{}: {} — real (grey) against synthetic",
                dataset.name, marginal.column
            ),
            pixelated: false,
        });
    }
    report.document.blocks.push(Block::Images(images, Layout::Medium));
    if !notes.is_empty() {
        report.document.paragraph(vec![caveat(notes.join("; "))]);
    }
    Ok(())
}

fn runs_section(document: &mut Document, study: &Study) {
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
                run.params.bundle.clone().map_or(Cell::Empty, Cell::Text),
                run.params.samples.clone().map_or(Cell::Empty, Cell::Text),
                run.message.as_deref().map_or(Cell::Empty, |message| {
                    Cell::Text(message.lines().next().unwrap_or_default().to_owned())
                }),
            ])
        })
        .collect();
    document.blocks.push(Block::Table { columns, rows });
}

fn method(document: &mut Document) {
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
    for (axis, metrics) in SCORE_METRICS {
        let described: Vec<String> = metrics
            .iter()
            .map(|metric| format!("{metric} ({})", direction(metric).describe()))
            .collect();
        bullets.push(vec![
            strong(format!("{axis} score:")),
            text(format!(" {}", described.join(", "))),
        ]);
    }
    document.blocks.push(Block::Bullets(bullets));
}

/// `0.93 [0.90, 0.95]`.
pub fn with_interval(figure: &Figure) -> String {
    format!("{} {}", number(figure.value), interval(figure))
}

fn interval(figure: &Figure) -> String {
    format!("[{}, {}]", number(figure.low), number(figure.high))
}

/// A number with about three significant digits: `166k`, `68.6k`, `1,234`, `521.1`, `32.11`,
/// `0.957`, `1.2e-4`.
pub fn number(value: f64) -> String {
    let magnitude = value.abs();
    if !value.is_finite() {
        return value.to_string();
    }
    if magnitude == 0.0 {
        return "0".to_owned();
    }
    if magnitude >= 1e8 {
        return format!("{:.0}M", value / 1e6);
    }
    if magnitude >= 1e7 {
        return format!("{:.1}M", value / 1e6);
    }
    if magnitude >= 1e6 {
        return format!("{:.2}M", value / 1e6);
    }
    if magnitude >= 1e5 {
        return format!("{:.0}k", value / 1e3);
    }
    if magnitude >= 1e4 {
        return format!("{:.1}k", value / 1e3);
    }
    if magnitude >= 1000.0 {
        return grouped(value);
    }
    if magnitude >= 100.0 {
        return format!("{value:.1}");
    }
    if magnitude >= 1.0 {
        return format!("{value:.2}");
    }
    if magnitude >= 0.001 {
        return format!("{value:.3}");
    }
    format!("{value:.1e}")
}

/// An integer with thousands separated by commas.
fn grouped(value: f64) -> String {
    let digits = format!("{:.0}", value.abs());
    let mut out = String::new();
    for (idx, digit) in digits.chars().enumerate() {
        if idx > 0 && (digits.len() - idx) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    if value < 0.0 { format!("-{out}") } else { out }
}

fn seeds_text(seeds: &[u64]) -> String {
    seeds.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
}

/// `a`, `a and b`, `a, b and c`.
fn list<T: AsRef<str>>(items: &[T]) -> String {
    match items {
        [] => String::new(),
        [only] => only.as_ref().to_owned(),
        [init @ .., last] => format!(
            "{} and {}",
            init.iter().map(AsRef::as_ref).collect::<Vec<_>>().join(", "),
            last.as_ref()
        ),
    }
}

fn capitalise_first(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_rounded_to_their_size() {
        let check = |value: f64, expected: &str| assert_eq!(number(value), expected, "{value}");
        check(0.0, "0");
        check(165_815.48, "166k");
        check(68_620.686, "68.6k");
        check(-1_234_567.0, "-1.23M");
        check(1_234.6, "1,235");
        check(-9_999.0, "-9,999");
        check(521.081, "521.1");
        check(32.114, "32.11");
        check(0.95703125, "0.957");
        check(0.000_12, "1.2e-4");
    }

    #[test]
    fn margins_say_which_way_and_how_much() {
        assert_eq!(margin("tstr_accuracy", 0.9, 0.75), "0.150 higher");
        assert_eq!(margin("frechet_distance", 2.0, 5.5), "3.50 lower");
        assert_eq!(margin("mia_auc", 0.52, 0.40), "0.080 closer to 0.5");
        assert_eq!(margin("samples_per_second", 70_000.0, 500.0), "140.0× as fast");
    }

    #[test]
    fn lists_read_as_prose() {
        assert_eq!(list::<&str>(&[]), "");
        assert_eq!(list(&["a"]), "a");
        assert_eq!(list(&["a", "b", "c"]), "a, b and c");
    }
}
