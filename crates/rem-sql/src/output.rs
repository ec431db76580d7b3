//! Writing SQL results as a table, JSON, JSON lines or CSV, batch by batch.

use std::io::Write;

use datafusion::arrow::record_batch::RecordBatch;
use rem::{Error, Result};

/// Output format of `rem query`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// A human-readable table (the whole result is held to size the columns).
    Table,
    /// One JSON array of objects.
    Json,
    /// One JSON object per line.
    Jsonl,
    /// CSV with a header row.
    Csv,
}

fn io(e: impl std::fmt::Display) -> Error {
    Error::Sql(format!("cannot write the result: {e}"))
}

/// Writes every batch of `batches` to `out` in `format`, streaming except for `Table`.
/// Returns the number of rows written.
pub fn write_batches(
    batches: impl Iterator<Item = Result<RecordBatch>>,
    format: OutputFormat,
    out: &mut dyn Write,
) -> Result<usize> {
    let mut rows = 0usize;
    match format {
        OutputFormat::Table => {
            let mut all = Vec::new();
            for b in batches {
                let b = b?;
                rows += b.num_rows();
                all.push(b);
            }
            let table = datafusion::arrow::util::pretty::pretty_format_batches(&all).map_err(io)?;
            writeln!(out, "{table}").map_err(io)?;
        }
        OutputFormat::Json => {
            let mut w = arrow_json::ArrayWriter::new(&mut *out);
            for b in batches {
                let b = b?;
                rows += b.num_rows();
                w.write(&b).map_err(io)?;
            }
            w.finish().map_err(io)?;
            if rows == 0 {
                write!(out, "[]").map_err(io)?;
            }
            writeln!(out).map_err(io)?;
        }
        OutputFormat::Jsonl => {
            let mut w = arrow_json::LineDelimitedWriter::new(&mut *out);
            for b in batches {
                let b = b?;
                rows += b.num_rows();
                w.write(&b).map_err(io)?;
            }
            w.finish().map_err(io)?;
        }
        OutputFormat::Csv => {
            let mut w = arrow_csv::WriterBuilder::new()
                .with_header(true)
                .build(&mut *out);
            for b in batches {
                let b = b?;
                rows += b.num_rows();
                w.write(&b).map_err(io)?;
            }
        }
    }
    Ok(rows)
}
