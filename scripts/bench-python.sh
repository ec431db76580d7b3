#!/usr/bin/env bash
# The Python benchmark (python/bench/peers.py): rem_db beside chromadb, lancedb,
# qdrant-client (local mode) and sqlite-vec on the same vectors, in one run.
#
#   ./scripts/bench-python.sh [--n 10000 --n 100000]
#
# Builds the extension optimised (the workspace's dev profile at opt-level 3, which
# shares the compiled dependencies with rem-bench's figures), installs the peers into
# their own virtual environment, and runs the script.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
CARGO_PROFILE_DEV_OPT_LEVEL=3 cargo build --workspace --bins --lib >&2
VENV="${REM_BENCH_VENV:-$HOME/.cache/percolate-rocks/bench-venv}"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check numpy pyarrow chromadb lancedb qdrant-client sqlite-vec pysqlite3-binary >&2
LIB="$(cd "$CARGO_TARGET_DIR" && pwd)/debug/lib_native.so"
ln -sf "$LIB" python/rem_db/_native.abi3.so
PYTHONPATH="$(pwd)/python" "$VENV/bin/python" python/bench/peers.py --rust-bench "$CARGO_TARGET_DIR/debug/rem-bench" "$@"
