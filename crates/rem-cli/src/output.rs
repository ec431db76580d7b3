//! Output formatting: tables on a terminal, JSON when piped, JSONL and CSV on request.

use std::io::Write;

use anyhow::Result;
use comfy_table::{presets::UTF8_FULL_CONDENSED, ContentArrangement, Table};
use serde_json::{Map, Value};

use crate::cli::Format;

/// Rows with named columns.
pub(crate) struct Rows {
    columns: Vec<String>,
    rows: Vec<Vec<Value>>,
    /// Objects as given, for JSON output (keeps nesting and key order).
    objects: Option<Vec<Value>>,
    single: bool,
}

impl Rows {
    pub(crate) fn new(columns: Vec<&str>, rows: Vec<Vec<Value>>) -> Rows {
        Rows {
            columns: columns.into_iter().map(String::from).collect(),
            rows,
            objects: None,
            single: false,
        }
    }

    /// Rows from JSON objects; columns are the union of their keys, in first-seen order.
    pub(crate) fn from_objects(objects: Vec<Value>) -> Rows {
        let mut columns: Vec<String> = Vec::new();
        for o in &objects {
            if let Value::Object(m) = o {
                for k in m.keys() {
                    if !columns.contains(k) {
                        columns.push(k.clone());
                    }
                }
            }
        }
        let rows = objects
            .iter()
            .map(|o| {
                columns
                    .iter()
                    .map(|c| o.get(c).cloned().unwrap_or(Value::Null))
                    .collect()
            })
            .collect();
        Rows {
            columns,
            rows,
            objects: Some(objects),
            single: false,
        }
    }

    /// One object, printed as an object (not a list) in JSON.
    pub(crate) fn single(object: Value) -> Rows {
        let mut r = Rows::from_objects(vec![object]);
        r.single = true;
        r
    }

    fn objects(&self) -> Vec<Value> {
        match &self.objects {
            Some(o) => o.clone(),
            None => self
                .rows
                .iter()
                .map(|r| {
                    let m: Map<String, Value> = self
                        .columns
                        .iter()
                        .cloned()
                        .zip(r.iter().cloned())
                        .collect();
                    Value::Object(m)
                })
                .collect(),
        }
    }
}

/// Prints `rows` in `format`.
pub(crate) fn print_rows(out: &mut dyn Write, format: Format, rows: &Rows) -> Result<()> {
    match format {
        Format::Json => {
            let objects = rows.objects();
            let v = if rows.single {
                objects.into_iter().next().unwrap_or(Value::Null)
            } else {
                Value::Array(objects)
            };
            writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
        }
        Format::Jsonl => {
            for o in rows.objects() {
                writeln!(out, "{}", serde_json::to_string(&o)?)?;
            }
        }
        Format::Csv => {
            let mut w = csv::Writer::from_writer(out);
            w.write_record(&rows.columns)?;
            for r in &rows.rows {
                w.write_record(r.iter().map(cell))?;
            }
            w.flush()?;
        }
        Format::Table => {
            if rows.single {
                // One entity: a field/value listing reads better than a wide table.
                let mut t = new_table();
                t.set_header(vec!["field", "value"]);
                for (c, v) in rows
                    .columns
                    .iter()
                    .zip(rows.rows.first().into_iter().flatten())
                {
                    t.add_row(vec![c.clone(), truncate(&cell(v), 200)]);
                }
                writeln!(out, "{t}")?;
            } else {
                let mut t = new_table();
                t.set_header(&rows.columns);
                for r in &rows.rows {
                    t.add_row(r.iter().map(|v| truncate(&cell(v), 60)).collect::<Vec<_>>());
                }
                writeln!(out, "{t}")?;
                writeln!(
                    out,
                    "({} row{})",
                    rows.rows.len(),
                    if rows.rows.len() == 1 { "" } else { "s" }
                )?;
            }
        }
    }
    Ok(())
}

/// Prints a JSON document (pretty for `json`, one line for `jsonl`).
pub(crate) fn print_json(out: &mut dyn Write, format: Format, v: &Value) -> Result<()> {
    if format == Format::Jsonl {
        writeln!(out, "{}", serde_json::to_string(v)?)?;
    } else {
        writeln!(out, "{}", serde_json::to_string_pretty(v)?)?;
    }
    Ok(())
}

fn new_table() -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic);
    t
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let cut: String = s.chars().take(max - 1).collect();
        format!("{cut}…")
    }
}
