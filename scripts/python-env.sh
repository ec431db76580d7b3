#!/usr/bin/env bash
# The Python side of the test command: a virtual environment with what the tests need,
# and the package installed in development mode from the workspace build (the
# extension module cargo built, linked in place: nothing is compiled twice).
#
#   ./scripts/python-env.sh        # after `cargo build --workspace`
#
# Prints the environment's python on its last line.
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET="${CARGO_TARGET_DIR:-target}"
VENV="${REM_VENV:-$HOME/.cache/percolate-rocks/venv}"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV" >&2
fi
PY="$VENV/bin/python"
# Pinned to what the suite was written against; installed once, then reused.
REQS="pytest pytest-asyncio pydantic>=2.7 pyarrow>=14 pandas>=2 polars>=1 mypy>=1.10 typing_extensions langchain-core==1.8.3 langchain-tests==1.1.9 llama-index-core==0.14.25 mem0ai==2.2.1 langchain-community==0.4.2 langchain==1.5.2"
STAMP="$VENV/.rem-reqs"
if [ "$(cat "$STAMP" 2>/dev/null)" != "$REQS" ]; then
  "$PY" -m pip install --quiet --disable-pip-version-check $REQS >&2
  echo "$REQS" > "$STAMP"
fi
LIB="$(cd "$TARGET" && pwd)/debug/lib_native.so"
[ -f "$LIB" ] || { echo "no $LIB: run cargo build --workspace first" >&2; exit 1; }
ln -sf "$LIB" python/rem_db/_native.abi3.so
SITE="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
echo "$(pwd)/python" > "$SITE/percolate_rocks_dev.pth"
# The `rem` entry point, as pip would write it.
cat > "$VENV/bin/rem" <<PYEOF
#!$PY
from rem_db.cli import main
main()
PYEOF
chmod +x "$VENV/bin/rem"
echo "$PY"
