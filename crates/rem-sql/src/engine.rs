//! `Database::sql`: parse, rewrite the semantic extensions, plan with DataFusion over
//! the database's tables, and stream the result as Arrow record batches.

use std::sync::{Arc, OnceLock};

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::MemTable;
use datafusion::common::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::sql::parser::DFParser;
use datafusion::sql::sqlparser::dialect::GenericDialect;
use futures::StreamExt;
use rem::Database;

use crate::{Error, Result};

use crate::convert::{arrow_schema, system_columns, BatchBuilder, Column, Source, PROPERTIES};
use crate::edges::EdgesTable;
use crate::names;
use crate::provider::RemTable;
use crate::rewrite::{rewrite_statement, rewrite_text, Virtual};
use crate::search::SearchTable;
use crate::subquery::NestedLoopSubqueries;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;

/// Options of a SQL query.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct SqlOptions {
    /// Show soft-deleted rows in every table (otherwise they appear only when the query
    /// filters on `deleted_at`, e.g. `WHERE deleted_at IS NOT NULL`).
    pub include_deleted: bool,
    /// Tables show only their schema's declared fields: no `id`, `entity_type`,
    /// timestamps, `edges` or `properties`, so `SELECT *` means what it means over a
    /// plain SQL table (how SQLite's sqllogictest corpus runs against REM tables).
    pub fields_only: bool,
}

impl SqlOptions {
    /// Options with `include_deleted` set as given.
    pub fn include_deleted(include_deleted: bool) -> SqlOptions {
        SqlOptions {
            include_deleted,
            ..SqlOptions::default()
        }
    }

    /// Options with only the declared fields as columns (see [`SqlOptions::fields_only`]).
    pub fn fields_only() -> SqlOptions {
        SqlOptions {
            fields_only: true,
            ..SqlOptions::default()
        }
    }
}

/// SQL over a [`Database`].
pub trait Sql {
    /// Runs one SQL statement (`SELECT`, `EXPLAIN`, `SEARCH`, `LOOKUP`) and streams the
    /// result.
    fn sql(&self, query: &str) -> Result<SqlStream> {
        self.sql_with(query, &SqlOptions::default())
    }

    /// [`Sql::sql`] with options.
    fn sql_with(&self, query: &str, options: &SqlOptions) -> Result<SqlStream>;
}

/// A streaming SQL result: an iterator of Arrow record batches. Batches are produced
/// as they are read; nothing is collected first.
pub struct SqlStream {
    schema: SchemaRef,
    stream: SendableRecordBatchStream,
}

impl std::fmt::Debug for SqlStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlStream")
            .field("schema", &self.schema)
            .finish()
    }
}

impl SqlStream {
    /// Column names and types of the result.
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// Reads the whole result (for small results and tests).
    pub fn collect_all(self) -> Result<Vec<RecordBatch>> {
        self.collect()
    }
}

impl Iterator for SqlStream {
    type Item = Result<RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        let next = runtime().ok()?.block_on(self.stream.next())?;
        Some(next.map_err(sql_error))
    }
}

/// The runtime DataFusion runs on; `Database::sql` blocks on it, so it must not be
/// called from inside another Tokio runtime's async task.
fn runtime() -> Result<&'static tokio::runtime::Runtime> {
    static RT: OnceLock<std::result::Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads())
            .thread_name("rem-sql")
            .build()
            .map_err(|e| e.to_string())
    })
    .as_ref()
    .map_err(|e| Error::Query(format!("cannot start the SQL runtime: {e}")))
}

fn threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
}

/// The engine error a DataFusion error carries, when a table scan raised one (it is
/// then reported as itself, not as a SQL error).
fn engine_error(e: DataFusionError) -> std::result::Result<rem::Error, DataFusionError> {
    use datafusion::arrow::error::ArrowError;
    match e {
        DataFusionError::External(inner) => match inner.downcast::<rem::Error>() {
            Ok(rem) => Ok(*rem),
            Err(inner) => match inner.downcast::<DataFusionError>() {
                Ok(df) => engine_error(*df),
                Err(inner) => Err(DataFusionError::External(inner)),
            },
        },
        DataFusionError::Context(ctx, inner) => {
            engine_error(*inner).map_err(|e| DataFusionError::Context(ctx, Box::new(e)))
        }
        DataFusionError::ArrowError(a, bt) => match *a {
            ArrowError::ExternalError(inner) => match inner.downcast::<rem::Error>() {
                Ok(rem) => Ok(*rem),
                Err(inner) => match inner.downcast::<DataFusionError>() {
                    Ok(df) => engine_error(*df),
                    Err(inner) => Err(DataFusionError::ArrowError(
                        Box::new(ArrowError::ExternalError(inner)),
                        bt,
                    )),
                },
            },
            other => Err(DataFusionError::ArrowError(Box::new(other), bt)),
        },
        DataFusionError::Shared(shared) => match std::sync::Arc::try_unwrap(shared) {
            Ok(df) => engine_error(df),
            Err(shared) => Err(DataFusionError::Shared(shared)),
        },
        other => Err(other),
    }
}

/// A DataFusion error as one readable sentence, of the kind its cause says: a syntax
/// error, a query error, an internal failure; an engine error raised inside a scan
/// keeps its own kind and message.
pub(crate) fn sql_error(e: DataFusionError) -> Error {
    use datafusion::arrow::error::ArrowError;
    let e = match engine_error(e) {
        Ok(engine) => return Error::Engine(engine),
        Err(e) => e,
    };
    let root = e.find_root();
    let internal = matches!(
        root,
        DataFusionError::Internal(_)
            | DataFusionError::ResourcesExhausted(_)
            | DataFusionError::IoError(_)
            | DataFusionError::ObjectStore(_)
    ) || matches!(root, DataFusionError::ArrowError(a, _) if matches!(**a, ArrowError::IoError(..) | ArrowError::MemoryError(_)));
    let msg = match root {
        DataFusionError::SQL(e, _) => return syntax_error(e),
        other => other.message().to_string(),
    };
    let msg = msg
        .replace("sql parser error: ", "")
        .replace("datafusion.public.", "")
        .trim()
        .to_string();
    if internal {
        Error::Internal(msg)
    } else {
        Error::Query(msg)
    }
}

/// A parser error as "SQL syntax error: <what>, at Line: l, Column: c" (or "at the end of
/// the query").
pub(crate) fn syntax_error(e: &datafusion::sql::sqlparser::parser::ParserError) -> Error {
    use datafusion::sql::sqlparser::parser::ParserError;
    let msg = match e {
        ParserError::TokenizerError(m) | ParserError::ParserError(m) => m.clone(),
        ParserError::RecursionLimitExceeded => "the query is nested too deeply".to_string(),
    };
    let msg = if msg.ends_with("found: EOF") {
        format!("{msg}, at the end of the query")
    } else {
        msg
    };
    Error::Syntax(format!("SQL syntax error: {msg}"))
}

pub(crate) fn session(threads: usize) -> Result<SessionContext> {
    let mut config = SessionConfig::new()
        .with_target_partitions(threads)
        .with_information_schema(true);
    // JSON property names are case-sensitive: do not fold identifiers to lower case.
    config.options_mut().sql_parser.enable_ident_normalization = false;
    let mut ctx = SessionContext::new_with_config(config);
    datafusion_functions_json::register_all(&mut ctx).map_err(sql_error)?;
    // After DataFusion's own decorrelation: the correlated subqueries it leaves.
    let rule =
        NestedLoopSubqueries::new(Arc::clone(ctx.state().catalog_list()), ctx.copied_config());
    let state = SessionStateBuilder::new_from_existing(ctx.state())
        .with_optimizer_rules(rule.rules())
        .build();
    Ok(SessionContext::new_with_state(state))
}

impl Sql for Database {
    fn sql_with(&self, query: &str, options: &SqlOptions) -> Result<SqlStream> {
        let rt = runtime()?;
        rt.block_on(plan_and_run(self, query, options))
    }
}

async fn plan_and_run(db: &Database, query: &str, options: &SqlOptions) -> Result<SqlStream> {
    let text = rewrite_text(query).map_err(Error::Query)?;
    let mut statements =
        DFParser::parse_sql_with_dialect(&text.sql, &GenericDialect {}).map_err(|e| match &e {
            DataFusionError::SQL(p, _) => syntax_error(p),
            _ => sql_error(e),
        })?;
    let mut statement = match (statements.pop_front(), statements.is_empty()) {
        (Some(s), true) => s,
        (None, _) => return Err(Error::Query("empty query".into())),
        (Some(_), false) => return Err(Error::Query("one statement at a time, please".into())),
    };
    let mut virtuals = text.virtuals;
    rewrite_statement(&mut statement, &mut virtuals).map_err(Error::Query)?;

    let ctx = session(threads())?;
    for schema in db.schemas()? {
        let table = RemTable::new(db.clone(), &schema, options);
        ctx.register_table(schema.name.as_str(), Arc::new(table))
            .map_err(sql_error)?;
    }
    // The edge store, unless a user table already has that name.
    if !ctx.table_exist("edges").map_err(sql_error)? {
        ctx.register_table("edges", Arc::new(EdgesTable::new(db.clone())))
            .map_err(sql_error)?;
    }
    for v in virtuals {
        match v {
            Virtual::Search { name, spec } => {
                let schema = db.schema(&spec.table)?;
                let table = SearchTable::new(db.clone(), &schema, spec);
                ctx.register_table(name.as_str(), Arc::new(table))
                    .map_err(sql_error)?;
            }
            Virtual::Traverse { name, spec } => {
                let table = traverse_table(db, &spec)?;
                ctx.register_table(name.as_str(), Arc::new(table))
                    .map_err(sql_error)?;
            }
            Virtual::Lookup { name, key } => {
                let table = lookup_table(db, &key)?;
                ctx.register_table(name.as_str(), Arc::new(table))
                    .map_err(sql_error)?;
            }
        }
    }
    let state = ctx.state();
    let (plan, display) = match state.statement_to_plan(statement.clone()).await {
        Ok(plan) => (plan, None),
        Err(e) if names::is_duplicate_name_error(&e.to_string()) => {
            let mut renamed = statement;
            let Some(aliases) = names::alias_outputs(&mut renamed) else {
                return Err(sql_error(e));
            };
            let plan = state.statement_to_plan(renamed).await.map_err(sql_error)?;
            let display = names::display_names(&plan, &aliases);
            (plan, Some(display))
        }
        Err(e) => return Err(sql_error(e)),
    };
    if !matches!(
        plan,
        LogicalPlan::Projection(_)
            | LogicalPlan::Filter(_)
            | LogicalPlan::Window(_)
            | LogicalPlan::Aggregate(_)
            | LogicalPlan::Sort(_)
            | LogicalPlan::Join(_)
            | LogicalPlan::Repartition(_)
            | LogicalPlan::Union(_)
            | LogicalPlan::TableScan(_)
            | LogicalPlan::EmptyRelation(_)
            | LogicalPlan::Subquery(_)
            | LogicalPlan::SubqueryAlias(_)
            | LogicalPlan::Limit(_)
            | LogicalPlan::Values(_)
            | LogicalPlan::Explain(_)
            | LogicalPlan::Distinct(_)
            | LogicalPlan::Unnest(_)
            | LogicalPlan::RecursiveQuery(_)
    ) {
        return Err(Error::Query(
            "only queries are supported (SELECT, EXPLAIN, SEARCH, LOOKUP); write with `rem insert`"
                .into(),
        ));
    }
    let frame = ctx.execute_logical_plan(plan).await.map_err(sql_error)?;
    let mut stream = frame.execute_stream().await.map_err(sql_error)?;
    if let Some(display) = display {
        let schema = names::renamed(&stream.schema(), &display);
        let out = Arc::clone(&schema);
        let batches = stream.map(move |b| {
            b.and_then(|b| {
                RecordBatch::try_new(Arc::clone(&out), b.columns().to_vec())
                    .map_err(|e| DataFusionError::ArrowError(Box::new(e), None))
            })
        });
        stream = Box::pin(RecordBatchStreamAdapter::new(schema, batches));
    }
    Ok(SqlStream {
        schema: stream.schema(),
        stream,
    })
}

/// `LOOKUP 'key'`: the matches in every table, with the columns all tables share.
fn lookup_table(db: &Database, key: &str) -> Result<MemTable> {
    let mut cols = system_columns();
    cols.push(Column {
        name: PROPERTIES.to_string(),
        source: Source::Properties,
    });
    let schema = arrow_schema(&cols);
    let mut builder = BatchBuilder::new(cols, schema.clone());
    for e in db.lookup(key)? {
        builder.push(&e, None);
    }
    let batch = builder.finish().map_err(|e| Error::Query(e.to_string()))?;
    MemTable::try_new(schema, vec![vec![batch]]).map_err(sql_error)
}

/// `TRAVERSE`: the nodes reached, with depth, the edge type that reached them and the
/// path of ids from the start.
fn traverse_table(db: &Database, spec: &crate::rewrite::TraverseSpec) -> Result<MemTable> {
    use datafusion::arrow::array::{ArrayRef, Int64Builder, ListBuilder, StringBuilder};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    let options = rem::TraverseOptions {
        depth: spec.depth,
        direction: rem::Direction::parse(&spec.direction)?,
        edge_type: spec.edge_type.clone(),
        dfs: spec.dfs,
    };
    let start = db.resolve(&spec.start)?.id;
    let nodes = db.traverse(&start, &options)?;
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("entity_type", DataType::Utf8, false),
        Field::new("depth", DataType::Int64, false),
        Field::new("edge_type", DataType::Utf8, true),
        Field::new(
            "path",
            DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
            true,
        ),
    ]));
    let (mut id, mut table, mut depth, mut ty) = (
        StringBuilder::new(),
        StringBuilder::new(),
        Int64Builder::new(),
        StringBuilder::new(),
    );
    let mut path = ListBuilder::new(StringBuilder::new());
    for n in &nodes {
        id.append_value(n.id.to_string());
        table.append_value(&n.table);
        depth.append_value(n.depth as i64);
        ty.append_option(n.edge_type.as_deref());
        for p in &n.path {
            path.values().append_value(p.to_string());
        }
        path.append(true);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(id.finish()),
        Arc::new(table.finish()),
        Arc::new(depth.finish()),
        Arc::new(ty.finish()),
        Arc::new(path.finish()),
    ];
    let batch =
        RecordBatch::try_new(schema.clone(), columns).map_err(|e| Error::Query(e.to_string()))?;
    MemTable::try_new(schema, vec![vec![batch]]).map_err(sql_error)
}
