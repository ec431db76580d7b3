//! Replication of the REM database over gRPC (SPEC §8), and the client API of a
//! running server.
//!
//! - [`serve`]: the gRPC server of `rem serve` (primary) and `rem replicate --follow`
//!   (replica). `Subscribe` streams change records after a watermark — the retained
//!   history, then live records as they commit — in batches; `GetStatus`,
//!   `Heartbeat`; `Execute` runs a `rem` command line inside the serving process, so
//!   other `rem` commands on a database held by a server get service instead of a lock
//!   error.
//! - [`follow`]: the replica loop: subscribe from the local watermark, apply each batch
//!   atomically with the watermark ([`rem::Database::apply_replicated`]), reconnect
//!   with backoff after any failure.
//! - [`endpoint`]: the file a server leaves beside the database so other commands find
//!   it.
//!
//! Every RPC checks the shared token (`P8_REPLICATION_TOKEN`) when one is set.

pub mod endpoint;
mod replica;
mod server;

pub use replica::{follow, FollowOptions, ReplicaState, ReplicaStatus};
pub use server::{serve, CommandRunner, ServeOptions};

/// Generated gRPC types and stubs (`proto/replication.proto`).
#[allow(missing_docs, unreachable_pub, clippy::all, clippy::unwrap_used)]
pub mod proto {
    tonic::include_proto!("rem.replication.v1");
}

use tonic::metadata::MetadataValue;

/// Metadata key carrying the shared token.
pub(crate) const TOKEN_HEADER: &str = "x-rem-token";

/// Wall clock in microseconds since the epoch.
pub fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// A request carrying `token` (when set).
pub fn request<T>(message: T, token: Option<&str>) -> tonic::Request<T> {
    let mut req = tonic::Request::new(message);
    if let Some(t) = token.filter(|t| !t.is_empty()) {
        if let Ok(v) = MetadataValue::try_from(t) {
            req.metadata_mut().insert(TOKEN_HEADER, v);
        }
    }
    req
}

/// Connects a client to `address` (`host:port` or a URL), within `timeout`.
pub async fn connect(
    address: &str,
    timeout: std::time::Duration,
) -> Result<proto::replication_client::ReplicationClient<tonic::transport::Channel>, String> {
    let url = if address.contains("://") {
        address.to_string()
    } else {
        format!("http://{address}")
    };
    let endpoint = tonic::transport::Endpoint::from_shared(url)
        .map_err(|e| format!("bad address '{address}': {e}"))?
        .connect_timeout(timeout)
        .tcp_nodelay(true);
    let channel = endpoint
        .connect()
        .await
        .map_err(|e| format!("cannot connect to {address}: {}", source_message(&e)))?;
    Ok(proto::replication_client::ReplicationClient::new(channel)
        .max_decoding_message_size(256 << 20))
}

/// The innermost cause of an error, which says what went wrong (connection refused…).
pub fn source_message(e: &(dyn std::error::Error + 'static)) -> String {
    let mut msg = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        msg = s.to_string();
        cur = s.source();
    }
    msg
}

/// A gRPC status as one sentence.
pub fn status_message(s: &tonic::Status) -> String {
    match s.code() {
        tonic::Code::Unauthenticated => format!("refused by the server: {}", s.message()),
        tonic::Code::Unavailable => format!("server unavailable: {}", s.message()),
        _ => s.message().to_string(),
    }
}
