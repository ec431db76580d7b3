//! The errors of replication and of reaching a server: typed, so a caller tells a
//! connection worth retrying from a refusal, a peer that broke the protocol, a local
//! file that could not be written, or the engine's own error.

use rem::ErrorKind;

/// A replication or connection error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server could not be reached, or the connection broke; retrying may help.
    #[error("{0}")]
    Connection(String),
    /// The server refused the token, or the token is unusable.
    #[error("{0}")]
    Unauthenticated(String),
    /// The peer refused the request for a reason retrying cannot fix (e.g. this replica
    /// is ahead of the primary).
    #[error("{0}")]
    Refused(String),
    /// The primary no longer holds the changes this replica needs: bootstrap from a
    /// snapshot.
    #[error("{0}")]
    SnapshotNeeded(String),
    /// The peer sent something malformed (a bad snapshot listing, chunks out of order).
    #[error("{0}")]
    Protocol(String),
    /// A local file could not be read or written.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, naming the file.
        context: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Something inside this process failed (a task that did not finish).
    #[error("{0}")]
    Internal(String),
    /// The engine failed (applying changes, reading the watermark).
    #[error(transparent)]
    Engine(#[from] rem::Error),
}

/// A replication result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// True when a new attempt may succeed: a lost connection, or a gap in the stream
    /// (subscribing again from the applied watermark closes it).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::Connection(_) | Error::Engine(rem::Error::Gap { .. })
        )
    }

    /// The kind of this error (CLI exit code, gRPC status, Python class).
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Unauthenticated(_) | Error::Refused(_) | Error::SnapshotNeeded(_) => {
                ErrorKind::FailedPrecondition
            }
            Error::Connection(_) | Error::Protocol(_) | Error::Io { .. } | Error::Internal(_) => {
                ErrorKind::Internal
            }
            Error::Engine(e) => e.kind(),
        }
    }

    /// A failed call as an error. A plain-text client talking to a TLS server sees only
    /// a broken HTTP/2 connection before its first message, so that case gets a hint
    /// unless `tls` (TLS in use, or a message already arrived).
    pub fn from_status(s: &tonic::Status, tls: bool) -> Error {
        let transport = match s.code() {
            tonic::Code::Unknown | tonic::Code::Unavailable | tonic::Code::Cancelled => true,
            // What an HTTP/2 failure maps to; the service's own internal errors say more.
            tonic::Code::Internal => s.message().starts_with("h2 protocol error"),
            _ => false,
        };
        let hint = if transport && !tls {
            " (if the primary serves TLS, set P8_REPLICATION_TLS_CA)"
        } else {
            ""
        };
        let message = format!("{}{hint}", crate::status_message(s));
        match s.code() {
            tonic::Code::OutOfRange => Error::SnapshotNeeded(message),
            tonic::Code::Unauthenticated => Error::Unauthenticated(message),
            tonic::Code::FailedPrecondition => Error::Refused(message),
            _ => Error::Connection(message),
        }
    }
}
