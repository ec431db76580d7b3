//! Correlated subqueries that DataFusion's own rules cannot decorrelate, evaluated by
//! nested loop.
//!
//! DataFusion 55 turns a correlated subquery into a join only when its correlation is
//! an equality it can group by (`ScalarSubqueryToJoin`, `DecorrelatePredicateSubquery`).
//! Others are left in the plan (`(SELECT count(*) FROM t1 AS x WHERE x.b < t1.b)`,
//! `CASE WHEN EXISTS (...)`), and the physical planner refuses them: "Physical plan
//! does not support logical expression ScalarSubquery". [`NestedLoopSubqueries`] runs
//! after DataFusion's rules and replaces each subquery expression still in the plan
//! with a call of a [`SubqueryUdf`]: for each distinct tuple of the outer values the
//! subquery reads, the subquery's plan with those values as literals runs in a session
//! over the same catalog, and its answer is the expression's value.
//!
//! Semantics are SQL's: a scalar subquery with no row is NULL and with more than one
//! row is an error; `EXISTS` is whether a row exists; `x IN (subquery)` is true when a
//! row equals `x`, NULL when none does but `x` or a row is NULL, false otherwise
//! (`NOT IN` its negation). Subqueries nested inside the subquery are handled the same
//! way when its own plan is optimized, so two levels and more work.
//!
//! The cost is one run of the subquery per distinct outer tuple, where a decorrelated
//! join would be one pass: correct, and fast enough for the tables people write such
//! queries over; DataFusion's decorrelation still takes every case it can.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::{Array, ArrayRef};
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::CatalogProviderList;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{exec_err, plan_datafusion_err, Column, Result, ScalarValue};
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::logical_expr::expr::{Exists, InSubquery, ScalarFunction};
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::{
    ColumnarValue, Expr, LogicalPlan, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Subquery, Volatility,
};
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};
use datafusion::prelude::{SessionConfig, SessionContext};

/// The optimizer rule: see the module documentation.
#[derive(Debug, Clone)]
pub struct NestedLoopSubqueries {
    catalogs: Arc<dyn CatalogProviderList>,
    config: SessionConfig,
}

impl NestedLoopSubqueries {
    /// A rule whose subqueries run against `catalogs` (the session's own catalog list,
    /// so they see the same tables) with `config`.
    pub fn new(catalogs: Arc<dyn CatalogProviderList>, config: SessionConfig) -> Self {
        NestedLoopSubqueries { catalogs, config }
    }

    /// DataFusion's optimizer rules with this one right after its own decorrelation
    /// (`scalar_subquery_to_join`): late enough to see what those rules leave, early
    /// enough that no rule has yet pruned the outer columns a subquery reads.
    pub fn rules(&self) -> Vec<Arc<dyn OptimizerRule + Send + Sync>> {
        let mut rules = datafusion::optimizer::Optimizer::new().rules;
        let at = rules
            .iter()
            .position(|r| r.name() == "scalar_subquery_to_join")
            .map_or(rules.len(), |i| i + 1);
        rules.insert(at, Arc::new(self.clone()));
        rules
    }

    /// A session over the same tables, with this rule in place, for running one
    /// subquery.
    fn session(&self) -> SessionContext {
        let state = SessionStateBuilder::new()
            .with_config(self.config.clone())
            .with_catalog_list(Arc::clone(&self.catalogs))
            .with_default_features()
            .with_optimizer_rules(self.rules())
            .build();
        SessionContext::new_with_state(state)
    }

    /// `e` with its outermost remaining subquery expressions replaced by calls.
    fn replace(&self, e: Expr) -> Result<Transformed<Expr>> {
        e.transform_down(|e| {
            let (kind, subquery, probe) = match e {
                Expr::ScalarSubquery(s) => (Kind::Scalar, s, None),
                Expr::Exists(Exists { subquery, negated }) => {
                    (Kind::Exists { negated }, subquery, None)
                }
                Expr::InSubquery(InSubquery {
                    expr,
                    subquery,
                    negated,
                }) => (Kind::In { negated }, subquery, Some(*expr)),
                other => return Ok(Transformed::no(other)),
            };
            let call = self.call(kind, subquery, probe)?;
            // The call's arguments are plain expressions: nothing below to rewrite.
            Ok(Transformed::new(call, true, TreeNodeRecursion::Jump))
        })
    }

    fn call(&self, kind: Kind, subquery: Subquery, probe: Option<Expr>) -> Result<Expr> {
        let outer = outer_columns(&subquery)?;
        let return_type = match kind {
            Kind::Scalar => {
                let fields = subquery.subquery.schema().fields();
                if fields.len() != 1 {
                    return exec_err!(
                        "a subquery used as an expression returns one column, not {}",
                        fields.len()
                    );
                }
                fields[0].data_type().clone()
            }
            Kind::Exists { .. } | Kind::In { .. } => DataType::Boolean,
        };
        let mut args: Vec<Expr> = probe.into_iter().collect();
        args.extend(outer.iter().cloned().map(Expr::Column));
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let udf = SubqueryUdf {
            id: NEXT.fetch_add(1, Ordering::Relaxed),
            kind,
            plan: Arc::clone(&subquery.subquery),
            outer,
            return_type,
            signature: if args.is_empty() {
                Signature::nullary(Volatility::Volatile)
            } else {
                Signature::any(args.len(), Volatility::Volatile)
            },
            rule: self.clone(),
            cache: Arc::new(Mutex::new(HashMap::new())),
        };
        Ok(Expr::ScalarFunction(ScalarFunction::new_udf(
            Arc::new(ScalarUDF::new_from_impl(udf)),
            args,
        )))
    }
}

/// Whether `node`'s inputs (or, for a leaf, the node itself) provide `c`.
fn provides(node: &LogicalPlan, c: &Column) -> bool {
    let inputs = node.inputs();
    if inputs.is_empty() {
        node.schema().has_column(c)
    } else {
        inputs.iter().any(|i| i.schema().has_column(c))
    }
}

/// Every outer column the subquery reads: its outer references at any depth, and the
/// columns that no input provides where DataFusion already turned a nested subquery
/// that reads them into a join.
fn outer_columns(subquery: &Subquery) -> Result<Vec<Column>> {
    let mut outer: Vec<Column> = Vec::new();
    let mut add = |c: &Column| {
        if !outer.contains(c) {
            outer.push(c.clone());
        }
    };
    for r in &subquery.outer_ref_columns {
        match r {
            Expr::OuterReferenceColumn(_, c) => add(c),
            other => return exec_err!("unexpected outer reference {other}"),
        }
    }
    subquery.subquery.apply_with_subqueries(|node| {
        for e in node.expressions() {
            e.apply(|e| {
                match e {
                    Expr::OuterReferenceColumn(_, c) => add(c),
                    Expr::Column(c) if !provides(node, c) => add(c),
                    _ => {}
                }
                Ok(TreeNodeRecursion::Continue)
            })?;
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    Ok(outer)
}

impl OptimizerRule for NestedLoopSubqueries {
    fn name(&self) -> &str {
        "rem_nested_loop_subqueries"
    }

    // The rule walks the plan itself, and not into subquery plans: a nested subquery is
    // handled when its own plan is optimized to run.
    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        plan.transform_down(|node| {
            let names = NamePreserver::new(&node);
            node.map_expressions(|e| {
                let saved = names.save(&e);
                Ok(self.replace(e)?.update_data(|e| saved.restore(e)))
            })
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Scalar,
    Exists { negated: bool },
    In { negated: bool },
}

/// A subquery's rows (its one column) per tuple of outer values.
type Answers = HashMap<Vec<ScalarValue>, Arc<Vec<ScalarValue>>>;

/// One subquery as a function of the outer values it reads (and, for `IN`, first the
/// value to look for).
#[derive(Debug)]
struct SubqueryUdf {
    id: u64,
    kind: Kind,
    plan: Arc<LogicalPlan>,
    outer: Vec<Column>,
    return_type: DataType,
    signature: Signature,
    rule: NestedLoopSubqueries,
    /// The subquery's answer (its rows, one column) per tuple of outer values.
    cache: Arc<Mutex<Answers>>,
}

impl PartialEq for SubqueryUdf {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl Eq for SubqueryUdf {}

impl Hash for SubqueryUdf {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.id.hash(state);
    }
}

impl SubqueryUdf {
    /// The subquery's plan with `values` in place of the outer columns. They are outer
    /// references, or — where DataFusion already decorrelated a subquery nested in
    /// this one into a join — plain columns that no input of their node provides.
    fn bound(&self, values: &[ScalarValue]) -> Result<LogicalPlan> {
        let bind = |e: Expr, unprovided: &[usize]| -> Result<Transformed<Expr>> {
            e.transform(|e| match e {
                Expr::Column(ref c) => match self.outer.iter().position(|o| o == c) {
                    Some(i) if unprovided.contains(&i) => {
                        Ok(Transformed::yes(Expr::Literal(values[i].clone(), None)))
                    }
                    _ => Ok(Transformed::no(e)),
                },
                Expr::OuterReferenceColumn(_, ref c) => {
                    match self.outer.iter().position(|o| o == c) {
                        Some(i) => Ok(Transformed::yes(Expr::Literal(values[i].clone(), None))),
                        None => Ok(Transformed::no(e)),
                    }
                }
                // Nested subqueries no longer reference what became literals.
                Expr::ScalarSubquery(s) => {
                    Ok(Transformed::yes(Expr::ScalarSubquery(self.unbind(s))))
                }
                Expr::Exists(Exists { subquery, negated }) => {
                    Ok(Transformed::yes(Expr::Exists(Exists {
                        subquery: self.unbind(subquery),
                        negated,
                    })))
                }
                Expr::InSubquery(InSubquery {
                    expr,
                    subquery,
                    negated,
                }) => Ok(Transformed::yes(Expr::InSubquery(InSubquery {
                    expr,
                    subquery: self.unbind(subquery),
                    negated,
                }))),
                other => Ok(Transformed::no(other)),
            })
        };
        let plan = Arc::unwrap_or_clone(Arc::clone(&self.plan));
        Ok(plan
            .transform_down_with_subqueries(|node| {
                let unprovided: Vec<usize> = (0..self.outer.len())
                    .filter(|&i| !provides(&node, &self.outer[i]))
                    .collect();
                node.map_expressions(|e| bind(e, &unprovided))
            })?
            .data)
    }

    fn unbind(&self, mut s: Subquery) -> Subquery {
        s.outer_ref_columns.retain(|r| match r {
            Expr::OuterReferenceColumn(_, c) => !self.outer.contains(c),
            _ => true,
        });
        s
    }

    /// The subquery's rows (its one column) for these outer values.
    fn rows(
        &self,
        ctx: &SessionContext,
        rt: &tokio::runtime::Runtime,
        values: Vec<ScalarValue>,
    ) -> Result<Arc<Vec<ScalarValue>>> {
        if let Some(hit) = self
            .cache
            .lock()
            .map_err(|_| plan_datafusion_err!("poisoned subquery cache"))?
            .get(&values)
        {
            return Ok(Arc::clone(hit));
        }
        let plan = self.bound(&values)?;
        let batches: Vec<RecordBatch> = rt.block_on(async {
            let frame = ctx.execute_logical_plan(plan).await?;
            frame.collect().await
        })?;
        let mut rows = Vec::new();
        for b in &batches {
            if b.num_columns() == 0 {
                continue;
            }
            let col = b.column(0);
            for i in 0..b.num_rows() {
                rows.push(ScalarValue::try_from_array(col, i)?);
                // EXISTS needs one row.
                if matches!(self.kind, Kind::Exists { .. }) {
                    break;
                }
            }
        }
        let rows = Arc::new(rows);
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(values, Arc::clone(&rows));
        }
        Ok(rows)
    }

    fn value(&self, probe: Option<&ScalarValue>, rows: &[ScalarValue]) -> Result<ScalarValue> {
        Ok(match self.kind {
            Kind::Scalar => match rows {
                [] => ScalarValue::try_from(&self.return_type)?,
                [one] => one.clone(),
                _ => {
                    return exec_err!(
                    "a subquery used as an expression returned {} rows (at most one row is allowed)",
                    rows.len()
                )
                }
            },
            Kind::Exists { negated } => ScalarValue::Boolean(Some(rows.is_empty() == negated)),
            Kind::In { negated } => {
                let probe = probe.cloned().unwrap_or(ScalarValue::Null);
                let found = if rows.is_empty() {
                    Some(false)
                } else if probe.is_null() {
                    None
                } else if rows.iter().any(|r| !r.is_null() && *r == probe) {
                    Some(true)
                } else if rows.iter().any(|r| r.is_null()) {
                    None
                } else {
                    Some(false)
                };
                ScalarValue::Boolean(found.map(|f| f != negated))
            }
        })
    }

    fn evaluate(&self, arrays: &[ArrayRef], n: usize) -> Result<ArrayRef> {
        let ctx = self.rule.session();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| plan_datafusion_err!("cannot start a runtime for a subquery: {e}"))?;
        let skip = usize::from(matches!(self.kind, Kind::In { .. }));
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            let outer = arrays[skip..]
                .iter()
                .map(|a| ScalarValue::try_from_array(a, i))
                .collect::<Result<Vec<_>>>()?;
            let probe = match skip {
                1 => Some(ScalarValue::try_from_array(&arrays[0], i)?),
                _ => None,
            };
            let rows = self.rows(&ctx, &rt, outer)?;
            out.push(self.value(probe.as_ref(), &rows)?);
        }
        if out.is_empty() {
            return Ok(datafusion::arrow::array::new_empty_array(&self.return_type));
        }
        ScalarValue::iter_to_array(out)
    }
}

impl ScalarUDFImpl for SubqueryUdf {
    fn name(&self) -> &str {
        match self.kind {
            Kind::Scalar => "scalar_subquery",
            Kind::Exists { .. } => "exists_subquery",
            Kind::In { .. } => "in_subquery",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(self.return_type.clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let n = args.number_rows;
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        // The subquery runs on a thread of its own, with its own runtime: this call
        // is on a worker of the query's runtime, which must not block on itself.
        let result = std::thread::scope(|s| {
            s.spawn(|| self.evaluate(&arrays, n))
                .join()
                .unwrap_or_else(|_| exec_err!("a subquery panicked"))
        })?;
        if result.data_type() != &self.return_type {
            return exec_err!(
                "subquery returned {} where {} was planned",
                result.data_type(),
                self.return_type
            );
        }
        Ok(ColumnarValue::Array(result))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use datafusion::arrow::array::Int64Array;
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::arrow::util::pretty::pretty_format_batches;
    use datafusion::datasource::MemTable;

    use super::*;

    /// The rule in a plain DataFusion session over in-memory tables (nothing of REM):
    /// how it would be used upstream.
    fn session() -> SessionContext {
        let ctx = SessionContext::new();
        let rule =
            NestedLoopSubqueries::new(Arc::clone(ctx.state().catalog_list()), ctx.copied_config());
        let state = SessionStateBuilder::new_from_existing(ctx.state())
            .with_optimizer_rules(rule.rules())
            .build();
        let ctx = SessionContext::new_with_state(state);
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int64, true),
            Field::new("b", DataType::Int64, true),
        ]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(Int64Array::from(vec![Some(1), Some(2), Some(3), Some(4)])),
                Arc::new(Int64Array::from(vec![Some(10), None, Some(30), Some(30)])),
            ],
        )
        .unwrap();
        ctx.register_table(
            "t",
            Arc::new(MemTable::try_new(schema, vec![vec![batch]]).unwrap()),
        )
        .unwrap();
        ctx
    }

    fn run(sql: &str) -> String {
        let ctx = session();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        rt.block_on(async {
            let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
            pretty_format_batches(&batches).unwrap().to_string()
        })
    }

    #[test]
    fn non_equality_correlation_runs_by_nested_loop() {
        // Without the rule DataFusion 55 refuses this plan ("Physical plan does not
        // support logical expression ScalarSubquery").
        let out =
            run("SELECT a, (SELECT count(*) FROM t AS x WHERE x.b < t.b) AS n FROM t ORDER BY a");
        let expected = "\
+---+---+
| a | n |
+---+---+
| 1 | 0 |
| 2 | 0 |
| 3 | 1 |
| 4 | 1 |
+---+---+";
        assert_eq!(out.trim(), expected);
    }

    #[test]
    fn exists_and_in_keep_sql_semantics() {
        // b IN (values of x.b for x.a > t.a): for a=1 {NULL,30,30} → 10 not in, NULL there
        // → NULL; a=2: b NULL → NULL; a=3: {30} → true; a=4: {} → false.
        let out = run(
            "SELECT a, CASE WHEN EXISTS (SELECT 1 FROM t AS x WHERE x.a > t.a) THEN 'y' ELSE 'n' END AS e, \
             b IN (SELECT x.b FROM t AS x WHERE x.a > t.a) AS i FROM t ORDER BY a",
        );
        let expected = "\
+---+---+-------+
| a | e | i     |
+---+---+-------+
| 1 | y |       |
| 2 | y |       |
| 3 | y | true  |
| 4 | n | false |
+---+---+-------+";
        assert_eq!(out.trim(), expected);
    }
}
