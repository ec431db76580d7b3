//! The replica loop of `rem replicate`: subscribe from the local watermark, apply each
//! streamed batch atomically with it, reconnect with backoff after any failure.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rem::{Database, ReplicatedChange, ReplicatedVector};
use tokio::sync::watch;

use crate::proto::{ChangeBatch, StatusReply, SubscribeRequest};
use crate::{connect, now_micros, request, Error, Result};

/// Where a replica stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicaState {
    /// Not connected yet.
    Connecting,
    /// Connected, behind the primary.
    CatchingUp,
    /// Connected, everything applied.
    Synced,
    /// The primary cannot be reached; reads still work.
    Disconnected,
}

impl ReplicaState {
    /// `connecting`, `catching-up`, `synced` or `disconnected`.
    pub fn name(&self) -> &'static str {
        match self {
            ReplicaState::Connecting => "connecting",
            ReplicaState::CatchingUp => "catching-up",
            ReplicaState::Synced => "synced",
            ReplicaState::Disconnected => "disconnected",
        }
    }
}

#[derive(Debug)]
struct Inner {
    state: ReplicaState,
    primary_seq: u64,
    last_contact_micros: i64,
    lag_micros: i64,
    last_error: String,
    /// Entries applied and start time of the current catch-up.
    catch_up: Option<(u64, i64)>,
    last_catch_up: String,
}

/// The live state of a replica, shared with its server (`GetStatus`).
#[derive(Debug)]
pub struct ReplicaStatus {
    primary: String,
    inner: Mutex<Inner>,
}

impl ReplicaStatus {
    /// A replica of `primary`, connecting.
    pub fn new(primary: &str) -> ReplicaStatus {
        ReplicaStatus {
            primary: primary.to_string(),
            inner: Mutex::new(Inner {
                state: ReplicaState::Connecting,
                primary_seq: 0,
                last_contact_micros: 0,
                lag_micros: 0,
                last_error: String::new(),
                catch_up: None,
                last_catch_up: String::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current state.
    pub fn state(&self) -> ReplicaState {
        self.lock().state
    }

    fn disconnected(&self, error: String) {
        let mut s = self.lock();
        s.state = ReplicaState::Disconnected;
        s.last_error = error;
    }

    /// Records a batch applied up to `applied`.
    fn applied(&self, primary_seq: u64, sent_at: i64, n: usize, applied: u64) {
        let now = now_micros();
        let mut s = self.lock();
        s.primary_seq = s.primary_seq.max(primary_seq);
        s.last_contact_micros = now;
        if n > 0 {
            s.lag_micros = (now - sent_at).max(0);
        }
        if applied >= s.primary_seq {
            // The catch-up that began at the last connection is over.
            if let Some((start_seq, started)) = s.catch_up.take() {
                let n = applied.saturating_sub(start_seq);
                s.last_catch_up = format!(
                    "completed ({n} entr{}, {} ms)",
                    if n == 1 { "y" } else { "ies" },
                    (now - started) / 1000
                );
            }
            s.state = ReplicaState::Synced;
        } else {
            s.state = ReplicaState::CatchingUp;
        }
    }

    /// Records the progress of a snapshot bootstrap (shown as the catch-up).
    pub fn bootstrap(&self, text: String) {
        let mut s = self.lock();
        s.state = ReplicaState::CatchingUp;
        s.last_contact_micros = now_micros();
        s.last_catch_up = text;
    }

    /// Records a new connection at watermark `applied`: a catch-up starts.
    fn connected(&self, applied: u64) {
        let mut s = self.lock();
        s.catch_up = Some((applied, now_micros()));
        s.last_contact_micros = now_micros();
        if s.state != ReplicaState::Synced {
            s.state = ReplicaState::CatchingUp;
        }
    }

    /// Fills the replica fields of a status reply.
    pub fn fill(&self, reply: &mut StatusReply, applied: u64) {
        let s = self.lock();
        reply.primary = self.primary.clone();
        reply.state = s.state.name().to_string();
        reply.primary_seq = s.primary_seq.max(applied);
        reply.last_contact_micros = s.last_contact_micros;
        reply.lag_micros = if s.state == ReplicaState::Synced && s.primary_seq <= applied {
            s.lag_micros
        } else {
            (now_micros() - s.last_contact_micros).max(s.lag_micros)
        };
        reply.last_catch_up = if s.state == ReplicaState::Disconnected && !s.last_error.is_empty() {
            s.last_error.clone()
        } else {
            s.last_catch_up.clone()
        };
    }
}

/// Settings of [`follow`].
#[derive(Debug, Clone)]
pub struct FollowOptions {
    /// `host:port` of the primary.
    pub primary: String,
    /// Shared token (`P8_REPLICATION_TOKEN`).
    pub token: Option<String>,
    /// TLS to the primary, if it serves TLS.
    pub tls: Option<crate::ClientTls>,
    /// Keep following after catching up (otherwise return once synced).
    pub follow: bool,
    /// Longest wait between reconnection attempts.
    pub max_backoff: Duration,
    /// Name reported to the primary.
    pub name: String,
}

fn from_proto(batch: ChangeBatch) -> Vec<ReplicatedChange> {
    batch
        .changes
        .into_iter()
        .map(|c| ReplicatedChange {
            seq: c.seq,
            record: c.record,
            vectors: c
                .vectors
                .into_iter()
                .map(|v| ReplicatedVector {
                    column: v.column,
                    meta: v.meta,
                    stored: v.present.then_some(v.stored),
                })
                .collect(),
        })
        .collect()
}

/// How [`follow`] ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Followed {
    /// Stopped, promoted, or (without `follow`) synced.
    Done,
    /// The primary no longer holds the changes this replica needs: it must bootstrap
    /// from a snapshot ([`crate::fetch_snapshot`]). Carries the primary's message.
    NeedsSnapshot(String),
}

/// Follows the primary until `stop` turns true (or, without `follow`, until synced),
/// or until the primary's retained log no longer reaches this replica.
/// Returns an error for what retrying cannot fix: a refused token, a replica ahead of
/// the primary, a write that fails locally.
pub async fn follow(
    db: Database,
    options: FollowOptions,
    status: Arc<ReplicaStatus>,
    mut stop: watch::Receiver<bool>,
) -> Result<Followed> {
    let mut backoff = Duration::from_millis(100);
    loop {
        if *stop.borrow() {
            return Ok(Followed::Done);
        }
        let mut connected = false;
        let attempt = stream_changes(&db, &options, &status, &mut connected);
        let outcome = tokio::select! {
            r = attempt => r,
            _ = stop.changed() => return Ok(Followed::Done),
        };
        match outcome {
            Ok(()) => return Ok(Followed::Done),
            Err(Error::SnapshotNeeded(message)) => {
                return Ok(Followed::NeedsSnapshot(message));
            }
            Err(e) if !e.is_retryable() => {
                status.disconnected(e.to_string());
                return Err(e);
            }
            Err(e) => {
                if connected {
                    backoff = Duration::from_millis(100);
                }
                // A one-shot `rem replicate` reports only its final error.
                if status.state() != ReplicaState::Disconnected && options.follow {
                    tracing::warn!("replication interrupted: {e}; reconnecting");
                }
                let was_synced = status.state() == ReplicaState::Synced;
                status.disconnected(e.to_string());
                if !options.follow && !was_synced && backoff >= options.max_backoff {
                    return Err(e);
                }
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.changed() => return Ok(Followed::Done),
                }
                backoff = (backoff * 2).min(options.max_backoff);
                continue;
            }
        }
    }
}

/// One connection: subscribe from the local watermark and apply batches until the
/// stream fails (`Err`; [`Error::is_retryable`] says whether to try again) or, without
/// `follow`, until synced (`Ok`).
async fn stream_changes(
    db: &Database,
    options: &FollowOptions,
    status: &ReplicaStatus,
    connected: &mut bool,
) -> Result<()> {
    let mut client = connect(
        &options.primary,
        Duration::from_secs(3),
        options.tls.as_ref(),
    )
    .await?;
    let after = db.last_seq();
    let mut history = db.history()?;
    let req = request(
        SubscribeRequest {
            after_seq: after,
            replica_name: options.name.clone(),
            history_id: history.id.clone(),
            watermark_hash: db
                .change_hash(after)?
                .map(|h| h.to_vec())
                .unwrap_or_default(),
        },
        options.token.as_deref(),
    );
    let mut stream = client
        .subscribe(req)
        .await
        .map_err(|s| Error::from_status(&s, options.tls.is_some()))?
        .into_inner();
    tracing::info!(primary = %options.primary, "connected");
    *connected = true;
    status.connected(db.last_seq());
    let mut received = false;
    loop {
        let batch = match stream.message().await {
            Ok(Some(b)) => b,
            Ok(None) => {
                return Err(Error::Connection(
                    "the primary closed the stream".to_string(),
                ))
            }
            Err(s) => return Err(Error::from_status(&s, options.tls.is_some() || received)),
        };
        received = true;
        // A promoted replica stops following.
        if !matches!(db.replication_role(), rem::ReplicationRole::Replica { .. }) {
            return Ok(());
        }
        // Accepted: this replica's changes are a prefix of the primary's history, which
        // becomes its own.
        if !batch.history_id.is_empty() && batch.history_id != history.id {
            history = rem::History {
                id: batch.history_id.clone(),
                parent: Some(batch.history_parent.clone()).filter(|p| !p.is_empty()),
                branch_seq: batch.history_branch_seq,
            };
            db.adopt_history(&history)?;
        }
        let (primary_seq, sent_at, n) =
            (batch.primary_seq, batch.sent_at_micros, batch.changes.len());
        let changes = from_proto(batch);
        let target = db.clone();
        let applied = tokio::task::spawn_blocking(move || {
            if changes.is_empty() {
                Ok(target.last_seq())
            } else {
                target.apply_replicated(&changes)
            }
        })
        .await
        .map_err(|e| Error::Internal(format!("the apply task failed: {e}")))?;
        // A gap is retryable: subscribing again from what is applied closes it.
        let applied = applied?;
        status.applied(primary_seq, sent_at, n, applied);
        if !options.follow && applied >= primary_seq {
            return Ok(());
        }
    }
}
