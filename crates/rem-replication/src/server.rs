//! The gRPC server of a running `rem serve` or `rem replicate --follow`.

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rem::Database;
use tokio::sync::mpsc;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use crate::proto::replication_server::{Replication, ReplicationServer};
use crate::proto::{
    Change, ChangeBatch, ExecuteReply, ExecuteRequest, HeartbeatReply, HeartbeatRequest,
    SnapshotChunk, SnapshotRequest, StatusReply, StatusRequest, SubscribeRequest, Vector,
};
use crate::replica::ReplicaStatus;
use crate::{now_micros, TOKEN_HEADER};

/// Runs `rem` command lines inside the serving process (implemented by the CLI).
pub trait CommandRunner: Send + Sync + 'static {
    /// Runs `args` (without the program name) with `stdin`; returns stdout, stderr and
    /// the exit code.
    fn execute(&self, args: Vec<String>, stdin: Vec<u8>) -> (Vec<u8>, Vec<u8>, i32);
}

/// Settings of a server.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Change records per streamed batch (`P8_WAL_BATCH_SIZE`).
    pub batch_size: usize,
    /// Shared token every request must carry (`P8_REPLICATION_TOKEN`), if any.
    pub token: Option<String>,
    /// Serve TLS only, with this certificate (`P8_REPLICATION_TLS_CERT` / `_KEY`).
    pub tls: Option<crate::ServerTls>,
    /// Change-log records the served database keeps (`P8_WAL_RETENTION_SIZE`); 0 keeps all.
    pub retention: u64,
    /// Shortest wait of an idle stream (it wakes on each commit).
    pub poll: Duration,
    /// How often an idle stream sends an empty batch (liveness and the primary's
    /// sequence number).
    pub keepalive: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            batch_size: 1000,
            token: None,
            tls: None,
            retention: 1_000_000,
            poll: Duration::from_millis(1),
            keepalive: Duration::from_millis(500),
        }
    }
}

/// The batches most recently read for subscribers, by the watermark they follow:
/// replicas at the same position share one read of the log.
#[derive(Default)]
struct RecentBatches(std::sync::Mutex<std::collections::VecDeque<(u64, Arc<Vec<Change>>)>>);

impl RecentBatches {
    const KEEP: usize = 16;

    fn get(&self, after: u64) -> Option<Arc<Vec<Change>>> {
        let recent = self.0.lock().unwrap_or_else(|p| p.into_inner());
        recent
            .iter()
            .find(|(a, _)| *a == after)
            .map(|(_, b)| b.clone())
    }

    fn put(&self, after: u64, batch: Arc<Vec<Change>>) {
        let mut recent = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if recent.len() >= Self::KEEP {
            recent.pop_front();
        }
        recent.push_back((after, batch));
    }
}

struct Service {
    db: Database,
    recent: Arc<RecentBatches>,
    options: ServeOptions,
    runner: Arc<dyn CommandRunner>,
    replica: Option<Arc<ReplicaStatus>>,
    subscribers: Arc<AtomicUsize>,
}

impl Service {
    fn check<T>(&self, req: &Request<T>) -> Result<(), Status> {
        let Some(token) = self.options.token.as_deref().filter(|t| !t.is_empty()) else {
            return Ok(());
        };
        match req
            .metadata()
            .get(TOKEN_HEADER)
            .and_then(|v| v.to_str().ok())
        {
            Some(given) if given == token => Ok(()),
            Some(_) => {
                tracing::warn!("refused a request with a wrong replication token");
                Err(Status::unauthenticated(
                    "wrong replication token (P8_REPLICATION_TOKEN differs from the server's)",
                ))
            }
            None => {
                tracing::warn!("refused a request without a replication token");
                Err(Status::unauthenticated(
                    "this server requires a replication token; set P8_REPLICATION_TOKEN",
                ))
            }
        }
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> rem::Result<T> + Send + 'static,
) -> Result<T, Status> {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(Status::internal(e.to_string())),
        Err(e) => Err(Status::internal(format!("task failed: {e}"))),
    }
}

fn to_proto(c: rem::ReplicatedChange) -> Change {
    Change {
        seq: c.seq,
        record: c.record,
        vectors: c
            .vectors
            .into_iter()
            .map(|v| Vector {
                column: v.column,
                meta: v.meta,
                present: v.stored.is_some(),
                stored: v.stored.unwrap_or_default(),
            })
            .collect(),
    }
}

/// Counts a subscriber while its stream lives.
struct Subscribed(Arc<AtomicUsize>);

impl Drop for Subscribed {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

type ChangeStream = Pin<Box<dyn Stream<Item = Result<ChangeBatch, Status>> + Send>>;
type SnapshotStream = Pin<Box<dyn Stream<Item = Result<SnapshotChunk, Status>> + Send>>;

/// The message a replica gets when the retained log no longer reaches it.
fn behind_retention(next: u64, first: u64) -> Status {
    Status::out_of_range(format!(
        "this server no longer holds change {next} (oldest retained: {first}); the replica must bootstrap from a snapshot"
    ))
}

#[tonic::async_trait]
impl Replication for Service {
    type SubscribeStream = ChangeStream;

    async fn subscribe(
        &self,
        req: Request<SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        self.check(&req)?;
        let after = req.get_ref().after_seq;
        let name = req.get_ref().replica_name.clone();
        let db = self.db.clone();
        let last = db.last_seq();
        if after > last {
            return Err(Status::failed_precondition(format!(
                "the replica is at change {after} but this server is at {last}: it follows another history; start it from a new database"
            )));
        }
        let probe = db.clone();
        let first = blocking(move || probe.first_retained_seq()).await?;
        if after + 1 < first {
            return Err(behind_retention(after + 1, first));
        }
        tracing::info!(replica = %name, after, "replica subscribed");
        let (tx, rx) = mpsc::channel::<Result<ChangeBatch, Status>>(4);
        let options = self.options.clone();
        let recent = self.recent.clone();
        self.subscribers.fetch_add(1, Ordering::Relaxed);
        let guard = Subscribed(self.subscribers.clone());
        let mut commits = db.watch_commits();
        tokio::spawn(async move {
            let _guard = guard;
            let mut at = after;
            let mut idle_since = tokio::time::Instant::now();
            loop {
                if tx.is_closed() {
                    break;
                }
                let last = db.last_seq();
                if last <= at {
                    if idle_since.elapsed() >= options.keepalive {
                        idle_since = tokio::time::Instant::now();
                        let beat = ChangeBatch {
                            changes: vec![],
                            primary_seq: last,
                            sent_at_micros: now_micros(),
                        };
                        if tx.send(Ok(beat)).await.is_err() {
                            break;
                        }
                    }
                    // Wake on the next commit, or when a keep-alive is due.
                    let due = options.keepalive.saturating_sub(idle_since.elapsed());
                    tokio::select! {
                        _ = commits.changed() => {}
                        _ = tokio::time::sleep(due.max(options.poll)) => {}
                    }
                    continue;
                }
                let changes = match recent.get(at) {
                    Some(c) => c,
                    None => {
                        let reader = db.clone();
                        let max = options.batch_size.max(1);
                        match blocking(move || reader.replication_batch(at, max)).await {
                            Ok(c) => {
                                let c = Arc::new(c.into_iter().map(to_proto).collect::<Vec<_>>());
                                recent.put(at, c.clone());
                                c
                            }
                            Err(e) => {
                                let _ = tx.send(Err(e)).await;
                                break;
                            }
                        }
                    }
                };
                match changes.first() {
                    Some(c) if c.seq == at + 1 => {}
                    first => {
                        let first = first.map(|c| c.seq).unwrap_or(0);
                        let _ = tx.send(Err(behind_retention(at + 1, first))).await;
                        break;
                    }
                }
                at = changes.last().map(|c| c.seq).unwrap_or(at);
                let batch = ChangeBatch {
                    changes: changes.as_ref().clone(),
                    primary_seq: db.last_seq(),
                    sent_at_micros: now_micros(),
                };
                if tx.send(Ok(batch)).await.is_err() {
                    break;
                }
                idle_since = tokio::time::Instant::now();
            }
            tracing::info!(replica = %name, at, "replica stream ended");
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    type SnapshotStream = SnapshotStream;

    async fn snapshot(
        &self,
        req: Request<SnapshotRequest>,
    ) -> Result<Response<Self::SnapshotStream>, Status> {
        self.check(&req)?;
        let name = req.get_ref().replica_name.clone();
        let db = self.db.clone();
        let dir = crate::snapshot::checkpoint_dir(db.path());
        let target = dir.clone();
        let files = blocking(move || {
            db.checkpoint(&target)?;
            crate::snapshot::list_files(&target)
        })
        .await;
        let files = match files {
            Ok(f) => f,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(e);
            }
        };
        tracing::info!(replica = %name, files = files.len(), "sending a snapshot");
        let (tx, rx) = mpsc::channel::<Result<SnapshotChunk, Status>>(4);
        tokio::task::spawn_blocking(move || crate::snapshot::send_files(dir, files, tx));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn get_status(
        &self,
        req: Request<StatusRequest>,
    ) -> Result<Response<StatusReply>, Status> {
        self.check(&req)?;
        let db = self.db.clone();
        let log = blocking(move || db.log_status()).await?;
        let role = self.db.replication_role();
        let mut reply = StatusReply {
            mode: role.mode().to_string(),
            primary: match &role {
                rem::ReplicationRole::Replica { primary } => primary.clone(),
                _ => String::new(),
            },
            last_seq: log.last_seq,
            first_seq: log.first_seq,
            entries: log.entries,
            bytes: log.bytes,
            replicas: self.subscribers.load(Ordering::Relaxed) as u64,
            ..StatusReply::default()
        };
        if let Some(r) = &self.replica {
            r.fill(&mut reply, log.last_seq);
        }
        Ok(Response::new(reply))
    }

    async fn heartbeat(
        &self,
        req: Request<HeartbeatRequest>,
    ) -> Result<Response<HeartbeatReply>, Status> {
        self.check(&req)?;
        Ok(Response::new(HeartbeatReply {
            last_seq: self.db.last_seq(),
            now_micros: now_micros(),
        }))
    }

    async fn execute(
        &self,
        req: Request<ExecuteRequest>,
    ) -> Result<Response<ExecuteReply>, Status> {
        self.check(&req)?;
        let ExecuteRequest { args, stdin } = req.into_inner();
        let runner = self.runner.clone();
        let (stdout, stderr, exit_code) =
            tokio::task::spawn_blocking(move || runner.execute(args, stdin))
                .await
                .map_err(|e| Status::internal(format!("command failed: {e}")))?;
        Ok(Response::new(ExecuteReply {
            stdout,
            stderr,
            exit_code,
        }))
    }
}

/// Serves `db` on `listener` until `shutdown` completes, trimming its change log to
/// `options.retention` records every few seconds (a replica's log is its primary's and
/// is trimmed the same way, so a promoted replica can serve replicas of its own).
pub async fn serve(
    db: Database,
    listener: tokio::net::TcpListener,
    options: ServeOptions,
    runner: Arc<dyn CommandRunner>,
    replica: Option<Arc<ReplicaStatus>>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    // Checkpoints left by a server that was killed while sending them.
    let _ = std::fs::remove_dir_all(crate::snapshot::checkpoints_root(db.path()));
    let mut builder = tonic::transport::Server::builder().tcp_nodelay(true);
    if let Some(tls) = &options.tls {
        let identity = tonic::transport::Identity::from_pem(&tls.cert_pem, &tls.key_pem);
        builder = builder
            .tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))
            .map_err(|e| format!("bad TLS certificate or key: {}", crate::source_message(&e)))?;
    }
    // Stopped with the server: it holds a handle on the database, which a replica
    // must close to install a snapshot.
    let retention = (options.retention > 0).then(|| {
        let db = db.clone();
        let keep = options.retention;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(5)).await;
                let db = db.clone();
                if let Ok(Err(e)) =
                    tokio::task::spawn_blocking(move || db.apply_retention(keep)).await
                {
                    tracing::warn!("change-log retention failed: {e}");
                }
            }
        })
    });
    let service = Service {
        db,
        recent: Arc::default(),
        options,
        runner,
        replica,
        subscribers: Arc::new(AtomicUsize::new(0)),
    };
    let served = builder
        .add_service(
            ReplicationServer::new(service)
                .max_decoding_message_size(256 << 20)
                .max_encoding_message_size(256 << 20),
        )
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
        .await
        .map_err(|e| format!("server failed: {}", crate::source_message(&e)));
    if let Some(task) = retention {
        task.abort();
        let _ = task.await;
    }
    served
}
