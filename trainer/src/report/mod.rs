//! Reports of a study logbook: `report.html` (one page that opens offline: inline stylesheet, no
//! scripts, every chart and sample grid embedded) and `report.md`, with the charts as SVG files
//! under `plots/` and the sample grids as PNG under `samples/` beside them.
//!
//! A report is made in three steps, and only the first and the last touch files: read the
//! logbook's study runs ([`study`]) and every file the report shows ([`assets`]: sample grids,
//! synthetic rows, the real data; only from inside the study folder, see there); build the
//! document and its charts from those two values alone (`content`, no I/O); then write it all
//! (`publish`). The report is built in a staging folder beside `out` and renamed into place only
//! once every file is written, so a failed or interrupted run leaves the previous report whole. A
//! folder holding anything a report does not write is never replaced.
//!
//! Code map: [`study`] groups the logbook's study runs into figures per dataset × family ×
//! fraction; [`score`] orients metrics and computes axis scores and verdicts; `content` writes
//! the document (`doc`) with its number formatting (`format`) and draws the charts (`plot`,
//! `marginals`); `html` and `markdown` render it.

pub mod assets;
mod content;
mod doc;
mod format;
mod html;
mod marginals;
mod markdown;
mod plot;
mod publish;
pub mod score;
pub mod study;

use std::path::Path;

use edge_runtime::logbook::{Logbook, timestamp};

use crate::error::{Error, Result};
use assets::Assets;
use study::Study;

pub const HTML_FILE: &str = "report.html";
pub const MARKDOWN_FILE: &str = "report.md";

/// Writes the report of the study logbook `db` into the folder `out` (created, or replaced when it
/// holds an earlier report).
pub fn write_report(db: &Path, out: &Path) -> Result<()> {
    if !db.is_file() {
        return Err(Error::Report {
            path: db.to_owned(),
            message: "no such file; expected the study logbook (DIR/study.sqlite) that `synth-train study` writes".to_owned(),
        });
    }
    publish::check_replaceable(out)?;
    let runs = Logbook::open(db)?.runs()?;
    let study = Study::from_runs(db, runs)?;
    let study_dir = match db.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let assets = Assets::load(&study, study_dir);
    let report = content::build(&study, &assets, db, out, &timestamp::now())?;
    let html = html::render(&report.document, &report.files);
    let markdown = markdown::render(&report.document);
    publish::publish(out, &report.files, &markdown, &html)
}
