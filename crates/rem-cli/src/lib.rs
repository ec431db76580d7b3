//! The `rem` command-line interface as a library: [`run`] parses a command line and
//! runs it in a [`Session`] (configuration, stdin, stdout, stderr and optionally an
//! open database). The `rem` binary and the Python package's `rem` entry point are
//! thin wrappers around it; nothing here keeps global or thread-local state.
//!
//! Each command is written once over [`rem_service::Backend`]: the database embedded in
//! this process, the server that holds it (found through `<db>/SERVER`), or a server
//! named with `--server` / `P8_SERVER`.
//!
//! Exit codes: 0 success; 1 the request was wrong (bad input, not found, refused);
//! 2 the command line does not parse (clap); 3 an internal or storage failure.

mod cli;
mod commands;
mod config;
mod output;
mod server;
mod session;

use std::process::ExitCode;

use clap::Parser;

pub use config::{
    Config, ConfigValue, CoreSettings, DatabaseSettings, EmbeddingSettings, ExportSettings,
    LoggingSettings, ReplicationSettings, ServerSettings, Settings, Source, VectorSearchSettings,
};
pub use session::Session;

/// Exit code of a request the user can fix (bad input, not found, refused).
pub const EXIT_USER_ERROR: u8 = 1;
/// Exit code of a command line that does not parse.
pub const EXIT_USAGE: u8 = 2;
/// Exit code of an internal or storage failure.
pub const EXIT_INTERNAL_ERROR: u8 = 3;

/// Runs the command line `argv` (program name first) in `session`.
pub fn run<I, T>(argv: I, session: &mut Session) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    ExitCode::from(run_status(argv, session))
}

/// [`run`], returning the exit status as a number (0 for success, else
/// [`EXIT_USER_ERROR`], [`EXIT_USAGE`] or [`EXIT_INTERNAL_ERROR`]).
pub fn run_status<I, T>(argv: I, session: &mut Session) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = match cli::Cli::try_parse_from(argv) {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version are "errors" that print to stdout and succeed.
            let text = e.render().to_string();
            let code = e.exit_code();
            let _ = if e.use_stderr() {
                session.err_line(text.trim_end())
            } else {
                session.out_line(text.trim_end())
            };
            return code.clamp(0, 255) as u8;
        }
    };
    session.init_logging();
    let result = commands::run(cli, session);
    let _ = session.flush();
    match result {
        Ok(code) => code,
        // A closed pipe (`rem … | head`) ends the command quietly.
        Err(_) if session.stdout_closed() => 0,
        Err(err) => {
            let _ = session.err_line(&format!("error: {}", one_line(&err)));
            exit_code(&err)
        }
    }
}

/// Opens the database `config` names as the commands do: through `server` when given
/// (else `P8_SERVER`), else through the live server whose SERVER file is in the
/// database folder, else in this process (created when missing, unless `read_only`).
/// Errors keep the typed engine or service error in their chain.
pub fn open_backend(
    config: &Config,
    server: Option<&str>,
    read_only: bool,
) -> anyhow::Result<rem_service::Backend> {
    let configured = &config.settings().server.address;
    let server = server.or_else(|| Some(configured.as_str()).filter(|s| !s.trim().is_empty()));
    let access = if read_only {
        commands::Access::Read
    } else {
        commands::Access::Create
    };
    commands::Opener { config, server }.backend(access)
}

/// The exit code for an error: its kind, found anywhere in its chain.
fn exit_code(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if cause.downcast_ref::<commands::InternalError>().is_some() {
            return EXIT_INTERNAL_ERROR;
        }
        let kind = if let Some(e) = cause.downcast_ref::<rem::Error>() {
            e.kind()
        } else if let Some(e) = cause.downcast_ref::<rem_service::Error>() {
            e.kind()
        } else if let Some(e) = cause.downcast_ref::<rem_replication::Error>() {
            e.kind()
        } else {
            continue;
        };
        return if kind.is_user_error() {
            EXIT_USER_ERROR
        } else {
            EXIT_INTERNAL_ERROR
        };
    }
    // Errors raised by the CLI itself are about its input.
    EXIT_USER_ERROR
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
