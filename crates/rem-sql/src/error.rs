//! The errors of SQL: a statement that does not parse, one that is wrong for these
//! tables (unknown column, bad types, unsupported), a failure inside DataFusion that is
//! not the statement's fault, or the engine's own error raised inside a scan, which
//! keeps its kind (a storage failure during a scan is not a SQL error).

use rem::ErrorKind;

/// A SQL error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The statement does not parse.
    #[error("{0}")]
    Syntax(String),
    /// The statement parses but cannot run on these tables: an unknown table or column,
    /// mismatched types, an unsupported construct, a value that does not convert.
    #[error("{0}")]
    Query(String),
    /// An argument is not acceptable (an unknown export format, a folder that does not
    /// exist, a file that cannot be written).
    #[error("{0}")]
    InvalidInput(String),
    /// DataFusion failed for a reason that is not the statement's fault (an internal
    /// error, memory or I/O).
    #[error("{0}")]
    Internal(String),
    /// The engine refused or failed (inside a scan, or reading a schema).
    #[error(transparent)]
    Engine(#[from] rem::Error),
}

/// A SQL result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The kind of this error (CLI exit code, gRPC status, Python class).
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Syntax(_) | Error::Query(_) | Error::InvalidInput(_) => ErrorKind::InvalidInput,
            Error::Internal(_) => ErrorKind::Internal,
            Error::Engine(e) => e.kind(),
        }
    }

    /// A stable name of the error: `sql_syntax`, `sql`, `sql_internal`, `invalid_input`, or the engine
    /// error's [`rem::Error::code`].
    pub fn code(&self) -> &'static str {
        match self {
            Error::Syntax(_) => "sql_syntax",
            Error::Query(_) => "sql",
            Error::InvalidInput(_) => "invalid_input",
            Error::Internal(_) => "sql_internal",
            Error::Engine(e) => e.code(),
        }
    }

    /// The engine error, when this is one.
    pub fn engine(&self) -> Option<&rem::Error> {
        match self {
            Error::Engine(e) => Some(e),
            _ => None,
        }
    }
}
