//! Ingest benchmark: `rem_ingest::ingest` of a folder of generated Markdown files and
//! of a few generated multi-page PDFs into `resources` (embedded with the local
//! model), reporting MB/s and chunks/s. Two references in the same process show where
//! the time goes: the same chunk texts embedded by the model alone (the model's share)
//! and the same folders ingested into a table without embeddings (extraction,
//! chunking and writes).

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use rand::{rngs::StdRng, Rng, SeedableRng};
use rem::{Database, EmbeddingOptions, Filter, OpenOptions, ScanOptions};
use rem_embed::{EmbeddingProvider, LocalBert};
use rem_ingest::IngestOptions;
use serde_json::json;

const WORDS: [&str; 32] = [
    "the",
    "database",
    "stores",
    "memory",
    "for",
    "agents",
    "and",
    "vectors",
    "are",
    "searched",
    "by",
    "meaning",
    "while",
    "records",
    "follow",
    "a",
    "schema",
    "compaction",
    "merges",
    "sorted",
    "files",
    "in",
    "levels",
    "replicas",
    "apply",
    "the",
    "change",
    "log",
    "edges",
    "link",
    "entities",
    "quickly",
];

fn sentence(rng: &mut StdRng) -> String {
    let n = rng.gen_range(8..20);
    let mut s: String = (0..n)
        .map(|_| WORDS[rng.gen_range(0..WORDS.len())])
        .collect::<Vec<_>>()
        .join(" ");
    s.push('.');
    s
}

fn paragraph(rng: &mut StdRng) -> String {
    let n = rng.gen_range(2..7);
    (0..n).map(|_| sentence(rng)).collect::<Vec<_>>().join(" ")
}

/// A Markdown document of about `bytes` bytes: sections with headings, paragraphs and
/// the odd list.
fn markdown(rng: &mut StdRng, title: &str, bytes: usize) -> String {
    let mut out = format!("# {title}\n\n");
    let mut section = 0;
    while out.len() < bytes {
        section += 1;
        out.push_str(&format!("## Section {section}\n\n"));
        for _ in 0..rng.gen_range(1..4) {
            out.push_str(&paragraph(rng));
            out.push_str("\n\n");
        }
        if rng.gen_bool(0.3) {
            for _ in 0..3 {
                out.push_str(&format!("- {}\n", sentence(rng)));
            }
            out.push('\n');
        }
    }
    out
}

/// A minimal PDF (Helvetica, one text object per page, correct cross-reference table)
/// with the given lines on each page.
fn pdf(pages: &[Vec<String>]) -> Vec<u8> {
    let mut objs = vec![
        "<< /Type /Catalog /Pages 2 0 R >>".to_string(),
        format!(
            "<< /Type /Pages /Kids [{}] /Count {} >>",
            (0..pages.len())
                .map(|i| format!("{} 0 R", 4 + 2 * i))
                .collect::<Vec<_>>()
                .join(" "),
            pages.len()
        ),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_string(),
    ];
    for (i, lines) in pages.iter().enumerate() {
        let mut content = String::from("BT /F1 10 Tf 12 TL 50 760 Td");
        for line in lines {
            content.push_str(&format!(" ({line}) Tj T*"));
        }
        content.push_str(" ET");
        objs.push(format!(
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] \
             /Resources << /Font << /F1 3 0 R >> >> /Contents {} 0 R >>",
            5 + 2 * i
        ));
        objs.push(format!(
            "<< /Length {} >>\nstream\n{content}\nendstream",
            content.len()
        ));
    }
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (n, body) in objs.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n{body}\nendobj\n", n + 1).as_bytes());
    }
    let xref = out.len();
    out.extend_from_slice(format!("xref\n0 {}\n0000000000 65535 f \n", objs.len() + 1).as_bytes());
    for off in offsets {
        out.extend_from_slice(format!("{off:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objs.len() + 1
        )
        .as_bytes(),
    );
    out
}

fn folder_bytes(dir: &Path) -> Result<u64> {
    let mut total = 0;
    for e in std::fs::read_dir(dir)? {
        total += e?.metadata()?.len();
    }
    Ok(total)
}

fn open(path: &Path, models_dir: &Path) -> Result<Database> {
    Ok(Database::open(
        path,
        &OpenOptions {
            create: true,
            embedding: EmbeddingOptions {
                models_dir: models_dir.to_path_buf(),
                ..EmbeddingOptions::default()
            },
            ..OpenOptions::default()
        },
    )?)
}

struct Run {
    secs: f64,
    chunks: usize,
}

fn ingest(db: &Database, dir: &Path, schema: &str) -> Result<Run> {
    let options = IngestOptions {
        schema: schema.into(),
        recursive: false,
    };
    let t = Instant::now();
    let reports = rem_ingest::ingest(db, dir, &options, |_, _, _| {})?;
    let secs = t.elapsed().as_secs_f64();
    let mut chunks = 0;
    for r in &reports {
        match &r.outcome {
            rem_ingest::Outcome::Completed { chunks: c } => chunks += c,
            other => anyhow::bail!("{} was not ingested: {other:?}", r.uri),
        }
    }
    Ok(Run { secs, chunks })
}

pub(crate) fn run(
    md_files: usize,
    md_kb: usize,
    pdfs: usize,
    pdf_pages: usize,
    models_dir: Option<std::path::PathBuf>,
) -> Result<()> {
    let models_dir = models_dir.unwrap_or_else(|| EmbeddingOptions::default().models_dir);
    let work = tempfile::tempdir()?;
    let md_dir = work.path().join("md");
    let pdf_dir = work.path().join("pdf");
    std::fs::create_dir_all(&md_dir)?;
    std::fs::create_dir_all(&pdf_dir)?;
    let mut rng = StdRng::seed_from_u64(11);
    for i in 0..md_files {
        let doc = markdown(&mut rng, &format!("Document {i}"), md_kb * 1024);
        std::fs::write(md_dir.join(format!("doc-{i:04}.md")), doc)?;
    }
    for i in 0..pdfs {
        let pages: Vec<Vec<String>> = (0..pdf_pages)
            .map(|_| (0..40).map(|_| sentence(&mut rng)).collect())
            .collect();
        std::fs::write(pdf_dir.join(format!("report-{i:02}.pdf")), pdf(&pages))?;
    }
    let bert = LocalBert::load("all-MiniLM-L6-v2", &models_dir)
        .with_context(|| format!("loading all-MiniLM-L6-v2 from {}", models_dir.display()))?;
    println!(
        "ingest benchmark: {md_files} Markdown files of ~{md_kb} KiB, {pdfs} PDFs of {pdf_pages} pages; \
         local:all-MiniLM-L6-v2, {} threads",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    println!("\n| input | MB | chunks | rem ingest s | MB/s | chunks/s | same chunks, model alone s | model share | no-embedding ingest s | MB/s without model |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for (label, dir) in [("Markdown", &md_dir), ("PDF", &pdf_dir)] {
        let mb = folder_bytes(dir)? as f64 / 1e6;
        let db_dir = tempfile::tempdir()?;
        let db = open(&db_dir.path().join("rem"), &models_dir)?;
        // A second database for the run without embeddings (a file already ingested
        // into one database is unchanged there, whatever the table).
        let plain_db = open(&db_dir.path().join("plain"), &models_dir)?;
        plain_db.register_schema(json!({
            "name": "plain_chunks", "key_field": "name",
            "properties": {
                "uri": {"type": "string"}, "ordinal": {"type": "integer"},
                "name": {"type": "string"}, "content": {"type": "string"},
                "metadata": {"type": "object"}
            }
        }))?;
        // Warm the model (first call allocates) before timing.
        bert.embed(&["warm up"])?;
        let embedded = ingest(&db, dir, "resources")?;
        let plain = ingest(&plain_db, dir, "plain_chunks")?;
        anyhow::ensure!(
            plain.chunks == embedded.chunks,
            "chunk counts differ between tables"
        );
        // The reference: the stored chunk texts through the model, batch 32.
        let texts: Vec<String> = db
            .scan("resources", &Filter::All, &ScanOptions::default())?
            .entities
            .into_iter()
            .filter_map(|e| e.properties.get("content")?.as_str().map(String::from))
            .collect();
        anyhow::ensure!(texts.len() == embedded.chunks, "stored chunk count differs");
        let t = Instant::now();
        for batch in texts.chunks(32) {
            let refs: Vec<&str> = batch.iter().map(String::as_str).collect();
            bert.embed(&refs)?;
        }
        let model = t.elapsed().as_secs_f64();
        println!(
            "| {label} | {mb:.2} | {} | {:.2} | {:.3} | {:.1} | {model:.2} | {:.0}% | {:.2} | {:.1} |",
            embedded.chunks,
            embedded.secs,
            mb / embedded.secs,
            embedded.chunks as f64 / embedded.secs,
            100.0 * model / embedded.secs,
            plain.secs,
            mb / plain.secs,
        );
    }
    Ok(())
}
