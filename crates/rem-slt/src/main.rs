//! `rem-slt`: runs sqllogictest files (SQLite's corpus, or files in its format) against
//! REM tables and prints, per file, the queries passed, wrong, unsupported and skipped.
//!
//!     rem-slt [--wrong] [--errors N] FILE_OR_DIR...
//!
//! A directory means every `*.test` file under it, sorted. Exits 1 when any query gave
//! a wrong answer.

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Parser;
use rem_slt::{run_file, Report};

#[derive(Parser)]
#[command(about = "Runs sqllogictest files against REM tables")]
struct Cli {
    /// Files, or directories of `*.test` files.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Print each wrong query with the expected and actual values.
    #[arg(long)]
    wrong: bool,
    /// Print the N most frequent errors (unsupported queries, failed statements).
    #[arg(long, default_value_t = 10)]
    errors: usize,
}

fn files(path: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    if path.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)?
            .map(|e| e.map(|e| e.path()))
            .collect::<std::io::Result<_>>()?;
        entries.sort();
        for e in entries {
            if e.is_dir() || e.extension().is_some_and(|x| x == "test" || x == "slt") {
                files(&e, out)?;
            }
        }
    } else {
        out.push(path.to_path_buf());
    }
    Ok(())
}

fn pct(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        100.0
    } else {
        100.0 * part as f64 / whole as f64
    }
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let mut all = Vec::new();
    for p in &cli.paths {
        files(p, &mut all)?;
    }
    println!(
        "{:<48} {:>8} {:>7} {:>6} {:>9} {:>12} {:>8} {:>8} {:>7}",
        "file",
        "queries",
        "passed",
        "wrong",
        "typediff",
        "unsupported",
        "skipped",
        "stmtfail",
        "run %"
    );
    let mut total = Report {
        file: "total".into(),
        ..Report::default()
    };
    let started = std::time::Instant::now();
    for f in &all {
        let r = match run_file(f) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("{}: {e:#}", f.display());
                continue;
            }
        };
        println!(
            "{:<48} {:>8} {:>7} {:>6} {:>9} {:>12} {:>8} {:>8} {:>6.1}%",
            r.file,
            r.queries(),
            r.passed,
            r.wrong,
            r.type_differences,
            r.unsupported,
            r.skipped,
            r.statements_failed,
            pct(r.queries() - r.unsupported, r.queries())
        );
        total.add(&r);
    }
    println!(
        "{:<48} {:>8} {:>7} {:>6} {:>9} {:>12} {:>8} {:>8} {:>6.1}%",
        format!(
            "total ({} files, {:.0} s)",
            all.len(),
            started.elapsed().as_secs_f64()
        ),
        total.queries(),
        total.passed,
        total.wrong,
        total.type_differences,
        total.unsupported,
        total.skipped,
        total.statements_failed,
        pct(total.queries() - total.unsupported, total.queries())
    );
    if cli.errors > 0 && !total.errors.is_empty() {
        let mut errors: Vec<_> = total.errors.iter().collect();
        errors.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        println!("\nmost frequent errors:");
        for (e, n) in errors.into_iter().take(cli.errors) {
            println!("{n:>7}  {e}");
        }
    }
    if total.type_differences > 0 {
        println!("\nanswers that differ from SQLite's by type only (rem_slt::TYPE_DIFFERENCES):");
        for (sql, why) in rem_slt::TYPE_DIFFERENCES {
            println!("  {sql}\n    {why}");
        }
    }
    if cli.wrong {
        for w in &total.wrong_queries {
            println!("\nWRONG {w}");
        }
    }
    if total.wrong > 0 {
        std::process::exit(1);
    }
    Ok(())
}
