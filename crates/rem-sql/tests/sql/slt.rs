//! Runs every `tests/slt/*.slt` file (sqllogictest format) against the generated data.

use std::path::Path;

use rem::Database;
use rem_sql::Sql;
use sqllogictest::{DBOutput, DefaultColumnType};

use crate::common::{db_small, rows};

struct RemDb(Database);

#[derive(Debug)]
struct SqlError(String);

impl std::fmt::Display for SqlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SqlError {}

impl sqllogictest::DB for RemDb {
    type Error = SqlError;
    type ColumnType = DefaultColumnType;

    fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, SqlError> {
        let stream = self.0.sql(sql).map_err(|e| SqlError(e.to_string()))?;
        let columns = stream.schema().fields().len();
        let batches = stream.collect_all().map_err(|e| SqlError(e.to_string()))?;
        Ok(DBOutput::Rows {
            types: vec![DefaultColumnType::Any; columns],
            rows: rows(&batches),
        })
    }
}

#[test]
fn slt_files() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/slt");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "slt"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .slt files in {}", dir.display());
    let db = db_small();
    for file in files {
        let mut runner = sqllogictest::Runner::new(|| {
            let db = db.clone();
            async move { Ok::<_, SqlError>(RemDb(db)) }
        });
        runner
            .run_file(&file)
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    }
}
