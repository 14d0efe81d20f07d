//! The trainer's error type: data and bundle problems name the file and what was expected;
//! candle failures carry candle's message.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Data(#[from] models::Error),

    #[error(transparent)]
    Edge(#[from] edge_runtime::Error),

    #[error("candle: {0}")]
    Candle(#[from] candle_core::Error),

    #[error("{path}: {error}")]
    Io { path: PathBuf, error: std::io::Error },

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
        Error::Io { path: path.to_owned(), error: source }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
