//! The REM database as a typed service, its client, and one API over both.
//!
//! - [`serve`]: the server of `rem serve` and `rem replicate --follow` — the database
//!   service (`proto/database.proto`: schemas, insert streams, get, lookup, search, SQL
//!   as Arrow IPC, graph, ingest and export as byte streams, stats, verify, status)
//!   and the replication service on one port, every RPC behind the token check.
//! - [`Client`]: blocking calls to a server.
//! - [`Backend`]: an embedded [`rem::Database`] or a [`Client`], with the same
//!   operations, run by the same code ([`ops`](crate::ops) on the embedded side is
//!   what the server runs for its clients).
//!
//! The server never opens a path a client names and never runs code a client sends:
//! ingestion receives bytes, export sends bytes, and schemas arrive as JSON Schema.

mod backend;
mod client;
mod error;
mod ops;
mod server;

pub use backend::{Backend, Batches, Ingester, Inserter, SearchValues};
pub use client::{Client, ClientOptions, RemoteBatches, RemoteIngester, RemoteInserter};
pub use error::{Detail, Error, Result};
pub use ops::strip_position;
pub use server::{serve, ServerOptions};

/// Generated gRPC types and stubs (`proto/database.proto`).
#[allow(missing_docs, unreachable_pub, clippy::all, clippy::unwrap_used)]
pub mod proto {
    tonic::include_proto!("rem.database.v1");
}

/// Metadata key naming the tenant of a request.
pub const TENANT_HEADER: &str = "x-rem-tenant";

/// A new random instance id for a server (written to its `SERVER` file).
pub fn new_instance_id() -> String {
    uuid::Uuid::new_v4().to_string()
}
