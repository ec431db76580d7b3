//! Vector-search tables: what `embedding.cosine('text')` and `SEARCH` are rewritten into.
//!
//! A `SearchTable` has the columns of its REM table plus `_score` (cosine similarity to
//! the query text). Its scan runs `Database::search` — the HNSW index — with the rest of
//! the `WHERE` clause converted to an engine filter applied *during* the index search,
//! and a `_score > x` condition as the score threshold. When some condition cannot be
//! converted, the top-k of the index could miss rows that pass it, so the scan then
//! ranks every row (k = all) and DataFusion filters, sorts and limits: slower, never
//! wrong.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::{DataFusionError, Result as DfResult};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{
    BinaryExpr, Expr, Operator, TableProviderFilterPushDown, TableType,
};
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use rem::{Database, Filter, SearchOptions};

use crate::convert::{arrow_schema, columns, BatchBuilder, Column, Source, SCORE};
use crate::provider::{engine_filter, external, plan_properties, produce, project, BATCH_ROWS};
use crate::pushdown::{convert, mentions};

/// What to search: table, column and query text, and how many hits (`None` = all).
#[derive(Debug, Clone)]
pub(crate) struct SearchSpec {
    pub(crate) table: String,
    pub(crate) alt: bool,
    pub(crate) text: String,
    pub(crate) k: Option<usize>,
}

#[derive(Debug)]
pub(crate) struct SearchTable {
    db: Database,
    spec: SearchSpec,
    cols: Vec<Column>,
    schema: SchemaRef,
}

impl SearchTable {
    pub(crate) fn new(db: Database, schema: &rem::Schema, spec: SearchSpec) -> SearchTable {
        let mut cols = columns(schema);
        cols.push(Column {
            name: SCORE.to_string(),
            source: Source::Score,
        });
        SearchTable {
            db,
            spec,
            schema: arrow_schema(&cols),
            cols,
        }
    }
}

/// `_score > x` / `_score >= x` (either side) as a threshold.
fn score_threshold(expr: &Expr) -> Option<f32> {
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = expr else {
        return None;
    };
    let (op, lit) = match (left.as_ref(), right.as_ref()) {
        (Expr::Column(c), lit) if c.name == SCORE => (*op, lit),
        (lit, Expr::Column(c)) if c.name == SCORE => (op.swap()?, lit),
        _ => return None,
    };
    if !matches!(op, Operator::Gt | Operator::GtEq) {
        return None;
    }
    let lit = match lit {
        Expr::Cast(c) => c.expr.as_ref(),
        other => other,
    };
    match lit {
        Expr::Literal(v, _) => match v.cast_to(&datafusion::arrow::datatypes::DataType::Float64) {
            Ok(datafusion::common::ScalarValue::Float64(Some(x))) => Some(x as f32),
            _ => None,
        },
        _ => None,
    }
}

#[async_trait]
impl TableProvider for SearchTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        // All are taken (and re-checked by DataFusion): the scan must see every
        // condition to know whether the index's top-k is safe.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        _limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let mut min_score: Option<f32> = None;
        let mut rest = Vec::new();
        // The index's top-k is the answer only if the engine applies every condition
        // exactly; otherwise DataFusion's re-check could drop hits that a larger k would
        // have replaced, so every row is ranked.
        let mut top_k_safe = true;
        for f in filters {
            if let Some(t) = score_threshold(f) {
                min_score = Some(min_score.map_or(t, |m| m.max(t)));
            } else {
                top_k_safe &=
                    !mentions(f, SCORE) && convert(f, &self.cols).is_some_and(|c| c.exact);
                rest.push(f.clone());
            }
        }
        let (filter, _) = engine_filter(&rest, &self.cols);
        let k = if top_k_safe { self.spec.k } else { None };
        let (cols, schema) = project(&self.cols, &self.schema, projection)?;
        Ok(Arc::new(SearchExec {
            db: self.db.clone(),
            spec: SearchSpec {
                k,
                ..self.spec.clone()
            },
            filter,
            min_score,
            cols,
            properties: Arc::new(plan_properties(schema.clone(), 1)),
            schema,
        }))
    }
}

#[derive(Debug)]
pub(crate) struct SearchExec {
    db: Database,
    spec: SearchSpec,
    filter: Filter,
    min_score: Option<f32>,
    cols: Vec<Column>,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
}

impl DisplayAs for SearchExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "RemVectorSearch: table={}, column={}, access=vector index, k={}",
            self.spec.table,
            if self.spec.alt {
                "embedding_alt"
            } else {
                "embedding"
            },
            self.spec.k.map_or("all".to_string(), |k| k.to_string())
        )?;
        if let Some(m) = self.min_score {
            write!(f, ", min_score={m}")?;
        }
        if self.filter != Filter::All {
            write!(f, ", filter={:?}", self.filter)?;
        }
        Ok(())
    }
}

impl ExecutionPlan for SearchExec {
    fn name(&self) -> &str {
        "RemVectorSearchExec"
    }

    leaf_plan!();

    fn execute(
        &self,
        _partition: usize,
        _context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        let db = self.db.clone();
        let spec = self.spec.clone();
        // Database::search never returns soft-deleted entities.
        let filter = self.filter.clone();
        let options = SearchOptions {
            top_k: spec.k.unwrap_or(usize::MAX),
            min_score: self.min_score,
            filter,
            alt: spec.alt,
            ef_search: None,
        };
        let mut builder = BatchBuilder::new(self.cols.clone(), self.schema.clone());
        Ok(produce(self.schema.clone(), move |send| {
            let found = match db.search(Some(&spec.table), &spec.text, &options) {
                Ok(r) => r,
                Err(e) => {
                    send(Err(external(e)));
                    return;
                }
            };
            for hit in found.hits {
                // The f32 score's shortest decimal form, not its binary expansion in f64.
                let score = hit
                    .score
                    .to_string()
                    .parse()
                    .unwrap_or(f64::from(hit.score));
                builder.push(&hit.entity, Some(score));
                if builder.len() >= BATCH_ROWS {
                    match builder.finish() {
                        Ok(b) => {
                            if !send(Ok(b)) {
                                return;
                            }
                        }
                        Err(e) => {
                            send(Err(DataFusionError::from(e)));
                            return;
                        }
                    }
                }
            }
            if builder.len() > 0 {
                send(builder.finish().map_err(DataFusionError::from));
            }
        }))
    }
}
