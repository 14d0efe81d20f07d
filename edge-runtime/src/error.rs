//! The edge runtime's error type. Each variant names what failed (a file, a flag, a bundle) and
//! what was expected; the binary prints the whole chain and exits non-zero.
//!
//! A variant that wraps a cause (SQLite, I/O, JSON, an engine's error) holds it as its
//! `source()` and leaves it out of its own message, so `{:#}` prints every link of the chain
//! once. Refusals with no underlying error carry a message only. [`chain`] renders an error with
//! its causes for the places where it leaves the process as text: a hub's answer, a failed run's
//! row in the logbook.

use std::path::{Path, PathBuf};

/// A cause from a library whose error type this crate does not name in its variants (tract's
/// `anyhow` errors, ONNX Runtime, prost, csv, png).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Data(#[from] models::Error),

    /// A file or folder could not be read, written, listed or renamed.
    #[error("{path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A bundle (model folder) is missing a file, fails its checksum, or disagrees with itself.
    #[error("{path}: {message}")]
    Bundle { path: PathBuf, message: String },

    /// A bundle file that a parser or an engine could not read.
    #[error("{path}: {context}")]
    BundleUnreadable {
        path: PathBuf,
        context: String,
        #[source]
        source: BoxError,
    },

    /// The inference engine asked for is not available (not compiled in, no library to load).
    #[error("{engine}: {message}")]
    Engine { engine: &'static str, message: String },

    /// The inference engine failed while building or running the model.
    #[error("{engine}: {context}")]
    EngineFailed {
        engine: &'static str,
        context: String,
        #[source]
        source: BoxError,
    },

    /// User input that is well-formed but unusable (a class the model does not know, n = 0, ...).
    #[error("{0}")]
    Invalid(String),

    /// Samples or an image that could not be encoded in memory.
    #[error("cannot encode {what}")]
    Encode {
        what: &'static str,
        #[source]
        source: BoxError,
    },

    /// A handler for a stop signal could not be installed.
    #[error("cannot handle signal {signal}")]
    Signal {
        signal: i32,
        #[source]
        source: std::io::Error,
    },

    /// A logbook refused what it was asked (a run already settled, a newer schema, a bad key).
    #[error("logbook {path}: {message}")]
    Logbook { path: PathBuf, message: String },

    /// SQLite failed on a logbook; `context` says what the logbook was doing.
    #[error("logbook {path}: {context}")]
    LogbookSql {
        path: PathBuf,
        context: String,
        #[source]
        source: rusqlite::Error,
    },

    /// JSON that could not be read or written; `context` names the document and where it is.
    #[error("{context}")]
    Json {
        context: String,
        #[source]
        source: serde_json::Error,
    },

    /// A classifier or regressor of the assessment (linfa, smartcore) failed on the data.
    #[error("{context}")]
    Classifier {
        context: &'static str,
        #[source]
        source: BoxError,
    },

    /// A release policy file that is not TOML.
    #[error("{}: not a valid policy", path.display())]
    PolicyUnreadable {
        path: PathBuf,
        #[source]
        source: toml::de::Error,
    },

    /// A sync was refused (a token, a batch, an answer that does not add up); retrying won't help.
    #[error("sync: {0}")]
    Sync(String),

    /// A sync refused for who sent it or what it claims, with the HTTP status that says so: 401
    /// (no credential the hub accepts), 403 (a credential that may not do this), 400 (a row that
    /// is not valid), 411/413 (a body of unknown or excessive size). Retrying won't help.
    #[error("sync: {message} ({status})")]
    Refused { status: u16, message: String },

    /// A batch that is not valid JSON of the batch format; none of it was applied.
    #[error("sync: {origin}: {context}; the batch was rejected whole")]
    BatchUnreadable {
        origin: String,
        context: String,
        #[source]
        source: serde_json::Error,
    },

    /// The hub's server could not listen or take a request.
    #[error("sync: hub on {address}: {context}")]
    HubServer {
        address: String,
        context: &'static str,
        #[source]
        source: BoxError,
    },

    /// The hub failed on its side (a 5xx answer); a later sync may succeed.
    #[error("sync: hub {url} unreachable: {message}")]
    HubUnreachable { url: String, message: String },

    /// The hub could not be reached or the connection broke; a later sync may succeed.
    #[error("sync: hub {url} unreachable: {context}")]
    HubConnection {
        url: String,
        context: &'static str,
        #[source]
        source: Box<ureq::Error>,
    },
}

impl Error {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io { path: path.to_owned(), source }
    }

    pub fn bundle(path: &Path, message: impl Into<String>) -> Self {
        Error::Bundle { path: path.to_owned(), message: message.into() }
    }

    pub fn bundle_unreadable(
        path: &Path,
        context: impl Into<String>,
        source: impl Into<BoxError>,
    ) -> Self {
        Error::BundleUnreadable {
            path: path.to_owned(),
            context: context.into(),
            source: source.into(),
        }
    }

    pub fn engine_failed(
        engine: &'static str,
        context: impl Into<String>,
        source: impl Into<BoxError>,
    ) -> Self {
        Error::EngineFailed { engine, context: context.into(), source: source.into() }
    }

    pub fn json(context: impl Into<String>, source: serde_json::Error) -> Self {
        Error::Json { context: context.into(), source }
    }

    /// Whether a later attempt may succeed: the hub was unreachable or failed on its side.
    pub fn is_hub_unreachable(&self) -> bool {
        matches!(self, Error::HubUnreachable { .. } | Error::HubConnection { .. })
    }
}

/// `error` followed by each of its causes, joined by `: `: the text anyhow's `{:#}` prints.
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(next) = cause {
        text.push_str(": ");
        text.push_str(&next.to_string());
        cause = next.source();
    }
    text
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;
    use crate::data::{DataOptions, read_dataset};
    use crate::logbook::Logbook;

    /// `err` prints `display` alone, its source is a `Cause` that passes `is_cause`, and the
    /// binary's `{:#}` prints that message once, followed by the cause's own chain, as [`chain`]
    /// does.
    fn check<Cause: std::error::Error + 'static>(
        err: Error,
        display: &str,
        is_cause: impl Fn(&Cause) -> bool,
    ) {
        assert_eq!(err.to_string(), display, "{err:?}");
        let cause = err.source().and_then(|source| source.downcast_ref::<Cause>());
        assert!(cause.is_some_and(&is_cause), "{err:?}");
        let expected =
            format!("{display}: {}", cause.map(|cause| chain(cause)).unwrap_or_default());
        let chained = chain(&err);
        let printed = format!("{:#}", anyhow::Error::from(err));
        assert_eq!(printed, expected);
        assert_eq!(chained, expected);
    }

    #[test]
    fn a_logbook_failure_keeps_the_sqlite_error_as_its_source() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notes.txt");
        std::fs::write(&path, "field notes, not a database\n".repeat(200)).unwrap();
        let err = Logbook::open(&path).unwrap_err();
        check(
            err,
            &format!(
                "logbook {}: is not a SQLite logbook (switching to WAL failed)",
                path.display()
            ),
            |sqlite: &rusqlite::Error| {
                sqlite.sqlite_error_code() == Some(rusqlite::ErrorCode::NotADatabase)
            },
        );
    }

    #[test]
    fn an_io_failure_names_the_path_and_keeps_the_io_error_as_its_source() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing.csv");
        let err = read_dataset(&path, &DataOptions::default()).err().unwrap();
        assert!(matches!(&err, Error::Io { path: named, .. } if *named == path), "{err:?}");
        check(err, &path.display().to_string(), |io: &std::io::Error| {
            io.kind() == std::io::ErrorKind::NotFound
        });
    }
}
