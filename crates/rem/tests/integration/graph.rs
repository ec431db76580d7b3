//! Explicit edges, traversal and shortest paths: typed edges with properties, the
//! `references` type kept equal to the `edges` list, cycles, directions, soft deletes,
//! late targets and bad input.

use rem::{
    decode_change, Change, Database, Direction, EdgeOptions, EntityId, TraverseOptions, REFERENCES,
};
use serde_json::json;

fn people(names: &[&str]) -> Database {
    let db = Database::in_memory().unwrap();
    db.register_schema(json!({
        "name": "person", "key_field": "handle",
        "properties": {"handle": {"type": "string"}, "role": {"type": "string"}}
    }))
    .unwrap();
    for n in names {
        db.insert("person", json!({ "handle": n })).unwrap();
    }
    db
}

fn id(db: &Database, handle: &str) -> EntityId {
    db.resolve(handle).unwrap().id
}

fn knows(db: &Database, a: &str, b: &str) {
    db.add_edge(a, b, "knows", &EdgeOptions::default()).unwrap();
}

/// (handle, depth) of each node, in result order.
fn walk(db: &Database, from: &str, options: &TraverseOptions) -> Vec<(String, usize)> {
    db.traverse(&id(db, from), options)
        .unwrap()
        .into_iter()
        .map(|n| {
            let e = db.get(&n.id).unwrap().unwrap();
            (
                e.properties["handle"].as_str().unwrap().to_string(),
                n.depth,
            )
        })
        .collect()
}

fn opts(depth: usize, direction: Direction) -> TraverseOptions {
    TraverseOptions {
        depth,
        direction,
        ..Default::default()
    }
}

#[test]
fn typed_edges_carry_weight_properties_and_first_creation_time() {
    let db = people(&["ada", "bob"]);
    let e = db
        .add_edge(
            "ada",
            "person:bob",
            "mentors",
            &EdgeOptions {
                weight: Some(0.25),
                properties: json!({"since": 2020}).as_object().unwrap().clone(),
            },
        )
        .unwrap();
    assert_eq!(e.src, id(&db, "ada"));
    assert_eq!(e.dst_id(), Some(id(&db, "bob")));
    assert_eq!(e.weight, 0.25);
    assert_eq!(e.properties["since"], 2020);
    std::thread::sleep(std::time::Duration::from_millis(3));
    let again = db
        .add_edge("ada", "bob", "mentors", &EdgeOptions::default())
        .unwrap();
    assert_eq!(again.created_at, e.created_at);
    assert_eq!(again.weight, 1.0);
    // Typed edges are not part of the entity's edges list.
    assert!(db.get(&id(&db, "ada")).unwrap().unwrap().edges.is_empty());
    let out = db
        .edges_of(&id(&db, "ada"), Direction::Out, Some("mentors"))
        .unwrap();
    assert_eq!(out.len(), 1);
    let into = db.edges_of(&id(&db, "bob"), Direction::In, None).unwrap();
    assert_eq!(into.len(), 1);
    assert!(
        db.verify().unwrap().is_ok(),
        "{:?}",
        db.verify().unwrap().problems
    );

    // Both writes and the removal are in the change log.
    assert!(db.remove_edge("ada", "bob", "mentors").unwrap());
    assert!(!db.remove_edge("ada", "bob", "mentors").unwrap());
    assert!(db
        .edges_of(&id(&db, "ada"), Direction::Both, None)
        .unwrap()
        .is_empty());
    let kinds: Vec<&str> = db
        .changes_since(0, usize::MAX)
        .unwrap()
        .iter()
        .filter_map(|(_, bytes)| match decode_change(bytes).unwrap() {
            Change::EdgePut { .. } => Some("put"),
            Change::EdgeDelete { .. } => Some("delete"),
            _ => None,
        })
        .collect();
    assert_eq!(kinds, vec!["put", "put", "delete"]);
    assert!(db.verify().unwrap().is_ok());
}

#[test]
fn references_edges_are_the_edges_list() {
    let db = people(&["ada", "bob"]);
    db.add_edge("ada", "bob", REFERENCES, &EdgeOptions::default())
        .unwrap();
    let ada = db.get(&id(&db, "ada")).unwrap().unwrap();
    assert_eq!(ada.edges, vec![id(&db, "bob").to_string()]);
    // Adding it again changes nothing; properties are refused for references.
    db.add_edge("ada", "bob", REFERENCES, &EdgeOptions::default())
        .unwrap();
    assert_eq!(db.get(&ada.id).unwrap().unwrap().edges.len(), 1);
    let err = db
        .add_edge(
            "ada",
            "bob",
            REFERENCES,
            &EdgeOptions {
                weight: Some(2.0),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert!(err.to_string().contains("references"), "{err}");
    assert!(db.remove_edge("ada", "bob", REFERENCES).unwrap());
    assert!(db.get(&ada.id).unwrap().unwrap().edges.is_empty());
    assert!(db
        .edges_of(&ada.id, Direction::Out, None)
        .unwrap()
        .is_empty());
    assert!(db.verify().unwrap().is_ok());
}

#[test]
fn qualified_keys_resolve_when_the_target_appears() {
    let db = people(&["ada"]);
    db.insert(
        "person",
        json!({"handle": "ada", "edges": ["person:zed", "Person:bob"]}),
    )
    .unwrap();
    // Neither target exists yet: no neighbours.
    assert_eq!(
        walk(&db, "ada", &opts(2, Direction::Out)),
        vec![("ada".into(), 0)]
    );
    db.insert("person", json!({"handle": "zed"})).unwrap();
    db.insert("person", json!({"handle": "bob"})).unwrap();
    let mut got = walk(&db, "ada", &opts(1, Direction::Out));
    got.sort();
    assert_eq!(
        got,
        vec![("ada".into(), 0), ("bob".into(), 1), ("zed".into(), 1)]
    );
    // The reverse index finds the source from the target's id.
    assert_eq!(
        walk(&db, "zed", &opts(1, Direction::In)),
        vec![("zed".into(), 0), ("ada".into(), 1)]
    );
    assert!(db.verify().unwrap().is_ok());
}

#[test]
fn traversal_depths_paths_directions_and_cycles() {
    // ada -> bob -> cy -> ada (a cycle), cy -> dee, eve -> ada
    let db = people(&["ada", "bob", "cy", "dee", "eve"]);
    for (a, b) in [
        ("ada", "bob"),
        ("bob", "cy"),
        ("cy", "ada"),
        ("cy", "dee"),
        ("eve", "ada"),
    ] {
        knows(&db, a, b);
    }
    db.add_edge("ada", "dee", "blocks", &EdgeOptions::default())
        .unwrap();
    let out = walk(
        &db,
        "ada",
        &TraverseOptions {
            edge_type: Some("knows".into()),
            ..opts(10, Direction::Out)
        },
    );
    assert_eq!(
        out,
        vec![
            ("ada".into(), 0),
            ("bob".into(), 1),
            ("cy".into(), 2),
            ("dee".into(), 3)
        ]
    );
    // Without the type filter dee is one hop away.
    assert!(walk(&db, "ada", &opts(1, Direction::Out)).contains(&("dee".into(), 1)));
    let nodes = db
        .traverse(
            &id(&db, "ada"),
            &TraverseOptions {
                edge_type: Some("knows".into()),
                ..opts(3, Direction::Out)
            },
        )
        .unwrap();
    let dee = nodes.iter().find(|n| n.depth == 3).unwrap();
    assert_eq!(
        dee.path,
        vec![
            id(&db, "ada"),
            id(&db, "bob"),
            id(&db, "cy"),
            id(&db, "dee")
        ]
    );
    assert_eq!(dee.edge_type.as_deref(), Some("knows"));
    // In: who reaches ada.
    let mut into = walk(&db, "ada", &opts(1, Direction::In));
    into.sort();
    assert_eq!(
        into,
        vec![("ada".into(), 0), ("cy".into(), 1), ("eve".into(), 1)]
    );
    // Both, depth 1 from cy: bob (in), ada and dee (out).
    let mut both = walk(&db, "cy", &opts(1, Direction::Both));
    both.sort();
    assert_eq!(
        both,
        vec![
            ("ada".into(), 1),
            ("bob".into(), 1),
            ("cy".into(), 0),
            ("dee".into(), 1)
        ]
    );
    // DFS reaches the same nodes, each once.
    let mut dfs = walk(
        &db,
        "eve",
        &TraverseOptions {
            dfs: true,
            ..opts(16, Direction::Both)
        },
    );
    assert_eq!(dfs[0], ("eve".into(), 0));
    dfs.sort();
    dfs.dedup_by(|a, b| a.0 == b.0);
    assert_eq!(dfs.len(), 5);

    // Shortest paths.
    let path = db
        .shortest_path(&id(&db, "eve"), &id(&db, "dee"), Direction::Out, None, 6)
        .unwrap()
        .unwrap();
    assert_eq!(path, vec![id(&db, "eve"), id(&db, "ada"), id(&db, "dee")]);
    let knows_only = db
        .shortest_path(
            &id(&db, "eve"),
            &id(&db, "dee"),
            Direction::Out,
            Some("knows"),
            6,
        )
        .unwrap()
        .unwrap();
    assert_eq!(knows_only.len(), 5);
    assert!(db
        .shortest_path(&id(&db, "dee"), &id(&db, "eve"), Direction::Out, None, 6)
        .unwrap()
        .is_none());
    assert!(db
        .shortest_path(
            &id(&db, "eve"),
            &id(&db, "dee"),
            Direction::Out,
            Some("knows"),
            2
        )
        .unwrap()
        .is_none());
}

#[test]
fn soft_deleted_entities_drop_out() {
    let db = people(&["ada", "bob", "cy"]);
    knows(&db, "ada", "bob");
    knows(&db, "bob", "cy");
    let bob = id(&db, "bob");
    db.delete(&bob).unwrap();
    assert_eq!(
        walk(&db, "ada", &opts(3, Direction::Out)),
        vec![("ada".into(), 0)]
    );
    assert!(db
        .edges_of(&id(&db, "ada"), Direction::Out, None)
        .unwrap()
        .is_empty());
    assert!(db
        .traverse(&bob, &opts(1, Direction::Out))
        .unwrap_err()
        .to_string()
        .contains(&bob.to_string()));
    assert!(db.verify().unwrap().is_ok());
}

#[test]
fn traversals_see_every_later_write() {
    // Liveness comes from an in-memory directory kept current from the change log:
    // deletes, revivals and new nodes after a first traversal must all show.
    let db = people(&["ada", "bob", "cy"]);
    knows(&db, "ada", "bob");
    knows(&db, "bob", "cy");
    let chain = |db: &Database| walk(db, "ada", &opts(3, Direction::Out));
    assert_eq!(chain(&db).len(), 3);
    db.delete(&id(&db, "cy")).unwrap();
    assert_eq!(chain(&db), vec![("ada".into(), 0), ("bob".into(), 1)]);
    // An upsert revives a soft-deleted entity.
    db.insert("person", json!({"handle": "cy", "role": "back"}))
        .unwrap();
    assert_eq!(chain(&db).len(), 3);
    db.insert("person", json!({"handle": "dee"})).unwrap();
    knows(&db, "cy", "dee");
    assert_eq!(chain(&db).last().unwrap(), &("dee".to_string(), 3));
    // Another handle on the same store (another tenant) keeps its own directory.
    let other = db.for_tenant("other").unwrap();
    other
        .register_schema(json!({
            "name": "person", "key_field": "handle",
            "properties": {"handle": {"type": "string"}}
        }))
        .unwrap();
    other.insert("person", json!({"handle": "ada"})).unwrap();
    assert_eq!(walk(&other, "ada", &opts(2, Direction::Out)).len(), 1);
    assert_eq!(chain(&db).len(), 4);
    // A reopened database rebuilds the directory from its entities.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let options = rem::OpenOptions {
        create: true,
        ..Default::default()
    };
    {
        let db = Database::open(&path, &options).unwrap();
        db.register_schema(json!({
            "name": "person", "key_field": "handle",
            "properties": {"handle": {"type": "string"}}
        }))
        .unwrap();
        for h in ["ada", "bob"] {
            db.insert("person", json!({"handle": h})).unwrap();
        }
        knows(&db, "ada", "bob");
        db.delete(&id(&db, "bob")).unwrap();
    }
    let db = Database::open(&path, &options).unwrap();
    assert_eq!(chain(&db), vec![("ada".into(), 0)]);
}

#[test]
fn bad_input_is_refused_and_writes_nothing() {
    let db = people(&["ada", "bob", "dup"]);
    db.register_schema(json!({"name": "team", "key_field": "handle",
        "properties": {"handle": {"type": "string"}}}))
        .unwrap();
    db.insert("team", json!({"handle": "dup"})).unwrap();
    let before = db.last_seq();
    let none = EdgeOptions::default();
    for (src, dst, ty, want) in [
        ("ada", "nobody", "knows", "nobody"),
        ("nobody", "ada", "knows", "nobody"),
        ("ada", "bob", "", "edge type"),
        ("ada", "dup", "knows", "2 entities"),
    ] {
        let err = db.add_edge(src, dst, ty, &none).unwrap_err().to_string();
        assert!(err.contains(want), "{src}->{dst} [{ty}]: {err}");
    }
    let err = db
        .add_edge(
            "ada",
            "bob",
            "knows",
            &EdgeOptions {
                weight: Some(f64::NAN),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert!(err.to_string().contains("weight"), "{err}");
    for depth in [0, rem::MAX_DEPTH + 1] {
        let err = db
            .traverse(&id(&db, "ada"), &opts(depth, Direction::Out))
            .unwrap_err();
        assert!(err.to_string().contains("depth"), "{err}");
    }
    assert!(Direction::parse("sideways").is_err());
    assert_eq!(db.last_seq(), before);
}

#[test]
fn other_tenants_do_not_see_edges() {
    let db = people(&["ada", "bob"]);
    knows(&db, "ada", "bob");
    let other = db.for_tenant("acme").unwrap();
    other
        .register_schema(json!({"name": "person", "key_field": "handle",
            "properties": {"handle": {"type": "string"}}}))
        .unwrap();
    other.insert("person", json!({"handle": "ada"})).unwrap();
    let ada = other.resolve("ada").unwrap().id;
    assert!(other
        .edges_of(&ada, Direction::Both, None)
        .unwrap()
        .is_empty());
    assert_eq!(
        other
            .traverse(&ada, &opts(3, Direction::Both))
            .unwrap()
            .len(),
        1
    );
    let mut all = 0;
    other
        .scan_edges(None, None, |_| {
            all += 1;
            true
        })
        .unwrap();
    assert_eq!(all, 0);
}
