//! Graph benchmark: 3-hop traversals (fan-out 10) on a graph of `nodes × fanout` edges,
//! forward and reverse, through `Database::traverse` (prefix scans of RocksDB's edge
//! and reverse-edge families plus liveness checks), against the same BFS over an
//! in-memory adjacency map of the same graph in the same process (the lower bound:
//! what storage costs).

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use anyhow::Result;
use rand::{rngs::StdRng, Rng, SeedableRng};
use rem::{Database, Direction, EntityId, OpenOptions, TraverseOptions};
use serde_json::json;

fn pct(v: &mut [Duration], p: f64) -> f64 {
    v.sort_unstable();
    v[((v.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1e3
}

/// BFS over an adjacency map to `depth` hops, keeping each node's path as the engine
/// does; the number of nodes reached.
fn bfs(adj: &HashMap<EntityId, Vec<EntityId>>, start: EntityId, depth: usize) -> usize {
    let mut seen = HashSet::from([start]);
    let mut paths: Vec<Vec<EntityId>> = vec![vec![start]];
    let mut queue = VecDeque::from([0usize]);
    while let Some(i) = queue.pop_front() {
        let node = *paths[i].last().unwrap_or(&start);
        if paths[i].len() > depth {
            continue;
        }
        for next in adj.get(&node).into_iter().flatten() {
            if seen.insert(*next) {
                let mut p = paths[i].clone();
                p.push(*next);
                paths.push(p);
                queue.push_back(paths.len() - 1);
            }
        }
    }
    seen.len()
}

pub(crate) fn run(nodes: usize, fanout: usize, reps: usize) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let db = Database::open(
        dir.path().join("rem"),
        &OpenOptions {
            create: true,
            ..OpenOptions::default()
        },
    )?;
    db.register_schema(json!({
        "name": "node", "key_field": "name",
        "properties": {"name": {"type": "string"}}
    }))?;
    let mut rng = StdRng::seed_from_u64(7);
    let ids: Vec<EntityId> = (0..nodes)
        .map(|i| EntityId::from_key(db.tenant(), "node", &format!("n{i}")))
        .collect();
    let mut out: HashMap<EntityId, Vec<EntityId>> = HashMap::with_capacity(nodes);
    let mut inn: HashMap<EntityId, Vec<EntityId>> = HashMap::with_capacity(nodes);
    let t = Instant::now();
    for chunk in (0..nodes).collect::<Vec<_>>().chunks(5000) {
        let records = chunk
            .iter()
            .map(|&i| {
                let mut targets = Vec::with_capacity(fanout);
                while targets.len() < fanout {
                    let j = rng.gen_range(0..nodes);
                    if j != i && !targets.contains(&j) {
                        targets.push(j);
                    }
                }
                for &j in &targets {
                    out.entry(ids[i]).or_default().push(ids[j]);
                    inn.entry(ids[j]).or_default().push(ids[i]);
                }
                // Qualified keys: stored as the ids they determine.
                let edges: Vec<String> = targets.iter().map(|j| format!("node:n{j}")).collect();
                json!({"name": format!("n{i}"), "edges": edges})
            })
            .collect();
        db.insert_batch("node", records)?;
    }
    let load = t.elapsed();
    db.flush()?;
    let edges = nodes * fanout;
    println!(
        "graph: {nodes} nodes, {edges} edges (fan-out {fanout}) loaded in {:.1} s, flushed",
        load.as_secs_f64()
    );
    println!("\n| traversal (depth 3) | nodes reached (avg) | rem p50 ms | rem p99 ms | in-memory BFS p50 ms | rem / in-memory |");
    println!("|---|---|---|---|---|---|");
    for (label, direction, adj) in [
        ("forward (out)", Direction::Out, &out),
        ("reverse (in)", Direction::In, &inn),
    ] {
        let options = TraverseOptions {
            depth: 3,
            direction,
            ..Default::default()
        };
        let starts: Vec<EntityId> = (0..reps).map(|_| ids[rng.gen_range(0..nodes)]).collect();
        let mut lat = Vec::with_capacity(reps);
        let mut reached = 0usize;
        for s in &starts {
            let t = Instant::now();
            let found = db.traverse(s, &options)?;
            lat.push(t.elapsed());
            reached += found.len();
        }
        let mut mem = Vec::with_capacity(reps);
        let mut mem_reached = 0usize;
        for s in &starts {
            let t = Instant::now();
            mem_reached += bfs(adj, *s, 3);
            mem.push(t.elapsed());
        }
        anyhow::ensure!(
            reached == mem_reached,
            "traversal reached {reached} nodes, the in-memory BFS {mem_reached}"
        );
        let (p50, p99, m50) = (pct(&mut lat, 0.5), pct(&mut lat, 0.99), pct(&mut mem, 0.5));
        println!(
            "| {label} | {:.0} | {p50:.3} | {p99:.3} | {m50:.3} | {:.1} |",
            reached as f64 / reps as f64,
            p50 / m50
        );
    }
    Ok(())
}
