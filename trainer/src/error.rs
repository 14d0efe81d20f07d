//! The trainer's error type: data, bundle and report problems name the file and what was
//! expected. A variant that wraps another error keeps it as its `source()` and does not repeat
//! it in its own message, so the binary's `{:#}` prints each cause once; code that turns an
//! error into text (a logbook's failure reason) uses [`edge_runtime::error::chain`].

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Data(#[from] models::Error),

    #[error(transparent)]
    Edge(#[from] edge_runtime::Error),

    #[error("candle")]
    Candle(#[from] candle_core::Error),

    #[error("{path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A bundle folder that cannot be created or staged where `--out` points.
    #[error("{path}: cannot write a bundle here")]
    BundleFolder {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A freshly written bundle that the edge runtime cannot load or sample finite values from;
    /// it was not moved into place.
    #[error("{path}: the exported bundle fails in the edge runtime, so it was not written")]
    SelfCheck {
        path: PathBuf,
        #[source]
        source: Box<edge_runtime::Error>,
    },

    /// One cell of the study failed; the cause is the source.
    #[error("study cell {cell}")]
    StudyCell {
        cell: String,
        #[source]
        source: Box<Error>,
    },

    /// A value the trainer made could not be written as JSON (a bug, not bad input).
    #[error("encoding {what} as JSON")]
    Json {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },

    /// The study report could not be built or written: a logbook that is not a study's, a
    /// folder it may not replace, a chart that failed to draw.
    #[error("report {path}: {message}")]
    Report { path: PathBuf, message: String },

    /// A study run whose params are not a study cell's.
    #[error(
        "report {path}: study run {run_id}: its params are not a study cell's; expected the fields \
         `synth-train study` records (cell, dataset, data_path, label, family, fraction, seed, \
         samples, ...)"
    )]
    CellParams {
        path: PathBuf,
        run_id: String,
        #[source]
        source: serde_json::Error,
    },

    /// Settings that cannot work, caught before any training starts.
    #[error("{0}")]
    Invalid(String),

    #[error(
        "this synth-train was built without CUDA support; rebuild with `cargo build --release -p trainer --features cuda` (see README) or use --device cpu"
    )]
    NoCuda,

    /// A broken invariant inside the trainer (a bug, not bad input).
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io { path: path.to_owned(), source }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
