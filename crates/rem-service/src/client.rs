//! The client of a running server: every operation of the database service, as
//! blocking calls (the CLI is synchronous); streams are driven by the client's own
//! small runtime.

use std::future::Future;
use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::Channel;
use tonic::{Request, Response, Status, Streaming};

use crate::error::{Error, Result};
use crate::proto::database_client::DatabaseClient;
use crate::proto::*;
use crate::server::MAX_MESSAGE;
use crate::TENANT_HEADER;

/// How to reach a server.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// The server's token.
    pub token: String,
    /// TLS, when the server serves TLS.
    pub tls: Option<rem_replication::ClientTls>,
    /// The tenant requests act for (default: the server's).
    pub tenant: Option<String>,
    /// How long connecting may take.
    pub connect_timeout: Duration,
}

/// A connection to a server.
#[derive(Clone)]
pub struct Client {
    rt: Arc<tokio::runtime::Runtime>,
    rpc: DatabaseClient<Channel>,
    token: MetadataValue<Ascii>,
    tenant: Option<MetadataValue<Ascii>>,
    address: String,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("address", &self.address)
            .finish()
    }
}

/// The connection error of a failed call, with the server's address.
fn lost(address: &str, e: Status) -> Error {
    match Error::from_status(e) {
        Error::Connection(m) => Error::Connection(format!("{m} ({address})")),
        other => other,
    }
}

impl Client {
    /// Connects to the server at `address` (`host:port`).
    pub fn connect(address: &str, options: &ClientOptions) -> Result<Client> {
        // One worker drives the connection between calls too: it answers the server's
        // pings and its GOAWAY at shutdown, which a current-thread runtime (driven only
        // inside `block_on`) would leave unanswered while the client is idle, holding up
        // a graceful server shutdown.
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .map_err(|e| Error::Connection(format!("cannot start the client runtime: {e}")))?;
        let channel = rt
            .block_on(rem_replication::channel(
                address,
                options.connect_timeout,
                options.tls.as_ref(),
            ))
            .map_err(|e| Error::Connection(e.to_string()))?;
        let token = MetadataValue::try_from(options.token.trim())
            .map_err(|_| Error::Unauthenticated("the token must be printable ASCII".to_string()))?;
        let tenant = match &options.tenant {
            Some(t) => Some(MetadataValue::try_from(t.as_str()).map_err(|_| {
                Error::Engine(rem::Error::InvalidInput(format!("bad tenant name '{t}'")))
            })?),
            None => None,
        };
        let rpc = DatabaseClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE);
        Ok(Client {
            rt: Arc::new(rt),
            rpc,
            token,
            tenant,
            address: address.to_string(),
        })
    }

    /// The server's address.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// A request with the token and tenant.
    fn request<T>(&self, msg: T) -> Request<T> {
        let mut req = Request::new(msg);
        req.metadata_mut()
            .insert(rem_replication::TOKEN_HEADER, self.token.clone());
        if let Some(t) = &self.tenant {
            req.metadata_mut().insert(TENANT_HEADER, t.clone());
        }
        req
    }

    /// Runs one unary call.
    fn unary<Req, Rep, Fut>(
        &self,
        msg: Req,
        call: impl FnOnce(DatabaseClient<Channel>, Request<Req>) -> Fut,
    ) -> Result<Rep>
    where
        Fut: Future<Output = Result<Response<Rep>, Status>>,
    {
        let req = self.request(msg);
        self.rt
            .block_on(call(self.rpc.clone(), req))
            .map(Response::into_inner)
            .map_err(|e| lost(&self.address, e))
    }

    /// Who is serving.
    pub fn hello(&self) -> Result<HelloReply> {
        self.unary(HelloRequest {}, |mut c, r| async move { c.hello(r).await })
    }

    /// Registers a schema document.
    pub fn register_schema(&self, r: RegisterSchemaRequest) -> Result<SchemaReply> {
        self.unary(r, |mut c, r| async move { c.register_schema(r).await })
    }

    /// Every schema document.
    pub fn list_schemas(&self) -> Result<ListSchemasReply> {
        self.unary(ListSchemasRequest {}, |mut c, r| async move {
            c.list_schemas(r).await
        })
    }

    /// One schema document.
    pub fn get_schema(&self, r: GetSchemaRequest) -> Result<SchemaReply> {
        self.unary(r, |mut c, r| async move { c.get_schema(r).await })
    }

    /// Soft-deletes an entity.
    pub fn delete(&self, r: DeleteRequest) -> Result<DeleteReply> {
        self.unary(r, |mut c, r| async move { c.delete(r).await })
    }

    /// An entity by id.
    pub fn get(&self, r: GetRequest) -> Result<EntityReply> {
        self.unary(r, |mut c, r| async move { c.get(r).await })
    }

    /// Entities by key.
    pub fn lookup(&self, r: LookupRequest) -> Result<EntitiesReply> {
        self.unary(r, |mut c, r| async move { c.lookup(r).await })
    }

    /// Semantic search.
    pub fn search(&self, r: SearchRequest) -> Result<SearchReply> {
        self.unary(r, |mut c, r| async move { c.search(r).await })
    }

    /// Adds an edge.
    pub fn add_edge(&self, r: AddEdgeRequest) -> Result<EdgeReply> {
        self.unary(r, |mut c, r| async move { c.add_edge(r).await })
    }

    /// Removes an edge.
    pub fn remove_edge(&self, r: RemoveEdgeRequest) -> Result<RemoveEdgeReply> {
        self.unary(r, |mut c, r| async move { c.remove_edge(r).await })
    }

    /// Edges of an entity.
    pub fn edges(&self, r: EdgesRequest) -> Result<EdgesReply> {
        self.unary(r, |mut c, r| async move { c.edges(r).await })
    }

    /// Graph walk.
    pub fn traverse(&self, r: TraverseRequest) -> Result<TraverseReply> {
        self.unary(r, |mut c, r| async move { c.traverse(r).await })
    }

    /// Shortest path.
    pub fn path(&self, r: PathRequest) -> Result<PathReply> {
        self.unary(r, |mut c, r| async move { c.path(r).await })
    }

    /// Rows per table, index sizes, disk use.
    pub fn stats(&self) -> Result<StatsReply> {
        self.unary(StatsRequest {}, |mut c, r| async move { c.stats(r).await })
    }

    /// The consistency check.
    pub fn verify(&self) -> Result<VerifyReply> {
        self.unary(
            VerifyRequest {},
            |mut c, r| async move { c.verify(r).await },
        )
    }

    /// Content checksums.
    pub fn checksum(&self) -> Result<ChecksumReply> {
        self.unary(
            ChecksumRequest {},
            |mut c, r| async move { c.checksum(r).await },
        )
    }

    /// Promotes a replica.
    pub fn promote(&self) -> Result<PromoteReply> {
        self.unary(
            PromoteRequest {},
            |mut c, r| async move { c.promote(r).await },
        )
    }

    /// Replication status of the served database.
    pub fn status(&self) -> Result<StatusReply> {
        self.unary(
            StatusRequest {},
            |mut c, r| async move { c.status(r).await },
        )
    }

    /// Opens a bidirectional stream: requests go out through the returned sender,
    /// replies come back on the returned receiver (an error ends it).
    fn duplex<Req, Rep, Fut>(
        &self,
        call: impl FnOnce(DatabaseClient<Channel>, Request<ReceiverStream<Req>>) -> Fut + Send + 'static,
    ) -> (mpsc::Sender<Req>, mpsc::Receiver<Result<Rep>>)
    where
        Req: Send + 'static,
        Rep: Send + 'static,
        Fut: Future<Output = Result<Response<Streaming<Rep>>, Status>> + Send + 'static,
    {
        let (out_tx, out_rx) = mpsc::channel::<Req>(2);
        let (in_tx, in_rx) = mpsc::channel::<Result<Rep>>(4);
        let req = self.request(ReceiverStream::new(out_rx));
        let rpc = self.rpc.clone();
        let address = self.address.clone();
        self.rt.spawn(async move {
            let mut replies = match call(rpc, req).await {
                Ok(r) => r.into_inner(),
                Err(e) => {
                    let _ = in_tx.send(Err(lost(&address, e))).await;
                    return;
                }
            };
            loop {
                match replies.message().await {
                    Ok(Some(r)) => {
                        if in_tx.send(Ok(r)).await.is_err() {
                            break;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        let _ = in_tx.send(Err(lost(&address, e))).await;
                        break;
                    }
                }
            }
        });
        (out_tx, in_rx)
    }

    /// A stream of insert batches into `table`.
    pub fn inserter(&self, table: &str) -> RemoteInserter {
        let (tx, rx) = self.duplex(|mut c, r| async move { c.insert(r).await });
        RemoteInserter {
            client: self.clone(),
            table: table.to_string(),
            tx: Some(tx),
            rx,
        }
    }

    /// A stream of files to ingest into `schema`.
    pub fn ingester(&self, schema: &str) -> RemoteIngester {
        let (tx, rx) = self.duplex(|mut c, r| async move { c.ingest(r).await });
        RemoteIngester {
            client: self.clone(),
            schema: schema.to_string(),
            tx: Some(tx),
            rx,
        }
    }

    /// Runs a server-streaming call and returns its messages one by one.
    fn server_stream<Req, Rep, Fut>(
        &self,
        msg: Req,
        call: impl FnOnce(DatabaseClient<Channel>, Request<Req>) -> Fut,
    ) -> Result<Messages<Rep>>
    where
        Fut: Future<Output = Result<Response<Streaming<Rep>>, Status>>,
    {
        let req = self.request(msg);
        let stream = self
            .rt
            .block_on(call(self.rpc.clone(), req))
            .map_err(|e| lost(&self.address, e))?
            .into_inner();
        Ok(Messages {
            client: self.clone(),
            stream,
        })
    }

    /// Runs SQL; the result arrives as Arrow record batches.
    pub fn sql(&self, r: SqlRequest) -> Result<RemoteBatches> {
        let chunks = self.server_stream(r, |mut c, r| async move { c.sql(r).await })?;
        let reader = ChunkReader {
            chunks,
            buf: Vec::new(),
            pos: 0,
            error: None,
        };
        let shared = Arc::new(std::sync::Mutex::new(None));
        let reader = SharedErrorReader {
            inner: reader,
            error: shared.clone(),
        };
        let batches = rem_sql::arrow::ipc::reader::StreamReader::try_new(reader, None)
            .map_err(|e| take_error(&shared).unwrap_or(Error::Protocol(e.to_string())))?;
        Ok(RemoteBatches {
            batches,
            error: shared,
        })
    }

    /// Exports a table into `out`; returns the rows written.
    pub fn export(&self, r: ExportRequest, out: &mut dyn std::io::Write) -> Result<ExportChunk> {
        let mut chunks = self.server_stream(r, |mut c, r| async move { c.export(r).await })?;
        while let Some(chunk) = chunks.next_message()? {
            if chunk.done {
                return Ok(chunk);
            }
            out.write_all(&chunk.data).map_err(|e| {
                Error::Engine(rem::Error::InvalidInput(format!(
                    "cannot write the export: {e}"
                )))
            })?;
        }
        Err(Error::Connection(format!(
            "the server at {} ended the export before it was complete",
            self.address
        )))
    }
}

/// The messages of a server stream.
struct Messages<T> {
    client: Client,
    stream: Streaming<T>,
}

impl<T> Messages<T> {
    fn next_message(&mut self) -> Result<Option<T>> {
        let address = self.client.address.clone();
        self.client
            .rt
            .block_on(self.stream.message())
            .map_err(|e| lost(&address, e))
    }
}

/// The bytes of an SQL result's IPC stream, message after message.
struct ChunkReader {
    chunks: Messages<SqlChunk>,
    buf: Vec<u8>,
    pos: usize,
    error: Option<Error>,
}

impl Read for ChunkReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.pos >= self.buf.len() {
            match self.chunks.next_message() {
                Ok(Some(c)) => {
                    self.buf = c.ipc;
                    self.pos = 0;
                }
                Ok(None) => return Ok(0),
                Err(e) => {
                    let msg = e.to_string();
                    self.error = Some(e);
                    return Err(std::io::Error::other(msg));
                }
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// A [`ChunkReader`] whose server error is kept where the batches can find it (the
/// IPC reader turns read errors into its own).
struct SharedErrorReader {
    inner: ChunkReader,
    error: Arc<std::sync::Mutex<Option<Error>>>,
}

impl Read for SharedErrorReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let r = self.inner.read(out);
        if let Some(e) = self.inner.error.take() {
            *self.error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
        }
        r
    }
}

fn take_error(shared: &std::sync::Mutex<Option<Error>>) -> Option<Error> {
    shared.lock().unwrap_or_else(|p| p.into_inner()).take()
}

/// The record batches of a remote SQL result.
pub struct RemoteBatches {
    batches: rem_sql::arrow::ipc::reader::StreamReader<SharedErrorReader>,
    error: Arc<std::sync::Mutex<Option<Error>>>,
}

impl RemoteBatches {
    /// Column names and types.
    pub fn schema(&self) -> rem_sql::arrow::datatypes::SchemaRef {
        self.batches.schema()
    }
}

impl Iterator for RemoteBatches {
    type Item = Result<rem_sql::arrow::record_batch::RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        let next = self.batches.next()?;
        Some(next.map_err(|e| take_error(&self.error).unwrap_or(Error::Protocol(e.to_string()))))
    }
}

/// Insert batches sent to a server, each acknowledged before the next is sent.
pub struct RemoteInserter {
    client: Client,
    table: String,
    tx: Option<mpsc::Sender<InsertRequest>>,
    rx: mpsc::Receiver<Result<InsertReply>>,
}

impl RemoteInserter {
    /// Writes one atomic batch of JSON records; returns their ids once committed.
    pub fn write(&mut self, records_json: Vec<String>) -> Result<Vec<String>> {
        self.write_with_vectors(records_json, Vec::new())
    }

    /// [`RemoteInserter::write`] with the caller's vectors, one per record.
    pub fn write_with_vectors(
        &mut self,
        records_json: Vec<String>,
        vectors: Vec<Vec<f32>>,
    ) -> Result<Vec<String>> {
        let Some(tx) = &self.tx else {
            return Err(Error::Connection("the insert stream has ended".into()));
        };
        let msg = InsertRequest {
            table: std::mem::take(&mut self.table),
            records_json,
            vectors: vectors
                .into_iter()
                .map(|values| crate::proto::Vector { values })
                .collect(),
        };
        let rt = self.client.rt.clone();
        let sent = rt.block_on(tx.send(msg));
        let reply = rt.block_on(self.rx.recv());
        match (sent, reply) {
            (_, Some(Ok(InsertReply { error: Some(e), .. }))) => {
                self.tx = None;
                Err(Error::Record {
                    index: e.index as usize,
                    kind: rem::ErrorKind::from_name(&e.kind),
                    detail: crate::Detail {
                        code: e.code,
                        field: (!e.field.is_empty()).then_some(e.field),
                        rule: (!e.rule.is_empty()).then_some(e.rule),
                    },
                    message: e.message,
                })
            }
            (_, Some(Ok(r))) => Ok(r.ids),
            (_, Some(Err(e))) => {
                self.tx = None;
                Err(e)
            }
            (_, None) => {
                self.tx = None;
                Err(Error::Connection(format!(
                    "the server at {} closed the insert stream before acknowledging the batch",
                    self.client.address
                )))
            }
        }
    }
}

/// Files sent to a server for ingestion, each reported before the next is sent.
pub struct RemoteIngester {
    client: Client,
    schema: String,
    tx: Option<mpsc::Sender<IngestChunk>>,
    rx: mpsc::Receiver<Result<IngestReport>>,
}

impl RemoteIngester {
    /// Sends the file `name` (recorded as `uri`) with its content.
    pub fn file(&mut self, uri: &str, name: &str, bytes: &[u8]) -> Result<IngestReport> {
        const PART: usize = 1 << 20;
        let Some(tx) = &self.tx else {
            return Err(Error::Connection("the ingest stream has ended".into()));
        };
        let rt = self.client.rt.clone();
        let parts: Vec<&[u8]> = if bytes.is_empty() {
            vec![&[]]
        } else {
            bytes.chunks(PART).collect()
        };
        let count = parts.len();
        for (i, part) in parts.into_iter().enumerate() {
            let msg = IngestChunk {
                schema: std::mem::take(&mut self.schema),
                uri: uri.to_string(),
                name: name.to_string(),
                data: part.to_vec(),
                last: i + 1 == count,
            };
            if rt.block_on(tx.send(msg)).is_err() {
                break;
            }
        }
        match rt.block_on(self.rx.recv()) {
            Some(Ok(r)) => Ok(r),
            Some(Err(e)) => {
                self.tx = None;
                Err(e)
            }
            None => {
                self.tx = None;
                Err(Error::Connection(format!(
                    "the server at {} closed the ingest stream",
                    self.client.address
                )))
            }
        }
    }
}
