//! Embeddings on write and semantic search, with the OpenAI-compatible provider
//! pointed at a server on 127.0.0.1 (deterministic vectors, counted requests).

use std::collections::HashSet;
use std::sync::atomic::Ordering;

use rem::{Database, EmbeddingOptions, Error, Filter, OpenOptions, SearchOptions, VectorIndexType};
use rem_testkit::{start, vector_for, Behaviour, MockServer};
use serde_json::json;

const DIMS: usize = 16;

/// Which categories a filter keeps (the brute-force side of a recall check).
type Keep = Box<dyn Fn(&str) -> bool>;

pub(crate) fn options(server: &MockServer) -> EmbeddingOptions {
    EmbeddingOptions {
        default_model: "openai:mock-embed".into(),
        openai_base_url: server.base_url.clone(),
        batch_size: 8,
        hnsw_ef_search: 100,
        ..EmbeddingOptions::default()
    }
}

/// Reopens an existing database with the provider served by `server`.
fn reopen(path: &std::path::Path, server: &MockServer) -> Database {
    Database::open(
        path,
        &OpenOptions {
            embedding: options(server),
            ..OpenOptions::default()
        },
    )
    .unwrap()
}

fn docs_schema(db: &Database) {
    db.register_schema(json!({
        "name": "docs", "key_field": "slug", "indexed_fields": ["category"],
        "description": "Documents to search by meaning.",
        "embedding_fields": ["body"], "embedding_provider": "default",
        "properties": {"slug": {"type": "string"}, "category": {"type": "string"}, "body": {"type": "string"}}
    }))
    .unwrap();
}

fn requests(server: &MockServer) -> usize {
    server.requests.load(Ordering::SeqCst)
}

#[test]
fn batches_make_ceil_n_over_b_calls_and_unchanged_text_is_not_reembedded() {
    let server = start(Behaviour {
        dims: DIMS,
        ..Default::default()
    });
    let db = Database::in_memory_with(options(&server)).unwrap();
    docs_schema(&db);
    let records: Vec<_> = (0..20)
        .map(|i| json!({"slug": format!("d{i}"), "category": "c", "body": format!("text {i}")}))
        .collect();
    let before = requests(&server);
    db.insert_batch("docs", records.clone()).unwrap();
    assert_eq!(requests(&server) - before, 3, "20 texts in batches of 8");
    assert_eq!(
        server
            .inputs
            .lock()
            .unwrap()
            .iter()
            .rev()
            .take(3)
            .sum::<usize>(),
        20
    );

    // Same texts again: no provider call. Five changed texts: one call.
    let before = requests(&server);
    db.insert_batch("docs", records.clone()).unwrap();
    assert_eq!(requests(&server) - before, 0);
    let mut changed = records.clone();
    for r in changed.iter_mut().take(5) {
        r["body"] = json!(format!("{} (edited)", r["body"].as_str().unwrap()));
    }
    // A change to a field that is not embedded does not re-embed either.
    changed[10]["category"] = json!("other");
    let before = requests(&server);
    db.insert_batch("docs", changed).unwrap();
    assert_eq!(requests(&server) - before, 1);
    assert_eq!(*server.inputs.lock().unwrap().last().unwrap(), 5);
    assert!(db.verify().unwrap().is_ok());
}

#[test]
fn search_finds_the_nearest_and_updates_replace_vectors() {
    let server = start(Behaviour {
        dims: DIMS,
        ..Default::default()
    });
    let db = Database::in_memory_with(options(&server)).unwrap();
    docs_schema(&db);
    let records: Vec<_> = (0..300).map(|i| json!({"slug": format!("d{i}"), "category": format!("c{}", i % 3), "body": format!("body number {i}")})).collect();
    db.insert_batch("docs", records).unwrap();

    let r = db
        .search(Some("docs"), "body number 42", &SearchOptions::default())
        .unwrap();
    assert_eq!(r.hits[0].entity.properties["slug"], "d42");
    assert!((r.hits[0].score - 1.0).abs() < 1e-4);
    assert_eq!(r.hits.len(), 10);
    assert!(r.hits.windows(2).all(|w| w[0].score >= w[1].score));

    // An update moves the vector: the old text no longer finds d42 at score 1.
    db.insert(
        "docs",
        json!({"slug": "d42", "category": "c0", "body": "something else entirely"}),
    )
    .unwrap();
    let r = db
        .search(Some("docs"), "body number 42", &SearchOptions::default())
        .unwrap();
    assert!(
        r.hits.iter().all(|h| h.score < 0.999),
        "stale vector still indexed"
    );
    let r = db
        .search(
            Some("docs"),
            "something else entirely",
            &SearchOptions::default(),
        )
        .unwrap();
    assert_eq!(r.hits[0].entity.properties["slug"], "d42");

    // Deleting removes it from results.
    let id = r.hits[0].entity.id;
    db.delete(&id).unwrap();
    let r = db
        .search(
            Some("docs"),
            "something else entirely",
            &SearchOptions::default(),
        )
        .unwrap();
    assert!(r.hits.iter().all(|h| h.entity.id != id));

    // min_score, top_k and a filter.
    let opts = SearchOptions {
        top_k: 5,
        min_score: Some(0.999),
        ..Default::default()
    };
    let r = db.search(Some("docs"), "body number 7", &opts).unwrap();
    assert_eq!(r.hits.len(), 1);
    let opts = SearchOptions {
        filter: Filter::Eq("category".into(), json!("c1")),
        ..Default::default()
    };
    let r = db.search(Some("docs"), "body number 7", &opts).unwrap();
    assert_eq!(r.hits.len(), 10);
    assert!(r
        .hits
        .iter()
        .all(|h| h.entity.properties["category"] == "c1"));
    assert_eq!(r.hits[0].entity.properties["slug"], "d7");
    assert!(db.verify().unwrap().is_ok());
}

/// recall@10 of filtered HNSW search against exact filtered search, at 50%, 10% and 1%
/// selectivity. The 50% case is large enough to filter inside the HNSW search.
#[test]
fn filtered_search_keeps_recall() {
    let server = start(Behaviour {
        dims: DIMS,
        ..Default::default()
    });
    let db = Database::in_memory_with(EmbeddingOptions {
        batch_size: 512,
        ..options(&server)
    })
    .unwrap();
    docs_schema(&db);
    let n = 6000;
    let records: Vec<_> = (0..n)
        .map(|i| json!({"slug": format!("d{i}"), "category": format!("c{}", i % 100), "body": format!("document {i} about topic {}", i % 37)}))
        .collect();
    for chunk in records.chunks(1000) {
        db.insert_batch("docs", chunk.to_vec()).unwrap();
    }
    let all: Vec<(String, String, Vec<f32>)> = records
        .iter()
        .map(|r| {
            let body = r["body"].as_str().unwrap();
            (
                r["slug"].as_str().unwrap().to_string(),
                r["category"].as_str().unwrap().to_string(),
                vector_for(body, DIMS),
            )
        })
        .collect();
    // 50%: half the categories, through the index (3,000 rows: filtered inside HNSW).
    let category_in = |names: Vec<String>| {
        Filter::In(
            "category".into(),
            names.into_iter().map(|c| json!(c)).collect(),
        )
    };
    let half = category_in((0..50).map(|i| format!("c{}", i * 2)).collect());
    let is_even = |c: &str| c[1..].parse::<u32>().unwrap() % 2 == 0;
    let cases: [(Filter, Keep); 3] = [
        (half, Box::new(is_even)),
        (
            category_in((1..=10).map(|i| format!("c{i}")).collect()),
            Box::new(|c: &str| {
                ["c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8", "c9", "c10"].contains(&c)
            }),
        ),
        (
            Filter::Eq("category".into(), json!("c42")),
            Box::new(|c: &str| c == "c42"),
        ),
    ];
    for (predicate, keep) in cases {
        let selected = all.iter().filter(|(_, c, _)| keep(c)).count();
        let mut recall_sum = 0.0;
        let queries = 20;
        for q in 0..queries {
            let query = format!("query text {q}");
            let qv = vector_for(&query, DIMS);
            let mut exact: Vec<(f32, &str)> = all
                .iter()
                .filter(|(_, c, _)| keep(c))
                .map(|(s, _, v)| {
                    (
                        v.iter().zip(&qv).map(|(a, b)| a * b).sum::<f32>(),
                        s.as_str(),
                    )
                })
                .collect();
            exact.sort_by(|a, b| b.0.total_cmp(&a.0));
            let truth: HashSet<&str> = exact.iter().take(10).map(|(_, s)| *s).collect();
            let opts = SearchOptions {
                filter: predicate.clone(),
                ..Default::default()
            };
            let got = db.search(Some("docs"), &query, &opts).unwrap();
            assert!(got
                .hits
                .iter()
                .all(|h| keep(h.entity.properties["category"].as_str().unwrap())));
            let found = got
                .hits
                .iter()
                .filter(|h| truth.contains(h.entity.properties["slug"].as_str().unwrap()))
                .count();
            recall_sum += found as f64 / truth.len() as f64;
        }
        let recall = recall_sum / queries as f64;
        eprintln!("filter with {selected} of {n} rows: recall@10 {recall:.3}");
        assert!(recall >= 0.95, "{predicate:?}: recall@10 {recall}");
    }
}

#[test]
fn index_survives_reopen_and_catches_up_from_the_log() {
    let server = start(Behaviour {
        dims: DIMS,
        ..Default::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let open = || {
        Database::open(
            dir.path(),
            &OpenOptions {
                create: true,
                embedding: options(&server),
                ..OpenOptions::default()
            },
        )
        .unwrap()
    };
    {
        let db = open();
        docs_schema(&db);
        db.insert_batch(
            "docs",
            (0..50)
                .map(|i| json!({"slug": format!("a{i}"), "body": format!("first {i}")}))
                .collect(),
        )
        .unwrap();
        db.search(Some("docs"), "first 1", &SearchOptions::default())
            .unwrap();
    } // saved on close with its watermark
    assert!(dir.path().join("vectors").read_dir().unwrap().count() >= 3);
    {
        // Writes while the index is not loaded: the saved index is now behind the log.
        let db = open();
        db.insert_batch(
            "docs",
            (0..5)
                .map(|i| json!({"slug": format!("b{i}"), "body": format!("second {i}")}))
                .collect(),
        )
        .unwrap();
        db.insert("docs", json!({"slug": "a3", "body": "rewritten"}))
            .unwrap();
        let id = db.lookup("a4").unwrap()[0].id;
        db.delete(&id).unwrap();
    }
    let db = open();
    let top = |q: &str| {
        db.search(Some("docs"), q, &SearchOptions::default())
            .unwrap()
            .hits[0]
            .clone()
    };
    assert_eq!(top("second 3").entity.properties["slug"], "b3");
    assert!((top("second 3").score - 1.0).abs() < 1e-4);
    assert_eq!(top("rewritten").entity.properties["slug"], "a3");
    assert!(db
        .search(Some("docs"), "first 4", &SearchOptions::default())
        .unwrap()
        .hits
        .iter()
        .all(|h| h.entity.properties["slug"] != "a4"));
    assert!(db.verify().unwrap().is_ok());
}

#[test]
fn exact_index_type_and_table_detection() {
    let server = start(Behaviour {
        dims: DIMS,
        ..Default::default()
    });
    let db = Database::in_memory_with(EmbeddingOptions {
        index_type: VectorIndexType::Flat,
        ..options(&server)
    })
    .unwrap();
    docs_schema(&db);
    db.insert_batch(
        "docs",
        (0..30)
            .map(|i| json!({"slug": format!("d{i}"), "body": format!("flat {i}")}))
            .collect(),
    )
    .unwrap();
    let r = db
        .search(Some("docs"), "flat 9", &SearchOptions::default())
        .unwrap();
    assert_eq!(r.hits[0].entity.properties["slug"], "d9");
    // Without a table, one is chosen among tables with embedded fields and reported.
    let before = requests(&server);
    let r = db
        .search(None, "flat 9", &SearchOptions::default())
        .unwrap();
    // Descriptions were embedded at registration: detection embeds only the query,
    // then the search embeds it for the chosen table.
    assert_eq!(requests(&server) - before, 2);
    let sizes: Vec<usize> = server
        .inputs
        .lock()
        .unwrap()
        .iter()
        .rev()
        .take(2)
        .copied()
        .collect();
    assert_eq!(sizes, vec![1, 1], "no description was re-embedded");
    assert!(r.table_detected);
    assert!(
        ["docs", "resources", "moments", "messages"].contains(&r.table.as_str()),
        "{}",
        r.table
    );
}

#[test]
fn bad_input_is_refused_and_writes_nothing() {
    let server = start(Behaviour {
        dims: DIMS,
        ..Default::default()
    });
    let dir = tempfile::tempdir().unwrap();
    {
        let db = Database::open(
            dir.path(),
            &OpenOptions {
                create: true,
                embedding: options(&server),
                ..OpenOptions::default()
            },
        )
        .unwrap();
        docs_schema(&db);
        db.insert("docs", json!({"slug": "x", "body": "hello"}))
            .unwrap();
        // A table without embedded fields cannot be searched by meaning.
        let err = db
            .search(Some("files"), "q", &SearchOptions::default())
            .unwrap_err();
        assert!(err.to_string().contains("no embedded fields"), "{err}");
        assert!(matches!(
            db.search(Some("nope"), "q", &SearchOptions::default()),
            Err(Error::UnknownTable(_))
        ));
    }
    // Another model of another size: refused, nothing written.
    let other = start(Behaviour {
        dims: 8,
        ..Default::default()
    });
    let db = reopen(dir.path(), &other);
    let before = db.last_seq();
    let err = db
        .insert("docs", json!({"slug": "y", "body": "world"}))
        .unwrap_err();
    assert!(
        err.to_string().contains("16-dimensional") && err.to_string().contains("8 dimensions"),
        "{err}"
    );
    assert_eq!(db.last_seq(), before);
    drop(db);
    // A provider that fails: the error says so, nothing written.
    let failing = start(Behaviour {
        dims: DIMS,
        fail_first: 1000,
        fail_status: 500,
        ..Default::default()
    });
    let db = reopen(dir.path(), &failing);
    let before = db.last_seq();
    let err = db
        .insert("docs", json!({"slug": "z", "body": "!"}))
        .unwrap_err();
    assert!(err.to_string().contains("HTTP 500"), "{err}");
    assert_eq!(db.last_seq(), before);
    // An unknown local model: a clear error that says how to install one.
    std::env::set_var("HF_HUB_OFFLINE", "1");
    let mut opts = options(&server);
    opts.default_model = "local:no-such-model".into();
    opts.models_dir = dir.path().join("models");
    let db2 = Database::open(
        tempfile::tempdir().unwrap().path(),
        &OpenOptions {
            create: true,
            embedding: opts,
            ..OpenOptions::default()
        },
    )
    .unwrap();
    let err = db2
        .insert("resources", json!({"content": "x"}))
        .unwrap_err();
    assert!(err.to_string().contains("not installed"), "{err}");
}

#[test]
fn alt_embedding_fills_its_own_column_and_is_searchable() {
    let server = start(Behaviour {
        dims: DIMS,
        ..Default::default()
    });
    // Two providers on one OpenAI-compatible endpoint (the loopback server answers any
    // model name).
    let mut opts = options(&server);
    opts.alt_model = Some("openai:mock-alt".into());
    let db = Database::in_memory_with(opts).unwrap();
    docs_schema(&db);
    let before = requests(&server);
    db.insert_batch(
        "docs",
        (0..10)
            .map(|i| json!({"slug": format!("d{i}"), "body": format!("alt body {i}")}))
            .collect(),
    )
    .unwrap();
    // Both columns were filled: one call each (plus the alt provider's size probe).
    assert!(requests(&server) - before >= 2);
    let plain = db
        .search(Some("docs"), "alt body 3", &SearchOptions::default())
        .unwrap();
    let with_alt = db
        .search(
            Some("docs"),
            "alt body 3",
            &SearchOptions {
                alt: true,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(plain.hits[0].entity.properties["slug"], "d3");
    assert_eq!(with_alt.hits[0].entity.properties["slug"], "d3");
    assert!(db.verify().unwrap().is_ok());
}

/// Eight writers upsert the same 50 keys with texts that repeat (so a plan made before
/// the write lock often keeps the stored vector), in 30 short rounds of 100 ms. After
/// each round every stored vector is the embedding of its entity's stored text: verify
/// is clean (each stored vector's text hash is its entity's text's, and the loaded index
/// holds exactly the stored vectors), and the stored vector of each entity scores 1
/// against the embedding of its text. (A later write of a key repairs an earlier race,
/// so each round's last writes are what a check can catch; many short rounds give it
/// many chances. Without the re-check under the write lock this fails in round 0.)
#[test]
fn concurrent_writers_never_store_one_text_with_another_texts_vector() {
    use std::time::{Duration, Instant};
    let server = start(Behaviour {
        dims: DIMS,
        ..Default::default()
    });
    let db = Database::in_memory_with(options(&server)).unwrap();
    docs_schema(&db);
    let writes = std::sync::atomic::AtomicUsize::new(0);
    for round in 0..30usize {
        let deadline = Instant::now() + Duration::from_millis(100);
        std::thread::scope(|s| {
            for t in 0..8usize {
                let db = db.clone();
                let writes = &writes;
                s.spawn(move || {
                    let mut n = 0usize;
                    while Instant::now() < deadline && n < 1_000 {
                        let batch: Vec<_> = (0..50usize)
                            .filter(|k| (k + n + t).is_multiple_of(4))
                            .map(|k| {
                                json!({"slug": format!("k{k}"), "category": "c",
                                       "body": format!("text of {k}, version {}", (t + n + round) % 3)})
                            })
                            .collect();
                        writes.fetch_add(batch.len(), Ordering::Relaxed);
                        db.insert_batch("docs", batch).unwrap();
                        n += 1;
                    }
                });
            }
        });
        let report = db.verify().unwrap();
        assert!(report.is_ok(), "round {round}: {:?}", report.problems);
        for k in 0..50 {
            let Some(e) = db.lookup(&format!("k{k}")).unwrap().pop() else {
                continue;
            };
            let body = e.properties["body"].as_str().unwrap().to_string();
            // Restricted to the entity, the search scores its stored vector exactly.
            let opts = SearchOptions {
                top_k: 1,
                filter: Filter::eq("slug", json!(format!("k{k}"))),
                ..Default::default()
            };
            let r = db
                .search_by_vector("docs", &vector_for(&body, DIMS), &opts)
                .unwrap();
            assert_eq!(r.hits[0].entity.id, e.id, "round {round}, k{k}");
            assert!(
                r.hits[0].score > 0.999,
                "round {round}, k{k} ('{body}'): its stored vector scores {}",
                r.hits[0].score
            );
        }
    }
    assert!(
        writes.load(Ordering::Relaxed) > 1000,
        "too few writes to race"
    );
}
