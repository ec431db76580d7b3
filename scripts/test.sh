#!/usr/bin/env bash
# The test command (README, CI): installs what it needs, then runs formatting and lint
# checks, every test of the workspace, and the Python package's suite.
#
#   ./scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/deps.sh
./scripts/install-model.sh   # the local embedding model the tests use
cargo fmt --version >/dev/null 2>&1 || rustup component add rustfmt
cargo clippy --version >/dev/null 2>&1 || rustup component add clippy
cargo fmt --all -- --check
./scripts/check-architecture.sh
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace
# The Python package: the extension module from the same build (no second compile of
# RocksDB or DataFusion), its test dependencies in a virtual environment, then pytest.
cargo build --workspace --all-targets
PY="$(./scripts/python-env.sh | tail -1)"
(cd python/tests && "$PY" -m pytest -q -p no:cacheprovider)
