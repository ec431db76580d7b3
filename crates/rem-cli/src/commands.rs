//! Command implementations: each command is written once over a [`Backend`] — the
//! database embedded in this process, or the server that holds it — and prints its
//! result to the session's stdout.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use rem::{Database, OpenOptions, Schema};
use rem_replication::endpoint;
use rem_service::proto;
use rem_service::{Backend, Client, ClientOptions};
use serde_json::{json, Value};

use crate::cli::{
    BatchArgs, Cli, Command, ConfigCommand, EdgeCommand, ExportArgs, FileFormat, Format,
    ReplicationCommand, SchemaCommand, SearchArgs,
};
use crate::config::Config;
use crate::output::{print_json, print_rows, Rows};
use crate::session::Session;

/// `writeln!` to the command's stdout; a failed write (a closed pipe) ends the command.
macro_rules! outln {
    ($ctx:expr, $($t:tt)*) => {
        writeln!($ctx.session.out(), $($t)*).context("cannot write the output")?
    };
}

/// `writeln!` to the command's stderr.
macro_rules! errln {
    ($ctx:expr, $($t:tt)*) => {
        { let _ = writeln!($ctx.session.err(), $($t)*); }
    };
}

pub(crate) use {errln, outln};

/// A failure that is not the user's: verification found corrupt data, and the like.
#[derive(Debug)]
pub(crate) struct InternalError(pub(crate) String);

impl std::fmt::Display for InternalError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InternalError {}

/// How a command opens the database when it opens it itself.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    Create,
    Write,
    Read,
    /// Read-write when free (so a rebuilt or caught-up vector index is saved on
    /// close), read-only when another process holds the database.
    ReadSaving,
}

/// A command's context: configuration, output format and the session.
pub(crate) struct Ctx<'s> {
    pub(crate) config: Config,
    pub(crate) format: Format,
    pub(crate) session: &'s mut Session,
    /// `--server` / `P8_SERVER`.
    server: Option<String>,
}

impl Ctx<'_> {
    pub(crate) fn out(&mut self) -> crate::session::Out<'_> {
        self.session.out()
    }

    /// The database the command runs on: the session's, a server's (explicit, or the
    /// one holding the database), or the database opened here as `access` says.
    /// Nothing is read from stdin before this returns, so no input is lost whichever
    /// it is.
    pub(crate) fn backend(&mut self, access: Access) -> Result<Backend> {
        if let Some(db) = &self.session.database {
            return Ok(Backend::Embedded(db.for_tenant(self.config.tenant())?));
        }
        self.prompting(|o| o.backend(access))
    }

    /// Opens the database in this process.
    pub(crate) fn open(&mut self, access: Access) -> Result<Database> {
        self.prompting(|o| o.open(access))
    }

    /// Runs `f`; when it fails for want of a password that this terminal can give,
    /// prompts for it and runs `f` once more with it.
    fn prompting<T>(&mut self, f: impl Fn(&Opener<'_>) -> Result<T>) -> Result<T> {
        let first = f(&self.opener());
        match first {
            Err(e) if self.may_prompt_for(&e) => {
                let password = self.prompt_password()?;
                self.config.set_password(password);
                f(&self.opener())
            }
            other => other,
        }
    }

    /// True when `err` asks for a password that a prompt on this terminal can give.
    fn may_prompt_for(&self, err: &anyhow::Error) -> bool {
        self.session.stdin_is_terminal
            && self.config.password().is_none()
            && err.chain().any(|c| {
                matches!(
                    c.downcast_ref::<rem::Error>(),
                    Some(rem::Error::PasswordRequired { .. })
                )
            })
    }

    /// Asks the terminal for the database's password (not echoed).
    fn prompt_password(&self) -> Result<rem::Password> {
        let path = self.config.db_path();
        let text = rpassword::prompt_password(format!("password for {}: ", path.display()))
            .context("cannot read the password from the terminal")?;
        Ok(rem::Password::new(text))
    }

    /// Asks the terminal for a new password, twice; without a terminal, says where to
    /// give it instead.
    fn prompt_new_password(&self, what: &str, flag: &str) -> Result<rem::Password> {
        if !self.session.stdin_is_terminal {
            bail!("give {what} with {flag} (there is no terminal to prompt on)");
        }
        let first = rpassword::prompt_password(format!("{what}: "))
            .context("cannot read the password from the terminal")?;
        if first.is_empty() {
            bail!("an empty password is refused; nothing was changed");
        }
        let again = rpassword::prompt_password("again: ")
            .context("cannot read the password from the terminal")?;
        if again != first {
            bail!("the two passwords differ; nothing was changed");
        }
        Ok(rem::Password::new(first))
    }

    fn opener(&self) -> Opener<'_> {
        Opener {
            config: &self.config,
            server: self.server.as_deref(),
        }
    }
}

/// Opens a database as the CLI does, from a configuration alone: through the server
/// named by `--server`/`P8_SERVER`, else through the live server whose SERVER file is
/// in the database folder, else in this process. (The Python package opens this way.)
pub(crate) struct Opener<'a> {
    pub(crate) config: &'a Config,
    /// `--server` / `P8_SERVER`.
    pub(crate) server: Option<&'a str>,
}

impl Opener<'_> {
    /// The backend for `access`.
    pub(crate) fn backend(&self, access: Access) -> Result<Backend> {
        if let Some(address) = self.server {
            let client = Client::connect(address, &self.client_options(None)?)?;
            return Ok(Backend::Remote(client));
        }
        let db_path = self.config.db_path();
        if let Some(server) = endpoint::read(&db_path) {
            if let Some(client) = self.local_server(&db_path, &server)? {
                return Ok(Backend::Remote(client));
            }
        }
        Ok(Backend::Embedded(self.open(access)?))
    }

    /// The token for a server: the configured one, else the token file of the local
    /// database `db` (a server found through its SERVER file).
    fn token(&self, db: Option<&Path>) -> Result<String> {
        let s = self.config.settings();
        for t in [&s.server.token, &s.replication.token] {
            if !t.trim().is_empty() {
                return Ok(t.trim().to_string());
            }
        }
        match db {
            Some(db) => Ok(rem_replication::read_token_file(db)
                .map_err(anyhow::Error::from)?
                .unwrap_or_default()),
            None => bail!("give the server's token in P8_SERVER_TOKEN (it is in the TOKEN file of the served database's folder)"),
        }
    }

    fn client_options(&self, db: Option<&Path>) -> Result<ClientOptions> {
        Ok(ClientOptions {
            token: self.token(db)?,
            tls: crate::server::client_tls(self.config)?,
            tenant: Some(self.config.tenant().to_string()),
            connect_timeout: std::time::Duration::from_secs(5),
        })
    }

    /// A client of the server the SERVER file names, if that server is alive and is
    /// the one that wrote the file; `None` for a file left by a killed server.
    fn local_server(&self, db: &Path, server: &endpoint::Endpoint) -> Result<Option<Client>> {
        let options = self.client_options(Some(db))?;
        if server.tls && options.tls.is_none() {
            bail!(
                "the server holding this database ({}) accepts TLS only; set P8_REPLICATION_TLS_CA to the CA that signed its certificate",
                server.address
            );
        }
        let options = ClientOptions {
            tls: options.tls.filter(|_| server.tls),
            connect_timeout: std::time::Duration::from_secs(2),
            ..options
        };
        let Ok(client) = Client::connect(&server.address, &options) else {
            return Ok(None);
        };
        match client.hello() {
            Ok(hello) if hello.instance == server.instance => Ok(Some(client)),
            // Another process now listens on that port.
            Ok(_) => Ok(None),
            Err(rem_service::Error::Connection(_)) => Ok(None),
            // A live server that refuses us: say so, never open around it.
            Err(e) => Err(anyhow!(e).context(format!(
                "the server holding this database ({}) refused the command",
                server.address
            ))),
        }
    }

    /// Opens the database in this process.
    pub(crate) fn open(&self, access: Access) -> Result<Database> {
        let options = OpenOptions {
            tenant: self.config.tenant().to_string(),
            // Reads do not take the lock: they work beside a running writer.
            read_only: matches!(access, Access::Read),
            create: access == Access::Create,
            store: self.config.store_options()?,
            embedding: self.config.embedding_options()?,
        };
        if access == Access::ReadSaving {
            return match Database::open(self.config.db_path(), &options) {
                Err(rem::Error::Locked { .. }) => Ok(Database::open(
                    self.config.db_path(),
                    &OpenOptions {
                        read_only: true,
                        ..options
                    },
                )?),
                other => Ok(other?),
            };
        }
        Ok(Database::open(self.config.db_path(), &options)?)
    }
}

/// Runs a parsed command line in `session`.
pub(crate) fn run(cli: Cli, session: &mut Session) -> Result<u8> {
    let mut config = Config::load_from(&session.env)?;
    if let Some(p) = &cli.global.path {
        config.set_flag("P8_DB_PATH", &p.display().to_string());
    }
    if let Some(t) = &cli.global.tenant {
        config.set_flag("P8_DEFAULT_TENANT", t);
    }
    if let Some(p) = &cli.global.password {
        if p.is_empty() {
            bail!("an empty password is refused");
        }
        config.set_password(rem::Password::new(p.as_str()));
    }
    let format = match cli.global.format {
        Some(f) => f,
        None if session.stdout_is_terminal => Format::Table,
        None => Format::Json,
    };
    let server = cli
        .global
        .server
        .clone()
        .or_else(|| Some(config.settings().server.address.clone()))
        .filter(|s| !s.trim().is_empty());
    let mut ctx = Ctx {
        config,
        format,
        session,
        server,
    };
    let ctx = &mut ctx;
    match cli.command {
        Command::Init { encrypt } => {
            if encrypt && ctx.config.password().is_none() {
                let password = ctx.prompt_new_password(
                    "password for the new database",
                    "--password or P8_PASSWORD",
                )?;
                ctx.config.set_password(password);
            }
            let path = ctx.config.db_path();
            let backend = ctx.backend(Access::Create)?;
            let encrypted = matches!(&backend, Backend::Embedded(db) if db.is_encrypted());
            if encrypt && !encrypted {
                bail!(
                    "{} is served by another process; stop it to create an encrypted database",
                    path.display()
                );
            }
            let tables = backend.schemas()?.len();
            let tenant = ctx.config.tenant().to_string();
            let how = if encrypted { ", encrypted" } else { "" };
            outln!(
                ctx,
                "initialized {} ({tables} tables, tenant '{tenant}'{how})",
                path.display()
            );
        }
        Command::Passwd { new_password } => {
            let db = ctx.open(Access::Write)?;
            if !db.is_encrypted() {
                bail!(
                    "the database at {} is not encrypted; there is no password to change",
                    db.path().display()
                );
            }
            let Some(old) = ctx.config.password().cloned() else {
                bail!("the current password is needed (--password, P8_PASSWORD or the prompt)");
            };
            let new = match new_password.or_else(|| {
                ctx.session
                    .env
                    .get("P8_NEW_PASSWORD")
                    .filter(|p| !p.is_empty())
                    .cloned()
            }) {
                Some(p) if p.is_empty() => bail!("an empty password is refused"),
                Some(p) => rem::Password::new(p),
                None => {
                    ctx.prompt_new_password("new password", "--new-password or P8_NEW_PASSWORD")?
                }
            };
            db.change_password(&old, &new, ctx.config.kdf_params())?;
            outln!(
                ctx,
                "changed the password of {} (its data key is unchanged)",
                db.path().display()
            );
        }
        Command::KeyGen { force } => key_gen(ctx, force)?,
        Command::Schema(cmd) => schema_command(ctx, cmd)?,
        Command::Insert(args) => {
            if args.batch {
                let backend = ctx.backend(Access::Write)?;
                let mut input = std::mem::replace(
                    &mut ctx.session.stdin,
                    Box::new(std::io::Cursor::new(Vec::new())),
                );
                let result = write_jsonl(ctx, &backend, &args.table, &mut input, &args.batching);
                ctx.session.stdin = input;
                result?;
            } else {
                let text = args.json.unwrap_or_default();
                let record: Value =
                    serde_json::from_str(&text).map_err(|e| rem::Error::InvalidJson {
                        location: Some(format!("at line {} column {}", e.line(), e.column())),
                        message: rem_service::strip_position(&e.to_string()),
                    })?;
                let backend = ctx.backend(Access::Write)?;
                let ids = backend
                    .inserter(&args.table)?
                    .write(vec![record])
                    .map_err(single_record)?;
                for id in ids {
                    outln!(ctx, "{id}");
                }
            }
        }
        Command::Upsert(args) => {
            let file = std::fs::File::open(&args.file)
                .map_err(|e| anyhow!("cannot read {}: {}", args.file.display(), os_message(&e)))?;
            let backend = ctx.backend(Access::Write)?;
            let mut input = std::io::BufReader::new(file);
            write_jsonl(ctx, &backend, &args.schema, &mut input, &args.batching)?;
        }
        Command::Get {
            id,
            include_deleted,
        } => {
            rem::EntityId::parse(&id)?;
            let backend = ctx.backend(Access::Read)?;
            let entity = backend
                .get(&id, include_deleted)?
                .ok_or_else(|| rem::Error::NotFound(format!("no entity with id {id}")))?;
            let format = ctx.format;
            print_rows(&mut ctx.out(), format, &Rows::single(entity))?;
        }
        Command::Delete { id } => {
            rem::EntityId::parse(&id)?;
            let backend = ctx.backend(Access::Write)?;
            let e = backend.delete(&id)?;
            outln!(ctx, "deleted {} from {}", e.id, e.table);
        }
        Command::Edge(cmd) => edge_command(ctx, cmd)?,
        Command::Edges {
            entity,
            direction,
            edge_type,
        } => {
            rem::Direction::parse(&direction)?;
            let backend = ctx.backend(Access::Read)?;
            let edges = backend.edges(proto::EdgesRequest {
                entity,
                direction,
                edge_type: edge_type.unwrap_or_default(),
            })?;
            let rows: Vec<Value> = edges.iter().map(edge_json).collect::<Result<_>>()?;
            if rows.is_empty() && ctx.format == Format::Table {
                errln!(ctx, "no edges");
            }
            let format = ctx.format;
            print_rows(&mut ctx.out(), format, &Rows::from_objects(rows))?;
        }
        Command::Traverse {
            entity,
            depth,
            direction,
            edge_type,
            dfs,
        } => {
            rem::Direction::parse(&direction)?;
            let backend = ctx.backend(Access::Read)?;
            let nodes = backend.traverse(proto::TraverseRequest {
                entity,
                depth: depth as u64,
                direction,
                edge_type: edge_type.unwrap_or_default(),
                dfs,
            })?;
            let rows: Vec<Vec<Value>> = nodes
                .iter()
                .map(|n| {
                    vec![
                        json!(n.depth),
                        json!(n.id),
                        json!(n.table),
                        if n.edge_type.is_empty() {
                            Value::Null
                        } else {
                            json!(n.edge_type)
                        },
                        json!(n.path),
                    ]
                })
                .collect();
            let format = ctx.format;
            print_rows(
                &mut ctx.out(),
                format,
                &Rows::new(vec!["depth", "id", "entity_type", "via", "path"], rows),
            )?;
        }
        Command::Path {
            from,
            to,
            direction,
            edge_type,
            max_depth,
        } => {
            rem::Direction::parse(&direction)?;
            let backend = ctx.backend(Access::Read)?;
            let path = backend.path(proto::PathRequest {
                from,
                to,
                direction,
                edge_type: edge_type.unwrap_or_default(),
                max_depth: max_depth as u64,
            })?;
            let rows: Vec<Vec<Value>> = path
                .ids
                .iter()
                .enumerate()
                .map(|(i, id)| vec![json!(i), json!(id)])
                .collect();
            let format = ctx.format;
            print_rows(&mut ctx.out(), format, &Rows::new(vec!["hop", "id"], rows))?;
        }
        Command::Lookup { key } => {
            let backend = ctx.backend(Access::Read)?;
            let found = backend.lookup(&key)?;
            if found.is_empty() && ctx.format == Format::Table {
                errln!(ctx, "no entity has key '{key}'");
            }
            let format = ctx.format;
            print_rows(&mut ctx.out(), format, &Rows::from_objects(found))?;
        }
        Command::Search(args) => search_command(ctx, args)?,
        Command::Query {
            sql,
            include_deleted,
        } => {
            let backend = ctx.backend(Access::ReadSaving)?;
            let batches = backend.sql(&sql, include_deleted)?;
            let format = match ctx.format {
                Format::Table => rem_sql::OutputFormat::Table,
                Format::Json => rem_sql::OutputFormat::Json,
                Format::Jsonl => rem_sql::OutputFormat::Jsonl,
                Format::Csv => rem_sql::OutputFormat::Csv,
            };
            let mut out = std::io::BufWriter::new(ctx.out());
            rem_sql::write_batches(batches, format, &mut out)?;
            out.flush().context("cannot write the result")?;
        }
        Command::Export(args) => export_command(ctx, args)?,
        Command::Ingest {
            input,
            schema,
            recursive,
        } => return ingest_command(ctx, &input, &schema, recursive),
        Command::Verify => {
            let backend = ctx.backend(Access::Read)?;
            let report = backend.verify()?;
            if !report.problems.is_empty() {
                for p in &report.problems {
                    errln!(ctx, "problem: {p}");
                }
                return Err(InternalError(format!(
                    "verification found {} problem(s) in {}",
                    report.problems.len(),
                    report.path
                ))
                .into());
            }
            outln!(
                ctx,
                "ok: {} entities, {} index entries, {} vectors, {} vector indexes and {} change records agree",
                report.entities,
                report.index_entries,
                report.vectors,
                report.vector_indexes,
                report.change_records
            );
        }
        Command::Stats => stats_command(ctx)?,
        Command::Serve {
            host,
            port,
            insecure,
        } => {
            if ctx.server.is_some() {
                bail!("rem serve runs here; --server and P8_SERVER do not apply");
            }
            let db = ctx.open(Access::Write)?;
            if ctx.config.settings().replication.mode == "replica" {
                return crate::server::replicate(ctx, db, None, true, false, insecure);
            }
            return crate::server::serve(ctx, db, host, port, insecure);
        }
        Command::Replicate {
            primary,
            follow,
            rebuild,
            insecure,
        } => {
            if ctx.server.is_some() {
                bail!("rem replicate runs here; --server and P8_SERVER do not apply");
            }
            let db = ctx.open(Access::Write)?;
            return crate::server::replicate(ctx, db, primary, follow, rebuild, insecure);
        }
        Command::Replication(cmd) => {
            let access = match cmd {
                ReplicationCommand::Promote => Access::Write,
                _ => Access::Read,
            };
            let backend = ctx.backend(access)?;
            crate::server::replication(ctx, &backend, cmd)?;
        }
        Command::Config(ConfigCommand::Show) => {
            let rows = ctx
                .config
                .entries()
                .into_iter()
                .map(|e| {
                    vec![
                        json!(e.env),
                        json!(e.value),
                        json!(e.source.to_string()),
                        json!(e.file_key),
                        json!(e.help),
                    ]
                })
                .collect();
            let unknown = ctx.config.unknown_keys().to_vec();
            let format = ctx.format;
            print_rows(
                &mut ctx.out(),
                format,
                &Rows::new(
                    vec!["setting", "value", "source", "config.toml key", "meaning"],
                    rows,
                ),
            )?;
            for key in unknown {
                errln!(
                    ctx,
                    "warning: config.toml sets '{key}', which no setting reads (ignored)"
                );
            }
        }
    }
    Ok(0)
}

/// A lone record's refusal, without the "record 1 of the batch" prefix.
fn single_record(e: rem_service::Error) -> anyhow::Error {
    match e {
        rem_service::Error::Record {
            kind,
            detail,
            message,
            ..
        } => anyhow!(rem_service::Error::Remote {
            kind,
            detail,
            message
        }),
        other => anyhow!(other),
    }
}

fn schema_command(ctx: &mut Ctx<'_>, cmd: SchemaCommand) -> Result<()> {
    match cmd {
        SchemaCommand::Add {
            source,
            name,
            template,
            output,
        } => {
            let doc = match (source, template) {
                // Read (or, for models.py::Class, run) here, on the client: a server
                // only ever receives the JSON Schema.
                (Some(src), None) => {
                    let python = &ctx.config.settings().core.python;
                    Schema::from_source(&src, python)?.document
                }
                (None, Some(t)) => {
                    let name = name.unwrap_or_default();
                    let doc = rem::template(&t, &name.to_ascii_lowercase()).ok_or_else(|| {
                        rem::Error::InvalidInput(format!(
                            "unknown template '{t}'; see `rem schema templates`"
                        ))
                    })?;
                    // Parse before writing or registering, so a bad name fails early.
                    Schema::from_document(doc.clone())?;
                    if let Some(out) = output {
                        write_schema_file(&out, &doc)?;
                        outln!(
                            ctx,
                            "wrote schema '{}' to {}",
                            doc["name"].as_str().unwrap_or(""),
                            out.display()
                        );
                        return Ok(());
                    }
                    doc
                }
                _ => bail!("give a schema file, or --name and --template"),
            };
            let backend = ctx.backend(Access::Write)?;
            let stored = backend.register_schema(&doc)?;
            let schema = Schema::from_document(stored)?;
            outln!(ctx, "registered schema '{}'", schema.name);
        }
        SchemaCommand::List => {
            let backend = ctx.backend(Access::Read)?;
            let mut rows = Vec::new();
            for doc in backend.schemas()? {
                let s = Schema::from_document(doc)?;
                rows.push(vec![
                    json!(s.name),
                    json!(s.category),
                    json!(s.version),
                    json!(s.key_field),
                    json!(s.indexed_fields),
                    json!(s.embedding_fields),
                    json!(s.fully_qualified_name),
                    json!(s.description),
                ]);
            }
            let format = ctx.format;
            print_rows(
                &mut ctx.out(),
                format,
                &Rows::new(
                    vec![
                        "name",
                        "category",
                        "version",
                        "key_field",
                        "indexed_fields",
                        "embedding_fields",
                        "fully_qualified_name",
                        "description",
                    ],
                    rows,
                ),
            )?;
        }
        SchemaCommand::Show { name } => {
            let backend = ctx.backend(Access::Read)?;
            let doc = backend.schema(&name)?;
            // A schema is a document: shown as JSON whatever the format, so that
            // `rem schema show x > x.json` can be edited and re-added.
            outln!(ctx, "{}", serde_json::to_string_pretty(&doc)?);
        }
        SchemaCommand::Templates => {
            let rows = rem::TEMPLATES
                .iter()
                .map(|(n, d)| vec![json!(n), json!(d)])
                .collect();
            let format = ctx.format;
            print_rows(
                &mut ctx.out(),
                format,
                &Rows::new(vec!["template", "description"], rows),
            )?;
        }
    }
    Ok(())
}

fn write_schema_file(out: &Path, doc: &Value) -> Result<()> {
    let text = match out.extension().and_then(|e| e.to_str()) {
        Some("yaml" | "yml") => serde_yaml::to_string(doc)?,
        _ => serde_json::to_string_pretty(doc)? + "\n",
    };
    std::fs::write(out, text)
        .map_err(|e| anyhow!("cannot write {}: {}", out.display(), os_message(&e)))
}

/// Reads JSONL and writes it in atomic batches. A bad line stops the run: its batch is
/// not written (earlier batches are, and the message says how many records that was).
fn write_jsonl(
    ctx: &mut Ctx<'_>,
    backend: &Backend,
    table: &str,
    input: &mut dyn BufRead,
    args: &BatchArgs,
) -> Result<()> {
    let batch_size = match args.batch_size {
        Some(0) => bail!("--batch-size must be at least 1"),
        Some(n) => n,
        None => ctx.config.batch_size()?,
    };
    // Resolve the table first: an unknown table is an error even for empty input.
    let mut inserter = backend.inserter(table)?;
    let mut written = 0usize;
    let mut batch: Vec<Value> = Vec::with_capacity(batch_size);
    let mut lines: Vec<usize> = Vec::with_capacity(batch_size);
    let mut flush = |ctx: &mut Ctx<'_>,
                     batch: &mut Vec<Value>,
                     lines: &mut Vec<usize>,
                     written: &mut usize|
     -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        match inserter.write(std::mem::take(batch)) {
            Ok(ids) => {
                *written += ids.len();
                if args.ids {
                    let mut out = ctx.out();
                    for id in ids {
                        writeln!(out, "{id}").context("cannot write the output")?;
                    }
                    out.flush().context("cannot write the output")?;
                }
                lines.clear();
                Ok(())
            }
            Err(rem_service::Error::Record {
                index,
                kind,
                detail,
                message,
            }) => {
                let line = lines.get(index).copied().unwrap_or(0);
                Err(anyhow!(rem_service::Error::Remote {
                    kind,
                    detail,
                    message: format!("line {line}: {message} (nothing of this batch was written; {written} records in earlier batches were)"),
                }))
            }
            Err(e) => Err(anyhow!(e).context(format!(
                "nothing of the current batch was written; {written} records in earlier batches were"
            ))),
        }
    };
    let mut line = String::new();
    let mut line_no = 0usize;
    loop {
        line.clear();
        let n = input
            .read_line(&mut line)
            .with_context(|| format!("cannot read line {}", line_no + 1))?;
        if n == 0 {
            break;
        }
        line_no += 1;
        if line.trim().is_empty() {
            continue;
        }
        let record: Value = serde_json::from_str(&line).map_err(|e| rem::Error::InvalidJson {
            location: Some(format!("on line {line_no} at column {}", e.column())),
            message: format!(
                "{} (nothing of this batch was written; {written} records in earlier batches were)",
                rem_service::strip_position(&e.to_string())
            ),
        })?;
        batch.push(record);
        lines.push(line_no);
        if batch.len() >= batch_size {
            flush(ctx, &mut batch, &mut lines, &mut written)?;
        }
    }
    flush(ctx, &mut batch, &mut lines, &mut written)?;
    if args.ids {
        errln!(ctx, "wrote {written} records to {table}");
    } else {
        outln!(ctx, "wrote {written} records to {table}");
    }
    Ok(())
}

fn os_message(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

fn edge_json(e: &proto::Edge) -> Result<Value> {
    let properties: Value = serde_json::from_str(&e.properties_json)
        .map_err(|err| anyhow!(rem_service::Error::Protocol(err.to_string())))?;
    Ok(json!({
        "src": e.src,
        "edge_type": e.edge_type,
        "dst": e.dst,
        "weight": e.weight,
        "properties": properties,
        "created_at": e.created_at,
    }))
}

fn edge_command(ctx: &mut Ctx<'_>, cmd: EdgeCommand) -> Result<()> {
    match cmd {
        EdgeCommand::Add {
            src,
            dst,
            edge_type,
            props,
            weight,
        } => {
            let properties = match props {
                None => String::new(),
                Some(text) => match serde_json::from_str::<Value>(&text) {
                    Ok(v @ Value::Object(_)) => v.to_string(),
                    Ok(_) => {
                        return Err(rem::Error::InvalidInput(
                            "--props must be a JSON object".into(),
                        )
                        .into())
                    }
                    Err(e) => {
                        return Err(rem::Error::InvalidInput(format!(
                            "--props is not valid JSON: {e}"
                        ))
                        .into())
                    }
                },
            };
            let backend = ctx.backend(Access::Write)?;
            let edge = backend.add_edge(proto::AddEdgeRequest {
                src,
                dst,
                edge_type,
                has_weight: weight.is_some(),
                weight: weight.unwrap_or_default(),
                properties_json: properties,
            })?;
            let format = ctx.format;
            print_rows(&mut ctx.out(), format, &Rows::single(edge_json(&edge)?))?;
        }
        EdgeCommand::Rm {
            src,
            dst,
            edge_type,
        } => {
            let backend = ctx.backend(Access::Write)?;
            let removed = backend.remove_edge(proto::RemoveEdgeRequest {
                src: src.clone(),
                dst: dst.clone(),
                edge_type: edge_type.clone(),
            })?;
            if removed {
                outln!(ctx, "removed {src} -[{edge_type}]-> {dst}");
            } else {
                return Err(
                    rem::Error::NotFound(format!("no edge {src} -[{edge_type}]-> {dst}")).into(),
                );
            }
        }
    }
    Ok(())
}

fn search_command(ctx: &mut Ctx<'_>, args: SearchArgs) -> Result<()> {
    // Checked here, before the database is opened or a server asked.
    if let Some(p) = &args.predicate {
        rem_sql::check_where(p)?;
    }
    let backend = ctx.backend(Access::ReadSaving)?;
    let result = backend.search(proto::SearchRequest {
        table: args.schema.clone().unwrap_or_default(),
        query: args.query.clone(),
        top_k: args.top_k as u64,
        has_min_score: args.min_score.is_some(),
        min_score: args.min_score.unwrap_or_default(),
        predicate: args.predicate.clone().unwrap_or_default(),
        alt: args.alt,
        ef_search: 0,
        vector: Vec::new(),
    })?;
    if result.table_detected {
        errln!(
            ctx,
            "searched table '{}' (chosen by similarity to its description)",
            result.table
        );
    }
    let mut hits = Vec::with_capacity(result.hits.len());
    for h in &result.hits {
        let mut out = serde_json::Map::new();
        out.insert(
            "score".into(),
            json!((f64::from(h.score) * 10_000.0).round() / 10_000.0),
        );
        if let Value::Object(m) = serde_json::from_str(&h.entity_json)
            .map_err(|e| anyhow!(rem_service::Error::Protocol(e.to_string())))?
        {
            out.extend(m);
        }
        hits.push(Value::Object(out));
    }
    if hits.is_empty() && ctx.format == Format::Table {
        errln!(ctx, "no results in '{}'", result.table);
    }
    let format = ctx.format;
    if format != Format::Table || args.all {
        return print_rows(&mut ctx.out(), format, &Rows::from_objects(hits));
    }
    // On a terminal: what a person reads first.
    let rows = match &args.columns {
        Some(columns) => {
            let mut names = vec!["score".to_string()];
            names.extend(columns.iter().cloned());
            let rows = hits
                .iter()
                .map(|h| names.iter().map(|c| column(h, c)).collect())
                .collect();
            Rows::new(names.iter().map(String::as_str).collect(), rows)
        }
        None => {
            let schema = Schema::from_document(backend.schema(&result.table)?)?;
            let key = |h: &Value| -> Value {
                schema
                    .key_field
                    .iter()
                    .map(String::as_str)
                    .chain(["name", "uri", "key", "id"])
                    .map(|f| column(h, f))
                    .find(|v| !v.is_null())
                    .unwrap_or(Value::Null)
            };
            let content = |h: &Value| -> Value {
                let text = schema
                    .embedding_fields
                    .iter()
                    .map(String::as_str)
                    .chain(["content", "description"])
                    .map(|f| column(h, f))
                    .find(|v| !v.is_null())
                    .map(|v| match v {
                        Value::String(s) => s,
                        other => other.to_string(),
                    })
                    .unwrap_or_default();
                json!(one_line_cut(&text, 100))
            };
            let rows = hits
                .iter()
                .map(|h| {
                    vec![
                        column(h, "score"),
                        column(h, "entity_type"),
                        key(h),
                        content(h),
                    ]
                })
                .collect();
            Rows::new(vec!["score", "table", "key", "content"], rows)
        }
    };
    print_rows(&mut ctx.out(), format, &rows)
}

/// A field of a hit: a system field, else a property.
fn column(hit: &Value, name: &str) -> Value {
    hit.get(name)
        .or_else(|| hit.get("properties").and_then(|p| p.get(name)))
        .cloned()
        .unwrap_or(Value::Null)
}

/// `text` on one line, cut to `max` characters.
fn one_line_cut(text: &str, max: usize) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max {
        flat
    } else {
        let cut: String = flat.chars().take(max - 1).collect();
        format!("{cut}…")
    }
}

fn stats_command(ctx: &mut Ctx<'_>) -> Result<()> {
    let backend = ctx.backend(Access::Read)?;
    let s = backend.stats()?;
    let format = ctx.format;
    let mut out = ctx.out();
    if matches!(format, Format::Json | Format::Jsonl) {
        let v = json!({
            "path": s.path,
            "tenant": s.tenant,
            "last_seq": s.last_seq,
            "disk_bytes": s.disk_bytes,
            "tables": s.tables.iter().map(|t| json!({"table": t.table, "rows": t.rows, "deleted": t.deleted})).collect::<Vec<_>>(),
            "column_families": s.column_families.iter().map(|c| json!({"name": c.name, "estimated_keys": c.estimated_keys, "bytes": c.bytes})).collect::<Vec<_>>(),
        });
        return print_json(&mut out, format, &v);
    }
    let rows = s
        .tables
        .iter()
        .map(|t| vec![json!(t.table), json!(t.rows), json!(t.deleted)])
        .collect();
    print_rows(
        &mut out,
        format,
        &Rows::new(vec!["table", "rows", "deleted"], rows),
    )?;
    if format == Format::Table {
        let rows = s
            .column_families
            .iter()
            .map(|c| vec![json!(c.name), json!(c.estimated_keys), json!(c.bytes)])
            .collect();
        print_rows(
            &mut out,
            format,
            &Rows::new(vec!["column family", "estimated keys", "bytes"], rows),
        )?;
        writeln!(
            out,
            "disk use: {} bytes; last sequence number: {}",
            s.disk_bytes, s.last_seq
        )?;
    }
    Ok(())
}

fn file_format_name(f: FileFormat) -> &'static str {
    match f {
        FileFormat::Parquet => "parquet",
        FileFormat::Csv => "csv",
        FileFormat::Jsonl => "jsonl",
    }
}

fn export_command(ctx: &mut Ctx<'_>, args: ExportArgs) -> Result<()> {
    let format = match args.file_format {
        Some(f) => f,
        None if args.all => FileFormat::Parquet,
        None => match rem_sql::ExportFormat::from_path(&args.output) {
            Some(rem_sql::ExportFormat::Csv) => FileFormat::Csv,
            Some(rem_sql::ExportFormat::Jsonl) => FileFormat::Jsonl,
            _ => FileFormat::Parquet,
        },
    };
    let compression = match (&args.compression, format) {
        (Some(c), _) => c.clone(),
        (None, FileFormat::Parquet) => ctx.config.settings().export.parquet_compression.clone(),
        (None, _) => "none".to_string(),
    };
    // Checked here, so a bad option fails before any file is made.
    let options = rem_sql::ExportOptions {
        format: rem_sql::ExportFormat::parse(file_format_name(format))?,
        compression: compression.clone(),
        predicate: args.predicate.clone(),
        include_embeddings: args.include_embeddings,
        row_group_size: ctx.config.parquet_row_group_size()?,
        plaintext: args.plaintext,
    };
    rem_sql::parquet_compression(&options.compression)?;
    if format != FileFormat::Parquet && compression != "none" {
        return Err(rem::Error::InvalidInput(format!(
            "--compression applies to parquet only; {} files are written uncompressed",
            options.format.extension()
        ))
        .into());
    }
    let backend = ctx.backend(Access::ReadSaving)?;
    let request = |table: &str| proto::ExportRequest {
        table: table.to_string(),
        format: file_format_name(format).to_string(),
        compression: compression.clone(),
        predicate: args.predicate.clone().unwrap_or_default(),
        include_embeddings: args.include_embeddings,
        row_group_size: options.row_group_size as u64,
        plaintext: args.plaintext,
    };
    let started = std::time::Instant::now();
    // (table, path, rows, bytes): the client writes every file, whoever encodes it.
    let mut reports: Vec<(String, PathBuf, u64, u64)> = Vec::new();
    let mut export_one = |table: &str, path: &Path| -> Result<()> {
        let ((name, rows), bytes) = rem_sql::write_file_atomically(path, |out| {
            backend
                .export(request(table), out)
                .map_err(anyhow::Error::from)
        })?;
        reports.push((name, path.to_path_buf(), rows, bytes));
        Ok(())
    };
    match &args.table {
        Some(table) => {
            backend.schema(table)?;
            export_one(table, &args.output)?;
        }
        None => {
            let dir = &args.output;
            if !dir.is_dir() {
                let parent = dir.parent().filter(|p| !p.as_os_str().is_empty());
                if parent.is_some_and(|p| !p.is_dir()) {
                    return Err(rem::Error::InvalidInput(format!(
                        "the folder {} does not exist",
                        parent.map(|p| p.display().to_string()).unwrap_or_default()
                    ))
                    .into());
                }
                std::fs::create_dir(dir)
                    .map_err(|e| anyhow!("cannot create {}: {}", dir.display(), os_message(&e)))?;
            }
            for doc in backend.schemas()? {
                let name = doc["name"].as_str().unwrap_or_default().to_string();
                let path = dir.join(format!("{name}.{}", options.format.extension()));
                export_one(&name, &path)?;
            }
        }
    }
    let secs = started.elapsed().as_secs_f64();
    for (table, path, rows, bytes) in &reports {
        errln!(
            ctx,
            "exported {rows} rows of {table} to {} ({bytes} bytes)",
            path.display()
        );
    }
    let rows: Vec<Value> = reports
        .iter()
        .map(|(table, path, rows, bytes)| json!({"table": table, "path": path.display().to_string(), "rows": rows, "bytes": bytes}))
        .collect();
    errln!(ctx, "{} file(s) in {secs:.2} s", reports.len());
    let format = ctx.format;
    print_rows(&mut ctx.out(), format, &Rows::from_objects(rows))
}

fn ingest_command(ctx: &mut Ctx<'_>, path: &Path, schema: &str, recursive: bool) -> Result<u8> {
    // The files are read here, by the client; a server receives their bytes.
    let single = std::fs::metadata(path)
        .map(|m| m.is_file())
        .unwrap_or(false);
    let files = rem_ingest::collect_files(path, recursive)?;
    let backend = ctx.backend(Access::Write)?;
    let mut ingester = backend.ingester(schema)?;
    // A progress bar for folders, on a terminal only.
    let bar = (!single && ctx.session.stderr_is_terminal).then(|| {
        let bar = indicatif::ProgressBar::new(files.len() as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} files {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    let mut reports: Vec<proto::IngestReport> = Vec::with_capacity(files.len());
    for (i, file) in files.iter().enumerate() {
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let read = std::fs::read(file)
            .map_err(|e| rem::Error::InvalidInput(format!("cannot read {}: {e}", file.display())))
            .and_then(|bytes| Ok((rem_ingest::file_uri(file)?, bytes)));
        let report = match read {
            Ok((uri, bytes)) => ingester.file(&uri, &name, &bytes)?,
            Err(e) if single => return Err(e.into()),
            Err(e) => proto::IngestReport {
                uri: format!("file://{}", file.display()),
                status: "refused".into(),
                reason: e.to_string(),
                error_kind: e.kind().name().to_string(),
                ..Default::default()
            },
        };
        if report.status == "refused" && single {
            return Err(rem_service::Error::Remote {
                kind: rem::ErrorKind::from_name(&report.error_kind),
                detail: rem_service::Detail::default(),
                message: report.reason,
            }
            .into());
        }
        if let Some(bar) = &bar {
            bar.set_position(i as u64 + 1);
            bar.set_message(name);
        }
        reports.push(report);
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let mut failed = 0;
    let mut chunks = 0u64;
    let rows: Vec<Value> = reports
        .iter()
        .map(|r| {
            let (status, n, reason) = match r.status.as_str() {
                "completed" => {
                    chunks += r.chunks;
                    ("completed", Some(r.chunks), None)
                }
                "unchanged" => ("unchanged", None, None),
                _ => {
                    failed += 1;
                    ("failed", None, Some(r.reason.clone()))
                }
            };
            json!({"uri": r.uri, "file_type": (!r.file_type.is_empty()).then_some(&r.file_type),
                   "size_bytes": r.size_bytes, "status": status, "chunks": n, "reason": reason})
        })
        .collect();
    let format = ctx.format;
    print_rows(&mut ctx.out(), format, &Rows::from_objects(rows))?;
    errln!(
        ctx,
        "{} file(s): {chunks} chunk(s) written, {failed} failed",
        reports.len()
    );
    Ok(if failed > 0 {
        crate::EXIT_USER_ERROR
    } else {
        0
    })
}

/// Context of the sealed Ed25519 private key file (its first line).
pub(crate) const PRIVATE_KEY_CONTEXT: &str = "percolate-rocks ed25519 private key 1";

/// `rem key-gen`: an Ed25519 key pair in `$P8_HOME/keys`, the private key sealed under a
/// password (Argon2id, XChaCha20-Poly1305), the public key in hex.
fn key_gen(ctx: &mut Ctx<'_>, force: bool) -> Result<()> {
    let dir = ctx.config.home().join("keys");
    let private = dir.join("private_key_encrypted");
    let public = dir.join("public_key");
    if !force && (private.exists() || public.exists()) {
        bail!(
            "a key pair already exists in {}; --force replaces it (the old private key is then lost)",
            dir.display()
        );
    }
    let password = match ctx.config.password() {
        Some(p) => p.clone(),
        None => {
            ctx.prompt_new_password("password for the private key", "--password or P8_PASSWORD")?
        }
    };
    let params = ctx.config.kdf_params();
    let mut seed = zeroize::Zeroizing::new([0u8; 32]);
    getrandom::getrandom(seed.as_mut()).context("the OS random source failed")?;
    let signing = ed25519_dalek::SigningKey::from_bytes(&seed);
    let public_hex: String = signing
        .verifying_key()
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let sealed = rem::seal_with_password(seed.as_ref(), &password, params, PRIVATE_KEY_CONTEXT)?;
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    set_mode(&dir, 0o700)?;
    write_private(&private, sealed.as_bytes())?;
    write_private(&public, format!("{public_hex}\n").as_bytes())?;
    outln!(
        ctx,
        "created an Ed25519 key pair in {}\npublic key: {public_hex}",
        dir.display()
    );
    Ok(())
}

/// Writes `bytes` to `path` through a temporary file readable by its owner only, then
/// renames it into place.
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    rem::write_private_file(&tmp, bytes)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .with_context(|| format!("cannot set the mode of {}", path.display()))?;
    }
    let _ = (path, mode);
    Ok(())
}
