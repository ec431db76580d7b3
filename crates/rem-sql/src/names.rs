//! Output columns with the same name, as SQLite, DuckDB and PostgreSQL allow
//! (`SELECT a, a`, two subqueries, two `count(*)`).
//!
//! DataFusion requires a projection's expressions to have unique names ("Projections
//! require unique expression names"). When planning fails for that reason, the
//! statement is planned again with every top-level output column given an internal
//! name (`__rem_col_N`); each keeps its display name — the name DataFusion would have
//! given it, or the user's alias — which the result's Arrow schema carries (Arrow
//! allows repeated field names). Queries without repeated names never take this path.

use std::sync::Arc;

use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::logical_expr::{Expr as PlanExpr, LogicalPlan};
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{Ident, Query, SelectItem, SetExpr, Statement};

const PREFIX: &str = "__rem_col_";

/// Whether a planning error is DataFusion's refusal of repeated output names.
pub(crate) fn is_duplicate_name_error(message: &str) -> bool {
    message.contains("Projections require unique expression names")
}

/// Gives every top-level output column an internal name. Returns, per column, the
/// user's alias (`None` where the display name is DataFusion's own, read from the plan
/// by [`display_names`]); `None` when the statement is not a query with a projection.
pub(crate) fn alias_outputs(statement: &mut DfStatement) -> Option<Vec<Option<String>>> {
    let DfStatement::Statement(s) = statement else {
        return None;
    };
    let Statement::Query(q) = s.as_mut() else {
        return None;
    };
    let mut names = None;
    alias_query(q, &mut names);
    names
}

fn alias_query(q: &mut Query, names: &mut Option<Vec<Option<String>>>) {
    alias_set(q.body.as_mut(), names);
}

fn alias_set(body: &mut SetExpr, names: &mut Option<Vec<Option<String>>>) {
    match body {
        SetExpr::Select(select) => {
            // A wildcard expands to columns whose names are already unique per table;
            // renaming around it would shift positions, so such a select stays as is.
            if select.projection.iter().any(|i| {
                matches!(
                    i,
                    SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..)
                )
            }) {
                return;
            }
            // A user's alias keeps its name unless another output has it too.
            let aliases: Vec<String> = select
                .projection
                .iter()
                .filter_map(|i| match i {
                    SelectItem::ExprWithAlias { alias, .. } => Some(alias.value.clone()),
                    _ => None,
                })
                .collect();
            let repeated = |a: &str| aliases.iter().filter(|x| x.as_str() == a).count() > 1;
            let mut these = Vec::new();
            for (i, item) in select.projection.iter_mut().enumerate() {
                let internal = Ident::new(format!("{PREFIX}{i}"));
                let replaced =
                    match std::mem::replace(item, SelectItem::Wildcard(Default::default())) {
                        SelectItem::UnnamedExpr(expr) => {
                            these.push(None);
                            SelectItem::ExprWithAlias {
                                expr,
                                alias: internal,
                            }
                        }
                        SelectItem::ExprWithAlias { expr, alias } if repeated(&alias.value) => {
                            these.push(Some(alias.value.clone()));
                            SelectItem::ExprWithAlias {
                                expr,
                                alias: internal,
                            }
                        }
                        SelectItem::ExprWithAlias { expr, alias } => {
                            these.push(Some(alias.value.clone()));
                            SelectItem::ExprWithAlias { expr, alias }
                        }
                        other => other,
                    };
                *item = replaced;
            }
            // A set operation's names are its first branch's.
            if names.is_none() {
                *names = Some(these);
            }
        }
        SetExpr::Query(q) => alias_query(q, names),
        SetExpr::SetOperation { left, right, .. } => {
            alias_set(left, names);
            let mut ignored = None;
            alias_set(right, &mut ignored);
        }
        _ => {}
    }
}

/// The display name of each internal column: the user's alias, else the name
/// DataFusion gives the expression (found in the plan's outermost projection).
pub(crate) fn display_names(plan: &LogicalPlan, aliases: &[Option<String>]) -> Vec<String> {
    let mut found: Vec<Option<String>> = vec![None; aliases.len()];
    let _ = plan.apply(|node| {
        if let LogicalPlan::Projection(p) = node {
            let mut any = false;
            for e in &p.expr {
                if let PlanExpr::Alias(a) = e {
                    if let Some(i) = a
                        .name
                        .strip_prefix(PREFIX)
                        .and_then(|n| n.parse::<usize>().ok())
                    {
                        if i < found.len() && found[i].is_none() {
                            found[i] = Some(a.expr.qualified_name().1);
                            any = true;
                        }
                    }
                }
            }
            if any {
                return Ok(TreeNodeRecursion::Stop);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    aliases
        .iter()
        .zip(found)
        .enumerate()
        .map(|(i, (alias, planned))| {
            alias
                .clone()
                .or(planned)
                .unwrap_or_else(|| format!("column{}", i + 1))
        })
        .collect()
}

/// `schema` with its internal column names replaced by display names.
pub(crate) fn renamed(schema: &SchemaRef, display: &[String]) -> SchemaRef {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| {
            let name = f
                .name()
                .strip_prefix(PREFIX)
                .and_then(|n| n.parse::<usize>().ok())
                .and_then(|i| display.get(i))
                .cloned()
                .unwrap_or_else(|| f.name().clone());
            f.as_ref().clone().with_name(name)
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}
