#!/usr/bin/env bash
# Runs every fuzz target (or those named) for SECONDS each (default 300) with cargo-fuzz
# on nightly, then prints executions and crashes per target. New interesting inputs go
# into fuzz/corpus/<target>/ (merge and commit them); crashes into fuzz/artifacts/.
#
#   ./scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Needs: `rustup toolchain install nightly`, `cargo install cargo-fuzz`.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-300}"
shift || true
all=(stored_entry key_codec vector_index_load schema_document replica_apply where_predicate sql_rewrite chunker)
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=("${all[@]}")
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$HOME/.cache/percolate-rocks/fuzz-target}"
# Link the RocksDB (and Snappy) library the workspace build compiled, if there is one:
# compiling RocksDB's C++ again takes ~10 minutes.
if [ -z "${ROCKSDB_LIB_DIR:-}" ]; then
  lib=$(ls -t "$HOME"/.cache/percolate-rocks/target/debug/build/librocksdb-sys-*/out/librocksdb.a 2>/dev/null | head -n 1 || true)
  if [ -n "$lib" ]; then
    export ROCKSDB_LIB_DIR="$(dirname "$lib")" ROCKSDB_STATIC=1
    export SNAPPY_LIB_DIR="$ROCKSDB_LIB_DIR" SNAPPY_STATIC=1
  fi
fi
# Seed inputs from a real database, written by the suite's ignored seed tests.
if [ ! -d fuzz/corpus/stored_entry ]; then
  cargo test --workspace --lib -- --ignored write_seed_corpora
fi
cd fuzz
cargo +nightly fuzz build --sanitizer none --debug-assertions
printf '%-20s %12s %8s\n' target executions crashes > /tmp/rem-fuzz-summary.txt
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "artifacts/$t"
  log="/tmp/rem-fuzz-$t.log"
  cargo +nightly fuzz run --sanitizer none --debug-assertions "$t" "corpus/$t" -- \
    -max_total_time="$secs" -timeout=20 -rss_limit_mb=4096 -print_final_stats=1 >"$log" 2>&1 || true
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -n 1 || echo "?")
  crashes=$(find "artifacts/$t" -type f | wc -l)
  printf '%-20s %12s %8s\n' "$t" "${execs:-?}" "$crashes" | tee -a /tmp/rem-fuzz-summary.txt
done
cat /tmp/rem-fuzz-summary.txt
