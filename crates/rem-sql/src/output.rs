//! Writing SQL results as a table, JSON, JSON lines or CSV, batch by batch.

use std::io::Write;

use crate::{Error, Result};
use datafusion::arrow::record_batch::RecordBatch;

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
    Error::Query(format!("cannot write the result: {e}"))
}

/// Writes every batch of `batches` to `out` in `format`, streaming except for `Table`.
/// Returns the number of rows written.
pub fn write_batches<E: From<Error>>(
    batches: impl Iterator<Item = Result<RecordBatch, E>>,
    format: OutputFormat,
    out: &mut dyn Write,
) -> Result<usize, E> {
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
            // With no rows, `finish` writes `[]` itself.
            w.finish().map_err(io)?;
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
                let b = lists_as_json(&b?)?;
                rows += b.num_rows();
                w.write(&b).map_err(io)?;
            }
        }
    }
    Ok(rows)
}

/// The batch with every list column replaced by its values as JSON text (CSV has no
/// lists): `["a","b"]`, or null.
pub(crate) fn lists_as_json(batch: &RecordBatch) -> Result<RecordBatch> {
    use datafusion::arrow::array::{ArrayRef, StringBuilder};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;
    if !batch
        .schema()
        .fields()
        .iter()
        .any(|f| matches!(f.data_type(), DataType::List(_)))
    {
        return Ok(batch.clone());
    }
    let mut fields = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::new();
    for (f, col) in batch.schema().fields().iter().zip(batch.columns()) {
        if !matches!(f.data_type(), DataType::List(_)) {
            fields.push(f.as_ref().clone());
            columns.push(col.clone());
            continue;
        }
        // Encode the column alone as JSON lines, one object per row, and keep the value.
        let single = Arc::new(Schema::new(vec![Field::new(
            "v",
            f.data_type().clone(),
            true,
        )]));
        let one = RecordBatch::try_new(single, vec![col.clone()]).map_err(io)?;
        let mut buf = Vec::new();
        {
            let mut w = arrow_json::LineDelimitedWriter::new(&mut buf);
            w.write(&one).map_err(io)?;
            w.finish().map_err(io)?;
        }
        let mut text = StringBuilder::new();
        for line in buf.split(|b| *b == b'\n').take(batch.num_rows()) {
            let row: serde_json::Value = serde_json::from_slice(line).map_err(io)?;
            text.append_option(row.get("v").map(|v| v.to_string()));
        }
        fields.push(Field::new(f.name(), DataType::Utf8, true));
        columns.push(Arc::new(text.finish()));
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    #[test]
    fn an_empty_result_is_one_empty_json_array() {
        let schema = std::sync::Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, true)]));
        let empty = RecordBatch::new_empty(schema);
        for batches in [vec![], vec![empty.clone()], vec![empty.clone(), empty]] {
            let mut out = Vec::new();
            let rows = write_batches(
                batches.into_iter().map(Ok::<_, Error>),
                OutputFormat::Json,
                &mut out,
            )
            .unwrap();
            assert_eq!(rows, 0);
            assert_eq!(String::from_utf8(out).unwrap(), "[]\n");
        }
    }
}
