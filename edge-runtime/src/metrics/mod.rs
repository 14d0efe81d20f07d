//! The six assessment axes. Every figure is a [`Metric`]: a value with a 95 % interval and the
//! number of samples behind it.

pub mod timing;

use serde::{Deserialize, Serialize};

/// One figure of an assessment, as printed, written to JSON and stored in the logbook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    /// `fidelity`, `diversity`, `efficiency`, `utility`, `robustness` or `privacy`.
    pub axis: String,
    pub name: String,
    pub value: f64,
    pub ci_low: f64,
    pub ci_high: f64,
    /// The sample count behind the figure.
    pub n: u64,
}
