//! What the study records of each cell in the logbook: the run kind and the run's `params`. The
//! study writes them ([`crate::study`]) and the report reads them back ([`crate::report`]), through
//! this one type, so the two cannot disagree on a field.

use models::manifest::Family;
use serde::{Deserialize, Serialize};

use crate::study::Budget;

/// The run kind the study logs its cells under.
pub const STUDY_RUN_KIND: &str = "study";

/// What the study records in each run's `params` (the report reads these back). Fields a later
/// study adds are ignored by a report that does not know them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CellParams {
    /// `breast_cancer/vae/f0.25/s0`.
    pub cell: String,
    pub dataset: String,
    /// The real data, as given to the study: relative to the folder the study ran from.
    pub data_path: String,
    pub label: String,
    pub family: Family,
    pub fraction: f64,
    pub seed: u64,
    pub holdout: f64,
    pub n_synthetic: usize,
    pub budget: Budget,
    /// The network size preset (`tiny` in logbooks from before presets).
    #[serde(default)]
    pub size: models::manifest::SizePreset,
    pub device: String,
    /// Paths relative to the study folder: the model bundle, and the synthetic rows (CSV) or
    /// sample grid (PNG) the cell was judged on.
    pub bundle: String,
    pub samples: String,
    pub modality: models::Modality,
    pub sampler: String,
    pub sampling_steps: usize,
}
