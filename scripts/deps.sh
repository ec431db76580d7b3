#!/usr/bin/env bash
# Installs what building and testing need on a fresh Debian machine:
#   - libclang-dev (bindgen for librocksdb-sys), a C++ compiler, protobuf is not needed yet;
#   - pydantic for Python 3 (only for `rem schema add models.py::Class` and its test);
#   - pyarrow for Python 3 (the export tests read Parquet files back with it).
# Safe to run repeatedly: it skips what is already there.
set -euo pipefail

SUDO=""
if [ "$(id -u)" != "0" ] && command -v sudo >/dev/null; then SUDO="sudo"; fi

need_apt=()
dpkg -s libclang-dev >/dev/null 2>&1 || need_apt+=(libclang-dev)
command -v g++ >/dev/null 2>&1 || need_apt+=(g++)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3 python3-pip)
# Virtual environments (the Python package and its tests) need ensurepip.
python3 -c 'import ensurepip' >/dev/null 2>&1 || need_apt+=(python3-venv)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing ${need_apt[*]} (apt)"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if ! python3 -c 'import pydantic' >/dev/null 2>&1; then
  echo "installing pydantic (pip)"
  python3 -m pip install --quiet --disable-pip-version-check pydantic \
    || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages pydantic
fi

if ! python3 -c 'import pyarrow' >/dev/null 2>&1; then
  echo "installing pyarrow (pip)"
  python3 -m pip install --quiet --disable-pip-version-check pyarrow \
    || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages pyarrow
fi

command -v cargo >/dev/null || { echo "cargo is required: install Rust with rustup" >&2; exit 1; }
