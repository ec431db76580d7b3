//! The replication service of a running `rem serve` or `rem replicate --follow`
//! (served beside the database service by `rem-service`, behind [`crate::Auth`]).

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rem::Database;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use crate::now_micros;
use crate::proto::replication_server::{Replication, ReplicationServer};
use crate::proto::{
    Change, ChangeBatch, HeartbeatReply, HeartbeatRequest, SnapshotChunk, SnapshotRequest,
    StatusReply, StatusRequest, SubscribeRequest, Vector,
};
use crate::replica::ReplicaStatus;

/// Settings of a server.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Change records per streamed batch (`P8_WAL_BATCH_SIZE`).
    pub batch_size: usize,
    /// Serve TLS only, with this certificate (`P8_REPLICATION_TLS_CERT` / `_KEY`).
    pub tls: Option<crate::ServerTls>,
    /// Change-log records the served database keeps (`P8_WAL_RETENTION_SIZE`); 0 keeps all.
    pub retention: u64,
    /// Shortest wait of an idle stream (it wakes on each commit).
    pub poll: Duration,
    /// How often an idle stream sends an empty batch (liveness and the primary's
    /// sequence number).
    pub keepalive: Duration,
    /// Snapshots sent at once (`P8_SNAPSHOT_LIMIT`): each holds a checkpoint on disk;
    /// more are refused with RESOURCE_EXHAUSTED, which replicas retry.
    pub max_snapshots: usize,
    /// A snapshot whose replica takes nothing for this long is abandoned and its
    /// checkpoint removed (`P8_SNAPSHOT_IDLE_TIMEOUT`, seconds).
    pub snapshot_idle: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            batch_size: 1000,
            tls: None,
            retention: 1_000_000,
            poll: Duration::from_millis(1),
            keepalive: Duration::from_millis(500),
            max_snapshots: 2,
            snapshot_idle: Duration::from_secs(60),
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

/// The replication service of one database.
pub struct ReplicationService {
    snapshots: Arc<tokio::sync::Semaphore>,
    db: Database,
    recent: Arc<RecentBatches>,
    options: ServeOptions,
    replica: Option<Arc<ReplicaStatus>>,
    subscribers: Arc<AtomicUsize>,
}

impl ReplicationService {
    /// The service for `db`; `replica` is the live state when `db` follows a primary.
    pub fn new(
        db: Database,
        options: ServeOptions,
        replica: Option<Arc<ReplicaStatus>>,
    ) -> ReplicationService {
        ReplicationService {
            snapshots: Arc::new(tokio::sync::Semaphore::new(options.max_snapshots.max(1))),
            db,
            recent: Arc::default(),
            options,
            replica,
            subscribers: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// The gRPC server of this service, admitting only what `auth` admits.
    pub fn into_server(
        self,
        auth: crate::Auth,
    ) -> tonic::service::interceptor::InterceptedService<
        ReplicationServer<ReplicationService>,
        crate::Auth,
    > {
        let server = ReplicationServer::new(self)
            .max_decoding_message_size(256 << 20)
            .max_encoding_message_size(256 << 20);
        tonic::service::interceptor::InterceptedService::new(server, auth)
    }

    /// Replicas subscribed now.
    pub fn subscriber_count(&self) -> Arc<AtomicUsize> {
        self.subscribers.clone()
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
/// The refusal for a replica at `after` whose change there is not this server's (`theirs`
/// against `mine`, hashes of the two records), or whose history this server's branched
/// from before `after`. `None` when the replica's changes are a prefix of this server's.
fn diverged(
    after: u64,
    theirs: &[u8],
    their_history: &str,
    mine: Option<[u8; 16]>,
    history: &rem::History,
) -> Option<Status> {
    if after == 0 {
        return None;
    }
    let rebuild = "rebuild it from a snapshot of this server with `rem replicate --primary <this server> --rebuild` (its own changes since then are dropped)";
    if let Some(mine) = mine {
        if !theirs.is_empty() && theirs != mine.as_slice() {
            return Some(Status::failed_precondition(format!(
                "the replica's history has diverged from this server's: its change {after} is not this server's change {after} (replica history {}, server history {}{}); {rebuild}",
                if their_history.is_empty() { "unknown" } else { their_history },
                history.id,
                match &history.parent {
                    Some(p) => format!(", branched from {p} after change {}", history.branch_seq),
                    None => String::new(),
                }
            )));
        }
    }
    if history.parent.as_deref() == Some(their_history) && after > history.branch_seq {
        return Some(Status::failed_precondition(format!(
            "the replica's history has diverged from this server's: this server branched from the replica's history {their_history} after change {}, and the replica has changes up to {after} from the old history; {rebuild}",
            history.branch_seq
        )));
    }
    None
}

fn behind_retention(next: u64, first: u64) -> Status {
    Status::out_of_range(format!(
        "this server no longer holds change {next} (oldest retained: {first}); the replica must bootstrap from a snapshot"
    ))
}

#[tonic::async_trait]
impl Replication for ReplicationService {
    type SubscribeStream = ChangeStream;

    async fn subscribe(
        &self,
        req: Request<SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let after = req.get_ref().after_seq;
        let name = req.get_ref().replica_name.clone();
        let db = self.db.clone();
        refuse_encrypted(&db)?;
        let last = db.last_seq();
        if after > last {
            return Err(Status::failed_precondition(format!(
                "the replica is at change {after} but this server is at {last}: it follows another history; start it from a new database"
            )));
        }
        let probe = db.clone();
        let (first, history, mine) = blocking(move || {
            Ok((
                probe.first_retained_seq()?,
                probe.history()?,
                probe.change_hash(after)?,
            ))
        })
        .await?;
        if after + 1 < first {
            return Err(behind_retention(after + 1, first));
        }
        let theirs = &req.get_ref().watermark_hash;
        let their_history = &req.get_ref().history_id;
        if let Some(refusal) = diverged(after, theirs, their_history, mine, &history) {
            tracing::warn!(replica = %name, after, "refused a replica whose history diverged");
            return Err(refusal);
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
                // Only durable changes are shipped (with `P8_ROCKSDB_SYNC`, fsynced).
                let last = db.durable_seq();
                if last <= at {
                    if idle_since.elapsed() >= options.keepalive {
                        idle_since = tokio::time::Instant::now();
                        let beat = ChangeBatch {
                            changes: vec![],
                            primary_seq: last,
                            sent_at_micros: now_micros(),
                            history_id: history.id.clone(),
                            history_parent: history.parent.clone().unwrap_or_default(),
                            history_branch_seq: history.branch_seq,
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
                        let max = options.batch_size.max(1).min((last - at) as usize);
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
                    primary_seq: last,
                    sent_at_micros: now_micros(),
                    history_id: history.id.clone(),
                    history_parent: history.parent.clone().unwrap_or_default(),
                    history_branch_seq: history.branch_seq,
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
        let name = req.get_ref().replica_name.clone();
        refuse_encrypted(&self.db)?;
        let permit = self.snapshots.clone().try_acquire_owned().map_err(|_| {
            Status::resource_exhausted(format!(
                "{} snapshots are being sent already; try again later",
                self.options.max_snapshots.max(1)
            ))
        })?;
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
        let idle = self.options.snapshot_idle;
        tokio::task::spawn_blocking(move || {
            crate::snapshot::send_files(dir, files, tx, idle);
            drop(permit);
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn get_status(
        &self,
        _req: Request<StatusRequest>,
    ) -> Result<Response<StatusReply>, Status> {
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
        _req: Request<HeartbeatRequest>,
    ) -> Result<Response<HeartbeatReply>, Status> {
        Ok(Response::new(HeartbeatReply {
            last_seq: self.db.last_seq(),
            now_micros: now_micros(),
        }))
    }
}

/// Trims the change log of `db` to `keep` records every 5 s until aborted (a replica's
/// log is its primary's and is trimmed the same way, so a promoted replica can serve
/// replicas of its own). Checkpoints left by a server killed while sending them are
/// removed first.
pub fn spawn_retention(db: Database, keep: u64) -> Option<tokio::task::JoinHandle<()>> {
    let _ = std::fs::remove_dir_all(crate::snapshot::checkpoints_root(db.path()));
    (keep > 0).then(|| {
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
    })
}

/// Replication of an encrypted database is not built yet (the stream would carry
/// decrypted records, and a replica needs the primary's data key): refused, not leaked.
fn refuse_encrypted(db: &rem::Database) -> Result<(), Status> {
    if db.is_encrypted() {
        return Err(Status::failed_precondition(
            "this database is encrypted, and replicating an encrypted database is not supported yet",
        ));
    }
    Ok(())
}
