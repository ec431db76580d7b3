//! Model-based test: random sequences of writes against a `Database` and against a plain
//! map, compared after every step through every read path (lookup by key, get by id,
//! index scans, full scans, edges both ways, traversal to depth 2, exact vector search),
//! with edges added and removed, close-and-reopen and schema changes that add and drop
//! an index in the sequence; at the end a replica fed the change log must equal the
//! model too. `PROPTEST_CASES` raises the number of sequences (`scripts/stress.sh` runs
//! many more); a failure prints the minimal sequence.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use rem::{
    Database, Direction, EdgeOptions, Filter, OpenOptions, ScanOptions, SearchOptions,
    TraverseOptions,
};
use serde_json::json;

const KEYS: u8 = 8;
const VALUES: i64 = 4;

#[derive(Debug, Clone)]
enum Op {
    Put(u8, i64),
    Batch(Vec<(u8, i64)>),
    Delete(u8),
    Reopen,
    /// Registers the schema again with the field `n` indexed (true) or not.
    Index(bool),
    /// `k{a} -[rel]-> k{b}`.
    AddEdge(u8, u8),
    RemoveEdge(u8, u8),
}

const REL: &str = "rel";

/// The vector of an entity whose `n` is `n`: a unit vector on axis `n`.
fn vector(n: i64) -> Vec<f32> {
    let mut v = vec![0.0; VALUES as usize];
    v[n as usize] = 1.0;
    v
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..KEYS, 0..VALUES).prop_map(|(k, n)| Op::Put(k, n)),
        2 => proptest::collection::vec((0..KEYS, 0..VALUES), 1..6).prop_map(Op::Batch),
        2 => (0..KEYS).prop_map(Op::Delete),
        1 => Just(Op::Reopen),
        1 => any::<bool>().prop_map(Op::Index),
        2 => (0..KEYS, 0..KEYS).prop_filter("no loops", |(a, b)| a != b).prop_map(|(a, b)| Op::AddEdge(a, b)),
        1 => (0..KEYS, 0..KEYS).prop_filter("no loops", |(a, b)| a != b).prop_map(|(a, b)| Op::RemoveEdge(a, b)),
    ]
}

fn schema(indexed: bool) -> serde_json::Value {
    json!({
        "name": "items", "key_field": "slug",
        "indexed_fields": if indexed { json!(["n"]) } else { json!([]) },
        "embedding_fields": ["slug"], "embedding_provider": format!("external:{VALUES}"),
        "properties": {"slug": {"type": "string"}, "n": {"type": "integer"}}
    })
}

fn open(path: &std::path::Path) -> Database {
    Database::open(
        path,
        &OpenOptions {
            create: true,
            ..OpenOptions::default()
        },
    )
    .unwrap()
}

/// Keys with their values and whether deleted, and the stored `rel` edges (an edge whose
/// end is deleted is kept, and is back if that key is inserted again).
#[derive(Default)]
struct Model {
    items: BTreeMap<u8, (i64, bool)>,
    edges: BTreeSet<(u8, u8)>,
}

impl Model {
    fn live(&self, k: u8) -> bool {
        matches!(self.items.get(&k), Some((_, false)))
    }

    /// The edges of the graph: both ends live.
    fn visible(&self) -> impl Iterator<Item = (u8, u8)> + '_ {
        self.edges
            .iter()
            .copied()
            .filter(|(a, b)| self.live(*a) && self.live(*b))
    }
}

fn key_of(db: &Database, id: &rem::EntityId) -> u8 {
    let e = db.get(id).unwrap().unwrap();
    e.properties["slug"].as_str().unwrap()[1..].parse().unwrap()
}

fn check_graph_and_vectors(db: &Database, model: &Model, step: usize) {
    for k in 0..KEYS {
        if !model.live(k) {
            continue;
        }
        let id = db.lookup(&format!("k{k}")).unwrap()[0].id;
        for (direction, want) in [
            (
                Direction::Out,
                model
                    .visible()
                    .filter(|(a, _)| *a == k)
                    .map(|(_, b)| b)
                    .collect::<BTreeSet<_>>(),
            ),
            (
                Direction::In,
                model
                    .visible()
                    .filter(|(_, b)| *b == k)
                    .map(|(a, _)| a)
                    .collect(),
            ),
        ] {
            let got: BTreeSet<u8> = db
                .edges_of(&id, direction, Some(REL))
                .unwrap()
                .iter()
                .map(|e| {
                    let other = if e.src == id {
                        e.dst_id().unwrap()
                    } else {
                        e.src
                    };
                    key_of(db, &other)
                })
                .collect();
            assert_eq!(got, want, "step {step}: edges {direction:?} of k{k}");
        }
        // Breadth first to depth 2 over the visible edges.
        let mut want: BTreeMap<u8, usize> = BTreeMap::from([(k, 0)]);
        let mut frontier = vec![k];
        for depth in 1..=2 {
            let mut next = Vec::new();
            for f in &frontier {
                for (_, b) in model.visible().filter(|(a, _)| a == f) {
                    if let std::collections::btree_map::Entry::Vacant(slot) = want.entry(b) {
                        slot.insert(depth);
                        next.push(b);
                    }
                }
            }
            frontier = next;
        }
        let options = TraverseOptions {
            depth: 2,
            direction: Direction::Out,
            edge_type: Some(REL.into()),
            ..TraverseOptions::default()
        };
        let got: BTreeMap<u8, usize> = db
            .traverse(&id, &options)
            .unwrap()
            .iter()
            .map(|n| (key_of(db, &n.id), n.depth))
            .collect();
        assert_eq!(got, want, "step {step}: traverse from k{k}");
    }
    for n in 0..VALUES {
        let options = SearchOptions {
            top_k: KEYS as usize,
            min_score: Some(0.99),
            ..SearchOptions::default()
        };
        let got: BTreeSet<String> = db
            .search_by_vector("items", &vector(n), &options)
            .unwrap()
            .hits
            .iter()
            .map(|h| h.entity.properties["slug"].as_str().unwrap().to_string())
            .collect();
        let want: BTreeSet<String> = model
            .items
            .iter()
            .filter(|(_, (v, deleted))| *v == n && !deleted)
            .map(|(k, _)| format!("k{k}"))
            .collect();
        assert_eq!(got, want, "step {step}: search for n = {n}");
    }
}

fn check(db: &Database, model: &Model, step: usize) {
    check_graph_and_vectors(db, model, step);
    let model = &model.items;
    for k in 0..KEYS {
        let found = db.lookup(&format!("k{k}")).unwrap();
        match model.get(&k) {
            Some((n, false)) => {
                assert_eq!(found.len(), 1, "step {step}: k{k}");
                assert_eq!(found[0].properties["n"], json!(n), "step {step}: k{k}");
                let by_id = db.get(&found[0].id).unwrap().unwrap();
                assert_eq!(by_id.properties["n"], json!(n), "step {step}: get k{k}");
            }
            _ => assert!(found.is_empty(), "step {step}: k{k} should not be live"),
        }
    }
    for n in 0..VALUES {
        let mut got: Vec<String> = db
            .scan("items", &Filter::eq("n", json!(n)), &ScanOptions::default())
            .unwrap()
            .entities
            .into_iter()
            .map(|e| e.properties["slug"].as_str().unwrap().to_string())
            .collect();
        got.sort();
        let want: Vec<String> = model
            .iter()
            .filter(|(_, (v, deleted))| *v == n && !deleted)
            .map(|(k, _)| format!("k{k}"))
            .collect();
        assert_eq!(got, want, "step {step}: n = {n}");
    }
    let all = db
        .scan("items", &Filter::All, &ScanOptions::default())
        .unwrap()
        .entities
        .len();
    assert_eq!(
        all,
        model.values().filter(|(_, d)| !d).count(),
        "step {step}: full scan"
    );
    let report = db.verify().unwrap();
    assert!(report.is_ok(), "step {step}: {:?}", report.problems);
}

fn run(ops: &[Op]) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let mut db = open(&path);
    db.register_schema(schema(true)).unwrap();
    let mut model = Model::default();
    for (step, op) in ops.iter().enumerate() {
        match op {
            Op::Put(k, n) => {
                db.insert_batch_with_vectors(
                    "items",
                    vec![json!({"slug": format!("k{k}"), "n": n})],
                    vec![vector(*n)],
                )
                .unwrap();
                model.items.insert(*k, (*n, false));
            }
            Op::Batch(items) => {
                let records = items
                    .iter()
                    .map(|(k, n)| json!({"slug": format!("k{k}"), "n": n}))
                    .collect();
                let vectors = items.iter().map(|(_, n)| vector(*n)).collect();
                db.insert_batch_with_vectors("items", records, vectors)
                    .unwrap();
                for (k, n) in items {
                    model.items.insert(*k, (*n, false));
                }
            }
            Op::AddEdge(a, b) => {
                let added = db.add_edge(
                    &format!("k{a}"),
                    &format!("k{b}"),
                    REL,
                    &EdgeOptions::default(),
                );
                if model.live(*a) && model.live(*b) {
                    added.unwrap();
                    model.edges.insert((*a, *b));
                } else {
                    assert!(
                        added.is_err(),
                        "step {step}: edge to or from a deleted key accepted"
                    );
                }
            }
            Op::RemoveEdge(a, b) => {
                let removed = db.remove_edge(&format!("k{a}"), &format!("k{b}"), REL);
                if !model.live(*a) {
                    assert!(
                        removed.is_err(),
                        "step {step}: removal from a deleted key accepted"
                    );
                } else if !model.live(*b) {
                    // A deleted target's key no longer names it: nothing is removed.
                    assert!(!removed.unwrap(), "step {step}");
                } else {
                    assert_eq!(
                        removed.unwrap(),
                        model.edges.remove(&(*a, *b)),
                        "step {step}"
                    );
                }
            }
            Op::Delete(k) => {
                let live = db.lookup(&format!("k{k}")).unwrap();
                match model.items.get_mut(k) {
                    Some((_, deleted)) if !*deleted => {
                        db.delete(&live[0].id).unwrap();
                        *deleted = true;
                    }
                    _ => assert!(live.is_empty()),
                }
            }
            Op::Reopen => {
                drop(db);
                db = open(&path);
            }
            Op::Index(indexed) => {
                db.register_schema(schema(*indexed)).unwrap();
            }
        }
        check(&db, &model, step);
    }
    // A replica fed the change log, a few records per call, equals the model too.
    let replica = open(&dir.path().join("replica"));
    replica.become_replica("127.0.0.1:1").unwrap();
    loop {
        let batch = db.replication_batch(replica.last_seq(), 3).unwrap();
        if batch.is_empty() {
            break;
        }
        replica.apply_replicated(&batch).unwrap();
    }
    check(&replica, &model, ops.len());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(24)
    ))]

    #[test]
    fn the_database_behaves_like_a_map(ops in proptest::collection::vec(op(), 1..30)) {
        run(&ops);
    }
}
