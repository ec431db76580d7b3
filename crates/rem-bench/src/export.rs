//! Export benchmark: `rem_sql::export_table` of the 100k-row `items` table (see the SQL
//! benchmark) to Parquet, CSV and JSON lines, against writing the same Arrow batches,
//! already in memory, with the same writer in the same process (what reading from
//! RocksDB through the table provider adds).

use std::time::{Duration, Instant};

use anyhow::Result;
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;
use rem_sql::{ExportFormat, ExportOptions, Sql};

fn median(mut v: Vec<Duration>) -> f64 {
    v.sort_unstable();
    v[v.len() / 2].as_secs_f64()
}

pub(crate) fn run(n: usize, reps: usize) -> Result<()> {
    let (dir, db, load) = crate::sql::load_items(n)?;
    db.flush()?;
    println!(
        "export benchmark: {n} rows loaded in {:.1} s, flushed; median of {reps} runs",
        load.as_secs_f64()
    );
    // The reference input: every exported column, read once, held in memory.
    let batches: Vec<_> = db
        .sql("SELECT id, entity_type, created_at, modified_at, deleted_at, edges, name, category, code, score, price, ts, note FROM items")?
        .collect::<rem_sql::Result<Vec<_>>>()?;
    let schema = batches[0].schema();
    println!("\n| format | compression | file MB | rem s | rows/s | in-memory batches → same writer s | rem / in-memory |");
    println!("|---|---|---|---|---|---|---|");
    for (format, compression) in [
        (ExportFormat::Parquet, "zstd"),
        (ExportFormat::Parquet, "snappy"),
        (ExportFormat::Parquet, "none"),
        (ExportFormat::Csv, "none"),
        (ExportFormat::Jsonl, "none"),
    ] {
        let path = dir
            .path()
            .join(format!("items-{compression}.{}", format.extension()));
        let options = ExportOptions {
            format,
            compression: compression.into(),
            ..ExportOptions::default()
        };
        let mut times = Vec::new();
        let mut rows = 0;
        for _ in 0..reps {
            let t = Instant::now();
            rows = rem_sql::export_table(&db, "items", &path, &options)?.rows;
            times.push(t.elapsed());
        }
        anyhow::ensure!(rows == n, "exported {rows} rows, expected {n}");
        let bytes = std::fs::metadata(&path)?.len();
        let ref_path = dir.path().join("reference.out");
        let mut ref_times = Vec::new();
        for _ in 0..reps {
            let t = Instant::now();
            let file = std::io::BufWriter::new(std::fs::File::create(&ref_path)?);
            match format {
                ExportFormat::Parquet => {
                    let props = WriterProperties::builder()
                        .set_compression(rem_sql::parquet_compression(compression)?)
                        .set_max_row_group_row_count(Some(options.row_group_size))
                        .build();
                    let mut w = ArrowWriter::try_new(file, schema.clone(), Some(props))?;
                    for b in &batches {
                        w.write(b)?;
                    }
                    w.close()?;
                }
                ExportFormat::Csv | ExportFormat::Jsonl => {
                    // The same bytes through the same writer as `rem query` output.
                    let mut out = file;
                    let f = if format == ExportFormat::Csv {
                        rem_sql::OutputFormat::Csv
                    } else {
                        rem_sql::OutputFormat::Jsonl
                    };
                    rem_sql::write_batches(
                        batches.iter().cloned().map(Ok::<_, rem_sql::Error>),
                        f,
                        &mut out,
                    )?;
                    std::io::Write::flush(&mut out)?;
                }
            }
            ref_times.push(t.elapsed());
        }
        let (ours, reference) = (median(times), median(ref_times));
        println!(
            "| {} | {compression} | {:.1} | {ours:.3} | {:.0} | {reference:.3} | {:.2} |",
            format.extension(),
            bytes as f64 / 1e6,
            n as f64 / ours,
            ours / reference
        );
    }
    Ok(())
}
