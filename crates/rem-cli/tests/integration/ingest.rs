//! `rem ingest` with the real local model: Markdown (heading paths, token-sized chunks),
//! HTML (text only), PDF (page numbers), idempotence, changed files replacing their
//! chunks, refusals that write nothing, and a folder run that survives a bad file.

use std::path::Path;

use rand::{Rng, SeedableRng};
use serde_json::Value;

use crate::Rem;

fn markdown(sections: usize) -> String {
    let mut s = String::from("# Storage guide\n\nAn introduction to the storage engine.\n\n");
    for i in 0..sections {
        s.push_str(&format!("## Part {i}\n\n"));
        for j in 0..6 {
            s.push_str(&format!(
                "Paragraph {j} of part {i} explains how sorted string tables, write-ahead \
                 logs and memtables cooperate so that writes are durable and reads stay \
                 fast even when the data set grows beyond memory.\n\n"
            ));
        }
    }
    s
}

fn chunks_of(rem: &Rem, uri: &str) -> Vec<Value> {
    let sql = format!(
        "SELECT ordinal, content, metadata FROM resources WHERE uri = '{}' ORDER BY ordinal",
        uri.replace('\'', "''")
    );
    rem.json(&["query", &sql]).as_array().unwrap().clone()
}

fn file_record(rem: &Rem, uri: &str) -> Value {
    let rows = rem.json(&["query", &format!(
        "SELECT status, chunk_count, content_hash, file_type, size_bytes, edges FROM files WHERE uri = '{uri}'"
    )]);
    rows[0].clone()
}

fn uri(path: &Path) -> String {
    format!("file://{}", std::fs::canonicalize(path).unwrap().display())
}

#[test]
fn markdown_html_pdf_idempotent_and_changed() {
    let rem = Rem::init();
    let dir = rem.home.path().join("docs");
    std::fs::create_dir(&dir).unwrap();
    let md = dir.join("guide.md");
    std::fs::write(&md, markdown(4)).unwrap();
    let out = rem.json(&["ingest", md.to_str().unwrap()]);
    assert_eq!(out[0]["status"], "completed", "{out}");
    let n = out[0]["chunks"].as_u64().unwrap() as usize;
    assert!(n >= 4, "a long document becomes several chunks: {n}");
    let u = uri(&md);
    let chunks = chunks_of(&rem, &u);
    assert_eq!(chunks.len(), n);
    for (i, c) in chunks.iter().enumerate() {
        assert_eq!(c["ordinal"], i as u64);
        let meta: Value = serde_json::from_str(c["metadata"].as_str().unwrap()).unwrap();
        assert_eq!(meta["heading_path"][0], "Storage guide", "{meta}");
        // Fits the model window: MiniLM reads 256 tokens; ~1.3 tokens per word here.
        let words = c["content"].as_str().unwrap().split_whitespace().count();
        assert!(words < 256, "chunk {i} has {words} words");
    }
    let last: Value = serde_json::from_str(chunks[n - 1]["metadata"].as_str().unwrap()).unwrap();
    assert_eq!(last["heading_path"][1], "Part 3");
    let rec = file_record(&rem, &u);
    assert_eq!(rec["status"], "completed");
    assert_eq!(rec["chunk_count"], n as u64);
    assert_eq!(rec["file_type"], "markdown");
    assert_eq!(rec["content_hash"].as_str().unwrap().len(), 64);
    assert_eq!(
        rec["edges"].as_array().unwrap().len(),
        n,
        "file → chunk edges"
    );
    let walk = rem.json(&["traverse", &format!("files:{u}"), "--depth", "1"]);
    assert_eq!(walk.as_array().unwrap().len(), n + 1);

    // The chunks are searchable with the real model.
    let hits = rem.json(&[
        "search",
        "write-ahead logs and memtables",
        "--schema",
        "resources",
    ]);
    assert!(!hits.as_array().unwrap().is_empty());

    // Unchanged: nothing written (the change log does not move).
    let seq = |rem: &Rem| rem.json(&["stats"])["last_seq"].clone();
    let before = seq(&rem);
    let again = rem.json(&["ingest", md.to_str().unwrap()]);
    assert_eq!(again[0]["status"], "unchanged");
    assert_eq!(seq(&rem), before);

    // Changed and shorter: chunks replaced, stale ones gone.
    std::fs::write(&md, markdown(1)).unwrap();
    let changed = rem.json(&["ingest", md.to_str().unwrap()]);
    let m = changed[0]["chunks"].as_u64().unwrap() as usize;
    assert!(m < n);
    assert_eq!(chunks_of(&rem, &u).len(), m);
    assert_eq!(file_record(&rem, &u)["chunk_count"], m as u64);

    // HTML: text only.
    let html = dir.join("page.html");
    std::fs::write(
        &html,
        "<html><head><style>p{color:red}</style><script>var x = 1;</script></head>\
         <body><h1>Bloom filters</h1><p>They skip SST files that cannot hold a key.</p></body></html>",
    )
    .unwrap();
    rem.ok(&["ingest", html.to_str().unwrap()]);
    let hc = chunks_of(&rem, &uri(&html));
    let text = hc[0]["content"].as_str().unwrap();
    assert!(
        text.contains("Bloom filters") && text.contains("skip SST files"),
        "{text}"
    );
    assert!(!text.contains('<') && !text.contains("var x"), "{text}");

    // PDF: one chunk per page here, with its page number.
    let pdf = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/two-pages.pdf");
    let copy = dir.join("two-pages.pdf");
    std::fs::copy(pdf, &copy).unwrap();
    rem.ok(&["ingest", copy.to_str().unwrap()]);
    let pc = chunks_of(&rem, &uri(&copy));
    assert_eq!(pc.len(), 2, "{pc:?}");
    for (i, c) in pc.iter().enumerate() {
        let meta: Value = serde_json::from_str(c["metadata"].as_str().unwrap()).unwrap();
        assert_eq!(meta["page"], i as u64 + 1);
    }
    assert!(pc[1]["content"].as_str().unwrap().contains("Compaction"));
    rem.ok(&["verify"]);
}

#[test]
fn refusals_and_folder_runs() {
    let rem = Rem::init();
    let dir = rem.home.path().join("mixed");
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::write(dir.join("a.md"), "# A\n\nalpha text").unwrap();
    std::fs::write(dir.join("b.bin"), [0u8, 159, 146, 150]).unwrap();
    std::fs::write(dir.join("fake.pdf"), "not a pdf").unwrap();
    std::fs::write(dir.join("sub/c.txt"), "gamma text").unwrap();

    // A single refused file: one line, nothing written.
    let before = rem.json(&["stats"])["last_seq"].clone();
    for (file, want) in [
        (dir.join("b.bin"), "unsupported file type"),
        (dir.join("fake.pdf"), "not a PDF"),
        (dir.join("missing.md"), "cannot read"),
    ] {
        let err = rem.fails(&["ingest", file.to_str().unwrap()]);
        assert!(err.contains(want), "{err}");
    }
    assert_eq!(rem.json(&["stats"])["last_seq"], before);

    // A folder: the good files are ingested, the bad ones reported; exit code 1.
    let out = rem.run(&["ingest", dir.to_str().unwrap(), "--format", "json"]);
    assert!(!out.status.success());
    let rows: Value = serde_json::from_slice(&out.stdout).unwrap();
    let status = |name: &str| {
        rows.as_array()
            .unwrap()
            .iter()
            .find(|r| r["uri"].as_str().unwrap().ends_with(name))
            .map(|r| r["status"].as_str().unwrap().to_string())
    };
    assert_eq!(status("a.md").as_deref(), Some("completed"));
    assert_eq!(status("b.bin").as_deref(), Some("failed"));
    assert_eq!(status("fake.pdf").as_deref(), Some("failed"));
    assert_eq!(status("c.txt"), None, "sub-folders need --recursive");
    let out = rem.run(&[
        "ingest",
        dir.to_str().unwrap(),
        "--recursive",
        "--format",
        "json",
    ]);
    let rows: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(rows
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["uri"].as_str().unwrap().ends_with("c.txt") && r["status"] == "completed"));
    let n = rem.json(&[
        "query",
        "SELECT COUNT(*) AS n FROM files WHERE status = 'completed'",
    ]);
    assert_eq!(n[0]["n"], 2);
}

/// Real PDFs made malformed many ways (truncated at many offsets, bytes flipped, an
/// encryption dictionary, a page with no text) in one folder with a good file: the
/// folder ingest reports every file and goes on, the good file is ingested, and no
/// parser failure takes the process down or prints an internal error.
#[test]
fn hostile_pdfs_fail_their_file_only() {
    let rem = Rem::init();
    let dir = rem.home.path().join("hostile");
    std::fs::create_dir_all(&dir).unwrap();
    let good =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/two-pages.pdf"))
            .unwrap();
    std::fs::write(dir.join("good.md"), "# Good\n\nthis file is fine").unwrap();
    let mut names = vec![];
    for i in 1..12 {
        let cut = good.len() * i / 12;
        let name = format!("truncated-{i}.pdf");
        std::fs::write(dir.join(&name), &good[..cut]).unwrap();
        names.push(name);
    }
    let mut x: u64 = 0x2545F4914F6CDD1D;
    for i in 0..48 {
        let mut bytes = good.clone();
        // Flips in the objects, before the cross-reference table and trailer (flips
        // there mostly stop the parser at once; flips in objects reach deeper code).
        let body = good.len() * 3 / 4;
        for _ in 0..(1 + i % 3) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let at = 16 + (x as usize) % (body - 16);
            bytes[at] ^= (x >> 32) as u8 | 1;
        }
        let name = format!("flipped-{i}.pdf");
        std::fs::write(dir.join(&name), &bytes).unwrap();
        names.push(name);
    }
    // An encryption dictionary in the trailer, and a page with no content at all.
    let text = String::from_utf8_lossy(&good).into_owned();
    let encrypted = text.replacen(
        "trailer",
        "trailer\n<< /Encrypt << /Filter /Standard /V 2 /R 3 /O (x) /U (y) /P -4 >> >>\n",
        1,
    );
    std::fs::write(dir.join("encrypted.pdf"), encrypted).unwrap();
    names.push("encrypted.pdf".into());
    let empty = "%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n2 0 obj << /Type /Pages /Kids [3 0 R] /Count 1 >> endobj\n3 0 obj << /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n";
    std::fs::write(dir.join("no-text.pdf"), empty).unwrap();
    names.push("no-text.pdf".into());

    let started = std::time::Instant::now();
    let out = rem.run(&["ingest", dir.to_str().unwrap(), "--format", "json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "the ingest itself failed: {:?}\n{stderr}",
        out.status
    );
    assert!(!stderr.contains("internal error"), "{stderr}");
    let rows: Value = serde_json::from_slice(&out.stdout).unwrap();
    let status = |name: &str| {
        rows.as_array()
            .unwrap()
            .iter()
            .find(|r| r["uri"].as_str().unwrap().ends_with(&format!("/{name}")))
            .map(|r| r["status"].as_str().unwrap().to_string())
    };
    assert_eq!(status("good.md").as_deref(), Some("completed"));
    for name in &names {
        let s = status(name);
        assert!(
            matches!(s.as_deref(), Some("completed" | "failed")),
            "{name}: {s:?}"
        );
    }
    // Some of these make the PDF parser panic: those fail with a reason, not a crash.
    let panicked = rows
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| {
            r["reason"]
                .as_str()
                .is_some_and(|m| m.contains("parser failed"))
        })
        .count();
    assert!(panicked > 0, "no variant reached a parser panic: {rows}");
    assert!(started.elapsed() < std::time::Duration::from_secs(120));
    // The database is consistent afterwards.
    assert!(rem.ok(&["verify"]).starts_with("ok:"));
}

/// `rem ingest` of a folder killed with SIGKILL at random moments (chunks embedded by the
/// loopback provider): after every kill the database verifies and every file marked
/// `completed` has exactly its chunks, each ordinal once; a last run without a kill
/// completes every file.
#[test]
fn a_folder_ingest_killed_at_random_stays_consistent_and_completes() {
    use std::collections::BTreeMap;

    let (rem, _server) = crate::search::mock_rem();
    let dir = rem.home.path().join("many");
    std::fs::create_dir(&dir).unwrap();
    const FILES: usize = 150;
    for i in 0..FILES {
        std::fs::write(dir.join(format!("doc{i:03}.md")), markdown(3 + i % 5)).unwrap();
    }
    let check = |final_run: bool| {
        let v = rem.ok(&["verify"]);
        assert!(v.starts_with("ok:"), "{v}");
        let files = rem.json(&["query", "SELECT uri, status, chunk_count FROM files"]);
        let chunks = rem.json(&[
            "query",
            "SELECT uri, count(*) AS n, count(DISTINCT ordinal) AS ordinals FROM resources GROUP BY uri",
        ]);
        let mut per_uri: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        for c in chunks.as_array().unwrap() {
            per_uri.insert(
                c["uri"].as_str().unwrap().to_string(),
                (c["n"].as_u64().unwrap(), c["ordinals"].as_u64().unwrap()),
            );
        }
        let mut completed = 0;
        for f in files.as_array().unwrap() {
            let uri = f["uri"].as_str().unwrap();
            let status = f["status"].as_str().unwrap();
            assert!(
                matches!(status, "processing" | "completed"),
                "{uri}: {status}"
            );
            let (n, ordinals) = per_uri.get(uri).copied().unwrap_or((0, 0));
            assert_eq!(n, ordinals, "{uri}: an ordinal stored twice");
            if status == "completed" {
                completed += 1;
                assert_eq!(
                    Some(n),
                    f["chunk_count"].as_u64(),
                    "{uri}: completed with {n} chunks"
                );
            }
        }
        if final_run {
            assert_eq!(files.as_array().unwrap().len(), FILES);
            assert_eq!(completed, FILES);
        }
        completed
    };
    let seed: u64 = rand::random();
    eprintln!("ingest kill seed: {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut completed_after = Vec::new();
    for _ in 0..5 {
        let mut child = rem
            .command()
            .args(["ingest", dir.to_str().unwrap()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let wait = rng.gen_range(30..250);
        std::thread::sleep(std::time::Duration::from_millis(wait));
        let _ = child.kill();
        let _ = child.wait();
        completed_after.push(check(false));
    }
    assert!(
        completed_after[0] < FILES,
        "the first kill came after the whole folder was done; it proved nothing"
    );
    let out = rem.run(&["ingest", dir.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    check(true);
    eprintln!("files completed after each kill: {completed_after:?} of {FILES}");
}
