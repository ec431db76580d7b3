#!/usr/bin/env bash
# Longer runs of the randomized reliability tests than the test suite's:
#   ./scripts/stress.sh [sequences] [kill rounds] [flush rounds]
# - the model-based test (random write sequences against a map) with `sequences` cases;
# - the hostile-bytes property tests (2,000 cases each, fixed);
# - the SIGKILL test repeated `kill rounds` times;
# - the SIGKILL test with 1 MB memtables, embeddings, edges and marked batches, with
#   `flush rounds` kills (default 100) in one run;
# - the library crash test (batches, deletes, schema re-registration, edges) with as
#   many kills.
# proptest prints the minimal failing sequence and saves its seed under
# proptest-regressions/, so a failure replays on the next run.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
CASES="${1:-500}"
ROUNDS="${2:-10}"
FLUSH_ROUNDS="${3:-100}"
PROPTEST_CASES="$CASES" cargo test --workspace --test integration the_database_behaves_like_a_map
cargo test --workspace --lib hostile_bytes
for i in $(seq "$ROUNDS"); do
  echo "kill round $i of $ROUNDS" >&2
  cargo test --workspace --test integration sigkill_during_writes_loses_no_acknowledged_write
done
CRASH_ROUNDS="$FLUSH_ROUNDS" cargo test --workspace --test integration sigkill_with_flushes_embeddings_and_edges_keeps_batches_whole -- --nocapture
CRASH_ROUNDS="$FLUSH_ROUNDS" cargo test --workspace --test integration kills_during_every_write_path_leave_a_consistent_database -- --nocapture
