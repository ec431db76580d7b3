//! Errors of the service and its client.

use rem::ErrorKind;
use tonic::{Code, Status};

/// An error of an operation, embedded or through a server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The engine refused or failed the operation (embedded).
    #[error(transparent)]
    Engine(#[from] rem::Error),
    /// The server refused or failed the operation; `kind` says whose fault it was.
    #[error("{message}")]
    Remote {
        /// The error's kind, from the gRPC status code.
        kind: ErrorKind,
        /// The server's one-sentence message.
        message: String,
    },
    /// One record of an insert batch was refused; nothing of the batch was written.
    #[error("record {} of the batch: {message}", index + 1)]
    Record {
        /// Zero-based position of the record in its batch.
        index: usize,
        /// Why it was refused.
        kind: ErrorKind,
        /// The message.
        message: String,
    },
    /// The server refused the token (or none was given).
    #[error("{0}")]
    Unauthenticated(String),
    /// The server cannot be reached, or the connection broke mid-operation.
    #[error("{0}")]
    Connection(String),
    /// The server answered with something that does not decode.
    #[error("bad reply from the server: {0}")]
    Protocol(String),
}

impl Error {
    /// The kind of the error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Engine(e) => e.kind(),
            Error::Remote { kind, .. } | Error::Record { kind, .. } => *kind,
            Error::Unauthenticated(_) => ErrorKind::FailedPrecondition,
            Error::Connection(_) | Error::Protocol(_) => ErrorKind::Internal,
        }
    }

    /// The error a client gets for a status from the server.
    pub fn from_status(status: Status) -> Error {
        let message = status.message().to_string();
        let kind = match status.code() {
            Code::InvalidArgument | Code::OutOfRange | Code::AlreadyExists => {
                ErrorKind::InvalidInput
            }
            Code::NotFound => ErrorKind::NotFound,
            Code::FailedPrecondition => ErrorKind::FailedPrecondition,
            Code::Unauthenticated | Code::PermissionDenied => {
                return Error::Unauthenticated(format!("refused by the server: {message}"))
            }
            Code::Unavailable | Code::Cancelled | Code::DeadlineExceeded => {
                return Error::Connection(format!(
                    "the server is unavailable: {}",
                    if message.is_empty() {
                        "connection lost"
                    } else {
                        &message
                    }
                ))
            }
            _ => ErrorKind::Internal,
        };
        Error::Remote { kind, message }
    }
}

/// The status a server answers with for an engine error.
pub(crate) fn status(e: &rem::Error) -> Status {
    let message = e.to_string();
    match e.kind() {
        ErrorKind::InvalidInput => Status::invalid_argument(message),
        ErrorKind::NotFound => Status::not_found(message),
        ErrorKind::FailedPrecondition => Status::failed_precondition(message),
        _ => Status::internal(message),
    }
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
