"""rem_db: the REM database for AI agents, from Python.

One store for an agent's memory: records validated by Pydantic-derived schemas,
semantic search over auto-embedded text, SQL (with Arrow results), global key lookup
and a graph::

    import rem_db
    from pydantic import BaseModel

    class Note(BaseModel):
        model_config = {"json_schema_extra": {"embedding_fields": ["body"]}}
        title: str
        body: str

    with rem_db.Database("./notes-db") as db:
        db.register_schema(Note)
        db.insert("note", Note(title="Rust", body="Rust is a systems language."))
        hits = db.search("which language is fast?", table="note", top_k=3)
        rows = db.sql("SELECT title FROM note").to_list()

``rem_db.connect("127.0.0.1:8790", token=...)`` gives the same API through a running
``rem serve``; ``rem_db.aio.AsyncDatabase`` the same methods as coroutines.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Optional, Sequence, Type, TypeVar, Union

from . import _native, errors
from .errors import (
    AuthenticationError,
    ClosedError,
    ConfigError,
    DatabaseLockedError,
    EmbeddingError,
    IngestError,
    NotFoundError,
    PasswordError,
    QueryError,
    ReadOnlyError,
    RemError,
    ReplicationError,
    SchemaError,
    ServerConnectionError,
    StorageError,
    ValidationError,
)

__version__ = _native.version()

M = TypeVar("M")
Record = Union[Mapping[str, Any], Any]

# Settings a keyword argument may override, by the name of the `rem` setting.
_SETTING_ALIASES = {
    "embedding": "P8_DEFAULT_EMBEDDING",
    "tenant": "P8_DEFAULT_TENANT",
    "path": "P8_DB_PATH",
}


def _invalid(message: str) -> ValidationError:
    """A bad argument, raised before anything reaches the database."""
    return ValidationError(message, code="invalid_input", kind="invalid_input")


def _record(record: Record) -> dict:
    """A dict or a Pydantic model instance as the dict of a record (the extension
    converts it to JSON without going through JSON text)."""
    dump = getattr(record, "model_dump", None)
    if callable(dump):
        return dump(mode="json")
    if isinstance(record, dict):
        return record
    if isinstance(record, Mapping):
        return dict(record)
    raise _invalid(f"a record must be a dict or a Pydantic model, not {type(record).__name__}")


def _vector(v: Any) -> list[float]:
    """A sequence of numbers (a list, a tuple, a NumPy array) as a list of floats."""
    tolist = getattr(v, "tolist", None)
    if callable(tolist):
        v = tolist()
    try:
        return [float(x) for x in v]
    except (TypeError, ValueError):
        raise _invalid("a vector is a sequence of numbers") from None


def _packed(v: Any, one: bool = False) -> Optional[tuple[bytes, int]]:
    """A NumPy array (2-D, or 1-D with ``one``) as little-endian f32 bytes and its width;
    ``None`` for anything else."""
    if not hasattr(v, "__array_interface__") or not hasattr(v, "astype"):
        return None
    ndim = len(v.shape)
    if ndim != (1 if one else 2):
        return None
    arr = v.astype("<f4", copy=False)
    if not arr.flags["C_CONTIGUOUS"]:
        arr = arr.copy(order="C")
    return arr.tobytes(), int(v.shape[-1])


def _schema_json(schema: Any) -> str:
    """A Pydantic model class, a dict or a path to a JSON/YAML file, as JSON text."""
    if isinstance(schema, type) and hasattr(schema, "model_json_schema"):
        return json.dumps(schema.model_json_schema())
    if isinstance(schema, Mapping):
        return json.dumps(schema)
    if isinstance(schema, (str, os.PathLike)):
        path = Path(schema)
        try:
            text = path.read_text()
        except OSError as e:
            raise SchemaError(f"cannot read {path}: {e.strerror}", code="io", kind="invalid_input") from None
        if path.suffix in (".yaml", ".yml"):
            try:
                import yaml  # type: ignore[import-untyped]
            except ImportError:
                raise SchemaError("reading a YAML schema needs PyYAML (pip install pyyaml)", code="invalid_schema", kind="invalid_input") from None
            return json.dumps(yaml.safe_load(text))
        return text
    raise SchemaError(
        f"a schema must be a Pydantic model class, a dict or a path, not {type(schema).__name__}",
        code="invalid_schema",
        kind="invalid_input",
    )


class Hit(dict):
    """A search result: the entity's fields, plus ``score`` (cosine similarity)."""

    @property
    def score(self) -> float:
        return float(self["score"])


class Database:
    """A REM database.

    ``Database(path)`` opens (and creates) the database in the folder ``path``; with no
    path, the configured one (``P8_DB_PATH``, else ``~/.p8/db``), as the ``rem`` command
    does. When a ``rem serve`` holds that database, calls go through it. Another process
    holding it raises :class:`DatabaseLockedError` (``read_only=True`` reads beside it).

    ``tenant`` selects the tenant (default: ``P8_DEFAULT_TENANT``, else ``"default"``).
    ``password`` opens an encrypted database (default: ``P8_PASSWORD``); given for a
    path where no database exists yet, it creates one encrypted. A missing or wrong
    password raises :class:`PasswordError` and changes nothing.
    ``embedding`` picks the default embedding model (e.g. ``"local:all-MiniLM-L6-v2"``
    or ``"openai:text-embedding-3-small"``); ``config`` overrides any ``rem`` setting by
    its variable name (``{"P8_BATCH_SIZE": 500}``). Settings otherwise come from the
    environment and ``$P8_HOME/config.toml``.

    >>> with rem_db.Database("/tmp/db") as db:           # doctest: +SKIP
    ...     db.insert("resources", {"name": "a", "content": "hello"})
    """

    def __init__(
        self,
        path: Optional[Union[str, os.PathLike[str]]] = None,
        *,
        tenant: Optional[str] = None,
        read_only: bool = False,
        embedding: Optional[str] = None,
        config: Optional[Mapping[str, Any]] = None,
        password: Optional[str] = None,
        _native_db: Optional[Any] = None,
    ) -> None:
        if _native_db is not None:
            self._db = _native_db
            return
        env = _settings(path=path, tenant=tenant, embedding=embedding, config=config)
        if password is not None:
            if not password:
                raise ConfigError(
                    "an empty password is refused", code="config", kind="invalid_input"
                )
            env["P8_PASSWORD"] = password
        self._db = _native.Native.open(env, None, read_only)

    @classmethod
    def in_memory(cls) -> "Database":
        """A database that lives in memory only (default settings, nothing on disk).

        >>> db = rem_db.Database.in_memory()               # doctest: +SKIP
        """
        return cls(_native_db=_native.Native.in_memory())

    # -- lifecycle ---------------------------------------------------------------

    def close(self) -> None:
        """Closes the database and releases its storage and lock. Idempotent.

        >>> db.close()                                      # doctest: +SKIP
        """
        self._db.close()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return bool(self._db.closed)

    @property
    def remote(self) -> bool:
        """True when calls go to a server."""
        return bool(self._db.remote)

    @property
    def path(self) -> Optional[str]:
        """The database folder (``None`` through a server)."""
        return self._db.path

    def __enter__(self) -> "Database":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        where = "remote" if self.remote else (self._db.path if not self.closed else "closed")
        return f"<rem_db.Database {where}>"

    # -- schemas -----------------------------------------------------------------

    def register_schema(self, schema: Any) -> dict:
        """Registers a table from a Pydantic model class, a JSON Schema dict or a path.

        REM settings go in ``json_schema_extra`` (``key_field``, ``embedding_fields``,
        ``indexed_fields``, ``description``...). Returns the stored schema.

        >>> class Person(BaseModel):                       # doctest: +SKIP
        ...     model_config = {"json_schema_extra": {"key_field": "name"}}
        ...     name: str
        >>> db.register_schema(Person)["title"]            # doctest: +SKIP
        'Person'
        """
        return json.loads(self._db.register_schema(_schema_json(schema)))

    def schemas(self) -> list[dict]:
        """Every registered schema (built-ins included).

        >>> [s.get("title") for s in db.schemas()]         # doctest: +SKIP
        """
        return [json.loads(s) for s in self._db.schemas()]

    def schema(self, name: str) -> dict:
        """One schema by table name; :class:`SchemaError` when unknown.

        >>> db.schema("resources")["title"]                # doctest: +SKIP
        """
        return json.loads(self._db.schema(name))

    # -- writes ------------------------------------------------------------------

    def insert(self, table: str, record: Record, *, vector: Optional[Sequence[float]] = None) -> str:
        """Inserts (or updates, by key) one record; returns its id.

        ``vector`` brings the record's embedding (for tables with embedded fields,
        e.g. ``embedding_provider: "external:384"``); otherwise the table's provider
        embeds the text.

        >>> db.insert("person", {"name": "Ada"})           # doctest: +SKIP
        '6f1c...'
        """
        v = None if vector is None else _vector(vector)
        return self._db.insert(table, _record(record), v)

    def insert_batch(
        self,
        table: str,
        records: Iterable[Record],
        *,
        vectors: Optional[Iterable[Sequence[float]]] = None,
    ) -> list[str]:
        """Inserts records as one atomic batch: all are written, or none (the error's
        ``index`` names the refused one). Returns the ids in order. ``vectors`` (one per
        record) brings their embeddings; a vector of the wrong size is refused.

        >>> db.insert_batch("person", [{"name": "Ada"}, {"name": "Alan"}])  # doctest: +SKIP
        """
        recs = [_record(r) for r in records]
        if vectors is None:
            return self._db.insert_batch(table, recs)
        packed = _packed(vectors)
        if packed is not None:  # a 2-D array: its bytes, no Python float per value
            data, dims = packed
            return self._db.insert_batch(table, recs, None, data, dims)
        return self._db.insert_batch(table, recs, [_vector(v) for v in vectors])

    def delete(self, id: str) -> str:
        """Soft-deletes an entity; returns its table. :class:`NotFoundError` if none.

        >>> db.delete(ada_id)                               # doctest: +SKIP
        'person'
        """
        return self._db.delete(id)[1]

    # -- reads -------------------------------------------------------------------

    def get(self, id: str, *, include_deleted: bool = False) -> Optional[dict]:
        """The entity with this id as a dict, or ``None``.

        >>> db.get(ada_id)["name"]                          # doctest: +SKIP
        'Ada'
        """
        return self._db.get(id, include_deleted)

    def lookup(self, key: str) -> list[dict]:
        """Every entity whose key (or name) is ``key``, across tables.

        >>> [e["entity_type"] for e in db.lookup("Ada")]   # doctest: +SKIP
        """
        return list(self._db.lookup(key))

    def search(
        self,
        query: Union[str, Sequence[float]],
        table: Optional[str] = None,
        top_k: int = 10,
        where: Optional[str] = None,
        min_score: Optional[float] = None,
        *,
        alt: bool = False,
    ) -> list[Hit]:
        """Semantic search: the ``top_k`` entities nearest to ``query`` (a text, which
        the table's provider embeds, or a vector of the table's size), best first.

        ``where`` is a SQL predicate (``"category = 'db' AND views > 10"``) with the
        same meaning as in :meth:`sql`. Without ``table``, the table whose description
        is nearest the query is searched.

        >>> [h["name"] for h in db.search("key-value stores", table="resources")]  # doctest: +SKIP
        """
        if isinstance(query, str):
            _, _, hits = self._db.search(query, table, top_k, where, min_score, alt)
        else:
            if table is None:
                raise _invalid("a search by vector names its table")
            one = _packed(query, one=True)
            if one is not None:
                _, _, hits = self._db.search("", table, top_k, where, min_score, alt, None, one[0])
            else:
                _, _, hits = self._db.search("", table, top_k, where, min_score, alt, _vector(query))
        return [Hit(h) for h in hits]

    def sql(self, query: str, *, include_deleted: bool = False) -> "ResultSet":
        """Runs a SQL query; the result streams (see :class:`ResultSet`).

        >>> db.sql("SELECT name FROM person ORDER BY name").to_list()  # doctest: +SKIP
        [{'name': 'Ada'}, {'name': 'Alan'}]
        """
        return ResultSet(self._db.sql(query, include_deleted))

    # -- graph -------------------------------------------------------------------

    def add_edge(
        self,
        src: str,
        dst: str,
        edge_type: str,
        *,
        weight: Optional[float] = None,
        properties: Optional[Mapping[str, Any]] = None,
    ) -> dict:
        """Adds a directed edge between two entities (by id or key); returns it.

        >>> db.add_edge("Ada", "Alan", "knows")            # doctest: +SKIP
        """
        props = None if properties is None else json.dumps(properties)
        return json.loads(self._db.add_edge(src, dst, edge_type, weight, props))

    def remove_edge(self, src: str, dst: str, edge_type: str) -> bool:
        """Removes an edge; ``False`` when there was none.

        >>> db.remove_edge("Ada", "Alan", "knows")         # doctest: +SKIP
        True
        """
        return bool(self._db.remove_edge(src, dst, edge_type))

    def edges(self, entity: str, *, direction: str = "both", edge_type: Optional[str] = None) -> list[dict]:
        """The edges of an entity (``direction``: ``out``, ``in`` or ``both``).

        >>> db.edges("Ada", direction="out")               # doctest: +SKIP
        """
        return json.loads(self._db.edges(entity, direction, edge_type))

    def traverse(
        self,
        entity: str,
        depth: int = 1,
        *,
        direction: str = "out",
        edge_type: Optional[str] = None,
        dfs: bool = False,
    ) -> list[dict]:
        """Entities reachable within ``depth`` hops (breadth-first unless ``dfs``), each
        with its ``depth``, ``table``, the ``edge_type`` that reached it and its ``path``.

        >>> [n["id"] for n in db.traverse("Ada", depth=2)]  # doctest: +SKIP
        """
        return json.loads(self._db.traverse(entity, depth, direction, edge_type, dfs))

    # -- documents ---------------------------------------------------------------

    def ingest(
        self,
        path: Union[str, os.PathLike[str]],
        *,
        schema: str = "resources",
        recursive: bool = True,
    ) -> list[dict]:
        """Ingests a file or a folder: text, Markdown, HTML and PDF are chunked and
        embedded into ``schema``. Returns one report per file (``status`` is
        ``completed``, ``unchanged``, ``failed`` or ``refused``).

        >>> db.ingest("docs/")                              # doctest: +SKIP
        """
        return [json.loads(r) for r in self._db.ingest_path(schema, os.fspath(path), recursive)]

    def export(
        self,
        table: str,
        path: Union[str, os.PathLike[str]],
        *,
        format: Optional[str] = None,
        compression: Optional[str] = None,
        where: Optional[str] = None,
        include_embeddings: bool = False,
        plaintext: bool = False,
    ) -> int:
        """Writes a table to a Parquet, CSV or JSONL file (from the extension unless
        ``format`` is given), whole or not at all. Returns the rows written. From an
        encrypted database, ``plaintext=True`` is required: the file is not encrypted.

        >>> db.export("person", "people.parquet")          # doctest: +SKIP
        2
        """
        target = os.fspath(path)
        if format is None:
            suffix = Path(target).suffix.lower().lstrip(".")
            format = {"parquet": "parquet", "csv": "csv", "jsonl": "jsonl", "ndjson": "jsonl"}.get(suffix)
            if format is None:
                raise _invalid(f"cannot tell the format of {target}: give format='parquet', 'csv' or 'jsonl'")
        return int(
            self._db.export(table, target, format, compression, where, include_embeddings, plaintext)
        )

    # -- maintenance -------------------------------------------------------------

    def stats(self) -> dict:
        """Rows per table, disk use and the last change's sequence number.

        >>> db.stats()["tables"]                            # doctest: +SKIP
        """
        return json.loads(self._db.stats())

    def verify(self) -> list[str]:
        """Checks indexes, key index and change log against the entities; returns the
        problems found (empty when consistent).

        >>> db.verify()                                     # doctest: +SKIP
        []
        """
        return list(self._db.verify())


def connect(
    address: str,
    *,
    token: Optional[str] = None,
    tenant: Optional[str] = None,
    config: Optional[Mapping[str, Any]] = None,
) -> Database:
    """A :class:`Database` served by ``rem serve`` at ``address`` (``host:port``).

    ``token`` is the server's (``P8_SERVER_TOKEN``, or the ``TOKEN`` file in the served
    database's folder).

    >>> db = rem_db.connect("127.0.0.1:8790", token=open("db/TOKEN").read())  # doctest: +SKIP
    """
    overrides = dict(config or {})
    if token is not None:
        overrides["P8_SERVER_TOKEN"] = token
    env = _settings(path=None, tenant=tenant, embedding=None, config=overrides)
    return Database(_native_db=_native.Native.open(env, address, False))


def _settings(
    *,
    path: Optional[Union[str, os.PathLike[str]]],
    tenant: Optional[str],
    embedding: Optional[str],
    config: Optional[Mapping[str, Any]],
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()}
    for key, value in (config or {}).items():
        name = _SETTING_ALIASES.get(key, key)
        if not name.startswith("P8_") and name not in ("OPENAI_API_KEY", "HOME"):
            raise ConfigError(
                f"unknown setting '{key}': give a rem setting by its variable name (e.g. P8_BATCH_SIZE)",
                code="config",
                kind="invalid_input",
            )
        env[name] = str(value).lower() if isinstance(value, bool) else str(value)
    if path is not None:
        env["P8_DB_PATH"] = os.path.abspath(os.fspath(path))
    if tenant is not None:
        env["P8_DEFAULT_TENANT"] = tenant
    if embedding is not None:
        env["P8_DEFAULT_EMBEDDING"] = embedding
    return env


class ResultSet:
    """The result of :meth:`Database.sql`. It streams: batches are produced as they are
    read, and a result is read once, by one of the ways below.

    - iterate it for dicts, or :meth:`to_list` / :meth:`to_pydantic`;
    - :meth:`to_arrow` (a ``pyarrow.Table``), :meth:`to_reader` (a streaming
      ``pyarrow.RecordBatchReader``), :meth:`to_pandas`, :meth:`to_polars`;
    - any Arrow consumer, through ``__arrow_c_stream__`` (the Arrow PyCapsule
      interface; needs pyarrow).

    >>> for row in db.sql("SELECT name FROM person"):  # doctest: +SKIP
    ...     print(row["name"])
    """

    def __init__(self, native: Any) -> None:
        self._native = native
        self._taken = False

    @property
    def columns(self) -> list[str]:
        """The column names."""
        return list(self._native.columns())

    def _take(self) -> Any:
        if self._taken:
            raise QueryError("this result was already read; run the query again", code="sql", kind="invalid_input")
        self._taken = True
        return self._native

    def __iter__(self) -> Iterator[dict]:
        native = self._take()
        while True:
            text = native.next_json()
            if text is None:
                return
            yield from json.loads(text)

    def to_list(self) -> list[dict]:
        """Every row as a dict.

        >>> db.sql("SELECT 1 AS one").to_list()            # doctest: +SKIP
        [{'one': 1}]
        """
        return list(self)

    def to_pydantic(self, model: Type[M]) -> list[M]:
        """Every row validated into ``model`` (a Pydantic model class).

        >>> db.sql("SELECT name FROM person").to_pydantic(Person)  # doctest: +SKIP
        """
        validate = getattr(model, "model_validate")
        return [validate(row) for row in self]

    def to_reader(self) -> Any:
        """A streaming ``pyarrow.RecordBatchReader``.

        >>> reader = db.sql("SELECT * FROM person").to_reader()  # doctest: +SKIP
        """
        pa = _pyarrow()
        native = self._take()
        schema = pa.ipc.open_stream(native.schema_ipc()).schema

        def batches() -> Iterator[Any]:
            while True:
                chunk = native.next_ipc()
                if chunk is None:
                    return
                yield from pa.ipc.open_stream(chunk)

        return pa.RecordBatchReader.from_batches(schema, batches())

    def to_arrow(self) -> Any:
        """The whole result as a ``pyarrow.Table``.

        >>> db.sql("SELECT * FROM person").to_arrow().num_rows  # doctest: +SKIP
        """
        return self.to_reader().read_all()

    def to_pandas(self) -> Any:
        """The whole result as a ``pandas.DataFrame`` (needs pandas and pyarrow).

        >>> db.sql("SELECT * FROM person").to_pandas()     # doctest: +SKIP
        """
        return self.to_arrow().to_pandas()

    def to_polars(self) -> Any:
        """The whole result as a ``polars.DataFrame`` (needs polars and pyarrow).

        >>> db.sql("SELECT * FROM person").to_polars()     # doctest: +SKIP
        """
        try:
            import polars as pl  # type: ignore[import-not-found]
        except ImportError:
            raise ImportError("to_polars() needs polars: pip install 'percolate-rocks[polars]'") from None
        return pl.from_arrow(self.to_arrow())

    def __arrow_c_stream__(self, requested_schema: Any = None) -> Any:
        return self.to_reader().__arrow_c_stream__(requested_schema)


def _pyarrow() -> Any:
    try:
        import pyarrow as pa  # type: ignore[import-untyped]
        import pyarrow.ipc  # noqa: F401  # type: ignore[import-untyped]
    except ImportError:
        raise ImportError("Arrow output needs pyarrow: pip install 'percolate-rocks[arrow]'") from None
    return pa


__all__ = ["Database", "ResultSet", "Hit", "connect", *errors.__all__]
