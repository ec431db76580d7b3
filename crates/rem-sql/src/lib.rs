//! SQL over REM tables, on DataFusion.
//!
//! Every registered table of a [`rem::Database`] is a SQL table (system fields plus the
//! schema's properties, typed from the JSON Schema). Filters on ids, key fields and
//! indexed fields run as point gets or index scans inside the table provider; semantic
//! extensions (`embedding.cosine('text')`, `SEARCH`, `LOOKUP`) are rewritten before
//! planning into scans of a vector-search table that runs the HNSW index with the rest
//! of the `WHERE` clause as its filter.
//!
//! ```no_run
//! use rem_sql::Sql;
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let db = rem::Database::open("/tmp/db", &rem::OpenOptions::default())?;
//! for batch in db.sql("SELECT name, COUNT(*) FROM resources GROUP BY name")? {
//!     let batch = batch?; // an Arrow RecordBatch
//!     println!("{} rows", batch.num_rows());
//! }
//! # Ok(())
//! }
//! ```

/// The parts of `ExecutionPlan` every leaf scan of this crate shares: no children, no
/// expressions, plan properties kept in a `properties` field.
macro_rules! leaf_plan {
    () => {
        fn properties(&self) -> &std::sync::Arc<datafusion::physical_plan::PlanProperties> {
            &self.properties
        }

        fn children(&self) -> Vec<&std::sync::Arc<dyn datafusion::physical_plan::ExecutionPlan>> {
            vec![]
        }

        fn apply_expressions(
            &self,
            _f: &mut dyn FnMut(
                &std::sync::Arc<dyn datafusion::physical_expr::PhysicalExpr>,
            ) -> datafusion::common::Result<
                datafusion::common::tree_node::TreeNodeRecursion,
            >,
        ) -> datafusion::common::Result<datafusion::common::tree_node::TreeNodeRecursion> {
            Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
        }

        fn with_new_children(
            self: std::sync::Arc<Self>,
            _children: Vec<std::sync::Arc<dyn datafusion::physical_plan::ExecutionPlan>>,
        ) -> datafusion::common::Result<std::sync::Arc<dyn datafusion::physical_plan::ExecutionPlan>>
        {
            Ok(self)
        }
    };
}

mod convert;
mod edges;
mod engine;
mod error;
mod export;
#[doc(hidden)]
pub mod fuzzing;
mod names;
mod output;
mod predicate;
mod provider;
mod pushdown;
mod rewrite;
mod search;
pub mod subquery;

pub use datafusion;
pub use datafusion::arrow;
pub use engine::{Sql, SqlOptions, SqlStream};
pub use error::{Error, Result};
pub use export::{
    export_all, export_table, export_to, parquet_compression, write_file_atomically, ExportFormat,
    ExportOptions, ExportReport,
};
pub use output::{write_batches, OutputFormat};
pub use predicate::{check_where, parse_where};
