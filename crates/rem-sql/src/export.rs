//! `rem export`: a table (optionally filtered by a SQL predicate) to Parquet, CSV or JSON
//! lines, streamed batch by batch from the table provider — Parquet one row group at a
//! time — into a temporary file beside the target, renamed into place only when whole.
//!
//! Columns are the table's SQL columns (system fields, then the schema's properties,
//! typed from the JSON Schema; see `convert`) without the catch-all `properties` JSON
//! column, plus `embedding` (and `embedding_alt`) as `List<Float32>` when asked.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, Float32Builder, ListBuilder, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema as ArrowSchema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{BrotliLevel, Compression, GzipLevel, ZstdLevel};
use parquet::file::properties::WriterProperties;
use rem::{Database, EntityId, Error, Result};

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
}

impl Default for ExportOptions {
    fn default() -> Self {
        ExportOptions {
            format: ExportFormat::Parquet,
            compression: "zstd".into(),
            predicate: None,
            include_embeddings: false,
            row_group_size: 65_536,
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
    let schema = db.schema(table)?;
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
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !parent.is_dir() {
        return Err(Error::InvalidInput(format!(
            "the folder {} does not exist",
            parent.display()
        )));
    }
    if path.is_dir() {
        return Err(Error::InvalidInput(format!(
            "{} is a folder; give a file name (or use --all for a folder)",
            path.display()
        )));
    }
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
    // Plan first: a bad predicate fails before any file is created.
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
    for c in &vector_columns {
        fields.push(Field::new(
            *c,
            DataType::List(Arc::new(Field::new("item", DataType::Float32, true))),
            true,
        ));
    }
    let out_schema: SchemaRef = Arc::new(ArrowSchema::new(fields));

    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "export".into());
    let tmp = parent.join(format!(".{file_name}.{}.partial", std::process::id()));
    let written = (|| -> Result<usize> {
        let file = File::create(&tmp).map_err(|e| io_error(path, e))?;
        let mut writer = Writer::new(
            options.format,
            BufWriter::new(file),
            out_schema.clone(),
            compression,
            options.row_group_size,
        )
        .map_err(|e| io_error(path, e))?;
        let mut rows = 0usize;
        for batch in stream {
            let batch = batch?;
            let batch = with_vectors(db, &schema.name, &vector_columns, batch, &out_schema)?;
            rows += batch.num_rows();
            writer.write(&batch).map_err(|e| io_error(path, e))?;
        }
        writer.finish().map_err(|e| io_error(path, e))?;
        Ok(rows)
    })();
    let rows = match written {
        Ok(rows) => rows,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(io_error(path, e));
    }
    let bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    Ok(ExportReport {
        table: schema.name.clone(),
        path: path.to_path_buf(),
        rows,
        bytes,
    })
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
        .ok_or_else(|| Error::Sql("export: the id column is missing".into()))?;
    let ids: Vec<EntityId> = (0..ids_col.len())
        .map(|i| EntityId::parse(ids_col.value(i)))
        .collect::<Result<_>>()?;
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
    RecordBatch::try_new(schema.clone(), columns).map_err(|e| Error::Sql(e.to_string()))
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
