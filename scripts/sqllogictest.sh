#!/usr/bin/env bash
# SQLite's sqllogictest corpus against REM tables (issue 17). The corpus is not in this
# repository: its test scripts carry no licence statement (the runner beside them is
# GPL-2), so it is read from a clone of https://github.com/gregrahn/sqllogictest:
#
#   ./scripts/sqllogictest.sh /path/to/sqllogictest [--random N] [--wrong]
#
# Runs select1-5, evidence/in1, in2 and slt_lang_aggfunc (the other evidence files test
# UPDATE, REPLACE, triggers, views and DROP, statements REM's SQL does not run), and the
# first N files (default 3) of random/{aggregates,groupby,select,expr}. Prints per-file
# counts of queries passed, wrong, unsupported (ended in an error) and skipped (written
# for another engine). Exits 1 on any wrong answer.
set -euo pipefail
cd "$(dirname "$0")/.."
CORPUS="${1:?usage: $0 /path/to/sqllogictest [--random N] [--wrong]}"
shift
N=3
EXTRA=()
while [ $# -gt 0 ]; do
  case "$1" in
    --random) N="$2"; shift 2 ;;
    *) EXTRA+=("$1"); shift ;;
  esac
done
T="$CORPUS/test"
[ -d "$T" ] || { echo "no $T: give the root of a sqllogictest clone" >&2; exit 2; }
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
cargo build --workspace --bins >&2
FILES=("$T"/select{1,2,3,4,5}.test "$T"/evidence/in1.test "$T"/evidence/in2.test "$T"/evidence/slt_lang_aggfunc.test)
for d in aggregates groupby select expr; do
  for i in $(seq 0 $((N - 1))); do
    f="$T/random/$d/slt_good_$i.test"
    [ -f "$f" ] && FILES+=("$f")
  done
done
"$CARGO_TARGET_DIR/debug/rem-slt" "${FILES[@]}" "${EXTRA[@]}"
