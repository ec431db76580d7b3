//! The operations of the service on an open database, in the service's own types:
//! the server runs them for its clients, and [`crate::Backend::Embedded`] runs them
//! in-process, so both paths share one implementation.

use rem::{Database, EntityId, Error, Result};
use serde_json::Value;

use crate::proto::{
    AddEdgeRequest, ChecksumReply, DeleteReply, DeleteRequest, Edge, EdgeReply, EdgesReply,
    EdgesRequest, EntitiesReply, EntityReply, ExportRequest, FamilyChecksum, FamilyStats,
    GetRequest, GetSchemaRequest, IngestReport, ListSchemasReply, LookupRequest, Node, PathReply,
    PathRequest, PromoteReply, RegisterSchemaRequest, RemoveEdgeReply, RemoveEdgeRequest,
    SchemaReply, SearchHit, SearchReply, SearchRequest, StatsReply, StatusReply, TableStats,
    TraverseReply, TraverseRequest, Vector, VerifyReply,
};

/// Parses JSON text sent by a client.
pub(crate) fn parse_json(text: &str, what: &str) -> Result<Value> {
    serde_json::from_str(text).map_err(|e| Error::InvalidJson {
        location: Some(format!(
            "in the {what} at line {} column {}",
            e.line(),
            e.column()
        )),
        message: strip_position(&e.to_string()),
    })
}

/// serde_json messages end in " at line L column C"; callers say where themselves.
pub fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

pub(crate) fn register_schema(db: &Database, req: &RegisterSchemaRequest) -> Result<SchemaReply> {
    let doc = parse_json(&req.document_json, "schema document")?;
    let schema = db.register_schema(doc)?;
    Ok(SchemaReply {
        document_json: schema.document.to_string(),
    })
}

pub(crate) fn list_schemas(db: &Database) -> Result<ListSchemasReply> {
    Ok(ListSchemasReply {
        documents_json: db
            .schemas()?
            .iter()
            .map(|s| s.document.to_string())
            .collect(),
    })
}

pub(crate) fn get_schema(db: &Database, req: &GetSchemaRequest) -> Result<SchemaReply> {
    Ok(SchemaReply {
        document_json: db.schema(&req.name)?.document.to_string(),
    })
}

/// Writes one atomic batch; a record that is not JSON is refused like an invalid one.
pub(crate) fn insert(
    db: &Database,
    table: &str,
    records_json: &[String],
    vectors: Vec<Vector>,
) -> Result<Vec<String>> {
    let mut records = Vec::with_capacity(records_json.len());
    for (index, text) in records_json.iter().enumerate() {
        let record = parse_json(text, "record").map_err(|e| Error::Record {
            index,
            source: Box::new(e),
        })?;
        records.push(record);
    }
    let ids = if vectors.is_empty() {
        db.insert_batch(table, records)?
    } else {
        let vectors = vectors.into_iter().map(|v| v.values).collect();
        db.insert_batch_with_vectors(table, records, vectors)?
    };
    Ok(ids.into_iter().map(|id| id.to_string()).collect())
}

pub(crate) fn delete(db: &Database, req: &DeleteRequest) -> Result<DeleteReply> {
    let e = db.delete(&EntityId::parse(&req.id)?)?;
    Ok(DeleteReply {
        id: e.id.to_string(),
        table: e.table,
    })
}

/// The entity a get request names.
pub(crate) fn get_entity(db: &Database, req: &GetRequest) -> Result<Option<rem::Entity>> {
    let id = EntityId::parse(&req.id)?;
    Ok(if req.include_deleted {
        db.get_including_deleted(&id)?
    } else {
        db.get(&id)?
    })
}

pub(crate) fn get(db: &Database, req: &GetRequest) -> Result<EntityReply> {
    Ok(match get_entity(db, req)? {
        Some(e) => EntityReply {
            found: true,
            entity_json: e.to_json().to_string(),
        },
        None => EntityReply::default(),
    })
}

pub(crate) fn lookup(db: &Database, req: &LookupRequest) -> Result<EntitiesReply> {
    Ok(EntitiesReply {
        entities_json: db
            .lookup(&req.key)?
            .iter()
            .map(|e| e.to_json().to_string())
            .collect(),
    })
}

pub(crate) fn search_result(
    db: &Database,
    req: &SearchRequest,
) -> crate::Result<rem::SearchResult> {
    let filter = if req.predicate.trim().is_empty() {
        rem::Filter::All
    } else {
        let table = (!req.table.is_empty()).then_some(req.table.as_str());
        rem_sql::parse_where(db, table, &req.predicate)?
    };
    let options = rem::SearchOptions {
        top_k: req.top_k as usize,
        min_score: req.has_min_score.then_some(req.min_score),
        filter,
        alt: req.alt,
        ef_search: (req.ef_search > 0).then_some(req.ef_search as usize),
    };
    let table = (!req.table.is_empty()).then_some(req.table.as_str());
    Ok(match (req.vector.is_empty(), table) {
        (true, _) => db.search(table, &req.query, &options)?,
        (false, Some(t)) => db.search_by_vector(t, &req.vector, &options)?,
        (false, None) => {
            return Err(Error::InvalidInput("a search by vector names its table".into()).into())
        }
    })
}

pub(crate) fn search(db: &Database, req: &SearchRequest) -> crate::Result<SearchReply> {
    let result = search_result(db, req)?;
    Ok(SearchReply {
        table: result.table,
        table_detected: result.table_detected,
        hits: result
            .hits
            .iter()
            .map(|h| SearchHit {
                score: h.score,
                entity_json: h.entity.to_json().to_string(),
            })
            .collect(),
    })
}

fn edge(e: &rem::Edge) -> Edge {
    Edge {
        src: e.src.to_string(),
        edge_type: e.edge_type.clone(),
        dst: e.dst.clone(),
        weight: e.weight,
        properties_json: Value::Object(e.properties.clone()).to_string(),
        created_at: rem::format_ts(&e.created_at),
    }
}

pub(crate) fn add_edge(db: &Database, req: &AddEdgeRequest) -> Result<EdgeReply> {
    let properties = if req.properties_json.trim().is_empty() {
        serde_json::Map::new()
    } else {
        match parse_json(&req.properties_json, "edge properties")? {
            Value::Object(m) => m,
            _ => {
                return Err(Error::InvalidInput(
                    "edge properties must be a JSON object".into(),
                ))
            }
        }
    };
    let options = rem::EdgeOptions {
        weight: req.has_weight.then_some(req.weight),
        properties,
    };
    let e = db.add_edge(&req.src, &req.dst, &req.edge_type, &options)?;
    Ok(EdgeReply {
        edge: Some(edge(&e)),
    })
}

pub(crate) fn remove_edge(db: &Database, req: &RemoveEdgeRequest) -> Result<RemoveEdgeReply> {
    Ok(RemoveEdgeReply {
        removed: db.remove_edge(&req.src, &req.dst, &req.edge_type)?,
    })
}

fn edge_type(t: &str) -> Option<&str> {
    (!t.is_empty()).then_some(t)
}

pub(crate) fn edges(db: &Database, req: &EdgesRequest) -> Result<EdgesReply> {
    let direction = rem::Direction::parse(&req.direction)?;
    let id = db.resolve(&req.entity)?.id;
    let edges = db.edges_of(&id, direction, edge_type(&req.edge_type))?;
    Ok(EdgesReply {
        edges: edges.iter().map(edge).collect(),
    })
}

pub(crate) fn traverse(db: &Database, req: &TraverseRequest) -> Result<TraverseReply> {
    let options = rem::TraverseOptions {
        depth: req.depth as usize,
        direction: rem::Direction::parse(&req.direction)?,
        edge_type: edge_type(&req.edge_type).map(String::from),
        dfs: req.dfs,
    };
    let start = db.resolve(&req.entity)?.id;
    let nodes = db.traverse(&start, &options)?;
    Ok(TraverseReply {
        nodes: nodes
            .iter()
            .map(|n| Node {
                depth: n.depth as u64,
                id: n.id.to_string(),
                table: n.table.clone(),
                edge_type: n.edge_type.clone().unwrap_or_default(),
                path: n.path.iter().map(|p| p.to_string()).collect(),
            })
            .collect(),
    })
}

pub(crate) fn path(db: &Database, req: &PathRequest) -> Result<PathReply> {
    let direction = rem::Direction::parse(&req.direction)?;
    let a = db.resolve(&req.from)?.id;
    let b = db.resolve(&req.to)?.id;
    let max_depth = req.max_depth as usize;
    match db.shortest_path(&a, &b, direction, edge_type(&req.edge_type), max_depth)? {
        Some(path) => Ok(PathReply {
            found: true,
            ids: path.iter().map(|id| id.to_string()).collect(),
            from_id: a.to_string(),
            to_id: b.to_string(),
        }),
        None => Err(Error::NotFound(format!(
            "no path from {a} to {b} within {max_depth} hops ({})",
            direction.name()
        ))),
    }
}

pub(crate) fn stats(db: &Database) -> Result<StatsReply> {
    let s = db.stats()?;
    Ok(StatsReply {
        path: db.path().display().to_string(),
        tenant: db.tenant().to_string(),
        last_seq: s.last_seq,
        disk_bytes: s.disk_bytes,
        tables: s
            .tables
            .into_iter()
            .map(|(table, rows, deleted)| TableStats {
                table,
                rows,
                deleted,
            })
            .collect(),
        column_families: s
            .column_families
            .into_iter()
            .map(|(name, estimated_keys, bytes)| FamilyStats {
                name,
                estimated_keys,
                bytes,
            })
            .collect(),
    })
}

pub(crate) fn verify(db: &Database) -> Result<VerifyReply> {
    let r = db.verify()?;
    Ok(VerifyReply {
        path: db.path().display().to_string(),
        entities: r.entities,
        index_entries: r.index_entries,
        change_records: r.change_records,
        problems: r.problems,
        vectors: r.vectors,
        vector_indexes: r.vector_indexes,
    })
}

pub(crate) fn checksum(db: &Database) -> Result<ChecksumReply> {
    Ok(ChecksumReply {
        families: db
            .content_checksum()?
            .into_iter()
            .map(|(name, entries, checksum)| FamilyChecksum {
                name,
                entries,
                checksum,
            })
            .collect(),
    })
}

pub(crate) fn promote(db: &Database) -> Result<PromoteReply> {
    Ok(PromoteReply {
        seq: db.promote()?,
        path: db.path().display().to_string(),
    })
}

/// The replication status of `db`; `live` is the replica loop's state when this process
/// follows a primary, `serving` whether a server holds the database.
pub(crate) fn status(
    db: &Database,
    live: Option<&rem_replication::ReplicaStatus>,
    serving: bool,
    replicas: u64,
) -> Result<StatusReply> {
    let log = db.log_status()?;
    let role = db.replication_role();
    let mut reply = rem_replication::proto::StatusReply {
        mode: role.mode().to_string(),
        last_seq: log.last_seq,
        first_seq: log.first_seq,
        entries: log.entries,
        bytes: log.bytes,
        primary_seq: log.last_seq,
        replicas,
        ..Default::default()
    };
    if let rem::ReplicationRole::Replica { primary } = &role {
        reply.primary = primary.clone();
        match live.filter(|_| serving) {
            Some(r) => r.fill(&mut reply, log.last_seq),
            None => reply.state = "stopped (no rem replicate --follow running)".into(),
        }
    } else {
        reply.state = if serving { "serving" } else { "not serving" }.into();
    }
    Ok(StatusReply {
        mode: reply.mode,
        primary: reply.primary,
        last_seq: reply.last_seq,
        first_seq: reply.first_seq,
        entries: reply.entries,
        bytes: reply.bytes,
        state: reply.state,
        primary_seq: reply.primary_seq,
        last_contact_micros: reply.last_contact_micros,
        lag_micros: reply.lag_micros,
        replicas: reply.replicas,
        last_catch_up: reply.last_catch_up,
        serving,
    })
}

/// The engine's export options for a request.
pub(crate) fn export_options(req: &ExportRequest) -> rem_sql::Result<rem_sql::ExportOptions> {
    Ok(rem_sql::ExportOptions {
        format: rem_sql::ExportFormat::parse(&req.format)?,
        compression: req.compression.clone(),
        predicate: (!req.predicate.trim().is_empty()).then(|| req.predicate.clone()),
        include_embeddings: req.include_embeddings,
        row_group_size: req.row_group_size as usize,
        plaintext: req.plaintext,
    })
}

/// A file's ingestion report in the service's terms.
pub(crate) fn ingest_report(r: rem_ingest::FileReport) -> IngestReport {
    let (status, chunks, reason) = match r.outcome {
        rem_ingest::Outcome::Completed { chunks } => ("completed", chunks as u64, String::new()),
        rem_ingest::Outcome::Unchanged => ("unchanged", 0, String::new()),
        rem_ingest::Outcome::Failed { reason } => ("failed", 0, reason),
    };
    IngestReport {
        uri: r.uri,
        file_type: r.file_type.unwrap_or_default(),
        size_bytes: r.size_bytes,
        status: status.to_string(),
        chunks,
        reason,
        error_kind: String::new(),
    }
}
