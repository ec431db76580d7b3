//! `rem`: the command-line interface of the REM database.
//!
//! Every command is a thin layer over `rem::Database`. Errors are printed as one
//! sentence on stderr with exit code 1; usage errors exit with 2 (clap).

mod cli;
mod commands;
mod io;
mod output;
mod server;

use std::process::ExitCode;

use clap::Parser;

// glibc's allocator returns large blocks to the OS and faults them in again on the next
// use; the embedding model allocates a fresh tensor per operation.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // A panic is a bug; still, users get one sentence rather than a backtrace.
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown cause".into());
        eprintln!("error: internal error ({msg}); please report it");
    }));
    let args = cli::Cli::parse();
    match commands::run(args) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {}", one_line(&err));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes as one line, without debug formatting.
pub(crate) fn one_line(err: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in err.chain() {
        let s = cause.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
    }
    parts.join(": ").replace('\n', " ")
}
