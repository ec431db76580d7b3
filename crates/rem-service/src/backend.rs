//! One API over a database, embedded in this process or held by a server: the CLI
//! writes each command once against [`Backend`], and picks the variant.

use rem::Database;
use serde_json::Value;

use crate::client::{Client, RemoteBatches, RemoteIngester, RemoteInserter};
use crate::error::{Error, Result};
use crate::ops;
use crate::proto::*;

/// What [`Backend::search_values`] found.
#[derive(Debug, Clone)]
pub struct SearchValues {
    /// The table searched.
    pub table: String,
    /// True when the table was chosen by similarity to schema descriptions.
    pub table_detected: bool,
    /// `(score, entity)`, best first.
    pub hits: Vec<(f32, Value)>,
}

/// A database to run operations on.
// One value per operation: the size difference of the variants does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Backend {
    /// Opened by this process.
    Embedded(Database),
    /// Held by a server (`rem serve`, `rem replicate --follow`).
    Remote(Client),
}

/// Parses JSON text a peer sent (a broken peer is a protocol error, not a panic).
fn json(text: &str) -> Result<Value> {
    serde_json::from_str(text).map_err(|e| Error::Protocol(format!("invalid JSON: {e}")))
}

fn jsons(texts: &[String]) -> Result<Vec<Value>> {
    texts.iter().map(|t| json(t)).collect()
}

macro_rules! both {
    ($self:ident, $db:ident => $embedded:expr, $client:ident => $remote:expr) => {
        match $self {
            Backend::Embedded($db) => Ok($embedded?),
            Backend::Remote($client) => $remote,
        }
    };
}

impl Backend {
    /// True when a server holds the database.
    pub fn is_remote(&self) -> bool {
        matches!(self, Backend::Remote(_))
    }

    /// The embedded database, if it is one.
    pub fn database(&self) -> Option<&Database> {
        match self {
            Backend::Embedded(db) => Some(db),
            Backend::Remote(_) => None,
        }
    }

    /// Registers a schema document; returns the stored document.
    pub fn register_schema(&self, document: &Value) -> Result<Value> {
        let r = RegisterSchemaRequest {
            document_json: document.to_string(),
        };
        let reply = both!(self, db => ops::register_schema(db, &r), c => c.register_schema(r))?;
        json(&reply.document_json)
    }

    /// Every registered schema document.
    pub fn schemas(&self) -> Result<Vec<Value>> {
        let reply = both!(self, db => ops::list_schemas(db), c => c.list_schemas())?;
        jsons(&reply.documents_json)
    }

    /// One table's schema document.
    pub fn schema(&self, name: &str) -> Result<Value> {
        let r = GetSchemaRequest { name: name.into() };
        let reply = both!(self, db => ops::get_schema(db, &r), c => c.get_schema(r))?;
        json(&reply.document_json)
    }

    /// A writer of atomic batches into `table` (which must exist).
    pub fn inserter(&self, table: &str) -> Result<Inserter> {
        match self {
            Backend::Embedded(db) => {
                db.schema(table)?;
                Ok(Inserter::Embedded {
                    db: db.clone(),
                    table: table.to_string(),
                })
            }
            Backend::Remote(c) => {
                c.get_schema(GetSchemaRequest { name: table.into() })?;
                Ok(Inserter::Remote(c.inserter(table)))
            }
        }
    }

    /// Soft-deletes an entity; returns its id and table.
    pub fn delete(&self, id: &str) -> Result<DeleteReply> {
        let r = DeleteRequest { id: id.into() };
        both!(self, db => ops::delete(db, &r), c => c.delete(r))
    }

    /// An entity (as JSON) by id.
    pub fn get(&self, id: &str, include_deleted: bool) -> Result<Option<Value>> {
        let r = GetRequest {
            id: id.into(),
            include_deleted,
        };
        match self {
            // In process the entity becomes JSON once, not text and back.
            Backend::Embedded(db) => Ok(ops::get_entity(db, &r)?.map(|e| e.to_json())),
            Backend::Remote(c) => {
                let reply = c.get(r)?;
                if !reply.found {
                    return Ok(None);
                }
                json(&reply.entity_json).map(Some)
            }
        }
    }

    /// Every entity (as JSON) with this key, in any table.
    pub fn lookup(&self, key: &str) -> Result<Vec<Value>> {
        match self {
            Backend::Embedded(db) => Ok(db.lookup(key)?.iter().map(|e| e.to_json()).collect()),
            Backend::Remote(c) => {
                jsons(&c.lookup(LookupRequest { key: key.into() })?.entities_json)
            }
        }
    }

    /// Semantic search.
    pub fn search(&self, r: SearchRequest) -> Result<SearchReply> {
        both!(self, db => ops::search(db, &r), c => c.search(r))
    }

    /// Semantic search with the hits' entities as JSON values (in process, without
    /// going through JSON text).
    pub fn search_values(&self, r: SearchRequest) -> Result<SearchValues> {
        match self {
            Backend::Embedded(db) => {
                let result = ops::search_result(db, &r)?;
                Ok(SearchValues {
                    table: result.table,
                    table_detected: result.table_detected,
                    hits: result
                        .hits
                        .iter()
                        .map(|h| (h.score, h.entity.to_json()))
                        .collect(),
                })
            }
            Backend::Remote(c) => {
                let reply = c.search(r)?;
                Ok(SearchValues {
                    table: reply.table,
                    table_detected: reply.table_detected,
                    hits: reply
                        .hits
                        .iter()
                        .map(|h| Ok((h.score, json(&h.entity_json)?)))
                        .collect::<Result<_>>()?,
                })
            }
        }
    }

    /// Runs one SQL statement.
    pub fn sql(&self, sql: &str, include_deleted: bool) -> Result<Batches> {
        match self {
            Backend::Embedded(db) => {
                use rem_sql::Sql;
                let stream =
                    db.sql_with(sql, &rem_sql::SqlOptions::include_deleted(include_deleted))?;
                Ok(Batches::Embedded(stream))
            }
            Backend::Remote(c) => Ok(Batches::Remote(c.sql(SqlRequest {
                sql: sql.into(),
                include_deleted,
            })?)),
        }
    }

    /// Adds (or updates) an edge.
    pub fn add_edge(&self, r: AddEdgeRequest) -> Result<Edge> {
        let reply = both!(self, db => ops::add_edge(db, &r), c => c.add_edge(r))?;
        reply
            .edge
            .ok_or_else(|| Error::Protocol("no edge in the reply".into()))
    }

    /// Removes an edge; false when there was none.
    pub fn remove_edge(&self, r: RemoveEdgeRequest) -> Result<bool> {
        let reply = both!(self, db => ops::remove_edge(db, &r), c => c.remove_edge(r))?;
        Ok(reply.removed)
    }

    /// The edges of an entity.
    pub fn edges(&self, r: EdgesRequest) -> Result<Vec<Edge>> {
        let reply = both!(self, db => ops::edges(db, &r), c => c.edges(r))?;
        Ok(reply.edges)
    }

    /// A graph walk.
    pub fn traverse(&self, r: TraverseRequest) -> Result<Vec<Node>> {
        let reply = both!(self, db => ops::traverse(db, &r), c => c.traverse(r))?;
        Ok(reply.nodes)
    }

    /// The shortest path (ids, start first); a not-found error when there is none.
    pub fn path(&self, r: PathRequest) -> Result<PathReply> {
        both!(self, db => ops::path(db, &r), c => c.path(r))
    }

    /// A sender of files to ingest into `schema` (which must exist).
    pub fn ingester(&self, schema: &str) -> Result<Ingester> {
        match self {
            Backend::Embedded(db) => {
                db.schema(schema)?;
                Ok(Ingester::Embedded {
                    db: db.clone(),
                    options: rem_ingest::IngestOptions {
                        schema: schema.to_string(),
                        recursive: false,
                    },
                    chunker: Box::new(rem_ingest::Chunker::for_database(db)?),
                })
            }
            Backend::Remote(c) => {
                c.get_schema(GetSchemaRequest {
                    name: schema.into(),
                })?;
                Ok(Ingester::Remote(c.ingester(schema)))
            }
        }
    }

    /// Exports a table, encoded, into `out`; returns the table's name and the rows.
    pub fn export(
        &self,
        r: ExportRequest,
        out: &mut (dyn std::io::Write + Send),
    ) -> Result<(String, u64)> {
        match self {
            Backend::Embedded(db) => {
                let options = ops::export_options(&r)?;
                let (table, rows) = rem_sql::export_to(db, &r.table, out, &options)?;
                Ok((table, rows as u64))
            }
            Backend::Remote(c) => {
                let last = c.export(r, out)?;
                Ok((last.table, last.rows))
            }
        }
    }

    /// Rows per table, index sizes, disk use.
    pub fn stats(&self) -> Result<StatsReply> {
        both!(self, db => ops::stats(db), c => c.stats())
    }

    /// The consistency check.
    pub fn verify(&self) -> Result<VerifyReply> {
        both!(self, db => ops::verify(db), c => c.verify())
    }

    /// Content checksums per column family.
    pub fn checksum(&self) -> Result<ChecksumReply> {
        both!(self, db => ops::checksum(db), c => c.checksum())
    }

    /// Promotes a replica to a primary.
    pub fn promote(&self) -> Result<PromoteReply> {
        both!(self, db => ops::promote(db), c => c.promote())
    }

    /// Replication status.
    pub fn status(&self) -> Result<StatusReply> {
        both!(self, db => ops::status(db, None, false, 0), c => c.status())
    }
}

/// Writes atomic batches into a table.
// One value per operation: the size difference of the variants does not matter.
#[allow(clippy::large_enum_variant)]
#[non_exhaustive]
pub enum Inserter {
    /// In this process.
    Embedded {
        /// The database.
        db: Database,
        /// The table.
        table: String,
    },
    /// Through a server.
    Remote(RemoteInserter),
}

impl Inserter {
    /// Writes one atomic batch; returns the ids once committed.
    pub fn write(&mut self, records: Vec<Value>) -> Result<Vec<String>> {
        self.write_with_vectors(records, None)
    }

    /// Writes one atomic batch with the caller's vectors for the table's embedding
    /// column (one per record), when given.
    pub fn write_with_vectors(
        &mut self,
        records: Vec<Value>,
        vectors: Option<Vec<Vec<f32>>>,
    ) -> Result<Vec<String>> {
        match self {
            Inserter::Embedded { db, table } => {
                let written = match vectors {
                    Some(v) => db.insert_batch_with_vectors(table, records, v),
                    None => db.insert_batch(table, records),
                };
                match written {
                    Ok(ids) => Ok(ids.into_iter().map(|id| id.to_string()).collect()),
                    Err(rem::Error::Record { index, source }) => Err(Error::Record {
                        index,
                        kind: source.kind(),
                        detail: crate::Detail::of(&source),
                        message: source.to_string(),
                    }),
                    Err(e) => Err(e.into()),
                }
            }
            Inserter::Remote(r) => r.write_with_vectors(
                records.iter().map(|v| v.to_string()).collect(),
                vectors.unwrap_or_default(),
            ),
        }
    }
}

/// Ingests files sent as bytes.
// One value per operation: the size difference of the variants does not matter.
#[allow(clippy::large_enum_variant)]
#[non_exhaustive]
pub enum Ingester {
    /// In this process.
    Embedded {
        /// The database.
        db: Database,
        /// Where the chunks go.
        options: rem_ingest::IngestOptions,
        /// The chunker (loads the model's tokenizer once).
        chunker: Box<rem_ingest::Chunker>,
    },
    /// Through a server.
    Remote(RemoteIngester),
}

impl Ingester {
    /// Ingests the content of the file `name`, recorded under `uri`.
    pub fn file(&mut self, uri: &str, name: &str, bytes: &[u8]) -> Result<IngestReport> {
        match self {
            Ingester::Embedded {
                db,
                options,
                chunker,
            } => Ok(
                match rem_ingest::ingest_bytes(db, uri, name, bytes, options, chunker) {
                    Ok(r) => ops::ingest_report(r),
                    Err(e) => IngestReport {
                        uri: uri.to_string(),
                        size_bytes: bytes.len() as u64,
                        status: "refused".into(),
                        reason: e.to_string(),
                        error_kind: e.kind().name().to_string(),
                        ..Default::default()
                    },
                },
            ),
            Ingester::Remote(r) => r.file(uri, name, bytes),
        }
    }
}

/// The record batches of an SQL result.
// One value per operation: the size difference of the variants does not matter.
#[allow(clippy::large_enum_variant)]
#[non_exhaustive]
pub enum Batches {
    /// Produced in this process.
    Embedded(rem_sql::SqlStream),
    /// Streamed from a server.
    Remote(RemoteBatches),
}

impl Iterator for Batches {
    type Item = Result<rem_sql::arrow::record_batch::RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Batches::Embedded(s) => s.next().map(|r| r.map_err(Error::from)),
            Batches::Remote(r) => r.next(),
        }
    }
}
