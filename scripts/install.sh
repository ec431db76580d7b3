#!/usr/bin/env bash
# One command from a fresh clone to a working `rem`: installs the system packages,
# builds and installs the `rem` binary (cargo install), then runs a short session:
# init a database, add a schema, insert, get, lookup.
#
#   ./scripts/install.sh
#
# The demo uses its own database under $DEMO_HOME (default: a temp dir), so it never
# touches ~/.p8/db. Set CARGO_TARGET_DIR to reuse an existing build.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/deps.sh
./scripts/install-model.sh   # all-MiniLM-L6-v2 into ~/.p8/models (P8_MODELS_DIR)
echo "building and installing rem (the first build compiles RocksDB: ~10 minutes on 2 cores)"
cargo install --locked --path crates/rem-cli --root "${REM_INSTALL_ROOT:-$HOME/.cargo}" --quiet
REM="${REM_INSTALL_ROOT:-$HOME/.cargo}/bin/rem"

DEMO_HOME="${DEMO_HOME:-$(mktemp -d)}"
# Only the database is the demo's own; the model stays where install-model.sh put it.
export P8_DB_PATH="$DEMO_HOME/db"
set -x
"$REM" init
cat > "$DEMO_HOME/person.yaml" <<'YAML'
title: Person
description: A person the agent knows about.
key_field: email
indexed_fields: [role]
properties:
  name: {type: string}
  email: {type: string}
  role: {type: string}
required: [name, email]
YAML
"$REM" schema add "$DEMO_HOME/person.yaml"
ID=$("$REM" insert person '{"name": "Ada Lovelace", "email": "ada@example.com", "role": "engineer"}')
"$REM" get "$ID" --format json
"$REM" lookup ada@example.com --format table
printf '%s\n' \
  '{"name": "rust", "content": "Rust is a systems programming language focused on memory safety.", "uri": "demo://rust"}' \
  '{"name": "pasta", "content": "Boil the pasta in salted water for nine minutes.", "uri": "demo://pasta"}' \
  '{"name": "rocksdb", "content": "RocksDB is an embeddable persistent key-value store.", "uri": "demo://rocksdb"}' \
  | "$REM" insert resources --batch
"$REM" search "which database stores keys and values?" --schema resources --top-k 2 --format table
"$REM" verify
set +x
echo
echo "rem is installed at $REM; the demo database is $DEMO_HOME/db."
echo "Try: $REM search \"memory safety\" --schema resources --path $DEMO_HOME/db"
