#!/usr/bin/env bash
# The test command (README, CI): installs what it needs, then runs formatting and lint
# checks and every test of the workspace.
#
#   ./scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/deps.sh
rustup component list --installed 2>/dev/null | grep -q rustfmt || rustup component add rustfmt clippy
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace
