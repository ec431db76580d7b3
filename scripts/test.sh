#!/usr/bin/env bash
# The test command (README, CI): installs what it needs, then runs formatting and lint
# checks and every test of the workspace.
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
