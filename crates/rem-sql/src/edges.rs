//! The `edges` SQL table: `src, dst, edge_type, weight, properties, created_at`, read from
//! the edge store. `src = '…'` is one prefix scan of `edges`, `dst = '…'` one of
//! `edges_rev`; anything else scans the tenant's edges.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{Float64Builder, StringBuilder, TimestampMicrosecondBuilder};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::{DataFusionError, Result as DfResult, ScalarValue};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{
    BinaryExpr, Expr, Operator, TableProviderFilterPushDown, TableType,
};
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use rem::{Database, Edge, EntityId};

use crate::provider::{external, plan_properties, produce, BATCH_ROWS};

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("src", DataType::Utf8, false),
        Field::new("dst", DataType::Utf8, false),
        Field::new("edge_type", DataType::Utf8, false),
        Field::new("weight", DataType::Float64, false),
        Field::new("properties", DataType::Utf8, false),
        Field::new(
            "created_at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
    ]))
}

#[derive(Debug)]
pub(crate) struct EdgesTable {
    db: Database,
    schema: SchemaRef,
}

impl EdgesTable {
    pub(crate) fn new(db: Database) -> EdgesTable {
        EdgesTable {
            db,
            schema: schema(),
        }
    }
}

/// `column = 'text'` (either side) → the text.
fn equals(expr: &Expr, column: &str) -> Option<String> {
    let Expr::BinaryExpr(BinaryExpr {
        left,
        op: Operator::Eq,
        right,
    }) = expr
    else {
        return None;
    };
    let value = match (left.as_ref(), right.as_ref()) {
        (Expr::Column(c), Expr::Literal(v, _)) | (Expr::Literal(v, _), Expr::Column(c))
            if c.name == column =>
        {
            v
        }
        _ => return None,
    };
    match value {
        ScalarValue::Utf8(Some(s))
        | ScalarValue::LargeUtf8(Some(s))
        | ScalarValue::Utf8View(Some(s)) => Some(s.clone()),
        _ => None,
    }
}

#[async_trait]
impl TableProvider for EdgesTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|f| {
                if equals(f, "src").is_some() || equals(f, "dst").is_some() {
                    TableProviderFilterPushDown::Inexact
                } else {
                    TableProviderFilterPushDown::Unsupported
                }
            })
            .collect())
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        _limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let src = filters.iter().find_map(|f| equals(f, "src"));
        let dst = filters.iter().find_map(|f| equals(f, "dst"));
        let schema = match projection {
            Some(p) => Arc::new(self.schema.project(p)?),
            None => self.schema.clone(),
        };
        Ok(Arc::new(EdgeScanExec {
            db: self.db.clone(),
            src,
            dst,
            projection: projection.cloned(),
            properties: Arc::new(plan_properties(schema.clone(), 1)),
            schema,
        }))
    }
}

#[derive(Debug)]
pub(crate) struct EdgeScanExec {
    db: Database,
    src: Option<String>,
    dst: Option<String>,
    projection: Option<Vec<usize>>,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
}

impl DisplayAs for EdgeScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let access = match (&self.src, &self.dst) {
            (Some(_), _) => "edges by source (prefix scan)",
            (None, Some(_)) => "edges by target (reverse index)",
            (None, None) => "all edges",
        };
        write!(f, "RemEdgeScan: access={access}")
    }
}

struct Builders {
    src: StringBuilder,
    dst: StringBuilder,
    edge_type: StringBuilder,
    weight: Float64Builder,
    properties: StringBuilder,
    created_at: TimestampMicrosecondBuilder,
    rows: usize,
}

impl Builders {
    fn new() -> Builders {
        Builders {
            src: StringBuilder::new(),
            dst: StringBuilder::new(),
            edge_type: StringBuilder::new(),
            weight: Float64Builder::new(),
            properties: StringBuilder::new(),
            created_at: TimestampMicrosecondBuilder::new().with_timezone("UTC"),
            rows: 0,
        }
    }

    fn push(&mut self, e: &Edge) {
        self.src.append_value(e.src.to_string());
        self.dst.append_value(&e.dst);
        self.edge_type.append_value(&e.edge_type);
        self.weight.append_value(e.weight);
        self.properties
            .append_value(serde_json::Value::Object(e.properties.clone()).to_string());
        self.created_at
            .append_value(e.created_at.timestamp_micros());
        self.rows += 1;
    }

    fn finish(&mut self, projection: Option<&Vec<usize>>) -> DfResult<RecordBatch> {
        self.rows = 0;
        let all: Vec<datafusion::arrow::array::ArrayRef> = vec![
            Arc::new(self.src.finish()),
            Arc::new(self.dst.finish()),
            Arc::new(self.edge_type.finish()),
            Arc::new(self.weight.finish()),
            Arc::new(self.properties.finish()),
            Arc::new(self.created_at.finish()),
        ];
        let batch = RecordBatch::try_new(schema(), all)?;
        Ok(match projection {
            Some(p) => batch.project(p)?,
            None => batch,
        })
    }
}

impl ExecutionPlan for EdgeScanExec {
    fn name(&self) -> &str {
        "RemEdgeScanExec"
    }

    leaf_plan!();

    fn execute(
        &self,
        _partition: usize,
        _context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        let db = self.db.clone();
        let (src, dst) = (self.src.clone(), self.dst.clone());
        let projection = self.projection.clone();
        Ok(produce(self.schema.clone(), move |send| {
            // A source that is not an id matches no edge.
            let src_id = match &src {
                Some(s) => match EntityId::parse(s) {
                    Ok(id) => Some(id),
                    Err(_) => return,
                },
                None => None,
            };
            let mut b = Builders::new();
            let mut open = true;
            let mut failed: Option<DataFusionError> = None;
            let scanned = db.scan_edges(src_id.as_ref(), dst.as_deref(), |e| {
                b.push(&e);
                if b.rows >= BATCH_ROWS {
                    match b.finish(projection.as_ref()) {
                        Ok(batch) => open = send(Ok(batch)),
                        Err(e) => {
                            failed = Some(e);
                            return false;
                        }
                    }
                }
                open
            });
            if let Some(e) = failed {
                send(Err(e));
            } else if let Err(e) = scanned {
                send(Err(external(e)));
            } else if open && b.rows > 0 {
                send(b.finish(projection.as_ref()));
            }
        }))
    }
}
