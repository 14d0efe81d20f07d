//! A parsed dataset of either modality, with what splits, transforms and metrics need from it:
//! its labels, class names, fingerprint, and row selection.

use crate::error::Source;
use crate::image::ImageSet;
use crate::manifest::Modality;
use crate::table::Table;

#[derive(Debug, Clone, PartialEq)]
pub enum Dataset {
    Table(Table),
    Images(ImageSet),
}

impl Dataset {
    pub fn modality(&self) -> Modality {
        match self {
            Dataset::Table(_) => Modality::Tabular,
            Dataset::Images(_) => Modality::Image,
        }
    }

    pub fn labels(&self) -> &[u32] {
        match self {
            Dataset::Table(table) => &table.labels,
            Dataset::Images(images) => &images.labels,
        }
    }

    pub fn classes(&self) -> &[String] {
        match self {
            Dataset::Table(table) => &table.classes,
            Dataset::Images(images) => &images.classes,
        }
    }

    pub fn label_name(&self) -> &str {
        match self {
            Dataset::Table(table) => table.label_name(),
            Dataset::Images(images) => &images.label_name,
        }
    }

    pub fn n_rows(&self) -> usize {
        self.labels().len()
    }

    /// SHA-256 (hex) of the whole source data as parsed.
    pub fn fingerprint(&self) -> &str {
        match self {
            Dataset::Table(table) => &table.fingerprint,
            Dataset::Images(images) => &images.fingerprint,
        }
    }

    pub fn source(&self) -> &Source {
        match self {
            Dataset::Table(table) => &table.source,
            Dataset::Images(images) => &images.source,
        }
    }

    /// The rows at `rows`, in that order.
    pub fn select(&self, rows: &[usize]) -> Dataset {
        match self {
            Dataset::Table(table) => Dataset::Table(table.select(rows)),
            Dataset::Images(images) => Dataset::Images(images.select(rows)),
        }
    }

    /// Rows per class, in class order.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.classes().len()];
        for &label in self.labels() {
            counts[label as usize] += 1;
        }
        counts
    }
}
