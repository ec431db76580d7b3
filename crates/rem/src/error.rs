//! Errors of the engine. Every message is one sentence a user can act on.

use rem_storage::StorageError;

/// An error from the engine. The CLI prints its `Display` form as is.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No database at the path; create one with `rem init`.
    #[error("no database at {path}; create one with `rem init --path {path}`")]
    NotInitialized {
        /// Database path as given.
        path: String,
    },
    /// Another process holds the database; stop it or open read-only.
    #[error("the database at {path} is locked by another process")]
    Locked {
        /// Database path.
        path: String,
    },
    /// The database is encrypted and no password was given.
    #[error("the database at {path} is encrypted: give its password (--password, P8_PASSWORD, or the prompt on a terminal)")]
    PasswordRequired {
        /// Database path.
        path: String,
    },
    /// The password does not open the database (or a sealed key file); nothing changed.
    #[error("wrong password for {path}")]
    WrongPassword {
        /// Database path (or the sealed file).
        path: String,
    },
    /// A password was given for a database that is not encrypted.
    #[error(
        "the database at {path} is not encrypted; open it without a password (unset P8_PASSWORD)"
    )]
    NotEncrypted {
        /// Database path.
        path: String,
    },
    /// A write on a read-only database.
    #[error("the database is open read-only; writes are refused")]
    ReadOnly,
    /// A local write on a replica.
    #[error("this database is a replica of {primary}: writes go to the primary (or run `rem replication promote` to make this one a primary)")]
    Replica {
        /// The primary's address.
        primary: String,
    },
    /// Replication: a change record arrived out of order or one is missing.
    #[error("replication gap: expected change {expected}, got {got}")]
    Gap {
        /// The next sequence number the replica needs.
        expected: u64,
        /// The one it was given.
        got: u64,
    },
    /// The table is not registered for this tenant.
    #[error("unknown table '{0}'; register it with `rem schema add` (see `rem schema list`)")]
    UnknownTable(String),
    /// No entity has this id (for this tenant).
    #[error("{0}")]
    NotFound(String),
    /// Input text is not valid JSON (or YAML).
    #[error("invalid JSON{}: {message}", location.as_deref().map(|l| format!(" {l}")).unwrap_or_default())]
    InvalidJson {
        /// Where (e.g. "on line 3"), when known.
        location: Option<String>,
        /// Parser message.
        message: String,
    },
    /// A record violates its table's schema; nothing was written.
    #[error("record violates schema '{table}': {detail}")]
    Validation {
        /// Table name.
        table: String,
        /// Field and rule, e.g. "field 'age': \"x\" is not of type \"integer\"".
        detail: String,
        /// The first violation's field (dotted path), when it is inside the record.
        field: Option<String>,
        /// The first violation's JSON Schema keyword (`type`, `required`, `minimum`...).
        rule: Option<String>,
    },
    /// A schema document cannot be registered.
    #[error("invalid schema: {0}")]
    InvalidSchema(String),
    /// An argument or value is not acceptable (bad id, bad tenant name, ...).
    #[error("{0}")]
    InvalidInput(String),
    /// Loading a schema from Python failed (python3 or pydantic missing, import error).
    #[error("{0}")]
    Python(String),
    /// Reading a file failed.
    #[error("cannot read {path}: {source}")]
    Io {
        /// File path.
        path: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A configuration value is malformed.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// An embedding provider failed (model missing, endpoint error, dimension mismatch);
    /// nothing was written.
    #[error("{0}")]
    Embedding(String),
    /// The embedding provider failed (a model that does not load, an endpoint that
    /// refuses); nothing was written. Keeps the provider's error as its source.
    #[error(transparent)]
    Provider(#[from] rem_embed::EmbedError),
    /// One record of a batch was refused; nothing of the batch was written.
    #[error("record {} of the batch: {source}", index + 1)]
    Record {
        /// Zero-based position of the record in the batch.
        index: usize,
        /// Why it was refused.
        source: Box<Error>,
    },
    /// Stored data is corrupt or the storage backend failed.
    #[error("{0}")]
    Storage(StorageError),
}

impl From<StorageError> for Error {
    fn from(err: StorageError) -> Self {
        match err {
            StorageError::Locked { path } => Error::Locked {
                path: path.display().to_string(),
            },
            StorageError::Missing { path } => Error::NotInitialized {
                path: path.display().to_string(),
            },
            StorageError::ReadOnly => Error::ReadOnly,
            StorageError::PasswordRequired { path } => Error::PasswordRequired {
                path: path.display().to_string(),
            },
            StorageError::WrongPassword { path } => Error::WrongPassword {
                path: path.display().to_string(),
            },
            StorageError::NotEncrypted { path } => Error::NotEncrypted {
                path: path.display().to_string(),
            },
            StorageError::KdfParams(msg) => Error::Config(msg),
            other => Error::Storage(other),
        }
    }
}

/// What kind of failure an error is. It drives the CLI's exit code, the gRPC status
/// code a server answers with, and the Python exception class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The request is wrong: malformed JSON, a schema violation, bad SQL, a bad
    /// argument. Fix the input and retry.
    InvalidInput,
    /// What the request names does not exist (an entity, a table, a path).
    NotFound,
    /// The database cannot do this now: locked, read-only, a replica, not initialized.
    FailedPrecondition,
    /// Storage, I/O or an internal failure: not the caller's fault.
    Internal,
}

impl ErrorKind {
    /// True for errors the caller can fix (everything but [`ErrorKind::Internal`]).
    pub fn is_user_error(self) -> bool {
        self != ErrorKind::Internal
    }

    /// `invalid_input`, `not_found`, `failed_precondition` or `internal`.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::InvalidInput => "invalid_input",
            ErrorKind::NotFound => "not_found",
            ErrorKind::FailedPrecondition => "failed_precondition",
            ErrorKind::Internal => "internal",
        }
    }

    /// The kind [`ErrorKind::name`] names (`internal` for anything else).
    pub fn from_name(name: &str) -> ErrorKind {
        match name {
            "invalid_input" => ErrorKind::InvalidInput,
            "not_found" => ErrorKind::NotFound,
            "failed_precondition" => ErrorKind::FailedPrecondition,
            _ => ErrorKind::Internal,
        }
    }
}

impl Error {
    /// The kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::NotInitialized { .. }
            | Error::Locked { .. }
            | Error::ReadOnly
            | Error::PasswordRequired { .. }
            | Error::Replica { .. } => ErrorKind::FailedPrecondition,
            Error::UnknownTable(_) | Error::NotFound(_) => ErrorKind::NotFound,
            Error::InvalidJson { .. }
            | Error::Validation { .. }
            | Error::InvalidSchema(_)
            | Error::InvalidInput(_)
            | Error::Python(_)
            | Error::Io { .. }
            | Error::Config(_)
            | Error::WrongPassword { .. }
            | Error::NotEncrypted { .. }
            | Error::Embedding(_)
            | Error::Provider(_) => ErrorKind::InvalidInput,
            Error::Record { source, .. } => source.kind(),
            Error::Gap { .. } | Error::Storage(_) => ErrorKind::Internal,
        }
    }
}

impl Error {
    /// A stable, machine-readable name of the error's variant (of its cause, for a
    /// refused record): `not_initialized`, `locked`, `read_only`, `password_required`,
    /// `wrong_password`, `not_encrypted`, `replica`, `gap`,
    /// `unknown_table`, `not_found`, `invalid_json`, `validation`, `invalid_schema`,
    /// `invalid_input`, `python`, `io`, `config`, `embedding` or `storage`. It
    /// crosses the service (gRPC metadata) so clients pick exception classes from it,
    /// never from messages.
    pub fn code(&self) -> &'static str {
        match self {
            Error::NotInitialized { .. } => "not_initialized",
            Error::Locked { .. } => "locked",
            Error::ReadOnly => "read_only",
            Error::PasswordRequired { .. } => "password_required",
            Error::WrongPassword { .. } => "wrong_password",
            Error::NotEncrypted { .. } => "not_encrypted",
            Error::Replica { .. } => "replica",
            Error::Gap { .. } => "gap",
            Error::UnknownTable(_) => "unknown_table",
            Error::NotFound(_) => "not_found",
            Error::InvalidJson { .. } => "invalid_json",
            Error::Validation { .. } => "validation",
            Error::InvalidSchema(_) => "invalid_schema",
            Error::InvalidInput(_) => "invalid_input",
            Error::Python(_) => "python",
            Error::Io { .. } => "io",
            Error::Config(_) => "config",
            Error::Embedding(_) | Error::Provider(_) => "embedding",
            Error::Record { source, .. } => source.code(),
            Error::Storage(_) => "storage",
        }
    }

    /// The field and the rule of a schema violation (of a refused record's cause).
    pub fn violation(&self) -> (Option<&str>, Option<&str>) {
        match self {
            Error::Validation { field, rule, .. } => (field.as_deref(), rule.as_deref()),
            Error::Record { source, .. } => source.violation(),
            _ => (None, None),
        }
    }
}

/// Result alias for engine operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;
