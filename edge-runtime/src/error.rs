//! The edge runtime's error type. Each variant names what failed (a file, a flag, a bundle) and
//! what was expected; the binary prints the whole chain and exits non-zero.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Data(#[from] models::Error),

    #[error("{path}: {error}")]
    Io { path: PathBuf, error: std::io::Error },

    /// A bundle (model folder) is missing a file, fails its checksum, or disagrees with itself.
    #[error("{path}: {message}")]
    Bundle { path: PathBuf, message: String },

    /// The inference engine refused the model or failed while running it.
    #[error("{engine}: {message}")]
    Engine { engine: &'static str, message: String },

    /// User input that is well-formed but unusable (a class the model does not know, n = 0, ...).
    #[error("{0}")]
    Invalid(String),

    #[error("logbook {path}: {message}")]
    Logbook { path: PathBuf, message: String },

    /// A report could not be drawn or written.
    #[error("report {path}: {message}")]
    Report { path: PathBuf, message: String },

    #[error("sync: {0}")]
    Sync(String),

    /// The hub could not be reached or failed on its side; a later sync may succeed.
    #[error("sync: hub {url} unreachable: {message}")]
    HubUnreachable { url: String, message: String },
}

impl Error {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io { path: path.to_owned(), error: source }
    }

    pub fn bundle(path: &Path, message: impl Into<String>) -> Self {
        Error::Bundle { path: path.to_owned(), message: message.into() }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
