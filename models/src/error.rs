//! The one error type of the data layer. Every message names the source (a file, a flag, a
//! manifest field) and says what was expected, so a user can fix the input without reading code.
//! When a parser (csv, png, toml, serde_json) gave up, its error is the `source()` and is left out
//! of the message, so a chain printed with `{:#}` shows it once.

use std::fmt;

/// Where a piece of input came from: a file path, usually, or a label such as `--fraction`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source(pub String);

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for Source {
    fn from(value: &str) -> Self {
        Source(value.to_owned())
    }
}

impl From<String> for Source {
    fn from(value: String) -> Self {
        Source(value)
    }
}

impl From<&std::path::Path> for Source {
    fn from(value: &std::path::Path) -> Self {
        Source(value.display().to_string())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The input itself is wrong: the message says where (file, line, column) and what was expected.
    #[error("{at}: {message}")]
    Data { at: Source, message: String },

    /// A parameter (a flag, a fraction, a seed) is outside what it may be.
    #[error("invalid {name} {value}: expected {expected}")]
    Parameter { name: &'static str, value: String, expected: String },

    /// A manifest was written by a newer fieldsynth than this one.
    #[error(
        "{at}: manifest format version {found} is newer than this build understands (at most {supported}); update synth-edge"
    )]
    NewerManifest { at: Source, found: u64, supported: u32 },

    /// A manifest or schema file parsed, but does not hang together.
    #[error("{at}: {message}")]
    Format { at: Source, message: String },

    /// A parser could not read the input; `context` says what was being read.
    #[error("{at}: {context}")]
    Parse {
        at: Source,
        context: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl Error {
    pub fn data(source: impl Into<Source>, message: impl Into<String>) -> Self {
        Error::Data { at: source.into(), message: message.into() }
    }

    pub fn parameter(
        name: &'static str,
        value: impl ToString,
        expected: impl Into<String>,
    ) -> Self {
        Error::Parameter { name, value: value.to_string(), expected: expected.into() }
    }

    pub fn parse(
        at: impl Into<Source>,
        context: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Error::Parse { at: at.into(), context: context.into(), source: source.into() }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
