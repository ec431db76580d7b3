#!/usr/bin/env bash
# One command from a fresh clone to a working `rem` and `import rem_db`: installs the
# system packages and the local embedding model, builds and installs the Python package
# percolate-rocks (`pip install .`, a release build; its `rem` command is the same Rust
# CLI, so there is one build), then runs a short session with each: init a database, add
# a schema, insert, get, lookup, semantic search; then the same from Python.
#
#   ./scripts/install.sh
#
# The package goes into the virtual environment $REM_VENV (default ~/.p8/venv). The demo
# uses its own database under $DEMO_HOME (default: a temp dir), so it never touches
# ~/.p8/db. Set CARGO_TARGET_DIR to reuse an existing build.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/deps.sh
./scripts/install-model.sh   # all-MiniLM-L6-v2 into ~/.p8/models (P8_MODELS_DIR)
VENV="${REM_VENV:-$HOME/.p8/venv}"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
echo "building and installing percolate-rocks into $VENV (the first build compiles RocksDB and DataFusion: ~45 minutes on 2 cores)"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check .
REM="$VENV/bin/rem"

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
echo "the same from Python:"
set -x
"$VENV/bin/python" - <<'PY'
import rem_db
with rem_db.Database() as db:                     # P8_DB_PATH: the demo database
    print([p["name"] for p in db.lookup("ada@example.com")])
    print([h["name"] for h in db.search("key-value stores", table="resources", top_k=1)])
    print(db.sql("SELECT name, role FROM person").to_list())
PY
set +x
echo
echo "rem and rem_db are installed in $VENV (activate it: source $VENV/bin/activate);"
echo "the demo database is $DEMO_HOME/db."
echo "Try: $REM search \"memory safety\" --schema resources --path $DEMO_HOME/db"
