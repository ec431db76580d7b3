//! Replication of the REM database over gRPC (SPEC §8), and the client API of a
//! running server.
//!
//! - [`ReplicationService`]: the replication service of `rem serve` (primary) and
//!   `rem replicate --follow` (replica), served by `rem-service` beside the database
//!   service. `Subscribe` streams change records after a watermark — the retained
//!   history, then live records as they commit — in batches; `Snapshot`, `GetStatus`,
//!   `Heartbeat`.
//! - [`follow`]: the replica loop: subscribe from the local watermark, apply each batch
//!   atomically with the watermark ([`rem::Database::apply_replicated`]), reconnect
//!   with backoff after any failure.
//! - [`endpoint`]: the file a server leaves beside the database so other commands find
//!   it.
//! - [`Auth`]: every RPC of every service needs the server's token, checked before the
//!   request is processed.

mod auth;
pub mod endpoint;
mod error;
mod replica;
mod server;
mod snapshot;

pub use auth::{read_token_file, server_token, token_path, Auth, TOKEN_FILE, TOKEN_HEADER};
pub use error::{Error, Result};
pub use replica::{follow, FollowOptions, Followed, ReplicaState, ReplicaStatus};
pub use server::{spawn_retention, ReplicationService, ServeOptions};
pub use snapshot::fetch_snapshot;

/// Generated gRPC types and stubs (`proto/replication.proto`).
#[allow(missing_docs, unreachable_pub, clippy::all, clippy::unwrap_used)]
pub mod proto {
    tonic::include_proto!("rem.replication.v1");
}

use tonic::metadata::MetadataValue;

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

/// TLS on the client side: the certificate authority (PEM) that signed the server's
/// certificate (`P8_REPLICATION_TLS_CA`).
#[derive(Debug, Clone)]
pub struct ClientTls {
    /// The CA certificate(s), PEM.
    pub ca_pem: Vec<u8>,
    /// The name the server's certificate must carry (default: the address's host).
    pub domain: Option<String>,
}

/// TLS on the server side: its certificate chain and private key, PEM
/// (`P8_REPLICATION_TLS_CERT`, `P8_REPLICATION_TLS_KEY`).
#[derive(Debug, Clone)]
pub struct ServerTls {
    /// Certificate chain, PEM.
    pub cert_pem: Vec<u8>,
    /// Private key, PEM.
    pub key_pem: Vec<u8>,
}

/// Connects a replication client to `address` (`host:port` or a URL), within
/// `timeout`; over TLS when `tls` is given.
pub async fn connect(
    address: &str,
    timeout: std::time::Duration,
    tls: Option<&ClientTls>,
) -> Result<proto::replication_client::ReplicationClient<tonic::transport::Channel>> {
    let channel = channel(address, timeout, tls).await?;
    Ok(proto::replication_client::ReplicationClient::new(channel)
        .max_decoding_message_size(256 << 20))
}

/// A connected channel to `address` (`host:port` or a URL), within `timeout`; over TLS
/// when `tls` is given.
pub async fn channel(
    address: &str,
    timeout: std::time::Duration,
    tls: Option<&ClientTls>,
) -> Result<tonic::transport::Channel> {
    let host_port = address.split_once("://").map_or(address, |(_, rest)| rest);
    let scheme = if tls.is_some() { "https" } else { "http" };
    let url = format!("{scheme}://{host_port}");
    let mut endpoint = tonic::transport::Endpoint::from_shared(url)
        .map_err(|e| Error::Connection(format!("bad address '{address}': {e}")))?
        .connect_timeout(timeout)
        .tcp_nodelay(true);
    if let Some(tls) = tls {
        let host = host_port
            .rsplit_once(':')
            .map_or(host_port, |(h, _)| h)
            .trim_start_matches('[')
            .trim_end_matches(']');
        let config = tonic::transport::ClientTlsConfig::new()
            .ca_certificate(tonic::transport::Certificate::from_pem(&tls.ca_pem))
            .domain_name(tls.domain.clone().unwrap_or_else(|| host.to_string()));
        endpoint = endpoint
            .tls_config(config)
            .map_err(|e| Error::Connection(format!("bad TLS settings: {}", source_message(&e))))?;
    }
    endpoint.connect().await.map_err(|e| {
        Error::Connection(format!(
            "cannot connect to {address}: {}",
            source_message(&e)
        ))
    })
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
