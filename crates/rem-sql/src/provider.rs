//! The table provider over one REM table, and its scan: rows stream from the engine's
//! `scan_each` (which picks id get / key index / secondary index / full scan) on a
//! producer thread, through a bounded channel, so large results are never collected.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::{DataFusionError, Result as DfResult};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType};
use datafusion::physical_expr::EquivalenceProperties;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
};
use rem::{AccessPath, Database, Filter, ScanOptions};

use crate::convert::{arrow_schema, columns, field_columns, BatchBuilder, Column, Source};
use crate::engine::SqlOptions;
use crate::pushdown::{convert, mentions};

/// Rows per record batch.
pub(crate) const BATCH_ROWS: usize = 4096;

/// One REM table as a SQL table.
#[derive(Debug)]
pub(crate) struct RemTable {
    db: Database,
    table: String,
    cols: Vec<Column>,
    schema: SchemaRef,
    include_deleted: bool,
}

impl RemTable {
    pub(crate) fn new(db: Database, schema: &rem::Schema, options: &SqlOptions) -> RemTable {
        let cols = if options.fields_only {
            field_columns(schema)
        } else {
            columns(schema)
        };
        RemTable {
            db,
            table: schema.name.clone(),
            schema: arrow_schema(&cols),
            cols,
            include_deleted: options.include_deleted,
        }
    }
}

/// The engine filter for `filters` (ANDed; unconvertible parts dropped), and whether
/// the query asked for soft-deleted rows by filtering on `deleted_at`.
pub(crate) fn engine_filter(filters: &[Expr], cols: &[Column]) -> (Filter, bool) {
    let mut parts: Vec<Filter> = filters
        .iter()
        .filter_map(|f| convert(f, cols))
        .map(|c| c.filter)
        .collect();
    let deleted = filters.iter().any(|f| mentions(f, "deleted_at"));
    let filter = match parts.len() {
        0 => Filter::All,
        1 => parts.remove(0),
        _ => Filter::And(parts),
    };
    (filter, deleted)
}

/// Pushdown support for each filter over `cols`: exact, inexact (the engine narrows,
/// DataFusion re-checks) or unsupported. Filters on `deleted_at` are always taken
/// (inexact), since they decide whether soft-deleted rows are read at all.
pub(crate) fn pushdown_support(
    filters: &[&Expr],
    cols: &[Column],
) -> Vec<TableProviderFilterPushDown> {
    filters
        .iter()
        .map(|f| match convert(f, cols) {
            Some(c) if c.exact => TableProviderFilterPushDown::Exact,
            Some(_) => TableProviderFilterPushDown::Inexact,
            None if mentions(f, "deleted_at") => TableProviderFilterPushDown::Inexact,
            None => TableProviderFilterPushDown::Unsupported,
        })
        .collect()
}

#[async_trait]
impl TableProvider for RemTable {
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
        Ok(pushdown_support(filters, &self.cols))
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let (filter, mentions_deleted) = engine_filter(filters, &self.cols);
        let path = self.db.explain(&self.table, &filter).map_err(external)?;
        let (cols, schema) = project(&self.cols, &self.schema, projection)?;
        // A full scan reads disjoint id ranges on every core; index paths are short.
        let partitions = match path {
            AccessPath::FullScan => state.config().target_partitions().max(1),
            _ => 1,
        };
        Ok(Arc::new(RemScanExec {
            db: self.db.clone(),
            table: self.table.clone(),
            filter,
            path,
            cols,
            properties: Arc::new(plan_properties(schema.clone(), partitions)),
            partitions,
            schema,
            limit,
            include_deleted: self.include_deleted || mentions_deleted,
        }))
    }
}

/// The projected columns and schema.
pub(crate) fn project(
    cols: &[Column],
    schema: &SchemaRef,
    projection: Option<&Vec<usize>>,
) -> DfResult<(Vec<Column>, SchemaRef)> {
    match projection {
        None => Ok((cols.to_vec(), schema.clone())),
        Some(p) => Ok((
            p.iter().map(|&i| cols[i].clone()).collect(),
            Arc::new(schema.project(p)?),
        )),
    }
}

pub(crate) fn plan_properties(schema: SchemaRef, partitions: usize) -> PlanProperties {
    PlanProperties::new(
        EquivalenceProperties::new(schema),
        Partitioning::UnknownPartitioning(partitions),
        EmissionType::Incremental,
        Boundedness::Bounded,
    )
}

pub(crate) fn external(e: rem::Error) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

/// Scan of one REM table through the access path the engine chose.
#[derive(Debug)]
pub(crate) struct RemScanExec {
    db: Database,
    table: String,
    filter: Filter,
    path: AccessPath,
    cols: Vec<Column>,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
    limit: Option<usize>,
    include_deleted: bool,
    /// Disjoint id ranges read in parallel (full scans).
    partitions: usize,
}

impl DisplayAs for RemScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RemScan: table={}, access={}", self.table, self.path)?;
        if self.filter != Filter::All {
            write!(f, ", filter={:?}", self.filter)?;
        }
        if let Some(l) = self.limit {
            write!(f, ", limit={l}")?;
        }
        if self.include_deleted {
            write!(f, ", include_deleted")?;
        }
        if self.partitions > 1 {
            write!(f, ", partitions={}", self.partitions)?;
        }
        let names: Vec<&str> = self.cols.iter().map(|c| c.name.as_str()).collect();
        write!(f, ", columns=[{}]", names.join(", "))
    }
}

impl ExecutionPlan for RemScanExec {
    fn name(&self) -> &str {
        "RemScanExec"
    }

    leaf_plan!();

    fn execute(
        &self,
        partition: usize,
        _context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        let db = self.db.clone();
        let table = self.table.clone();
        let filter = self.filter.clone();
        let options = ScanOptions {
            limit: self.limit,
            include_deleted: self.include_deleted,
            properties: needed_properties(&self.cols),
            shard: (self.partitions > 1).then_some((partition as u32, self.partitions as u32)),
        };
        let mut builder = BatchBuilder::new(self.cols.clone(), self.schema.clone());
        Ok(produce(self.schema.clone(), move |send| {
            let mut failed = None;
            let mut open = true;
            let scanned = db.scan_each(&table, &filter, &options, |e| {
                builder.push(&e, None);
                if builder.len() >= BATCH_ROWS {
                    match builder.finish() {
                        Ok(b) => open = send(Ok(b)),
                        Err(e) => {
                            failed = Some(DataFusionError::from(e));
                            return false;
                        }
                    }
                }
                open
            });
            if let Some(e) = failed {
                send(Err(e));
                return;
            }
            if let Err(e) = scanned {
                send(Err(external(e)));
                return;
            }
            if open && builder.len() > 0 {
                send(builder.finish().map_err(DataFusionError::from));
            }
        }))
    }
}

/// The properties `cols` read (`None`: all of them, for the JSON `properties` column).
pub(crate) fn needed_properties(cols: &[Column]) -> Option<Vec<String>> {
    let mut names = Vec::new();
    for c in cols {
        match c.source {
            Source::Properties => return None,
            Source::Property(_) => names.push(c.name.clone()),
            _ => {}
        }
    }
    Some(names)
}

/// A stream fed by `work`, run on its own thread: `send` hands over one batch and
/// returns false once the consumer has gone (e.g. a LIMIT was reached), so the
/// producer can stop. Two batches at most are buffered. Dropping the stream closes
/// the channel and joins the producer, so no scan outlives its query: a process that
/// ends right after a dropped query (`rem query … | head`) does not tear RocksDB
/// down under a running iterator.
pub(crate) fn produce(
    schema: SchemaRef,
    work: impl FnOnce(&mut dyn FnMut(DfResult<RecordBatch>) -> bool) + Send + 'static,
) -> SendableRecordBatchStream {
    let (tx, rx) = tokio::sync::mpsc::channel::<DfResult<RecordBatch>>(2);
    let producer = std::thread::spawn(move || {
        let mut send = |b: DfResult<RecordBatch>| tx.blocking_send(b).is_ok();
        work(&mut send);
    });
    let fed = Fed {
        rx,
        producer: Some(producer),
    };
    let stream = futures::stream::unfold(fed, |mut fed| async move {
        fed.rx.recv().await.map(|b| (b, fed))
    });
    Box::pin(RecordBatchStreamAdapter::new(schema, stream))
}

/// The receiving end of [`produce`], which joins its producer when dropped.
struct Fed {
    rx: tokio::sync::mpsc::Receiver<DfResult<RecordBatch>>,
    producer: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Fed {
    fn drop(&mut self) {
        // Closing wakes a producer blocked on a full channel; its next send fails.
        self.rx.close();
        while self.rx.try_recv().is_ok() {}
        if let Some(producer) = self.producer.take() {
            let _ = producer.join();
        }
    }
}
