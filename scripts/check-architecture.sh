#!/usr/bin/env bash
# Checks the architecture invariants that tools can check (ARCHITECTURE.md,
# "Invariants"): which workspace crates may name each heavy dependency, and that the
# engine never reads the environment. Run by scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

fail=0
# dependency -> the workspace crates allowed to depend on it directly (normal and
# build edges; tests may use more).
check() {
  local dep="$1" allowed="$2"
  local tree users
  tree=$(cargo tree --workspace -e normal,build -i "$dep" --depth 1 --prefix none) \
    || { echo "architecture: cannot list the dependents of $dep" >&2; fail=1; return; }
  users=$(echo "$tree" | tail -n +2 | awk '{print $1}' | { grep '^rem' || true; } | sort -u | tr '\n' ' ')
  for u in $users; do
    if ! [[ " $allowed " == *" $u "* ]]; then
      echo "architecture: $u depends on $dep directly (allowed: $allowed)" >&2
      fail=1
    fi
  done
}
check rocksdb "rem-storage rem-bench"
check datafusion "rem-sql"
check tonic "rem-replication rem-service"
check candle-core "rem-embed"
check usearch "rem"
check pdf-extract "rem-ingest"
check anyhow "rem-cli rem-python rem-bench rem-slt"
check pyo3 "rem-python"

# The engine and storage never read the environment (configuration is the CLI's); the one
# exception is HOME, for the `~` of a default path (rem::expand_home).
if grep -rn --include=*.rs -E 'std::env::(var|vars|var_os)\b|env::var\(' crates/rem/src crates/rem-storage/src \
  | grep -v 'crates/rem/src/options.rs:.*var_os("HOME")'; then
  echo "architecture: the engine reads the environment (above)" >&2
  fail=1
fi
# unsafe code lives in two files of rem-embed only: the bf16 kernel, and the one call
# into the AVX-512 pass after the CPU check.
unsafe_files=$(grep -rlw --include=*.rs 'unsafe' crates/*/src | sort | tr '\n' ' ')
if [ "$unsafe_files" != "crates/rem-embed/src/bf16_gemm.rs crates/rem-embed/src/fast_bert.rs " ]; then
  echo "architecture: unsafe code outside rem-embed's kernel: $unsafe_files" >&2
  fail=1
fi
exit $fail
