//! The server of `rem serve` and `rem replicate --follow`: the database service and the
//! replication service on one port, both behind the token interceptor.

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use rem::Database;
use rem_replication::{Auth, ReplicaStatus, ReplicationService};
use tokio::sync::mpsc;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::{Request, Response, Status, Streaming};

use crate::error::{status, Detail, Failure};
use crate::ops;
use crate::proto::database_server::{Database as DatabaseRpc, DatabaseServer};
use crate::proto::*;
use crate::TENANT_HEADER;

/// Largest message either side accepts (an insert batch, an SQL or export chunk).
pub(crate) const MAX_MESSAGE: usize = 64 << 20;
/// Bytes per streamed chunk of an SQL result or an export.
const CHUNK: usize = 1 << 20;
/// Largest file a client may send for ingestion.
const MAX_INGEST_FILE: usize = 1 << 30;

/// Settings of a server.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Replication settings (batch size, retention, keep-alive) and TLS.
    pub replication: rem_replication::ServeOptions,
    /// The token every request must carry (never empty; see
    /// [`rem_replication::server_token`]).
    pub token: String,
    /// This process's instance id, also written to the `SERVER` file.
    pub instance: String,
}

/// The database service of one database.
struct DatabaseService {
    db: Database,
    instance: String,
    replica: Option<Arc<ReplicaStatus>>,
    subscribers: Arc<AtomicUsize>,
}

/// The tenant a request names, if any.
fn tenant_of<T>(req: &Request<T>) -> Option<String> {
    req.metadata()
        .get(TENANT_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|t| !t.is_empty())
        .map(String::from)
}

fn for_tenant(db: &Database, tenant: Option<String>) -> rem::Result<Database> {
    match tenant {
        Some(t) if t != db.tenant() => db.for_tenant(&t),
        _ => Ok(db.clone()),
    }
}

fn join_error(e: tokio::task::JoinError) -> Status {
    Status::internal(format!("the operation failed: {e}"))
}

impl DatabaseService {
    /// The database of the request's tenant (opening a tenant may write its built-ins,
    /// so it runs on a blocking thread).
    async fn tenant_db<T>(&self, req: &Request<T>) -> Result<Database, Status> {
        let tenant = tenant_of(req);
        let base = self.db.clone();
        tokio::task::spawn_blocking(move || for_tenant(&base, tenant))
            .await
            .map_err(join_error)?
            .map_err(|e| status(&e))
    }

    /// Runs `f` on the request's tenant's database on a blocking thread.
    async fn unary<Req, Rep, E>(
        &self,
        req: Request<Req>,
        f: impl FnOnce(&Database, Req) -> Result<Rep, E> + Send + 'static,
    ) -> Result<Response<Rep>, Status>
    where
        Req: Send + 'static,
        Rep: Send + 'static,
        E: Failure + Send + 'static,
    {
        let tenant = tenant_of(&req);
        let db = self.db.clone();
        let msg = req.into_inner();
        let result = tokio::task::spawn_blocking(move || match for_tenant(&db, tenant) {
            Ok(db) => f(&db, msg).map_err(|e| status(&e)),
            Err(e) => Err(status(&e)),
        })
        .await
        .map_err(join_error)?;
        result.map(Response::new)
    }

    /// A server stream produced by `run` on a blocking thread, over the request's
    /// tenant's database (an error opening it is the stream's one item).
    fn blocking_stream<Req, T>(
        &self,
        req: Request<Req>,
        run: fn(&Database, Req, mpsc::Sender<Result<T, Status>>),
    ) -> Response<Stream<T>>
    where
        Req: Send + 'static,
        T: Send + 'static,
    {
        let tenant = tenant_of(&req);
        let base = self.db.clone();
        let msg = req.into_inner();
        let (tx, rx) = mpsc::channel(4);
        tokio::task::spawn_blocking(move || match for_tenant(&base, tenant) {
            Ok(db) => run(&db, msg, tx),
            Err(e) => {
                let _ = tx.blocking_send(Err(status(&e)));
            }
        });
        Response::new(ReceiverStream::new(rx))
    }

    /// Runs `f` on the server's own database right on the async worker: for point reads
    /// (a few microseconds against RocksDB's block cache), where handing over to a
    /// blocking thread would cost more than the read. Another tenant, whose database may
    /// have to be opened, goes through [`Self::unary`].
    async fn point_read<Req, Rep, E>(
        &self,
        req: Request<Req>,
        f: impl FnOnce(&Database, Req) -> Result<Rep, E> + Send + 'static,
    ) -> Result<Response<Rep>, Status>
    where
        Req: Send + 'static,
        Rep: Send + 'static,
        E: Failure + Send + 'static,
    {
        match tenant_of(&req) {
            Some(t) if t != self.db.tenant() => self.unary(req, f).await,
            _ => f(&self.db, req.into_inner())
                .map(Response::new)
                .map_err(|e| status(&e)),
        }
    }
}

/// A writer that sends what is written as messages of about [`CHUNK`] bytes.
struct ChunkWriter<T> {
    tx: mpsc::Sender<Result<T, Status>>,
    buf: Vec<u8>,
    wrap: fn(Vec<u8>) -> T,
}

impl<T> ChunkWriter<T> {
    fn new(tx: mpsc::Sender<Result<T, Status>>, wrap: fn(Vec<u8>) -> T) -> ChunkWriter<T> {
        ChunkWriter {
            tx,
            buf: Vec::with_capacity(CHUNK),
            wrap,
        }
    }

    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let data = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.tx.blocking_send(Ok((self.wrap)(data))).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client went away")
        })
    }
}

impl<T> Write for ChunkWriter<T> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

/// Streams the result of `sql` as an Arrow IPC stream into `tx`.
fn run_sql(db: &Database, req: SqlRequest, tx: mpsc::Sender<Result<SqlChunk, Status>>) {
    use rem_sql::arrow::ipc::writer::StreamWriter;
    use rem_sql::Sql;
    let fail = |tx: &mpsc::Sender<Result<SqlChunk, Status>>, e: Status| {
        let _ = tx.blocking_send(Err(e));
    };
    let stream = match db.sql_with(
        &req.sql,
        &rem_sql::SqlOptions::include_deleted(req.include_deleted),
    ) {
        Ok(s) => s,
        Err(e) => return fail(&tx, status(&e)),
    };
    let schema = stream.schema();
    let mut out = ChunkWriter::new(tx.clone(), |ipc| SqlChunk { ipc });
    let encode =
        |e: &dyn std::fmt::Display| Status::internal(format!("cannot encode the result: {e}"));
    let mut writer = match StreamWriter::try_new(&mut out, &schema) {
        Ok(w) => w,
        Err(e) => return fail(&tx, encode(&e)),
    };
    for batch in stream {
        let batch = match batch {
            Ok(b) => b,
            Err(e) => return fail(&tx, status(&e)),
        };
        if let Err(e) = writer.write(&batch) {
            return fail(&tx, encode(&e));
        }
        // Each batch goes out as soon as it is encoded.
        if writer.flush().is_err() {
            return;
        }
    }
    if let Err(e) = writer.finish() {
        return fail(&tx, encode(&e));
    }
    drop(writer);
    let _ = out.flush();
}

fn run_export(db: &Database, req: ExportRequest, tx: mpsc::Sender<Result<ExportChunk, Status>>) {
    let result = ops::export_options(&req).and_then(|options| {
        let mut out = ChunkWriter::new(tx.clone(), |data| ExportChunk {
            data,
            ..Default::default()
        });
        let (table, rows) = rem_sql::export_to(db, &req.table, &mut out, &options)?;
        out.flush()
            .map_err(|e| rem_sql::Error::InvalidInput(format!("cannot send the export: {e}")))?;
        Ok((table, rows))
    });
    let msg = match result {
        Ok((table, rows)) => Ok(ExportChunk {
            done: true,
            rows: rows as u64,
            table,
            ..Default::default()
        }),
        Err(e) => Err(status(&e)),
    };
    let _ = tx.blocking_send(msg);
}

type Stream<T> = ReceiverStream<Result<T, Status>>;

#[tonic::async_trait]
impl DatabaseRpc for DatabaseService {
    async fn hello(&self, req: Request<HelloRequest>) -> Result<Response<HelloReply>, Status> {
        let instance = self.instance.clone();
        self.unary(req, move |db, _| {
            Ok::<_, rem::Error>(HelloReply {
                instance,
                mode: db.replication_role().mode().to_string(),
                tenant: db.tenant().to_string(),
                last_seq: db.last_seq(),
            })
        })
        .await
    }

    async fn register_schema(
        &self,
        req: Request<RegisterSchemaRequest>,
    ) -> Result<Response<SchemaReply>, Status> {
        self.unary(req, |db, r| ops::register_schema(db, &r)).await
    }

    async fn list_schemas(
        &self,
        req: Request<ListSchemasRequest>,
    ) -> Result<Response<ListSchemasReply>, Status> {
        self.unary(req, |db, _| ops::list_schemas(db)).await
    }

    async fn get_schema(
        &self,
        req: Request<GetSchemaRequest>,
    ) -> Result<Response<SchemaReply>, Status> {
        self.unary(req, |db, r| ops::get_schema(db, &r)).await
    }

    type InsertStream = Stream<InsertReply>;

    async fn insert(
        &self,
        req: Request<Streaming<InsertRequest>>,
    ) -> Result<Response<Self::InsertStream>, Status> {
        let db = self.tenant_db(&req).await?;
        let mut incoming = req.into_inner();
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(async move {
            let mut table = String::new();
            loop {
                let msg = match incoming.message().await {
                    Ok(Some(m)) => m,
                    Ok(None) => break,
                    // The client went away: nothing of a batch not received is written.
                    Err(_) => break,
                };
                if !msg.table.is_empty() {
                    table = msg.table.clone();
                }
                if table.is_empty() {
                    let _ = tx
                        .send(Err(Status::invalid_argument(
                            "the first insert message must name the table",
                        )))
                        .await;
                    break;
                }
                let (db, t) = (db.clone(), table.clone());
                let written = tokio::task::spawn_blocking(move || {
                    ops::insert(&db, &t, &msg.records_json, msg.vectors)
                })
                .await;
                let reply = match written {
                    Ok(Ok(ids)) => Ok(InsertReply { ids, error: None }),
                    Ok(Err(rem::Error::Record { index, source })) => Ok(InsertReply {
                        ids: vec![],
                        error: Some({
                            let d = Detail::of(&source);
                            RecordError {
                                index: index as u64,
                                message: source.to_string(),
                                kind: source.kind().name().to_string(),
                                code: d.code,
                                field: d.field.unwrap_or_default(),
                                rule: d.rule.unwrap_or_default(),
                            }
                        }),
                    }),
                    Ok(Err(e)) => Err(status(&e)),
                    Err(e) => Err(join_error(e)),
                };
                let last = !matches!(&reply, Ok(r) if r.error.is_none());
                if tx.send(reply).await.is_err() || last {
                    break;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn delete(&self, req: Request<DeleteRequest>) -> Result<Response<DeleteReply>, Status> {
        self.unary(req, |db, r| ops::delete(db, &r)).await
    }

    async fn get(&self, req: Request<GetRequest>) -> Result<Response<EntityReply>, Status> {
        self.point_read(req, |db, r| ops::get(db, &r)).await
    }

    async fn lookup(&self, req: Request<LookupRequest>) -> Result<Response<EntitiesReply>, Status> {
        self.point_read(req, |db, r| ops::lookup(db, &r)).await
    }

    async fn search(&self, req: Request<SearchRequest>) -> Result<Response<SearchReply>, Status> {
        self.unary(req, |db, r| ops::search(db, &r)).await
    }

    type SqlStream = Stream<SqlChunk>;

    async fn sql(&self, req: Request<SqlRequest>) -> Result<Response<Self::SqlStream>, Status> {
        Ok(self.blocking_stream(req, run_sql))
    }

    async fn add_edge(&self, req: Request<AddEdgeRequest>) -> Result<Response<EdgeReply>, Status> {
        self.unary(req, |db, r| ops::add_edge(db, &r)).await
    }

    async fn remove_edge(
        &self,
        req: Request<RemoveEdgeRequest>,
    ) -> Result<Response<RemoveEdgeReply>, Status> {
        self.unary(req, |db, r| ops::remove_edge(db, &r)).await
    }

    async fn edges(&self, req: Request<EdgesRequest>) -> Result<Response<EdgesReply>, Status> {
        self.unary(req, |db, r| ops::edges(db, &r)).await
    }

    async fn traverse(
        &self,
        req: Request<TraverseRequest>,
    ) -> Result<Response<TraverseReply>, Status> {
        self.unary(req, |db, r| ops::traverse(db, &r)).await
    }

    async fn path(&self, req: Request<PathRequest>) -> Result<Response<PathReply>, Status> {
        self.unary(req, |db, r| ops::path(db, &r)).await
    }

    type IngestStream = Stream<IngestReport>;

    async fn ingest(
        &self,
        req: Request<Streaming<IngestChunk>>,
    ) -> Result<Response<Self::IngestStream>, Status> {
        let db = self.tenant_db(&req).await?;
        let mut incoming = req.into_inner();
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(async move {
            let mut options: Option<rem_ingest::IngestOptions> = None;
            let mut chunker: Option<Arc<rem_ingest::Chunker>> = None;
            let mut data: Vec<u8> = Vec::new();
            loop {
                let msg = match incoming.message().await {
                    Ok(Some(m)) => m,
                    _ => break,
                };
                if options.is_none() {
                    let schema = if msg.schema.is_empty() {
                        "resources".to_string()
                    } else {
                        msg.schema.clone()
                    };
                    let db2 = db.clone();
                    let s = schema.clone();
                    let prepared = tokio::task::spawn_blocking(move || {
                        db2.schema(&s)?;
                        rem_ingest::Chunker::for_database(&db2)
                    })
                    .await;
                    match prepared {
                        Ok(Ok(c)) => chunker = Some(Arc::new(c)),
                        Ok(Err(e)) => {
                            let _ = tx.send(Err(status(&e))).await;
                            break;
                        }
                        Err(e) => {
                            let _ = tx.send(Err(join_error(e))).await;
                            break;
                        }
                    }
                    options = Some(rem_ingest::IngestOptions {
                        schema,
                        recursive: false,
                    });
                }
                if data.len() + msg.data.len() > MAX_INGEST_FILE {
                    let _ = tx
                        .send(Err(Status::invalid_argument(format!(
                            "{} is larger than {} MiB, the most a server ingests in one file",
                            msg.name,
                            MAX_INGEST_FILE >> 20
                        ))))
                        .await;
                    break;
                }
                data.extend_from_slice(&msg.data);
                if !msg.last {
                    continue;
                }
                let bytes = std::mem::take(&mut data);
                let (db2, opts) = (db.clone(), options.clone().unwrap_or_default());
                let Some(ch) = chunker.clone() else { break };
                let report = tokio::task::spawn_blocking(move || {
                    match rem_ingest::ingest_bytes(&db2, &msg.uri, &msg.name, &bytes, &opts, &ch) {
                        Ok(r) => ops::ingest_report(r),
                        Err(e) => IngestReport {
                            uri: msg.uri.clone(),
                            size_bytes: bytes.len() as u64,
                            status: "refused".into(),
                            reason: e.to_string(),
                            error_kind: e.kind().name().to_string(),
                            ..Default::default()
                        },
                    }
                })
                .await
                .map_err(join_error);
                if tx.send(report).await.is_err() {
                    break;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    type ExportStream = Stream<ExportChunk>;

    async fn export(
        &self,
        req: Request<ExportRequest>,
    ) -> Result<Response<Self::ExportStream>, Status> {
        Ok(self.blocking_stream(req, run_export))
    }

    async fn stats(&self, req: Request<StatsRequest>) -> Result<Response<StatsReply>, Status> {
        self.unary(req, |db, _| ops::stats(db)).await
    }

    async fn verify(&self, req: Request<VerifyRequest>) -> Result<Response<VerifyReply>, Status> {
        self.unary(req, |db, _| ops::verify(db)).await
    }

    async fn checksum(
        &self,
        req: Request<ChecksumRequest>,
    ) -> Result<Response<ChecksumReply>, Status> {
        self.unary(req, |db, _| ops::checksum(db)).await
    }

    async fn promote(
        &self,
        req: Request<PromoteRequest>,
    ) -> Result<Response<PromoteReply>, Status> {
        self.unary(req, |db, _| ops::promote(db)).await
    }

    async fn status(&self, req: Request<StatusRequest>) -> Result<Response<StatusReply>, Status> {
        let replica = self.replica.clone();
        let replicas = self.subscribers.load(Ordering::Relaxed) as u64;
        self.unary(req, move |db, _| {
            ops::status(db, replica.as_deref(), true, replicas)
        })
        .await
    }
}

/// The connections `listener` accepts, with Nagle's algorithm off. (The server
/// builder's `tcp_nodelay` applies only to listeners it binds itself; without this a
/// small reply waits for the client's delayed ACK, about 40 ms.)
fn no_delay(
    listener: tokio::net::TcpListener,
) -> impl tokio_stream::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    use tokio_stream::StreamExt;
    TcpListenerStream::new(listener).map(|conn| {
        let conn = conn?;
        conn.set_nodelay(true)?;
        Ok(conn)
    })
}

/// Serves the database and replication services for `db` on `listener` until
/// `shutdown` completes. `replica` is the live state when `db` follows a primary.
pub async fn serve(
    db: Database,
    listener: tokio::net::TcpListener,
    options: ServerOptions,
    replica: Option<Arc<ReplicaStatus>>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> crate::Result<()> {
    let auth = Auth::new(&options.token)?;
    let mut builder = tonic::transport::Server::builder().tcp_nodelay(true);
    if let Some(tls) = &options.replication.tls {
        let identity = tonic::transport::Identity::from_pem(&tls.cert_pem, &tls.key_pem);
        builder = builder
            .tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))
            .map_err(|e| {
                rem::Error::Config(format!(
                    "bad TLS certificate or key: {}",
                    rem_replication::source_message(&e)
                ))
            })?;
    }
    // Stopped with the server: it holds a handle on the database, which a replica
    // must close to install a snapshot.
    let retention = rem_replication::spawn_retention(db.clone(), options.replication.retention);
    let replication =
        ReplicationService::new(db.clone(), options.replication.clone(), replica.clone());
    let database = DatabaseService {
        db,
        instance: options.instance.clone(),
        replica,
        subscribers: replication.subscriber_count(),
    };
    let database = DatabaseServer::new(database)
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE);
    let served = builder
        .add_service(replication.into_server(auth.clone()))
        .add_service(tonic::service::interceptor::InterceptedService::new(
            database, auth,
        ))
        .serve_with_incoming_shutdown(no_delay(listener), shutdown)
        .await
        .map_err(|e| {
            crate::Error::Connection(format!(
                "server failed: {}",
                rem_replication::source_message(&e)
            ))
        });
    if let Some(task) = retention {
        task.abort();
        let _ = task.await;
    }
    served
}
