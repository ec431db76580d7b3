//! A [`Session`]: what a command runs with — the environment it reads its
//! configuration from, its stdin, stdout and stderr, and optionally a database this
//! process already holds open (a server's, or the caller's).

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};

use rem::Database;

/// What a command runs with.
pub struct Session {
    /// The environment the configuration is read from (`P8_*`, `OPENAI_API_KEY`).
    pub env: BTreeMap<String, String>,
    /// The command's input.
    pub stdin: Box<dyn BufRead + Send>,
    stdout: Box<dyn Write + Send>,
    stderr: Box<dyn Write + Send>,
    /// Whether stdin is a terminal (rem may then prompt for a password).
    pub stdin_is_terminal: bool,
    /// Whether stdout is a terminal (tables and progress bars then).
    pub stdout_is_terminal: bool,
    /// Whether stderr is a terminal.
    pub stderr_is_terminal: bool,
    /// A database this process holds open: commands run on it instead of opening one.
    pub database: Option<Database>,
    stdout_closed: bool,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("stdout_is_terminal", &self.stdout_is_terminal)
            .field(
                "database",
                &self.database.as_ref().map(|d| d.path().to_path_buf()),
            )
            .finish()
    }
}

impl Session {
    /// This process's environment and standard streams.
    pub fn from_process() -> Session {
        let env = std::env::vars()
            .filter(|(k, _)| k.starts_with("P8_") || k == "OPENAI_API_KEY")
            .collect();
        Session {
            env,
            stdin: Box::new(std::io::BufReader::new(std::io::stdin())),
            stdout: Box::new(std::io::LineWriter::new(std::io::stdout())),
            stderr: Box::new(std::io::stderr()),
            stdin_is_terminal: std::io::stdin().is_terminal(),
            stdout_is_terminal: std::io::stdout().is_terminal(),
            stderr_is_terminal: std::io::stderr().is_terminal(),
            database: None,
            stdout_closed: false,
        }
    }

    /// A session over the given streams and environment (not terminals).
    pub fn with_io(
        env: BTreeMap<String, String>,
        stdin: Box<dyn BufRead + Send>,
        stdout: Box<dyn Write + Send>,
        stderr: Box<dyn Write + Send>,
    ) -> Session {
        Session {
            env,
            stdin,
            stdout,
            stderr,
            stdin_is_terminal: false,
            stdout_is_terminal: false,
            stderr_is_terminal: false,
            database: None,
            stdout_closed: false,
        }
    }

    /// True once a write to stdout found the reader gone (`rem … | head`).
    pub fn stdout_closed(&self) -> bool {
        self.stdout_closed
    }

    /// The command's stdout. A closed pipe is remembered, so the command can end
    /// quietly.
    pub(crate) fn out(&mut self) -> Out<'_> {
        Out {
            inner: &mut self.stdout,
            closed: &mut self.stdout_closed,
        }
    }

    /// The command's stderr.
    pub(crate) fn err(&mut self) -> &mut dyn Write {
        &mut self.stderr
    }

    /// Writes a line to stdout.
    pub(crate) fn out_line(&mut self, line: &str) -> std::io::Result<()> {
        writeln!(self.out(), "{line}")
    }

    /// Writes a line to stderr (a failing stderr is not worth an error).
    pub(crate) fn err_line(&mut self, line: &str) -> std::io::Result<()> {
        writeln!(self.stderr, "{line}")
    }

    /// Flushes stdout and stderr.
    pub(crate) fn flush(&mut self) -> std::io::Result<()> {
        let _ = self.stderr.flush();
        self.out().flush()
    }

    /// Logging to stderr at `P8_LOG_LEVEL` / `logging.level`, as text or JSON
    /// (`P8_LOG_FORMAT` / `logging.format`); the first session of a process sets it.
    pub(crate) fn init_logging(&self) {
        let config = crate::config::Config::load_from(&self.env).ok();
        let logging = config
            .map(|c| c.settings().logging.clone())
            .unwrap_or_else(|| crate::config::Settings::default().logging);
        let level = logging.level.to_ascii_lowercase();
        let filter = tracing_subscriber::EnvFilter::try_new(&level)
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
        let builder = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_ansi(self.stderr_is_terminal)
            .with_target(false)
            .without_time();
        let _ = if logging.format.eq_ignore_ascii_case("json") {
            builder.json().try_init()
        } else {
            builder.try_init()
        };
    }
}

/// Stdout of a session.
pub(crate) struct Out<'a> {
    inner: &'a mut Box<dyn Write + Send>,
    closed: &'a mut bool,
}

impl Out<'_> {
    fn note(&mut self, r: std::io::Result<usize>) -> std::io::Result<usize> {
        if let Err(e) = &r {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                *self.closed = true;
            }
        }
        r
    }
}

impl Write for Out<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let r = self.inner.write(buf);
        self.note(r)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let r = self.inner.flush().map(|_| 0);
        self.note(r).map(|_| ())
    }
}
