//! Graph reads (SPEC §5.3): the edges of one entity, breadth- or depth-first traversal
//! with depth and path, and shortest paths. Every step is a prefix scan of `edges`
//! (out) or `edges_rev` (in), on one reused RocksDB iterator per direction; the
//! neighbours found are checked for liveness in the in-memory node directory
//! (`nodes.rs`, kept current from the change log). Soft-deleted
//! entities (and targets that do not exist yet) are not part of the graph.
//!
//! Targets are ids (qualified keys are stored as the id they determine), so both
//! directions are exact. A bare key in an `edges` list is followed outward only,
//! resolved through the key index when read.

use std::collections::{HashMap, HashSet};

use rem_storage::ColumnFamily;

use crate::format::edges::{
    in_names, in_prefix, out_names, out_prefix, out_type_prefix, target_id,
};
use crate::nodes::TenantNodes;
use crate::{Database, Edge, EntityId, Error, Result};

/// Deepest traversal or path search allowed.
pub const MAX_DEPTH: usize = 16;

/// Which edges a step follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    /// From source to target.
    #[default]
    Out,
    /// From target back to source.
    In,
    /// Both.
    Both,
}

impl Direction {
    /// Parses `out`, `in` or `both`.
    pub fn parse(s: &str) -> Result<Direction> {
        match s.to_ascii_lowercase().as_str() {
            "out" | "outgoing" => Ok(Direction::Out),
            "in" | "incoming" => Ok(Direction::In),
            "both" | "any" => Ok(Direction::Both),
            other => Err(Error::InvalidInput(format!(
                "unknown direction '{other}' (expected out, in or both)"
            ))),
        }
    }

    /// `out`, `in` or `both`.
    pub fn name(&self) -> &'static str {
        match self {
            Direction::Out => "out",
            Direction::In => "in",
            Direction::Both => "both",
        }
    }
}

/// Options of [`Database::traverse`].
#[derive(Debug, Clone)]
pub struct TraverseOptions {
    /// Hops from the start (1..=[`MAX_DEPTH`]).
    pub depth: usize,
    /// Edges to follow.
    pub direction: Direction,
    /// Only edges of this type.
    pub edge_type: Option<String>,
    /// Depth-first instead of breadth-first (the order of the result; each node is
    /// still reported once, at the depth it was first reached).
    pub dfs: bool,
}

impl Default for TraverseOptions {
    fn default() -> Self {
        TraverseOptions {
            depth: 2,
            direction: Direction::Out,
            edge_type: None,
            dfs: false,
        }
    }
}

/// A node reached by a traversal.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// The entity.
    pub id: EntityId,
    /// Its table.
    pub table: String,
    /// Hops from the start (0 for the start).
    pub depth: usize,
    /// Ids from the start to this node, both included.
    pub path: Vec<EntityId>,
    /// Type of the edge that reached it (`None` for the start).
    pub edge_type: Option<String>,
}

/// One neighbour found by a step: its id (or a bare key to resolve) and the edge type.
enum Hop {
    Id(EntityId, String),
    Key(String, String),
}

fn check_depth(depth: usize) -> Result<()> {
    if depth == 0 || depth > MAX_DEPTH {
        return Err(Error::InvalidInput(format!(
            "depth must be between 1 and {MAX_DEPTH}, not {depth}"
        )));
    }
    Ok(())
}

impl Database {
    /// Runs `f` on this tenant's node directory, brought up to the last commit.
    fn with_nodes<R>(&self, f: impl FnOnce(&TenantNodes) -> R) -> Result<R> {
        self.inner.nodes.with(self.store(), &self.tenant, f)
    }

    /// The edges of `id`: leaving it (`Out`), reaching it (`In`) or both, optionally of
    /// one type. Edges to or from soft-deleted entities are left out; targets that are
    /// bare keys are reported as written.
    pub fn edges_of(
        &self,
        id: &EntityId,
        direction: Direction,
        edge_type: Option<&str>,
    ) -> Result<Vec<Edge>> {
        if self.get(id)?.is_none() {
            return Err(Error::NotFound(format!("no entity with id {id}")));
        }
        let mut out = Vec::new();
        if direction != Direction::In {
            self.scan_edges(Some(id), None, |e| {
                if edge_type.is_none_or(|t| t == e.edge_type) {
                    out.push(e);
                }
                true
            })?;
        }
        if direction != Direction::Out {
            self.scan_edges(None, Some(&id.to_string()), |e| {
                if edge_type.is_none_or(|t| t == e.edge_type) {
                    out.push(e);
                }
                true
            })?;
        }
        // Edges whose other end is deleted or missing are not edges of the graph.
        self.with_nodes(|d| {
            out.into_iter()
                .filter(|e| {
                    let other = if e.src == *id {
                        e.dst_id()
                    } else {
                        Some(e.src)
                    };
                    other.is_none_or(|o| d.table(&o).is_some())
                })
                .collect()
        })
    }

    /// The neighbours of `node` one step away.
    fn step(
        &self,
        iter: &mut rem_storage::RawScan<'_>,
        rev: &mut rem_storage::RawScan<'_>,
        node: &EntityId,
        direction: Direction,
        edge_type: Option<&str>,
        out: &mut Vec<Hop>,
    ) -> Result<()> {
        let tenant = self.tenant.as_str();
        let codec = self.store().codec();
        // A plain database's keys hold the names, so keys alone are read; an encrypted
        // one's hold keyed hashes and its values carry the names.
        let names_in_values = codec.is_encrypted();
        if direction != Direction::In {
            let prefix = match edge_type {
                Some(t) => out_type_prefix(codec, tenant, node, t),
                None => out_prefix(tenant, node),
            };
            let rest_at = out_prefix(tenant, node).len();
            iter.seek_prefix(&prefix);
            loop {
                let (k, v) = if names_in_values {
                    match iter.next_entry()? {
                        Some(entry) => entry,
                        None => break,
                    }
                } else {
                    match iter.next_key()? {
                        Some(k) => (k, Vec::new()),
                        None => break,
                    }
                };
                let (ty, dst) = out_names(&k[rest_at..], &v)?;
                if edge_type.is_some_and(|t| t != ty) {
                    continue;
                }
                match target_id(&dst) {
                    Some(id) => out.push(Hop::Id(id, ty)),
                    None => out.push(Hop::Key(dst, ty)),
                }
            }
        }
        if direction != Direction::Out {
            let prefix = in_prefix(codec, tenant, &node.to_string());
            rev.seek_prefix(&prefix);
            loop {
                let (k, v) = if names_in_values {
                    match rev.next_entry()? {
                        Some(entry) => entry,
                        None => break,
                    }
                } else {
                    match rev.next_key()? {
                        Some(k) => (k, Vec::new()),
                        None => break,
                    }
                };
                let (ty, src) = in_names(&k[prefix.len()..], &v)?;
                if edge_type.is_some_and(|t| t != ty) {
                    continue;
                }
                if let Some(src) = src {
                    out.push(Hop::Id(src, ty));
                }
            }
        }
        Ok(())
    }

    /// Tables of the live entities among `ids` (missing and soft-deleted ones absent),
    /// from the in-memory node directory.
    fn live_tables(&self, ids: &[EntityId]) -> Result<Vec<Option<String>>> {
        self.with_nodes(|d| {
            ids.iter()
                .map(|id| d.table(id).map(|t| t.to_string()))
                .collect()
        })
    }

    /// Resolves hops (each tagged with its parent) to live neighbours
    /// `(parent, id, table, edge type)`, dropping ids in `seen` and repeats before any
    /// lookup.
    fn resolve_hops(
        &self,
        hops: Vec<(usize, Hop)>,
        seen: &HashSet<EntityId>,
    ) -> Result<Vec<(usize, EntityId, String, String)>> {
        let mut wanted: Vec<(usize, EntityId, String)> = Vec::with_capacity(hops.len());
        let mut fresh: HashSet<EntityId> = HashSet::with_capacity(hops.len());
        let mut push = |parent: usize, id: EntityId, ty: String| {
            if !seen.contains(&id) && fresh.insert(id) {
                wanted.push((parent, id, ty));
            }
        };
        for (parent, hop) in hops {
            match hop {
                Hop::Id(id, ty) => push(parent, id, ty),
                Hop::Key(key, ty) => {
                    for e in self.lookup(&key)? {
                        push(parent, e.id, ty.clone());
                    }
                }
            }
        }
        let ids: Vec<EntityId> = wanted.iter().map(|w| w.1).collect();
        let tables = self.live_tables(&ids)?;
        Ok(wanted
            .into_iter()
            .zip(tables)
            .filter_map(|((parent, id, ty), t)| t.map(|t| (parent, id, t, ty)))
            .collect())
    }

    /// Entities reachable from `start` within `options.depth` hops, each once, with its
    /// depth and the path that first reached it; the start comes first (depth 0).
    /// Cycles terminate: a node already reached is not expanded again.
    pub fn traverse(&self, start: &EntityId, options: &TraverseOptions) -> Result<Vec<Node>> {
        check_depth(options.depth)?;
        let first = self.live_tables(&[*start])?.remove(0).ok_or_else(|| {
            Error::NotFound(format!(
                "no entity with id {start} (a traversal starts at a live entity)"
            ))
        })?;
        let edge_type = options.edge_type.as_deref();
        let mut iter = self.store().raw_scan(ColumnFamily::Edges)?;
        let mut rev = self.store().raw_scan(ColumnFamily::EdgesRev)?;
        let mut nodes = vec![Node {
            id: *start,
            table: first,
            depth: 0,
            path: vec![*start],
            edge_type: None,
        }];
        let mut seen: HashSet<EntityId> = HashSet::from([*start]);
        if options.dfs {
            // Explicit stack of node indexes; children pushed in reverse so the first
            // edge is explored first.
            let mut stack = vec![0usize];
            while let Some(i) = stack.pop() {
                if nodes[i].depth >= options.depth {
                    continue;
                }
                let children = self.expand(
                    &mut iter,
                    &mut rev,
                    &[i],
                    &mut nodes,
                    &mut seen,
                    options.direction,
                    edge_type,
                )?;
                stack.extend(children.into_iter().rev());
            }
            return Ok(nodes);
        }
        // Level by level, so each level's neighbours are checked in one batch.
        let mut level = vec![0usize];
        for _ in 0..options.depth {
            let next = self.expand(
                &mut iter,
                &mut rev,
                &level,
                &mut nodes,
                &mut seen,
                options.direction,
                edge_type,
            )?;
            if next.is_empty() {
                break;
            }
            level = next;
        }
        Ok(nodes)
    }

    /// One step from each of `parents` (indexes into `nodes`): the live neighbours not yet
    /// `seen` become nodes (depth, path, edge type); their indexes are returned in order.
    #[allow(clippy::too_many_arguments)]
    fn expand(
        &self,
        iter: &mut rem_storage::RawScan<'_>,
        rev: &mut rem_storage::RawScan<'_>,
        parents: &[usize],
        nodes: &mut Vec<Node>,
        seen: &mut HashSet<EntityId>,
        direction: Direction,
        edge_type: Option<&str>,
    ) -> Result<Vec<usize>> {
        let mut hops = Vec::new();
        let mut tagged = Vec::new();
        for &i in parents {
            self.step(iter, rev, &nodes[i].id, direction, edge_type, &mut hops)?;
            tagged.extend(hops.drain(..).map(|h| (i, h)));
        }
        let mut added = Vec::new();
        for (parent, nid, table, ty) in self.resolve_hops(tagged, seen)? {
            if seen.insert(nid) {
                let mut path = nodes[parent].path.clone();
                path.push(nid);
                let depth = nodes[parent].depth + 1;
                nodes.push(Node {
                    id: nid,
                    table,
                    depth,
                    path,
                    edge_type: Some(ty),
                });
                added.push(nodes.len() - 1);
            }
        }
        Ok(added)
    }

    /// A shortest path (fewest hops) from `from` to `to`, both included, following
    /// `direction` (and only `edge_type` edges when given), at most `max_depth` hops;
    /// `None` when there is none.
    pub fn shortest_path(
        &self,
        from: &EntityId,
        to: &EntityId,
        direction: Direction,
        edge_type: Option<&str>,
        max_depth: usize,
    ) -> Result<Option<Vec<EntityId>>> {
        check_depth(max_depth)?;
        for id in [from, to] {
            if self.live_tables(&[*id])?[0].is_none() {
                return Err(Error::NotFound(format!("no entity with id {id}")));
            }
        }
        if from == to {
            return Ok(Some(vec![*from]));
        }
        let mut iter = self.store().raw_scan(ColumnFamily::Edges)?;
        let mut rev = self.store().raw_scan(ColumnFamily::EdgesRev)?;
        let mut parent: HashMap<EntityId, EntityId> = HashMap::new();
        let mut frontier = vec![*from];
        let mut seen = HashSet::from([*from]);
        let mut hops = Vec::new();
        for _ in 0..max_depth {
            let mut next = Vec::new();
            let mut tagged = Vec::new();
            for (i, id) in frontier.iter().enumerate() {
                self.step(&mut iter, &mut rev, id, direction, edge_type, &mut hops)?;
                tagged.extend(hops.drain(..).map(|h| (i, h)));
            }
            for (i, nid, _, _) in self.resolve_hops(tagged, &seen)? {
                if !seen.insert(nid) {
                    continue;
                }
                parent.insert(nid, frontier[i]);
                if nid == *to {
                    let mut path = vec![nid];
                    let mut at = nid;
                    while let Some(p) = parent.get(&at) {
                        path.push(*p);
                        at = *p;
                    }
                    path.reverse();
                    return Ok(Some(path));
                }
                next.push(nid);
            }
            if next.is_empty() {
                break;
            }
            frontier = next;
        }
        Ok(None)
    }
}
