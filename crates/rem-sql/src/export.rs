//! `rem export`: a table (optionally filtered by a SQL predicate) to Parquet, CSV or JSON
//! lines, streamed batch by batch from the table provider — Parquet one row group at a
//! time — into a temporary file beside the target, renamed into place only when whole.
//!
//! Columns are the table's SQL columns (system fields, then the schema's properties,
//! typed from the JSON Schema; see `convert`) without the catch-all `properties` JSON
//! column, plus `embedding` (and `embedding_alt`) as `List<Float32>` when asked.
//! In Parquet and JSON lines, an object property whose JSON Schema declares its
//! properties (all of scalar, date-time, array-of-scalar or such object types) is a
//! struct column, decoded from the JSON text by `arrow-json`; other objects, and every
//! object in CSV, stay JSON text.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, Float32Builder, ListBuilder, StringArray, StructArray,
};
use datafusion::arrow::buffer::NullBuffer;
use datafusion::arrow::datatypes::{
    DataType, Field, Fields, Schema as ArrowSchema, SchemaRef, TimeUnit,
};
use datafusion::arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{BrotliLevel, Compression, GzipLevel, ZstdLevel};
use parquet::file::properties::WriterProperties;
use rem::{Database, EntityId};

use crate::{Error, Result};
use serde_json::Value;

use crate::convert::{columns, Source};
use crate::engine::{Sql, SqlOptions};

/// File format of an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// Apache Parquet.
    Parquet,
    /// CSV with a header row.
    Csv,
    /// One JSON object per line.
    Jsonl,
}

impl ExportFormat {
    /// Parses `parquet`, `csv` or `jsonl` (`json` and `ndjson` too).
    pub fn parse(s: &str) -> Result<ExportFormat> {
        match s.to_ascii_lowercase().as_str() {
            "parquet" | "pq" => Ok(ExportFormat::Parquet),
            "csv" => Ok(ExportFormat::Csv),
            "jsonl" | "json" | "ndjson" => Ok(ExportFormat::Jsonl),
            other => Err(Error::InvalidInput(format!(
                "unknown export format '{other}' (expected parquet, csv or jsonl)"
            ))),
        }
    }

    /// The format a file name's extension implies, if any.
    pub fn from_path(path: &Path) -> Option<ExportFormat> {
        ExportFormat::parse(path.extension()?.to_str()?).ok()
    }

    /// File extension.
    pub fn extension(&self) -> &'static str {
        match self {
            ExportFormat::Parquet => "parquet",
            ExportFormat::Csv => "csv",
            ExportFormat::Jsonl => "jsonl",
        }
    }
}

/// Parquet compression from its name: snappy, gzip, brotli, lz4, zstd or none.
pub fn parquet_compression(name: &str) -> Result<Compression> {
    Ok(match name.to_ascii_lowercase().as_str() {
        "snappy" => Compression::SNAPPY,
        "gzip" => Compression::GZIP(GzipLevel::default()),
        "brotli" => Compression::BROTLI(BrotliLevel::default()),
        "lz4" => Compression::LZ4_RAW,
        "zstd" => Compression::ZSTD(ZstdLevel::default()),
        "none" | "uncompressed" => Compression::UNCOMPRESSED,
        other => {
            return Err(Error::InvalidInput(format!(
                "unknown compression '{other}' (expected snappy, gzip, brotli, lz4, zstd or none)"
            )))
        }
    })
}

/// Options of an export.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// File format.
    pub format: ExportFormat,
    /// Parquet compression (see [`parquet_compression`]); CSV and JSON lines are
    /// written uncompressed, so only `none` is accepted for them.
    pub compression: String,
    /// A SQL predicate selecting the rows (`WHERE` without the keyword).
    pub predicate: Option<String>,
    /// Add the stored vectors as `embedding` (and `embedding_alt`) columns.
    pub include_embeddings: bool,
    /// Rows per Parquet row group.
    pub row_group_size: usize,
    /// Export from an encrypted database although the file is written in plaintext
    /// (refused without it).
    pub plaintext: bool,
}

impl Default for ExportOptions {
    fn default() -> Self {
        ExportOptions {
            format: ExportFormat::Parquet,
            compression: "zstd".into(),
            predicate: None,
            include_embeddings: false,
            row_group_size: 65_536,
            plaintext: false,
        }
    }
}

/// What an export wrote.
#[derive(Debug, Clone)]
pub struct ExportReport {
    /// Table exported.
    pub table: String,
    /// File written.
    pub path: PathBuf,
    /// Rows written.
    pub rows: usize,
    /// File size in bytes.
    pub bytes: u64,
}

fn io_error(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::InvalidInput(format!("cannot write {}: {e}", path.display()))
}

/// Exports `table` to the file `path` (see the module docs). Nothing is left at `path`
/// unless the export completed.
pub fn export_table(
    db: &Database,
    table: &str,
    path: &Path,
    options: &ExportOptions,
) -> Result<ExportReport> {
    check_options(options)?;
    // A bad table fails before any file is created.
    let schema = db.schema(table)?;
    let (rows, bytes) = write_file_atomically(path, |out| -> Result<usize> {
        export_to(db, &schema.name, out, options).map(|(_, rows)| rows)
    })?;
    Ok(ExportReport {
        table: schema.name.clone(),
        path: path.to_path_buf(),
        rows,
        bytes,
    })
}

fn check_options(options: &ExportOptions) -> Result<Compression> {
    let compression = parquet_compression(&options.compression)?;
    if options.format != ExportFormat::Parquet && compression != Compression::UNCOMPRESSED {
        return Err(Error::InvalidInput(format!(
            "--compression applies to parquet only; {} files are written uncompressed",
            options.format.extension()
        )));
    }
    if options.row_group_size == 0 {
        return Err(Error::InvalidInput(
            "the row group size must be at least 1".into(),
        ));
    }
    Ok(compression)
}

/// Runs `write` on a temporary file beside `path` and renames it to `path` when
/// `write` succeeded (removing it otherwise): the file appears whole or not at all.
/// Returns what `write` returned and the file's size.
pub fn write_file_atomically<T, E: From<Error>>(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<File>) -> Result<T, E>,
) -> Result<(T, u64), E> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !parent.is_dir() {
        return Err(
            Error::InvalidInput(format!("the folder {} does not exist", parent.display())).into(),
        );
    }
    if path.is_dir() {
        return Err(Error::InvalidInput(format!(
            "{} is a folder; give a file name (or use --all for a folder)",
            path.display()
        ))
        .into());
    }
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "export".into());
    let tmp = parent.join(format!(".{file_name}.{}.partial", std::process::id()));
    let written = (|| -> Result<T, E> {
        let file = File::create(&tmp).map_err(|e| io_error(path, e))?;
        let mut out = BufWriter::new(file);
        let value = write(&mut out)?;
        out.flush().map_err(|e| io_error(path, e))?;
        Ok(value)
    })();
    let value = match written {
        Ok(v) => v,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(io_error(path, e).into());
    }
    let bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    Ok((value, bytes))
}

/// Exports `table` into `out`, encoded as `options` says; returns the table's name and
/// the rows written. A bad table, option or predicate fails before anything is written.
pub fn export_to<W: Write + Send>(
    db: &Database,
    table: &str,
    out: W,
    options: &ExportOptions,
) -> Result<(String, usize)> {
    let compression = check_options(options)?;
    if db.is_encrypted() && !options.plaintext {
        return Err(Error::InvalidInput(
            "this database is encrypted and an export is a plaintext file outside it; \
             pass --plaintext (plaintext=True in Python) to export anyway"
                .into(),
        ));
    }
    let schema = db.schema(table)?;
    let names: Vec<String> = columns(&schema)
        .into_iter()
        .filter(|c| c.source != Source::Properties)
        .map(|c| format!("\"{}\"", c.name.replace('"', "\"\"")))
        .collect();
    let mut sql = format!(
        "SELECT {} FROM \"{}\"",
        names.join(", "),
        schema.name.replace('"', "\"\"")
    );
    if let Some(p) = options
        .predicate
        .as_deref()
        .filter(|p| !p.trim().is_empty())
    {
        sql.push_str(" WHERE ");
        sql.push_str(p);
    }
    // Plan first: a bad predicate fails before anything is written.
    let stream = db.sql_with(&sql, &SqlOptions::default())?;
    let mut vector_columns = Vec::new();
    if options.include_embeddings {
        vector_columns.push(rem::EMBEDDING);
        if db.has_alt_embedding() {
            vector_columns.push(rem::EMBEDDING_ALT);
        }
    }
    let base = stream.schema();
    let mut fields: Vec<Field> = base.fields().iter().map(|f| f.as_ref().clone()).collect();
    // Object columns written as structs: (column index, struct fields).
    let mut structs = Vec::new();
    if options.format != ExportFormat::Csv {
        for (i, f) in fields.iter_mut().enumerate() {
            if let Some(DataType::Struct(sf)) = schema.document["properties"]
                .get(f.name())
                .and_then(struct_type)
            {
                *f = Field::new(f.name(), DataType::Struct(sf.clone()), true);
                structs.push((i, sf));
            }
        }
    }
    for c in &vector_columns {
        fields.push(Field::new(
            *c,
            DataType::List(Arc::new(Field::new("item", DataType::Float32, true))),
            true,
        ));
    }
    let out_schema: SchemaRef = Arc::new(ArrowSchema::new(fields));
    let write_error = |e: &dyn std::fmt::Display| {
        Error::InvalidInput(format!("cannot write the {} export: {e}", schema.name))
    };
    let mut writer = Writer::new(
        options.format,
        out,
        out_schema.clone(),
        compression,
        options.row_group_size,
    )
    .map_err(|e| write_error(&e))?;
    let mut rows = 0usize;
    for batch in stream {
        let batch = with_structs(batch?, &structs)?;
        let batch = with_vectors(db, &schema.name, &vector_columns, batch, &out_schema)?;
        rows += batch.num_rows();
        writer.write(&batch).map_err(|e| write_error(&e))?;
    }
    writer.finish().map_err(|e| write_error(&e))?;
    Ok((schema.name.clone(), rows))
}

/// Exports every table of the tenant into `dir`, one `<table>.<ext>` file each (the
/// folder is created if missing; its parent must exist).
pub fn export_all(db: &Database, dir: &Path, options: &ExportOptions) -> Result<Vec<ExportReport>> {
    if !dir.is_dir() {
        let parent = dir.parent().filter(|p| !p.as_os_str().is_empty());
        if parent.is_some_and(|p| !p.is_dir()) {
            return Err(Error::InvalidInput(format!(
                "the folder {} does not exist",
                parent.map(|p| p.display().to_string()).unwrap_or_default()
            )));
        }
        std::fs::create_dir(dir).map_err(|e| io_error(dir, e))?;
    }
    let mut out = Vec::new();
    for schema in db.schemas()? {
        let path = dir.join(format!("{}.{}", schema.name, options.format.extension()));
        out.push(export_table(db, &schema.name, &path, options)?);
    }
    Ok(out)
}

/// The Arrow type of a JSON Schema property definition inside a struct; `None` when it
/// has none (untyped, mixed, or an object without declared properties).
fn json_schema_type(def: &Value) -> Option<DataType> {
    match def.get("type")?.as_str()? {
        "string" if def.get("format").and_then(Value::as_str) == Some("date-time") => Some(
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        ),
        "string" => Some(DataType::Utf8),
        "integer" => Some(DataType::Int64),
        "number" => Some(DataType::Float64),
        "boolean" => Some(DataType::Boolean),
        "array" => {
            let item = json_schema_type(def.get("items")?)?;
            Some(DataType::List(Arc::new(Field::new("item", item, true))))
        }
        "object" => struct_type(def),
        _ => None,
    }
}

/// `Struct` for an object definition whose declared properties all have an Arrow type.
fn struct_type(def: &Value) -> Option<DataType> {
    if def.get("type").and_then(Value::as_str) != Some("object") {
        return None;
    }
    let props = def.get("properties")?.as_object()?;
    if props.is_empty() {
        return None;
    }
    let fields = props
        .iter()
        .map(|(name, d)| json_schema_type(d).map(|t| Field::new(name, t, true)))
        .collect::<Option<Vec<_>>>()?;
    Some(DataType::Struct(Fields::from(fields)))
}

/// Replaces the JSON-text columns listed in `structs` by struct columns. Properties not
/// declared are dropped; a value that does not decode (written under an older schema)
/// becomes null rather than failing the export.
fn with_structs(batch: RecordBatch, structs: &[(usize, Fields)]) -> Result<RecordBatch> {
    if structs.is_empty() {
        return Ok(batch);
    }
    let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
    let mut fields: Vec<Field> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    for (i, sf) in structs {
        let text = columns[*i]
            .as_any()
            .downcast_ref::<StringArray>()
            .ok_or_else(|| Error::Query("export: an object column is not JSON text".into()))?;
        let decode = |docs: &[&str]| -> std::result::Result<RecordBatch, String> {
            let schema = Arc::new(ArrowSchema::new(sf.clone()));
            let mut decoder = arrow_json::ReaderBuilder::new(schema)
                .with_batch_size(docs.len().max(1))
                .build_decoder()
                .map_err(|e| e.to_string())?;
            for d in docs {
                decoder.decode(d.as_bytes()).map_err(|e| e.to_string())?;
                decoder.decode(b"\n").map_err(|e| e.to_string())?;
            }
            match decoder.flush().map_err(|e| e.to_string())? {
                Some(b) => Ok(b),
                None => Ok(RecordBatch::new_empty(Arc::new(ArrowSchema::new(
                    sf.clone(),
                )))),
            }
        };
        let mut valid: Vec<bool> = (0..text.len()).map(|r| text.is_valid(r)).collect();
        let mut docs: Vec<&str> = (0..text.len())
            .map(|r| if valid[r] { text.value(r) } else { "{}" })
            .collect();
        let decoded = match decode(&docs) {
            Ok(b) => b,
            Err(_) => {
                // Find the rows that do not fit and null them.
                for r in 0..docs.len() {
                    if valid[r] && decode(&docs[r..r + 1]).is_err() {
                        valid[r] = false;
                        docs[r] = "{}";
                    }
                }
                decode(&docs).map_err(|e| Error::Query(format!("export: {e}")))?
            }
        };
        let array = StructArray::try_new(
            sf.clone(),
            decoded.columns().to_vec(),
            Some(NullBuffer::from(valid)),
        )
        .map_err(|e| Error::Query(e.to_string()))?;
        fields[*i] = Field::new(fields[*i].name(), DataType::Struct(sf.clone()), true);
        columns[*i] = Arc::new(array);
    }
    RecordBatch::try_new(Arc::new(ArrowSchema::new(fields)), columns)
        .map_err(|e| Error::Query(e.to_string()))
}

/// Appends the stored vectors of the batch's `id`s as `List<Float32>` columns.
fn with_vectors(
    db: &Database,
    table: &str,
    vector_columns: &[&str],
    batch: RecordBatch,
    schema: &SchemaRef,
) -> Result<RecordBatch> {
    if vector_columns.is_empty() {
        return Ok(batch);
    }
    let ids_col = batch
        .column_by_name("id")
        .and_then(|c| c.as_any().downcast_ref::<StringArray>())
        .ok_or_else(|| Error::Query("export: the id column is missing".into()))?;
    let ids: Vec<EntityId> = (0..ids_col.len())
        .map(|i| EntityId::parse(ids_col.value(i)))
        .collect::<rem::Result<_>>()?;
    let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
    for c in vector_columns {
        let mut list = ListBuilder::new(Float32Builder::new());
        for v in db.stored_embeddings(table, c, &ids)? {
            match v {
                Some(v) => {
                    list.values().append_slice(&v);
                    list.append(true);
                }
                None => list.append(false),
            }
        }
        columns.push(Arc::new(list.finish()));
    }
    RecordBatch::try_new(schema.clone(), columns).map_err(|e| Error::Query(e.to_string()))
}

/// One writer per format.
enum Writer<W: Write + Send> {
    Parquet(ArrowWriter<W>),
    Csv(datafusion::arrow::csv::Writer<W>),
    Jsonl(datafusion::arrow::json::LineDelimitedWriter<W>),
}

impl<W: Write + Send> Writer<W> {
    fn new(
        format: ExportFormat,
        out: W,
        schema: SchemaRef,
        compression: Compression,
        row_group_size: usize,
    ) -> std::result::Result<Writer<W>, String> {
        Ok(match format {
            ExportFormat::Parquet => {
                let props = WriterProperties::builder()
                    .set_compression(compression)
                    .set_max_row_group_row_count(Some(row_group_size))
                    .build();
                Writer::Parquet(
                    ArrowWriter::try_new(out, schema, Some(props)).map_err(|e| e.to_string())?,
                )
            }
            ExportFormat::Csv => Writer::Csv(datafusion::arrow::csv::Writer::new(out)),
            ExportFormat::Jsonl => {
                Writer::Jsonl(datafusion::arrow::json::LineDelimitedWriter::new(out))
            }
        })
    }

    fn write(&mut self, batch: &RecordBatch) -> std::result::Result<(), String> {
        match self {
            Writer::Parquet(w) => w.write(batch).map_err(|e| e.to_string()),
            Writer::Csv(w) => {
                let batch = crate::output::lists_as_json(batch).map_err(|e| e.to_string())?;
                w.write(&batch).map_err(|e| e.to_string())
            }
            Writer::Jsonl(w) => w.write(batch).map_err(|e| e.to_string()),
        }
    }

    fn finish(self) -> std::result::Result<(), String> {
        match self {
            Writer::Parquet(w) => w.close().map(|_| ()).map_err(|e| e.to_string()),
            Writer::Csv(w) => w.into_inner().flush().map_err(|e| e.to_string()),
            Writer::Jsonl(mut w) => {
                w.finish().map_err(|e| e.to_string())?;
                w.into_inner().flush().map_err(|e| e.to_string())
            }
        }
    }
}
