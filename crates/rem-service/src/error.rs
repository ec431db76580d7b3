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
        /// The engine error's code, field and rule, from the status metadata.
        detail: Detail,
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
        /// The engine error's code, field and rule.
        detail: Detail,
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
    /// A SQL statement was refused or failed (embedded).
    #[error(transparent)]
    Sql(#[from] rem_sql::Error),
    /// Serving or replicating failed (the token file, a snapshot, the replica stream).
    #[error(transparent)]
    Replication(#[from] rem_replication::Error),
}

/// What an engine error says beyond its message, kept across the service: its code
/// ([`rem::Error::code`]) and, for a schema violation, the field and the rule.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Detail {
    /// [`rem::Error::code`], or empty when unknown.
    pub code: String,
    /// The violated field.
    pub field: Option<String>,
    /// The violated JSON Schema keyword.
    pub rule: Option<String>,
}

const CODE_HEADER: &str = "x-rem-error";
const FIELD_HEADER: &str = "x-rem-field";
const RULE_HEADER: &str = "x-rem-rule";

impl Detail {
    /// The detail of an engine error.
    pub fn of(e: &rem::Error) -> Detail {
        let (field, rule) = e.violation();
        Detail {
            code: e.code().to_string(),
            field: field.map(str::to_string),
            rule: rule.map(str::to_string),
        }
    }

    fn from_metadata(m: &tonic::metadata::MetadataMap) -> Detail {
        let get = |k: &str| m.get(k).and_then(|v| v.to_str().ok()).map(str::to_string);
        Detail {
            code: get(CODE_HEADER).unwrap_or_default(),
            field: get(FIELD_HEADER),
            rule: get(RULE_HEADER),
        }
    }

    fn to_metadata(&self, m: &mut tonic::metadata::MetadataMap) {
        let mut put = |k: &'static str, v: &str| {
            // A value that is not printable ASCII is left out, never mangled.
            if let Ok(v) = tonic::metadata::MetadataValue::try_from(v) {
                m.insert(k, v);
            }
        };
        put(CODE_HEADER, &self.code);
        if let Some(f) = &self.field {
            put(FIELD_HEADER, f);
        }
        if let Some(r) = &self.rule {
            put(RULE_HEADER, r);
        }
    }
}

impl Error {
    /// The engine error's code, field and rule (empty code for connection, protocol
    /// and authentication errors).
    pub fn detail(&self) -> Detail {
        match self {
            Error::Engine(e) => Detail::of(e),
            Error::Sql(e) => Failure::detail(e),
            Error::Remote { detail, .. } | Error::Record { detail, .. } => detail.clone(),
            _ => Detail::default(),
        }
    }

    /// The kind of the error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Engine(e) => e.kind(),
            Error::Remote { kind, .. } | Error::Record { kind, .. } => *kind,
            Error::Unauthenticated(_) => ErrorKind::FailedPrecondition,
            Error::Connection(_) | Error::Protocol(_) => ErrorKind::Internal,
            Error::Replication(e) => e.kind(),
            Error::Sql(e) => e.kind(),
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
        Error::Remote {
            kind,
            detail: Detail::from_metadata(status.metadata()),
            message,
        }
    }
}

/// An error a server turns into a status: its message, kind and detail.
pub(crate) trait Failure: std::fmt::Display {
    fn kind(&self) -> ErrorKind;
    fn detail(&self) -> Detail;
}

impl Failure for rem::Error {
    fn kind(&self) -> ErrorKind {
        rem::Error::kind(self)
    }

    fn detail(&self) -> Detail {
        Detail::of(self)
    }
}

impl Failure for rem_sql::Error {
    fn kind(&self) -> ErrorKind {
        rem_sql::Error::kind(self)
    }

    fn detail(&self) -> Detail {
        match self.engine() {
            Some(e) => Detail::of(e),
            None => Detail {
                code: self.code().to_string(),
                ..Detail::default()
            },
        }
    }
}

impl Failure for Error {
    fn kind(&self) -> ErrorKind {
        Error::kind(self)
    }

    fn detail(&self) -> Detail {
        Error::detail(self)
    }
}

/// The status a server answers with for an error.
pub(crate) fn status(e: &impl Failure) -> Status {
    let message = e.to_string();
    let mut status = match e.kind() {
        ErrorKind::InvalidInput => Status::invalid_argument(message),
        ErrorKind::NotFound => Status::not_found(message),
        ErrorKind::FailedPrecondition => Status::failed_precondition(message),
        _ => Status::internal(message),
    };
    e.detail().to_metadata(status.metadata_mut());
    status
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
