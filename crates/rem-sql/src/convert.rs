//! REM tables as Arrow schemas, and entities as Arrow rows.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, Int64Builder, ListBuilder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema as ArrowSchema, SchemaRef, TimeUnit};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::RecordBatch;
use rem::{Entity, FieldType, Schema};
use serde_json::Value;

/// Name of the column holding every property as JSON text (fields outside the schema
/// included).
pub(crate) const PROPERTIES: &str = "properties";
/// Name of the similarity column of vector-search tables.
pub(crate) const SCORE: &str = "_score";

/// What a column is filled from.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Source {
    Id,
    EntityType,
    CreatedAt,
    ModifiedAt,
    DeletedAt,
    Edges,
    /// A schema property of this type.
    Property(FieldType),
    /// All properties as JSON.
    Properties,
    /// Similarity to the query (search tables only).
    Score,
}

/// One SQL column of a REM table.
#[derive(Debug, Clone)]
pub(crate) struct Column {
    pub(crate) name: String,
    pub(crate) source: Source,
}

/// The system columns every table starts with.
pub(crate) fn system_columns() -> Vec<Column> {
    [
        ("id", Source::Id),
        ("entity_type", Source::EntityType),
        ("created_at", Source::CreatedAt),
        ("modified_at", Source::ModifiedAt),
        ("deleted_at", Source::DeletedAt),
        ("edges", Source::Edges),
    ]
    .into_iter()
    .map(|(n, s)| Column {
        name: n.to_string(),
        source: s,
    })
    .collect()
}

/// The SQL columns of `schema`: system fields, properties in schema order, then the
/// JSON `properties` column (unless a property already has that name).
/// Only the schema's declared fields, in schema order.
pub(crate) fn field_columns(schema: &Schema) -> Vec<Column> {
    schema
        .fields()
        .map(|(name, ty)| Column {
            name: name.to_string(),
            source: Source::Property(ty.clone()),
        })
        .collect()
}

pub(crate) fn columns(schema: &Schema) -> Vec<Column> {
    let mut cols = system_columns();
    for (name, ty) in schema.fields() {
        if cols.iter().any(|c| c.name == name) {
            continue;
        }
        cols.push(Column {
            name: name.to_string(),
            source: Source::Property(ty.clone()),
        });
    }
    if !cols.iter().any(|c| c.name == PROPERTIES) {
        cols.push(Column {
            name: PROPERTIES.to_string(),
            source: Source::Properties,
        });
    }
    cols
}

fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

fn scalar_type(ty: &FieldType) -> DataType {
    match ty {
        FieldType::String => DataType::Utf8,
        FieldType::Integer => DataType::Int64,
        FieldType::Number => DataType::Float64,
        FieldType::Boolean => DataType::Boolean,
        FieldType::Timestamp => timestamp_type(),
        // Nested arrays, objects and untyped values are JSON text.
        _ => DataType::Utf8,
    }
}

fn data_type(source: &Source) -> DataType {
    match source {
        Source::Id | Source::EntityType | Source::Properties => DataType::Utf8,
        Source::CreatedAt | Source::ModifiedAt | Source::DeletedAt => timestamp_type(),
        Source::Edges => DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
        Source::Score => DataType::Float64,
        Source::Property(FieldType::Array(item)) => {
            DataType::List(Arc::new(Field::new("item", scalar_type(item), true)))
        }
        Source::Property(ty) => scalar_type(ty),
    }
}

/// The Arrow schema of `cols`.
pub(crate) fn arrow_schema(cols: &[Column]) -> SchemaRef {
    Arc::new(ArrowSchema::new(
        cols.iter()
            .map(|c| {
                let nullable = !matches!(
                    c.source,
                    Source::Id
                        | Source::EntityType
                        | Source::CreatedAt
                        | Source::ModifiedAt
                        | Source::Score
                );
                Field::new(&c.name, data_type(&c.source), nullable)
            })
            .collect::<Vec<_>>(),
    ))
}

/// Builds one Arrow array from values of one kind.
enum Builder {
    Utf8(StringBuilder),
    Int64(Int64Builder),
    Float64(Float64Builder),
    Boolean(BooleanBuilder),
    Timestamp(TimestampMicrosecondBuilder),
    ListUtf8(ListBuilder<StringBuilder>),
    ListInt64(ListBuilder<Int64Builder>),
    ListFloat64(ListBuilder<Float64Builder>),
    ListBoolean(ListBuilder<BooleanBuilder>),
    ListTimestamp(ListBuilder<TimestampMicrosecondBuilder>),
}

fn ts_builder() -> TimestampMicrosecondBuilder {
    TimestampMicrosecondBuilder::new().with_timezone("UTC")
}

impl Builder {
    fn for_type(dt: &DataType) -> Builder {
        match dt {
            DataType::Int64 => Builder::Int64(Int64Builder::new()),
            DataType::Float64 => Builder::Float64(Float64Builder::new()),
            DataType::Boolean => Builder::Boolean(BooleanBuilder::new()),
            DataType::Timestamp(..) => Builder::Timestamp(ts_builder()),
            DataType::List(item) => match item.data_type() {
                DataType::Int64 => Builder::ListInt64(ListBuilder::new(Int64Builder::new())),
                DataType::Float64 => Builder::ListFloat64(ListBuilder::new(Float64Builder::new())),
                DataType::Boolean => Builder::ListBoolean(ListBuilder::new(BooleanBuilder::new())),
                DataType::Timestamp(..) => Builder::ListTimestamp(ListBuilder::new(ts_builder())),
                _ => Builder::ListUtf8(ListBuilder::new(StringBuilder::new())),
            },
            _ => Builder::Utf8(StringBuilder::new()),
        }
    }

    /// Appends `v` (JSON), or null when it is absent or does not fit the column type.
    fn push(&mut self, v: Option<&Value>) {
        let v = v.filter(|v| !v.is_null());
        match self {
            Builder::Utf8(b) => b.append_option(v.map(text)),
            Builder::Int64(b) => b.append_option(v.and_then(as_i64)),
            Builder::Float64(b) => b.append_option(v.and_then(Value::as_f64)),
            Builder::Boolean(b) => b.append_option(v.and_then(Value::as_bool)),
            Builder::Timestamp(b) => b.append_option(v.and_then(as_micros)),
            Builder::ListUtf8(b) => push_list(b, v, |b, x| b.append_option(Some(text(x)))),
            Builder::ListInt64(b) => push_list(b, v, |b, x| b.append_option(as_i64(x))),
            Builder::ListFloat64(b) => push_list(b, v, |b, x| b.append_option(x.as_f64())),
            Builder::ListBoolean(b) => push_list(b, v, |b, x| b.append_option(x.as_bool())),
            Builder::ListTimestamp(b) => push_list(b, v, |b, x| b.append_option(as_micros(x))),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Builder::Utf8(b) => Arc::new(b.finish()),
            Builder::Int64(b) => Arc::new(b.finish()),
            Builder::Float64(b) => Arc::new(b.finish()),
            Builder::Boolean(b) => Arc::new(b.finish()),
            Builder::Timestamp(b) => Arc::new(b.finish()),
            Builder::ListUtf8(b) => Arc::new(b.finish()),
            Builder::ListInt64(b) => Arc::new(b.finish()),
            Builder::ListFloat64(b) => Arc::new(b.finish()),
            Builder::ListBoolean(b) => Arc::new(b.finish()),
            Builder::ListTimestamp(b) => Arc::new(b.finish()),
        }
    }
}

fn push_list<B: datafusion::arrow::array::ArrayBuilder>(
    b: &mut ListBuilder<B>,
    v: Option<&Value>,
    mut item: impl FnMut(&mut B, &Value),
) {
    match v {
        Some(Value::Array(xs)) => {
            for x in xs {
                item(b.values(), x);
            }
            b.append(true);
        }
        _ => b.append(false),
    }
}

/// Strings as themselves; anything else as JSON text.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn as_i64(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| {
        v.as_f64()
            .filter(|f| f.fract() == 0.0 && f.abs() < 9.2e18)
            .map(|f| f as i64)
    })
}

fn as_micros(v: &Value) -> Option<i64> {
    rem::parse_ts(v.as_str()?).map(|t| t.timestamp_micros())
}

/// Accumulates entities into record batches of the projected columns.
pub(crate) struct BatchBuilder {
    schema: SchemaRef,
    cols: Vec<Column>,
    builders: Vec<Builder>,
    rows: usize,
}

impl BatchBuilder {
    /// For the columns `cols` (already projected) with Arrow schema `schema`.
    pub(crate) fn new(cols: Vec<Column>, schema: SchemaRef) -> BatchBuilder {
        let builders = schema
            .fields()
            .iter()
            .map(|f| Builder::for_type(f.data_type()))
            .collect();
        BatchBuilder {
            schema,
            cols,
            builders,
            rows: 0,
        }
    }

    /// Rows added since the last `finish`.
    pub(crate) fn len(&self) -> usize {
        self.rows
    }

    /// Adds one entity (with its similarity score, for search tables).
    pub(crate) fn push(&mut self, e: &Entity, score: Option<f64>) {
        for (col, b) in self.cols.iter().zip(self.builders.iter_mut()) {
            match (&col.source, b) {
                (Source::Id, Builder::Utf8(b)) => b.append_value(e.id.to_string()),
                (Source::EntityType, Builder::Utf8(b)) => b.append_value(&e.table),
                (Source::CreatedAt, Builder::Timestamp(b)) => {
                    b.append_value(e.created_at.timestamp_micros())
                }
                (Source::ModifiedAt, Builder::Timestamp(b)) => {
                    b.append_value(e.modified_at.timestamp_micros())
                }
                (Source::DeletedAt, Builder::Timestamp(b)) => {
                    b.append_option(e.deleted_at.map(|t| t.timestamp_micros()))
                }
                (Source::Edges, Builder::ListUtf8(b)) => {
                    for edge in &e.edges {
                        b.values().append_value(edge);
                    }
                    b.append(true);
                }
                (Source::Properties, Builder::Utf8(b)) => {
                    b.append_value(Value::Object(e.properties.clone()).to_string())
                }
                (Source::Score, Builder::Float64(b)) => b.append_option(score),
                (Source::Property(_), b) => b.push(e.properties.get(&col.name)),
                (_, b) => b.push(None),
            }
        }
        self.rows += 1;
    }

    /// The rows added so far as a batch; the builder starts empty again.
    pub(crate) fn finish(&mut self) -> Result<RecordBatch, ArrowError> {
        let arrays: Vec<ArrayRef> = self.builders.iter_mut().map(Builder::finish).collect();
        let rows = std::mem::take(&mut self.rows);
        RecordBatch::try_new_with_options(
            self.schema.clone(),
            arrays,
            &datafusion::arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(rows)),
        )
    }
}
