//! `rem_db._native`: the Rust half of the Python package.
//!
//! One class, [`Native`], holds a [`Backend`] (the embedded database, or a client of a
//! server) and exposes its operations with JSON text in and out; `python/rem_db` turns
//! that into dicts, Pydantic models and Arrow. Every call releases the GIL while it
//! works. Errors become the exception classes of `rem_db.errors`, chosen from the typed
//! error's code ([`rem::Error::code`], carried across the service as metadata), never
//! from its message. `run_cli` is the `rem` command installed with the package.

// A failure is built once, on the error path, and becomes a Python exception at once:
// its size does not matter.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use rem_service::proto;
use rem_service::{Backend, Batches, Ingester, Inserter};
use rem_sql::arrow::ipc::writer::StreamWriter;
use rem_sql::arrow::record_batch::RecordBatch;
use serde_json::{json, Value};

// The engine's Rust allocations go through mimalloc, as in the `rem` binary: with the
// system allocator, a search spent ~7% of its time in malloc/free and ran ~20% slower
// in Python than the same call in `rem-bench`.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// What the Python side needs to raise the right exception.
struct Failure {
    code: String,
    kind: String,
    message: String,
    field: Option<String>,
    rule: Option<String>,
    index: Option<usize>,
    path: Option<String>,
}

impl Failure {
    fn from_service(e: &rem_service::Error) -> Failure {
        let detail = e.detail();
        let code = match e {
            rem_service::Error::Unauthenticated(_) => "unauthenticated".to_string(),
            rem_service::Error::Connection(_) => "connection".to_string(),
            rem_service::Error::Protocol(_) => "protocol".to_string(),
            _ if detail.code.is_empty() => "internal".to_string(),
            _ => detail.code,
        };
        let (index, path) = match e {
            rem_service::Error::Record { index, .. } => (Some(*index), None),
            rem_service::Error::Engine(rem::Error::Record { index, .. }) => (Some(*index), None),
            rem_service::Error::Engine(r) => (None, path_of(r)),
            _ => (None, None),
        };
        Failure {
            code,
            kind: e.kind().name().to_string(),
            message: e.to_string(),
            field: detail.field,
            rule: detail.rule,
            index,
            path,
        }
    }

    /// An error of the CLI layer (opening, configuration): the typed error inside it
    /// when there is one.
    fn from_anyhow(e: &anyhow::Error) -> Failure {
        for cause in e.chain() {
            if let Some(s) = cause.downcast_ref::<rem_service::Error>() {
                return Failure {
                    message: format!("{e:#}"),
                    ..Failure::from_service(s)
                };
            }
            if let Some(r) = cause.downcast_ref::<rem::Error>() {
                let (field, rule) = r.violation();
                let path = path_of(r);
                return Failure {
                    code: r.code().to_string(),
                    kind: r.kind().name().to_string(),
                    message: format!("{e:#}"),
                    field: field.map(str::to_string),
                    rule: rule.map(str::to_string),
                    index: None,
                    path,
                };
            }
        }
        Failure {
            code: "internal".into(),
            kind: "internal".into(),
            message: format!("{e:#}"),
            field: None,
            rule: None,
            index: None,
            path: None,
        }
    }

    fn simple(code: &str, kind: &str, message: impl Into<String>) -> Failure {
        Failure {
            code: code.into(),
            kind: kind.into(),
            message: message.into(),
            field: None,
            rule: None,
            index: None,
            path: None,
        }
    }

    /// The `rem_db.errors` exception for this failure.
    fn into_py(self, py: Python<'_>) -> PyErr {
        let made = py.import("rem_db.errors").and_then(|m| {
            m.getattr("_from_native")?.call1((
                self.code,
                self.kind,
                self.message.clone(),
                self.field,
                self.rule,
                self.index,
                self.path,
            ))
        });
        match made {
            Ok(exc) => PyErr::from_value(exc),
            Err(_) => PyRuntimeError::new_err(self.message),
        }
    }
}

/// The database path an engine error names (locked, not initialized).
fn path_of(e: &rem::Error) -> Option<String> {
    match e {
        rem::Error::Locked { path } | rem::Error::NotInitialized { path } => Some(path.clone()),
        _ => None,
    }
}

type Outcome<T> = Result<T, Failure>;

/// `(table, table_detected, [(score, entity_json)])`.
type SearchResult<'py> = (String, bool, Vec<Bound<'py, PyAny>>);

fn service<T>(r: rem_service::Result<T>) -> Outcome<T> {
    r.map_err(|e| Failure::from_service(&e))
}

fn engine<T>(r: rem::Result<T>) -> Outcome<T> {
    service(r.map_err(rem_service::Error::from))
}

fn bad_input(message: impl Into<String>) -> Failure {
    Failure::simple("invalid_input", "invalid_input", message)
}

fn parse_json(text: &str, what: &str) -> Outcome<Value> {
    serde_json::from_str(text).map_err(|e| {
        Failure::simple(
            "invalid_json",
            "invalid_input",
            format!("invalid JSON in the {what}: {e}"),
        )
    })
}

/// A record (a dict) as JSON, converted in place rather than through JSON text. What
/// `json.dumps` refuses is refused here too, and so are non-finite floats and integers
/// JSON numbers cannot hold exactly (`json.dumps` would write them and the engine
/// refuse or round them).
fn record_value(record: &Bound<'_, PyAny>, what: &str) -> Outcome<Value> {
    if !record.is_instance_of::<PyDict>() {
        return Err(bad_input(format!(
            "the {what} must be a dict, not {}",
            type_name(record)
        )));
    }
    from_py(record, 0).map_err(|e| {
        Failure::simple(
            "invalid_json",
            "invalid_input",
            format!("the {what} is not JSON-serialisable: {e}"),
        )
    })
}

fn type_name(v: &Bound<'_, PyAny>) -> String {
    v.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into())
}

/// Python values as JSON: dict (str, int, bool or None keys, as `json.dumps` writes
/// them), list, tuple, str, int, float, bool, None.
fn from_py(v: &Bound<'_, PyAny>, depth: usize) -> Result<Value, String> {
    // Deeper than serde_json's own recursion limit is refused, not a stack overflow.
    if depth > 128 {
        return Err("nested more than 128 levels deep".into());
    }
    if v.is_none() {
        return Ok(Value::Null);
    }
    if let Ok(b) = v.cast::<PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if let Ok(s) = v.cast::<PyString>() {
        return Ok(Value::String(
            s.to_str().map_err(|e| e.to_string())?.to_owned(),
        ));
    }
    if v.is_instance_of::<PyInt>() {
        if let Ok(i) = v.extract::<i64>() {
            return Ok(Value::from(i));
        }
        if let Ok(u) = v.extract::<u64>() {
            return Ok(Value::from(u));
        }
        return Err(format!("the integer {v} does not fit in 64 bits"));
    }
    if let Ok(f) = v.cast::<PyFloat>() {
        return serde_json::Number::from_f64(f.value())
            .map(Value::Number)
            .ok_or_else(|| format!("{} is not a finite number", f.value()));
    }
    if let Ok(d) = v.cast::<PyDict>() {
        let mut map = serde_json::Map::with_capacity(d.len());
        for (k, item) in d.iter() {
            let key = if let Ok(s) = k.cast::<PyString>() {
                s.to_str().map_err(|e| e.to_string())?.to_owned()
            } else if k.is_none() {
                "null".into()
            } else if let Ok(b) = k.cast::<PyBool>() {
                b.is_true().to_string()
            } else if k.is_instance_of::<PyInt>() {
                k.to_string()
            } else {
                return Err(format!(
                    "keys must be str, int, bool or None, not {}",
                    type_name(&k)
                ));
            };
            map.insert(key, from_py(&item, depth + 1)?);
        }
        return Ok(Value::Object(map));
    }
    if let Ok(l) = v.cast::<PyList>() {
        return l
            .iter()
            .map(|x| from_py(&x, depth + 1))
            .collect::<Result<_, _>>()
            .map(Value::Array);
    }
    if let Ok(t) = v.cast::<PyTuple>() {
        return t
            .iter()
            .map(|x| from_py(&x, depth + 1))
            .collect::<Result<_, _>>()
            .map(Value::Array);
    }
    Err(format!(
        "Object of type {} is not JSON serializable",
        type_name(v)
    ))
}

/// Runs `f` with the GIL released and turns a failure into its exception.
fn detached<T: Send>(py: Python<'_>, f: impl FnOnce() -> Outcome<T> + Send) -> PyResult<T> {
    py.detach(f).map_err(|e| e.into_py(py))
}

/// A database or a server, as the Python `Database` holds it.
#[pyclass(frozen, module = "rem_db._native")]
struct Native {
    backend: Mutex<Option<Backend>>,
    /// The process that opened it: a forked child gets an error, not a hang on locks
    /// and threads that did not survive the fork.
    pid: u32,
    remote: bool,
    /// The export settings of the configuration it was opened with (compression,
    /// Parquet row group size).
    export_defaults: (String, u64),
}

impl Native {
    fn backend(&self) -> Outcome<Backend> {
        if std::process::id() != self.pid {
            return Err(Failure::simple(
                "forked",
                "failed_precondition",
                "this database was opened before the process forked; open it again in the child (a database cannot cross fork())",
            ));
        }
        let guard = self.backend.lock().map_err(|_| {
            Failure::simple("internal", "internal", "the database lock is poisoned")
        })?;
        guard.clone().ok_or_else(|| {
            Failure::simple("closed", "failed_precondition", "the database is closed")
        })
    }

    /// A quick call (a point read): runs on this thread with the GIL released.
    fn with<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(Backend) -> Outcome<T> + Send,
    ) -> PyResult<T> {
        let backend = self.backend().map_err(|e| e.into_py(py))?;
        detached(py, move || f(backend))
    }

    /// A call that may take long: see [`interruptible`].
    fn long<T: Send + 'static>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(Backend) -> Outcome<T> + Send + 'static,
    ) -> PyResult<T> {
        let backend = self.backend().map_err(|e| e.into_py(py))?;
        interruptible(py, move || f(backend))
    }
}

/// Runs `f` on a worker thread while this one waits with the GIL released, checking
/// for signals every 50 ms: Ctrl-C raises `KeyboardInterrupt` at once. The work itself
/// is not torn down mid-way (a write still commits or not as one atomic batch); its
/// result is dropped.
fn interruptible<T: Send + 'static>(
    py: Python<'_>,
    f: impl FnOnce() -> Outcome<T> + Send + 'static,
) -> PyResult<T> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("rem_db-call".into())
        .spawn(move || {
            let _ = tx.send(f());
        })
        .map_err(|e| PyRuntimeError::new_err(format!("cannot start a worker thread: {e}")))?;
    let mut rx = rx;
    loop {
        // The receiver moves into the GIL-free section and back (it is not `Sync`).
        let (waited, back) = py.detach(move || {
            let waited = rx.recv_timeout(std::time::Duration::from_millis(50));
            (waited, rx)
        });
        rx = back;
        match waited {
            Ok(result) => return result.map_err(|e| e.into_py(py)),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => py.check_signals()?,
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                return Err(PyRuntimeError::new_err("the worker thread panicked"))
            }
        }
    }
}

#[pymethods]
impl Native {
    /// Opens as the `rem` command does, from the settings in `env` (the process
    /// environment with the caller's overrides): through `server` when given, through
    /// the live server holding the database, else in this process.
    #[staticmethod]
    #[pyo3(signature = (env, server=None, read_only=false))]
    fn open(
        py: Python<'_>,
        env: BTreeMap<String, String>,
        server: Option<String>,
        read_only: bool,
    ) -> PyResult<Native> {
        let (backend, export_defaults) = py
            .detach(|| -> anyhow::Result<_> {
                let config = rem_cli::Config::load_from(&env)?;
                let defaults = export_defaults(&config)?;
                Ok((
                    rem_cli::open_backend(&config, server.as_deref(), read_only)?,
                    defaults,
                ))
            })
            .map_err(|e| Failure::from_anyhow(&e).into_py(py))?;
        Ok(Native {
            remote: backend.is_remote(),
            backend: Mutex::new(Some(backend)),
            pid: std::process::id(),
            export_defaults,
        })
    }

    /// A database in memory (nothing on disk), with the default settings.
    #[staticmethod]
    fn in_memory(py: Python<'_>) -> PyResult<Native> {
        let (db, export_defaults) = detached(py, || {
            let defaults = rem_cli::Config::load_from(&BTreeMap::new())
                .map_err(anyhow::Error::from)
                .and_then(|c| export_defaults(&c))
                .map_err(|e| Failure::from_anyhow(&e))?;
            Ok((engine(rem::Database::in_memory())?, defaults))
        })?;
        Ok(Native {
            remote: false,
            backend: Mutex::new(Some(Backend::Embedded(db))),
            pid: std::process::id(),
            export_defaults,
        })
    }

    /// True when calls go to a server.
    #[getter]
    fn remote(&self) -> bool {
        self.remote
    }

    /// The database folder (embedded), or `None` through a server.
    #[getter]
    fn path(&self, py: Python<'_>) -> PyResult<Option<String>> {
        let b = self.backend().map_err(|e| e.into_py(py))?;
        Ok(b.database().map(|d| d.path().display().to_string()))
    }

    /// Closes the database: the handle drops its storage (and its lock) once calls in
    /// flight return. Closing twice is allowed.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let taken = self.backend.lock().ok().and_then(|mut g| g.take());
        py.detach(move || {
            if let Some(Backend::Embedded(db)) = &taken {
                if !db.is_read_only() {
                    // The indexes and the memtables go to disk now, so the next open
                    // neither rebuilds an index nor replays the write-ahead log.
                    let _ = db.save_vector_indexes();
                    let _ = db.flush();
                }
            }
            drop(taken);
        });
        Ok(())
    }

    #[getter]
    fn closed(&self) -> bool {
        self.backend.lock().map(|g| g.is_none()).unwrap_or(true)
    }

    fn register_schema(&self, py: Python<'_>, document: String) -> PyResult<String> {
        self.with(py, move |b| {
            let doc = parse_json(&document, "schema")?;
            Ok(service(b.register_schema(&doc))?.to_string())
        })
    }

    fn schemas(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        self.with(py, |b| {
            Ok(service(b.schemas())?.iter().map(Value::to_string).collect())
        })
    }

    fn schema(&self, py: Python<'_>, name: String) -> PyResult<String> {
        self.with(py, move |b| Ok(service(b.schema(&name))?.to_string()))
    }

    /// One atomic batch, with the caller's vectors (one per record) when given — as
    /// lists, or packed as little-endian f32 bytes (`packed`, `dims` per vector: no
    /// Python float per element); returns the ids.
    #[pyo3(signature = (table, records, vectors=None, packed=None, dims=0))]
    fn insert_batch(
        &self,
        py: Python<'_>,
        table: String,
        records: Vec<Bound<'_, PyAny>>,
        vectors: Option<Vec<Vec<f32>>>,
        packed: Option<Vec<u8>>,
        dims: usize,
    ) -> PyResult<Vec<String>> {
        let vectors = match packed {
            Some(bytes) => Some(unpack(&bytes, dims).map_err(|e| e.into_py(py))?),
            None => vectors,
        };
        let mut values = Vec::with_capacity(records.len());
        for (i, r) in records.iter().enumerate() {
            values.push(record_value(r, &format!("record {}", i + 1)).map_err(|e| e.into_py(py))?);
        }
        self.long(py, move |b| {
            let mut inserter: Inserter = service(b.inserter(&table))?;
            service(inserter.write_with_vectors(values, vectors))
        })
    }

    /// One record (with its vector, when given); returns its id. A refusal reads as
    /// the record's own error (no "record 1 of the batch" prefix).
    #[pyo3(signature = (table, record, vector=None))]
    fn insert(
        &self,
        py: Python<'_>,
        table: String,
        record: Bound<'_, PyAny>,
        vector: Option<Vec<f32>>,
    ) -> PyResult<String> {
        let value = record_value(&record, "record").map_err(|e| e.into_py(py))?;
        self.long(py, move |b| {
            let mut inserter: Inserter = service(b.inserter(&table))?;
            match inserter.write_with_vectors(vec![value], vector.map(|v| vec![v])) {
                Ok(mut ids) => Ok(ids.remove(0)),
                Err(e) => {
                    let mut f = Failure::from_service(&e);
                    if let rem_service::Error::Record { message, .. } = e {
                        f.message = message;
                    } else if let rem_service::Error::Engine(rem::Error::Record {
                        source, ..
                    }) = e
                    {
                        f.message = source.to_string();
                    }
                    Err(f)
                }
            }
        })
    }

    /// Soft-deletes by id; returns `(id, table)`.
    fn delete(&self, py: Python<'_>, id: String) -> PyResult<(String, String)> {
        self.with(py, move |b| {
            let r = service(b.delete(&id))?;
            Ok((r.id, r.table))
        })
    }

    #[pyo3(signature = (id, include_deleted=false))]
    /// The entity as a dict (built here: no JSON text crosses), or `None`.
    fn get<'py>(
        &self,
        py: Python<'py>,
        id: String,
        include_deleted: bool,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let found = self.with(py, move |b| service(b.get(&id, include_deleted)))?;
        found.map(|v| to_py(py, &v)).transpose()
    }

    /// The entities with this key, as dicts.
    fn lookup<'py>(&self, py: Python<'py>, key: String) -> PyResult<Vec<Bound<'py, PyAny>>> {
        let found = self.with(py, move |b| service(b.lookup(&key)))?;
        found.iter().map(|v| to_py(py, v)).collect()
    }

    /// Search by `query` text, or by `vector` (then `table` is required). Returns
    /// `(table, table_detected, [entity dict with "score"])`.
    #[pyo3(signature = (query, table=None, top_k=10, predicate=None, min_score=None, alt=false, vector=None, packed=None))]
    #[allow(clippy::too_many_arguments)]
    fn search<'py>(
        &self,
        py: Python<'py>,
        query: String,
        table: Option<String>,
        top_k: usize,
        predicate: Option<String>,
        min_score: Option<f32>,
        alt: bool,
        vector: Option<Vec<f32>>,
        packed: Option<Vec<u8>>,
    ) -> PyResult<SearchResult<'py>> {
        let vector = match packed {
            Some(bytes) => Some(unpack_one(&bytes).map_err(|e| e.into_py(py))?),
            None => vector,
        };
        let found = self.with(py, move |b| {
            if top_k == 0 {
                return Err(bad_input("top_k must be at least 1"));
            }
            service(b.search_values(proto::SearchRequest {
                table: table.unwrap_or_default(),
                query,
                top_k: top_k as u64,
                has_min_score: min_score.is_some(),
                min_score: min_score.unwrap_or_default(),
                predicate: predicate.unwrap_or_default(),
                alt,
                ef_search: 0,
                vector: vector.unwrap_or_default(),
            }))
        })?;
        let hits = found
            .hits
            .iter()
            .map(|(score, entity)| {
                let hit = to_py(py, entity)?;
                hit.set_item("score", *score)?;
                Ok(hit)
            })
            .collect::<PyResult<_>>()?;
        Ok((found.table, found.table_detected, hits))
    }

    #[pyo3(signature = (query, include_deleted=false))]
    fn sql(&self, py: Python<'_>, query: String, include_deleted: bool) -> PyResult<SqlResult> {
        let batches = self.with(py, move |b| service(b.sql(&query, include_deleted)))?;
        let schema = match &batches {
            Batches::Embedded(s) => s.schema(),
            Batches::Remote(r) => r.schema(),
            _ => {
                return Err(
                    Failure::simple("internal", "internal", "unknown result kind").into_py(py),
                )
            }
        };
        Ok(SqlResult {
            batches: Mutex::new(Some(batches)),
            schema,
        })
    }

    #[pyo3(signature = (src, dst, edge_type, weight=None, properties=None))]
    fn add_edge(
        &self,
        py: Python<'_>,
        src: String,
        dst: String,
        edge_type: String,
        weight: Option<f64>,
        properties: Option<String>,
    ) -> PyResult<String> {
        self.with(py, move |b| {
            let e = service(b.add_edge(proto::AddEdgeRequest {
                src,
                dst,
                edge_type,
                has_weight: weight.is_some(),
                weight: weight.unwrap_or_default(),
                properties_json: properties.unwrap_or_default(),
            }))?;
            Ok(edge_json(&e).to_string())
        })
    }

    fn remove_edge(
        &self,
        py: Python<'_>,
        src: String,
        dst: String,
        edge_type: String,
    ) -> PyResult<bool> {
        self.with(py, move |b| {
            service(b.remove_edge(proto::RemoveEdgeRequest {
                src,
                dst,
                edge_type,
            }))
        })
    }

    /// `direction`: `out`, `in` or `both` (the default).
    #[pyo3(signature = (entity, direction=None, edge_type=None))]
    fn edges(
        &self,
        py: Python<'_>,
        entity: String,
        direction: Option<String>,
        edge_type: Option<String>,
    ) -> PyResult<String> {
        self.with(py, move |b| {
            let edges = service(b.edges(proto::EdgesRequest {
                entity,
                direction: direction.unwrap_or_else(|| "both".into()),
                edge_type: edge_type.unwrap_or_default(),
            }))?;
            Ok(Value::Array(edges.iter().map(edge_json).collect()).to_string())
        })
    }

    /// `direction`: `out` (the default), `in` or `both`.
    #[pyo3(signature = (entity, depth=1, direction=None, edge_type=None, dfs=false))]
    fn traverse(
        &self,
        py: Python<'_>,
        entity: String,
        depth: u64,
        direction: Option<String>,
        edge_type: Option<String>,
        dfs: bool,
    ) -> PyResult<String> {
        self.long(py, move |b| {
            let nodes = service(b.traverse(proto::TraverseRequest {
                entity,
                depth,
                direction: direction.unwrap_or_else(|| "out".into()),
                edge_type: edge_type.unwrap_or_default(),
                dfs,
            }))?;
            let nodes: Vec<Value> = nodes
                .into_iter()
                .map(|n| {
                    json!({
                        "depth": n.depth,
                        "id": n.id,
                        "table": n.table,
                        "edge_type": (!n.edge_type.is_empty()).then_some(n.edge_type),
                        "path": n.path,
                    })
                })
                .collect();
            Ok(Value::Array(nodes).to_string())
        })
    }

    /// Ingests a file, or every file of a folder, into `schema`: the files are read
    /// here (never by a server). Returns one JSON report per file.
    #[pyo3(signature = (schema, path, recursive=true))]
    fn ingest_path(
        &self,
        py: Python<'_>,
        schema: String,
        path: PathBuf,
        recursive: bool,
    ) -> PyResult<Vec<String>> {
        self.long(py, move |b| {
            let files = engine(rem_ingest::collect_files(&path, recursive))?;
            let mut ingester: Ingester = service(b.ingester(&schema))?;
            let mut reports = Vec::with_capacity(files.len());
            for file in files {
                let name = file
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let read = std::fs::read(&file)
                    .map_err(|e| rem::Error::Io {
                        path: file.display().to_string(),
                        source: e,
                    })
                    .and_then(|bytes| Ok((rem_ingest::file_uri(&file)?, bytes)));
                let report = match read {
                    Ok((uri, bytes)) => report_json(&service(ingester.file(&uri, &name, &bytes))?),
                    Err(e) => json!({
                        "uri": format!("file://{}", file.display()),
                        "file_type": "",
                        "size_bytes": 0,
                        "status": "refused",
                        "chunks": 0,
                        "reason": e.to_string(),
                        "error_kind": e.kind().name(),
                    }),
                };
                reports.push(report.to_string());
            }
            Ok(reports)
        })
    }

    /// Ingests one file's bytes into `schema`; returns the report as JSON.
    fn ingest_bytes(
        &self,
        py: Python<'_>,
        schema: String,
        uri: String,
        name: String,
        data: Vec<u8>,
    ) -> PyResult<String> {
        self.long(py, move |b| {
            let mut ingester: Ingester = service(b.ingester(&schema))?;
            let r = service(ingester.file(&uri, &name, &data))?;
            Ok(report_json(&r).to_string())
        })
    }

    /// Exports `table` to the file `path` (written whole or not at all); returns the
    /// rows written.
    #[pyo3(signature = (table, path, format, compression=None, predicate=None, include_embeddings=false, plaintext=false))]
    #[allow(clippy::too_many_arguments)]
    fn export(
        &self,
        py: Python<'_>,
        table: String,
        path: PathBuf,
        format: String,
        compression: Option<String>,
        predicate: Option<String>,
        include_embeddings: bool,
        plaintext: bool,
    ) -> PyResult<u64> {
        let (default_compression, row_group_size) = self.export_defaults.clone();
        self.long(py, move |b| {
            // The configured compression applies to Parquet; other formats take none.
            let compression = compression.unwrap_or(if format == "parquet" {
                default_compression
            } else {
                "none".to_string()
            });
            let request = proto::ExportRequest {
                table,
                format,
                compression,
                predicate: predicate.unwrap_or_default(),
                include_embeddings,
                row_group_size,
                plaintext,
            };
            let ((_, rows), _) = service(rem_sql::write_file_atomically(&path, |w| {
                b.export(request, w)
            }))?;
            Ok(rows)
        })
    }

    fn stats(&self, py: Python<'_>) -> PyResult<String> {
        self.with(py, |b| {
            let s = service(b.stats())?;
            Ok(json!({
                "path": s.path,
                "tenant": s.tenant,
                "last_seq": s.last_seq,
                "disk_bytes": s.disk_bytes,
                "tables": s.tables.iter().map(|t| json!({
                    "table": t.table, "rows": t.rows, "deleted": t.deleted
                })).collect::<Vec<_>>(),
            })
            .to_string())
        })
    }

    /// Returns the problems found (empty when consistent).
    fn verify(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        self.long(py, |b| Ok(service(b.verify())?.problems))
    }
}

/// The export compression and row group size a configuration sets.
fn export_defaults(config: &rem_cli::Config) -> anyhow::Result<(String, u64)> {
    Ok((
        config.settings().export.parquet_compression.clone(),
        config.parquet_row_group_size()? as u64,
    ))
}

/// Little-endian f32 bytes as one vector.
fn unpack_one(bytes: &[u8]) -> Outcome<Vec<f32>> {
    if !bytes.len().is_multiple_of(4) {
        return Err(bad_input(
            "packed vectors are little-endian f32: the length must be a multiple of 4",
        ));
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

/// Little-endian f32 bytes as vectors of `dims` values.
fn unpack(bytes: &[u8], dims: usize) -> Outcome<Vec<Vec<f32>>> {
    let all = unpack_one(bytes)?;
    if dims == 0 || !all.len().is_multiple_of(dims) {
        return Err(bad_input(format!(
            "{} packed values are not a whole number of {dims}-dimensional vectors",
            all.len()
        )));
    }
    Ok(all.chunks_exact(dims).map(<[f32]>::to_vec).collect())
}

fn report_json(r: &proto::IngestReport) -> Value {
    json!({
        "uri": r.uri,
        "file_type": r.file_type,
        "size_bytes": r.size_bytes,
        "status": r.status,
        "chunks": r.chunks,
        "reason": (!r.reason.is_empty()).then_some(&r.reason),
        "error_kind": (!r.error_kind.is_empty()).then_some(&r.error_kind),
    })
}

/// A JSON value as the Python object `json.loads` would make of it.
fn to_py<'py>(py: Python<'py>, v: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match v {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => i.into_pyobject(py)?.into_any(),
            (None, Some(u)) => u.into_pyobject(py)?.into_any(),
            _ => PyFloat::new(py, n.as_f64().unwrap_or(f64::NAN)).into_any(),
        },
        Value::String(s) => PyString::new(py, s).into_any(),
        Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(to_py(py, item)?)?;
            }
            list.into_any()
        }
        Value::Object(map) => {
            let dict = PyDict::new(py);
            for (k, item) in map {
                dict.set_item(k, to_py(py, item)?)?;
            }
            dict.into_any()
        }
    })
}

fn edge_json(e: &proto::Edge) -> Value {
    let properties = serde_json::from_str::<Value>(&e.properties_json).unwrap_or(Value::Null);
    json!({
        "src": e.src,
        "edge_type": e.edge_type,
        "dst": e.dst,
        "weight": e.weight,
        "properties": properties,
        "created_at": e.created_at,
    })
}

/// The result of a SQL query, read batch by batch.
#[pyclass(frozen, module = "rem_db._native")]
struct SqlResult {
    batches: Mutex<Option<Batches>>,
    schema: rem_sql::arrow::datatypes::SchemaRef,
}

impl SqlResult {
    fn next(&self, py: Python<'_>) -> PyResult<Option<RecordBatch>> {
        // Never wait for the lock while holding the GIL: the thread that has it may
        // need the GIL to check for Ctrl-C.
        let mut guard = self
            .batches
            .try_lock()
            .map_err(|_| PyRuntimeError::new_err("the result is being read by another thread"))?;
        let Some(mut batches) = guard.take() else {
            return Ok(None);
        };
        // Interrupted, the batches are dropped: the result ends.
        let (batches, item) = interruptible(py, move || {
            let item = batches.next();
            Ok((batches, item))
        })?;
        match item {
            Some(Ok(b)) => {
                *guard = Some(batches);
                Ok(Some(b))
            }
            Some(Err(e)) => Err(Failure::from_service(&e).into_py(py)),
            None => Ok(None),
        }
    }
}

fn ipc(
    schema: &rem_sql::arrow::datatypes::Schema,
    batch: Option<&RecordBatch>,
) -> Outcome<Vec<u8>> {
    let fail = |e: rem_sql::arrow::error::ArrowError| {
        Failure::simple(
            "internal",
            "internal",
            format!("cannot encode the result: {e}"),
        )
    };
    let mut out = Vec::new();
    let mut w = StreamWriter::try_new(&mut out, schema).map_err(fail)?;
    if let Some(b) = batch {
        w.write(b).map_err(fail)?;
    }
    w.finish().map_err(fail)?;
    drop(w);
    Ok(out)
}

#[pymethods]
impl SqlResult {
    /// The result's schema as an Arrow IPC stream with no batches.
    fn schema_ipc<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let bytes = ipc(&self.schema, None).map_err(|e| e.into_py(py))?;
        Ok(PyBytes::new(py, &bytes))
    }

    /// The column names.
    fn columns(&self) -> Vec<String> {
        self.schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect()
    }

    /// The next batch as an Arrow IPC stream (schema and one batch), or `None` at the end.
    fn next_ipc<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let Some(batch) = self.next(py)? else {
            return Ok(None);
        };
        let bytes = py
            .detach(|| ipc(&self.schema, Some(&batch)))
            .map_err(|e| e.into_py(py))?;
        Ok(Some(PyBytes::new(py, &bytes)))
    }

    /// The next batch as a JSON array of row objects, or `None` at the end.
    fn next_json(&self, py: Python<'_>) -> PyResult<Option<String>> {
        let Some(batch) = self.next(py)? else {
            return Ok(None);
        };
        let text = py
            .detach(|| {
                let mut out = Vec::new();
                rem_sql::write_batches::<rem_sql::Error>(
                    std::iter::once(Ok(batch)),
                    rem_sql::OutputFormat::Json,
                    &mut out,
                )
                .map(|_| String::from_utf8_lossy(&out).into_owned())
            })
            .map_err(|e| Failure::from_service(&e.into()).into_py(py))?;
        Ok(Some(text))
    }
}

/// Runs the `rem` command line (`argv` with the program name first) in this process,
/// with the GIL released; returns the exit code.
#[pyfunction]
fn run_cli(py: Python<'_>, argv: Vec<String>) -> i32 {
    py.detach(|| {
        let mut session = rem_cli::Session::from_process();
        i32::from(rem_cli::run_status(argv, &mut session))
    })
}

/// The package's version (the workspace's).
#[pyfunction]
fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Native>()?;
    m.add_class::<SqlResult>()?;
    m.add_function(wrap_pyfunction!(run_cli, m)?)?;
    m.add_function(wrap_pyfunction!(version, m)?)?;
    Ok(())
}
