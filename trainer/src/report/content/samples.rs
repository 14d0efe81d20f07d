//! What a dataset's samples look like: the sample grids of an image set (copied beside the
//! report), or the real-against-synthetic marginals of a table. Both show only what
//! [`Assets`](crate::report::assets::Assets) loaded, and name every file that was missing or not
//! read, with the reason.

use std::path::Path;

use models::manifest::Family;

use crate::error::Result;
use crate::report::assets::{Contents, Grid, RealData, SampleFile};
use crate::report::content::charts::family_color;
use crate::report::content::{PLOTS_DIR, Report, SAMPLES_DIR};
use crate::report::doc::{Block, Image, Layout, anchor, caveat, file_safe, strong, text};
use crate::report::marginals::{self, Marginal};
use crate::report::plot;
use crate::report::study::DatasetResults;

/// The sample grid of each family × fraction (first seed), a row of grids per family.
pub fn sample_grids(report: &mut Report, dataset: &DatasetResults, grids: &[Grid]) {
    report.document.heading(2, "Samples", &anchor(&["samples", &dataset.name]));
    report.document.paragraph(vec![text("The samples each cell was judged on (first seed): one row per class, enlarged without smoothing.")]);
    let mut missing = Vec::new();
    let mut not_read = Vec::new();
    for &family in &dataset.families {
        let mut images = Vec::new();
        for grid in grids.iter().filter(|grid| grid.family == family) {
            let bytes = match &grid.file.contents {
                Contents::Read(bytes) => bytes,
                Contents::NotFound(_) => {
                    missing.push(grid.file.path.display().to_string());
                    continue;
                }
                Contents::NotRead(reason) => {
                    not_read.push(reason.clone());
                    continue;
                }
            };
            let relative = &grid.file.recorded;
            let name = Path::new(relative)
                .file_name()
                .map(|name| file_safe(&name.to_string_lossy()))
                .unwrap_or_else(|| file_safe(relative));
            let path = format!("{SAMPLES_DIR}/{name}");
            report.files.insert(path.clone(), bytes.clone());
            images.push(Image {
                path,
                caption: format!("{family}, fraction {}, seed {}", grid.fraction, grid.seed),
                pixelated: true,
            });
        }
        if !images.is_empty() {
            report.document.paragraph(vec![strong(family.as_str())]);
            report.document.blocks.push(Block::Images(images, Layout::Small));
        }
    }
    if !missing.is_empty() {
        report
            .document
            .paragraph(vec![caveat(format!("Sample grids not found: {}.", missing.join(", ")))]);
    }
    if !not_read.is_empty() {
        report
            .document
            .paragraph(vec![caveat(format!("Sample grids not shown: {}.", not_read.join("; ")))]);
    }
}

/// The marginals of the table's first columns: the real data against each family's samples at
/// the largest fraction (first seed).
pub fn marginal_plots(
    report: &mut Report,
    dataset: &DatasetResults,
    real: &RealData,
    samples: &[(Family, SampleFile)],
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
    let mut notes = Vec::new();
    let real = match real {
        RealData::Table(table) => Some(table),
        RealData::Images => None,
        RealData::Unreadable(message) => {
            notes.push(format!("the real data could not be read: {message}"));
            None
        }
        RealData::NotFound => {
            report.document.paragraph(vec![caveat(format!(
                "The real data ({}) was not found from here or the study folder, so no marginals are drawn; run the report from the folder the study ran in.",
                dataset.data_path
            ))]);
            return Ok(());
        }
        RealData::NotRead(reason) => {
            report.document.paragraph(vec![caveat(format!(
                "The real data was not read ({reason}), so no marginals are drawn."
            ))]);
            return Ok(());
        }
    };
    let mut synthetic = Vec::new();
    if let Some(real) = real {
        for (family, file) in samples {
            match &file.contents {
                Contents::Read(bytes) => {
                    match marginals::synthetic_table(real, bytes, &file.path.display().to_string())
                    {
                        Ok(table) => synthetic.push((*family, table)),
                        Err(err) => notes.push(format!(
                            "{family}'s samples could not be read: {}",
                            edge_runtime::error::chain(&err)
                        )),
                    }
                }
                Contents::NotFound(reason) | Contents::NotRead(reason) => {
                    notes.push(format!("{family}'s samples could not be read: {reason}"))
                }
            }
        }
    }
    let shown: Vec<Marginal> =
        real.map(|real| marginals::marginals(real, &synthetic, plot::tick)).unwrap_or_default();
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
            sources.push((family.to_string(), Some(family_color(*family)), shares.clone()));
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
