//! Command implementations: open the database as the command needs, call the engine,
//! print the result.

use std::io::{BufRead, BufReader, IsTerminal, Read, Write};
use std::path::Path;
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use rem::{Config, Database, EntityId, OpenOptions, Schema};
use serde_json::{json, Value};

use crate::cli::{
    BatchArgs, Cli, Command, ConfigCommand, EdgeCommand, ExportArgs, Format, GlobalArgs,
    SchemaCommand,
};
use crate::io::{errln, outln};
use crate::output::{print_json, print_rows, Rows};

/// How a command opens the database.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Access {
    Create,
    Write,
    Read,
    /// Read-write when free (so a rebuilt or caught-up vector index is saved on
    /// close), read-only when another process holds the database.
    ReadSaving,
}

struct Ctx {
    config: Config,
    format: Format,
    /// `--format` as given (export reads it as the file format).
    format_flag: Option<Format>,
}

impl Ctx {
    fn new(global: &GlobalArgs) -> Result<Ctx> {
        let mut config = Config::load()?;
        if let Some(p) = &global.path {
            config.set_flag("P8_DB_PATH", &p.display().to_string());
        }
        if let Some(t) = &global.tenant {
            config.set_flag("P8_DEFAULT_TENANT", t);
        }
        let format = match global.format {
            // Parquet is a file format (rem export); what is printed is JSON.
            Some(Format::Parquet) => Format::Json,
            Some(f) => f,
            None if !crate::io::captured() && std::io::stdout().is_terminal() => Format::Table,
            None => Format::Json,
        };
        Ok(Ctx {
            config,
            format,
            format_flag: global.format,
        })
    }

    fn open(&self, access: Access) -> Result<Database> {
        // Inside a running server: its open database.
        if let Some(db) = crate::server::served() {
            return Ok(db.for_tenant(self.config.tenant())?);
        }
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

pub(crate) fn run(cli: Cli) -> Result<ExitCode> {
    init_logging();
    let ctx = Ctx::new(&cli.global)?;
    if crate::server::served().is_none() {
        if let Some(code) = crate::server::forward(&cli, &ctx.config)? {
            return Ok(code);
        }
    }
    if ctx.format_flag == Some(Format::Parquet) && !matches!(cli.command, Command::Export(_)) {
        bail!("--format parquet applies to rem export only");
    }
    match cli.command {
        Command::Init => {
            let path = ctx.config.db_path();
            let db = ctx.open(Access::Create)?;
            let tables = db.schemas()?.len();
            outln!(
                "initialized {} ({tables} tables, tenant '{}')",
                path.display(),
                db.tenant()
            );
        }
        Command::Schema(cmd) => schema_command(&ctx, cmd)?,
        Command::Insert(args) => {
            if args.batch {
                let db = ctx.open(Access::Write)?;
                write_jsonl(&ctx, &db, &args.table, crate::io::stdin(), &args.batching)?;
            } else {
                let text = args.json.unwrap_or_default();
                let record: Value =
                    serde_json::from_str(&text).map_err(|e| rem::Error::InvalidJson {
                        location: Some(format!("at line {} column {}", e.line(), e.column())),
                        message: strip_position(&e.to_string()),
                    })?;
                let db = ctx.open(Access::Write)?;
                let id = db.insert(&args.table, record)?;
                outln!("{id}");
            }
        }
        Command::Upsert(args) => {
            let file = std::fs::File::open(&args.file)
                .map_err(|e| anyhow!("cannot read {}: {}", args.file.display(), os_message(&e)))?;
            let db = ctx.open(Access::Write)?;
            write_jsonl(
                &ctx,
                &db,
                &args.schema,
                BufReader::new(file),
                &args.batching,
            )?;
        }
        Command::Get {
            id,
            include_deleted,
        } => {
            let id = EntityId::parse(&id)?;
            let db = ctx.open(Access::Read)?;
            let entity = if include_deleted {
                db.get_including_deleted(&id)?
            } else {
                db.get(&id)?
            };
            let entity = entity.ok_or_else(|| rem::Error::NotFound(id.to_string()))?;
            print_rows(ctx.format, &Rows::single(entity.to_json()))?;
        }
        Command::Delete { id } => {
            let id = EntityId::parse(&id)?;
            let db = ctx.open(Access::Write)?;
            let e = db.delete(&id)?;
            outln!("deleted {} from {}", e.id, e.table);
        }
        Command::Edge(cmd) => edge_command(&ctx, cmd)?,
        Command::Edges {
            entity,
            direction,
            edge_type,
        } => {
            let direction = rem::Direction::parse(&direction)?;
            let db = ctx.open(Access::Read)?;
            let id = db.resolve(&entity)?.id;
            let edges = db.edges_of(&id, direction, edge_type.as_deref())?;
            let rows: Vec<Value> = edges.iter().map(edge_json).collect();
            if rows.is_empty() && ctx.format == Format::Table {
                errln!("no edges");
            }
            print_rows(ctx.format, &Rows::from_objects(rows))?;
        }
        Command::Traverse {
            entity,
            depth,
            direction,
            edge_type,
            dfs,
        } => {
            let options = rem::TraverseOptions {
                depth,
                direction: rem::Direction::parse(&direction)?,
                edge_type,
                dfs,
            };
            let db = ctx.open(Access::Read)?;
            let start = db.resolve(&entity)?.id;
            let nodes = db.traverse(&start, &options)?;
            let rows: Vec<Vec<Value>> = nodes
                .iter()
                .map(|n| {
                    vec![
                        json!(n.depth),
                        json!(n.id.to_string()),
                        json!(n.table),
                        json!(n.edge_type),
                        json!(n.path.iter().map(|p| p.to_string()).collect::<Vec<_>>()),
                    ]
                })
                .collect();
            print_rows(
                ctx.format,
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
            let direction = rem::Direction::parse(&direction)?;
            let db = ctx.open(Access::Read)?;
            let a = db.resolve(&from)?.id;
            let b = db.resolve(&to)?.id;
            match db.shortest_path(&a, &b, direction, edge_type.as_deref(), max_depth)? {
                Some(path) => {
                    let rows: Vec<Vec<Value>> = path
                        .iter()
                        .enumerate()
                        .map(|(i, id)| vec![json!(i), json!(id.to_string())])
                        .collect();
                    print_rows(ctx.format, &Rows::new(vec!["hop", "id"], rows))?;
                }
                None => {
                    return Err(rem::Error::NotFound(format!(
                        "no path from {a} to {b} within {max_depth} hops ({})",
                        direction.name()
                    ))
                    .into())
                }
            }
        }
        Command::Lookup { key } => {
            let db = ctx.open(Access::Read)?;
            let found: Vec<Value> = db.lookup(&key)?.iter().map(|e| e.to_json()).collect();
            if found.is_empty() && ctx.format == Format::Table {
                errln!("no entity has key '{key}'");
            }
            print_rows(ctx.format, &Rows::from_objects(found))?;
        }
        Command::Search(args) => {
            let filter = match &args.predicate {
                Some(p) => rem::Filter::parse(p)?,
                None => rem::Filter::All,
            };
            let options = rem::SearchOptions {
                top_k: args.top_k,
                min_score: args.min_score,
                filter,
                alt: args.alt,
                ef_search: None,
            };
            let db = ctx.open(Access::ReadSaving)?;
            let result = db.search(args.schema.as_deref(), &args.query, &options)?;
            if result.table_detected {
                errln!(
                    "searched table '{}' (chosen by similarity to its description)",
                    result.table
                );
            }
            let rows: Vec<Value> = result
                .hits
                .iter()
                .map(|h| {
                    let mut v = h.entity.to_json();
                    if let Value::Object(m) = &mut v {
                        let mut out = serde_json::Map::new();
                        out.insert(
                            "score".into(),
                            json!((f64::from(h.score) * 10_000.0).round() / 10_000.0),
                        );
                        out.extend(std::mem::take(m));
                        return Value::Object(out);
                    }
                    v
                })
                .collect();
            if rows.is_empty() && ctx.format == Format::Table {
                errln!("no results in '{}'", result.table);
            }
            print_rows(ctx.format, &Rows::from_objects(rows))?;
        }
        Command::Query {
            sql,
            include_deleted,
        } => {
            use rem_sql::Sql;
            let db = ctx.open(Access::ReadSaving)?;
            let stream =
                db.sql_with(&sql, &rem_sql::SqlOptions::include_deleted(include_deleted))?;
            let format = match ctx.format {
                Format::Table => rem_sql::OutputFormat::Table,
                Format::Json | Format::Parquet => rem_sql::OutputFormat::Json,
                Format::Jsonl => rem_sql::OutputFormat::Jsonl,
                Format::Csv => rem_sql::OutputFormat::Csv,
            };
            crate::io::with_out(|w| -> Result<()> {
                let mut out = std::io::BufWriter::new(w);
                rem_sql::write_batches(stream, format, &mut out)?;
                out.flush().context("cannot write the result")
            })?;
        }
        Command::Export(args) => export_command(&ctx, args)?,
        Command::Ingest {
            input,
            schema,
            recursive,
        } => return ingest_command(&ctx, &input, schema, recursive),
        Command::Verify => {
            let db = ctx.open(Access::Read)?;
            let report = db.verify()?;
            if !report.is_ok() {
                for p in &report.problems {
                    errln!("problem: {p}");
                }
                bail!(
                    "verification found {} problem(s) in {}",
                    report.problems.len(),
                    db.path().display()
                );
            }
            outln!(
                "ok: {} entities, {} index entries and {} change records agree",
                report.entities,
                report.index_entries,
                report.change_records
            );
        }
        Command::Stats => {
            let db = ctx.open(Access::Read)?;
            let s = db.stats()?;
            if matches!(ctx.format, Format::Json | Format::Jsonl) {
                let v = json!({
                    "path": db.path().display().to_string(),
                    "tenant": db.tenant(),
                    "last_seq": s.last_seq,
                    "disk_bytes": s.disk_bytes,
                    "tables": s.tables.iter().map(|(t, live, del)| json!({"table": t, "rows": live, "deleted": del})).collect::<Vec<_>>(),
                    "column_families": s.column_families.iter().map(|(cf, keys, bytes)| json!({"name": cf, "estimated_keys": keys, "bytes": bytes})).collect::<Vec<_>>(),
                });
                print_json(ctx.format, &v)?;
            } else {
                let rows = s
                    .tables
                    .iter()
                    .map(|(t, live, del)| vec![json!(t), json!(live), json!(del)])
                    .collect();
                print_rows(
                    ctx.format,
                    &Rows::new(vec!["table", "rows", "deleted"], rows),
                )?;
                if ctx.format == Format::Table {
                    let rows = s
                        .column_families
                        .iter()
                        .map(|(cf, k, b)| vec![json!(cf), json!(k), json!(b)])
                        .collect();
                    print_rows(
                        ctx.format,
                        &Rows::new(vec!["column family", "estimated keys", "bytes"], rows),
                    )?;
                    outln!(
                        "disk use: {} bytes; last sequence number: {}",
                        s.disk_bytes,
                        s.last_seq
                    );
                }
            }
        }
        Command::Serve { host, port } => {
            let db = ctx.open(Access::Write)?;
            if ctx.config.get("P8_REPLICATION_MODE") == Some("replica") {
                return crate::server::replicate(&ctx.config, db, None, true, &|| {
                    ctx.open(Access::Write)
                });
            }
            return crate::server::serve(&ctx.config, db, host, port);
        }
        Command::Replicate { primary, follow } => {
            let db = ctx.open(Access::Write)?;
            return crate::server::replicate(&ctx.config, db, primary, follow, &|| {
                ctx.open(Access::Write)
            });
        }
        Command::Replication(cmd) => {
            let access = match cmd {
                crate::cli::ReplicationCommand::Promote => Access::Write,
                _ => Access::Read,
            };
            let db = ctx.open(access)?;
            return crate::server::replication(db, ctx.format, cmd);
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
            print_rows(
                ctx.format,
                &Rows::new(
                    vec!["setting", "value", "source", "config.toml key", "meaning"],
                    rows,
                ),
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn schema_command(ctx: &Ctx, cmd: SchemaCommand) -> Result<()> {
    match cmd {
        SchemaCommand::Add {
            source,
            name,
            template,
            output,
        } => {
            let doc = match (source, template) {
                (Some(src), None) => Schema::from_source(&src)?.document,
                (None, Some(t)) => {
                    let name = name.unwrap_or_default();
                    let doc = rem::template(&t, &name.to_ascii_lowercase()).ok_or_else(|| {
                        anyhow!("unknown template '{t}'; see `rem schema templates`")
                    })?;
                    // Parse before writing or registering, so a bad name fails early.
                    Schema::from_document(doc.clone())?;
                    if let Some(out) = output {
                        write_schema_file(&out, &doc)?;
                        outln!(
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
            let db = ctx.open(Access::Write)?;
            let schema = db.register_schema(doc)?;
            outln!("registered schema '{}'", schema.name);
        }
        SchemaCommand::List => {
            let db = ctx.open(Access::Read)?;
            let rows = db
                .schemas()?
                .iter()
                .map(|s| {
                    vec![
                        json!(s.name),
                        json!(s.category),
                        json!(s.version),
                        json!(s.key_field),
                        json!(s.indexed_fields),
                        json!(s.embedding_fields),
                        json!(s.fully_qualified_name),
                        json!(s.description),
                    ]
                })
                .collect();
            print_rows(
                ctx.format,
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
            let db = ctx.open(Access::Read)?;
            let schema = db.schema(&name)?;
            // A schema is a document: shown as JSON whatever the format, so that
            // `rem schema show x > x.json` can be edited and re-added.
            outln!("{}", serde_json::to_string_pretty(&schema.document)?);
        }
        SchemaCommand::Templates => {
            let rows = rem::TEMPLATES
                .iter()
                .map(|(n, d)| vec![json!(n), json!(d)])
                .collect();
            print_rows(
                ctx.format,
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
    ctx: &Ctx,
    db: &Database,
    table: &str,
    input: impl Read,
    args: &BatchArgs,
) -> Result<()> {
    let batch_size = match args.batch_size {
        Some(0) => bail!("--batch-size must be at least 1"),
        Some(n) => n,
        None => ctx.config.batch_size()?,
    };
    // Resolve the table first: an unknown table is an error even for empty input.
    db.schema(table)?;
    let mut written = 0usize;
    let mut batch: Vec<Value> = Vec::with_capacity(batch_size);
    let mut lines: Vec<usize> = Vec::with_capacity(batch_size);
    let flush = |batch: &mut Vec<Value>,
                 lines: &mut Vec<usize>,
                 written: &mut usize|
     -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let records = std::mem::take(batch);
        match db.insert_batch(table, records) {
            Ok(ids) => {
                *written += ids.len();
                if args.ids {
                    crate::io::with_out(|out| -> std::io::Result<()> {
                        for id in ids {
                            writeln!(out, "{id}")?;
                        }
                        out.flush()
                    })?;
                }
                lines.clear();
                Ok(())
            }
            Err(rem::Error::Record { index, source }) => {
                let line = lines.get(index).copied().unwrap_or(0);
                Err(anyhow!("line {line}: {source} (nothing of this batch was written; {written} records in earlier batches were)"))
            }
            Err(e) => Err(e.into()),
        }
    };
    for (n, line) in BufReader::new(input).lines().enumerate() {
        let line_no = n + 1;
        let line = line.with_context(|| format!("cannot read line {line_no}"))?;
        if line.trim().is_empty() {
            continue;
        }
        let record: Value = serde_json::from_str(&line).map_err(|e| {
            anyhow!(
                "line {line_no}: invalid JSON at column {}: {} (nothing of this batch was written; {written} records in earlier batches were)",
                e.column(),
                strip_position(&e.to_string())
            )
        })?;
        batch.push(record);
        lines.push(line_no);
        if batch.len() >= batch_size {
            flush(&mut batch, &mut lines, &mut written)?;
        }
    }
    flush(&mut batch, &mut lines, &mut written)?;
    if args.ids {
        errln!("wrote {written} records to {table}");
    } else {
        outln!("wrote {written} records to {table}");
    }
    Ok(())
}

/// serde_json messages end in " at line L column C"; callers say where themselves.
fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

fn os_message(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

fn init_logging() {
    let level = std::env::var("P8_LOG_LEVEL")
        .unwrap_or_else(|_| "warn".into())
        .to_ascii_lowercase();
    let filter = tracing_subscriber::EnvFilter::try_new(&level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .without_time();
    let _ = if std::env::var("P8_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json")) {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

fn edge_json(e: &rem::Edge) -> Value {
    json!({
        "src": e.src.to_string(),
        "edge_type": e.edge_type,
        "dst": e.dst,
        "weight": e.weight,
        "properties": Value::Object(e.properties.clone()),
        "created_at": rem::format_ts(&e.created_at),
    })
}

fn edge_command(ctx: &Ctx, cmd: EdgeCommand) -> Result<()> {
    match cmd {
        EdgeCommand::Add {
            src,
            dst,
            edge_type,
            props,
            weight,
        } => {
            let properties = match props {
                None => serde_json::Map::new(),
                Some(text) => match serde_json::from_str::<Value>(&text) {
                    Ok(Value::Object(m)) => m,
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
            let db = ctx.open(Access::Write)?;
            let edge = db.add_edge(
                &src,
                &dst,
                &edge_type,
                &rem::EdgeOptions { weight, properties },
            )?;
            print_rows(ctx.format, &Rows::single(edge_json(&edge)))?;
        }
        EdgeCommand::Rm {
            src,
            dst,
            edge_type,
        } => {
            let db = ctx.open(Access::Write)?;
            if db.remove_edge(&src, &dst, &edge_type)? {
                outln!("removed {src} -[{edge_type}]-> {dst}");
            } else {
                return Err(
                    rem::Error::NotFound(format!("edge {src} -[{edge_type}]-> {dst}")).into(),
                );
            }
        }
    }
    Ok(())
}

fn export_command(ctx: &Ctx, args: ExportArgs) -> Result<()> {
    let format = match ctx.format_flag {
        Some(Format::Parquet) => rem_sql::ExportFormat::Parquet,
        Some(Format::Csv) => rem_sql::ExportFormat::Csv,
        Some(Format::Jsonl) | Some(Format::Json) => rem_sql::ExportFormat::Jsonl,
        Some(Format::Table) => bail!("--format for export is parquet, csv or jsonl"),
        None if args.all => rem_sql::ExportFormat::Parquet,
        None => {
            rem_sql::ExportFormat::from_path(&args.output).unwrap_or(rem_sql::ExportFormat::Parquet)
        }
    };
    let compression = match (&args.compression, format) {
        (Some(c), _) => c.clone(),
        (None, rem_sql::ExportFormat::Parquet) => ctx
            .config
            .get("P8_PARQUET_COMPRESSION")
            .unwrap_or("zstd")
            .to_string(),
        (None, _) => "none".to_string(),
    };
    let options = rem_sql::ExportOptions {
        format,
        compression,
        predicate: args.predicate,
        include_embeddings: args.include_embeddings,
        row_group_size: ctx.config.parquet_row_group_size()?,
    };
    let db = ctx.open(Access::ReadSaving)?;
    let started = std::time::Instant::now();
    let reports = match &args.table {
        Some(table) => vec![rem_sql::export_table(&db, table, &args.output, &options)?],
        None => rem_sql::export_all(&db, &args.output, &options)?,
    };
    let secs = started.elapsed().as_secs_f64();
    for r in &reports {
        errln!(
            "exported {} rows of {} to {} ({} bytes)",
            r.rows,
            r.table,
            r.path.display(),
            r.bytes
        );
    }
    let rows: Vec<Value> = reports
        .iter()
        .map(|r| json!({"table": r.table, "path": r.path.display().to_string(), "rows": r.rows, "bytes": r.bytes}))
        .collect();
    errln!("{} file(s) in {secs:.2} s", reports.len());
    // --format named the file format; the summary is then JSON.
    let summary = if ctx.format_flag.is_some() {
        Format::Json
    } else {
        ctx.format
    };
    print_rows(summary, &Rows::from_objects(rows))?;
    Ok(())
}

fn ingest_command(ctx: &Ctx, path: &Path, schema: String, recursive: bool) -> Result<ExitCode> {
    let db = ctx.open(Access::Write)?;
    let options = rem_ingest::IngestOptions { schema, recursive };
    // A progress bar for folders, on a terminal only.
    let bar =
        (path.is_dir() && !crate::io::captured() && std::io::stderr().is_terminal()).then(|| {
            let bar = indicatif::ProgressBar::new(0);
            bar.set_style(
                indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} files {msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar
        });
    let reports = rem_ingest::ingest(&db, path, &options, |done, total, file| {
        if let Some(bar) = &bar {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
            bar.set_message(
                file.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            );
        }
    })?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let mut failed = 0;
    let rows: Vec<Value> = reports
        .iter()
        .map(|r| {
            let (status, chunks, reason) = match &r.outcome {
                rem_ingest::Outcome::Completed { chunks } => ("completed", Some(*chunks), None),
                rem_ingest::Outcome::Unchanged => ("unchanged", None, None),
                rem_ingest::Outcome::Failed { reason } => {
                    failed += 1;
                    ("failed", None, Some(reason.clone()))
                }
            };
            json!({"uri": r.uri, "file_type": r.file_type, "size_bytes": r.size_bytes,
                   "status": status, "chunks": chunks, "reason": reason})
        })
        .collect();
    print_rows(ctx.format, &Rows::from_objects(rows))?;
    let chunks: usize = reports
        .iter()
        .map(|r| match r.outcome {
            rem_ingest::Outcome::Completed { chunks } => chunks,
            _ => 0,
        })
        .sum();
    errln!(
        "{} file(s): {} chunk(s) written, {failed} failed",
        reports.len(),
        chunks
    );
    Ok(if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
