"""The exceptions of ``rem_db``.

Every error the database raises is a :class:`RemError`. The class is chosen from the
typed error's code (the engine's ``Error::code``, carried across the service in the
reply's metadata), never from its message::

    try:
        db.insert("person", {"name": 3})
    except rem_db.ValidationError as e:
        print(e.field, e.rule)   # name type
"""

from __future__ import annotations

from typing import Optional


class RemError(Exception):
    """Base class of every ``rem_db`` error.

    Attributes: ``code`` (the engine's error code, e.g. ``"validation"``), ``kind``
    (``invalid_input``, ``not_found``, ``failed_precondition`` or ``internal``) and
    ``index`` (the position of the refused record in a batch, else ``None``).
    """

    def __init__(
        self,
        message: str,
        *,
        code: str = "internal",
        kind: str = "internal",
        index: Optional[int] = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.kind = kind
        self.index = index

    def __str__(self) -> str:
        return self.message


class NotFoundError(RemError, KeyError):
    """What the call names does not exist: an entity, a table, a database."""

    def __str__(self) -> str:  # KeyError would quote the message
        return self.message


class ValidationError(RemError, ValueError):
    """The input is not acceptable: a schema violation, malformed JSON, a bad argument.

    ``field`` and ``rule`` name the first violation of a record (e.g. ``"age"`` and
    ``"type"``) when the error is a schema violation.
    """

    def __init__(
        self,
        message: str,
        *,
        field: Optional[str] = None,
        rule: Optional[str] = None,
        **kw: object,
    ) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.field = field
        self.rule = rule


class SchemaError(RemError, ValueError):
    """A schema cannot be registered, or a table is unknown."""


class QueryError(RemError, ValueError):
    """A SQL statement or a search predicate cannot be parsed, planned or run."""


class EmbeddingError(RemError):
    """An embedding provider failed (model missing, endpoint error, wrong dimension)."""


class IngestError(RemError):
    """A document could not be ingested."""


class ReplicationError(RemError):
    """Replication failed (a gap in the change stream, a replica refused)."""


class ReadOnlyError(RemError):
    """A write on a database opened read-only, or on a replica."""


class ClosedError(RemError):
    """The database was closed, or opened before this process forked."""


class ConfigError(RemError, ValueError):
    """A configuration value is malformed."""


class StorageError(RemError, OSError):
    """The storage failed or stored data is corrupt; not the caller's fault."""


class AuthenticationError(RemError, PermissionError):
    """The server refused the token (or none was given)."""


class ServerConnectionError(RemError, ConnectionError):
    """The server cannot be reached, or the connection broke during the call."""


class PasswordError(RemError, PermissionError):
    """An encrypted database needs its password, the password is wrong, or a password was
    given for a database that is not encrypted. Nothing was changed on disk."""


class DatabaseLockedError(RemError, OSError):
    """Another process holds the database.

    Open it with ``read_only=True`` to read beside the writer, or run ``rem serve`` in
    the process that owns it and reach it with ``rem_db.connect(...)``.
    """

    def __init__(self, message: str, *, path: Optional[str] = None, **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.path = path


_BY_CODE: dict[str, type[RemError]] = {
    "not_initialized": NotFoundError,
    "not_found": NotFoundError,
    "unknown_table": SchemaError,
    "invalid_schema": SchemaError,
    "python": SchemaError,
    "validation": ValidationError,
    "invalid_json": ValidationError,
    "invalid_input": ValidationError,
    "sql": QueryError,
    "sql_syntax": QueryError,
    "sql_internal": StorageError,
    "embedding": EmbeddingError,
    "io": IngestError,
    "gap": ReplicationError,
    "replica": ReadOnlyError,
    "read_only": ReadOnlyError,
    "locked": DatabaseLockedError,
    "password_required": PasswordError,
    "wrong_password": PasswordError,
    "not_encrypted": PasswordError,
    "closed": ClosedError,
    "forked": ClosedError,
    "config": ConfigError,
    "storage": StorageError,
    "unauthenticated": AuthenticationError,
    "connection": ServerConnectionError,
}

_BY_KIND: dict[str, type[RemError]] = {
    "invalid_input": ValidationError,
    "not_found": NotFoundError,
}


def _from_native(
    code: str,
    kind: str,
    message: str,
    field: Optional[str],
    rule: Optional[str],
    index: Optional[int],
    path: Optional[str],
) -> RemError:
    """The exception for an error of the native module (called from Rust)."""
    cls = _BY_CODE.get(code) or _BY_KIND.get(kind, RemError)
    if cls is DatabaseLockedError:
        message = (
            f"{message}; open it with read_only=True to read beside the writer, or run "
            "`rem serve` where it is open and use rem_db.connect(...)"
        )
        return DatabaseLockedError(message, path=path, code=code, kind=kind, index=index)
    if cls is ValidationError:
        return ValidationError(message, field=field, rule=rule, code=code, kind=kind, index=index)
    return cls(message, code=code, kind=kind, index=index)


__all__ = [
    "RemError",
    "NotFoundError",
    "ValidationError",
    "SchemaError",
    "QueryError",
    "EmbeddingError",
    "IngestError",
    "ReplicationError",
    "ReadOnlyError",
    "ClosedError",
    "ConfigError",
    "StorageError",
    "AuthenticationError",
    "ServerConnectionError",
    "DatabaseLockedError",
    "PasswordError",
]
