//! The recommendation: for each priority (privacy, utility, speed) the family that wins its
//! deciding figure with the least and with the most data, by how much, and whether the lead may
//! be chance.

use models::manifest::Family;

use crate::report::doc::{Block, Document, Inline, anchor, caveat, code, strong, text};
use crate::report::format::{capitalise_first, list, margin, with_interval};
use crate::report::score::{self, AxisScores, PRIORITIES, Priority, Verdict};
use crate::report::study::Study;

pub fn recommendation(document: &mut Document, study: &Study, scores: &[Vec<AxisScores>]) {
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
            code(priority.metric.name()),
            text(format!(", {}.", priority.meaning)),
        ]);
        let mut bullets = Vec::new();
        let mut scarce_winners: Vec<(String, Family, bool)> = Vec::new();
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
                        verdict.winner().0,
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
                        capitalise_first(priority.axis.as_str()),
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
    let mut inlines =
        vec![text(format!("{}, ", capitalise_first(phrase))), strong(winner.as_str())];
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
