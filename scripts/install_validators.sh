#!/usr/bin/env bash
# The template and state-machine validators the infra tests run (tests/infra/test_validators.py), pinned:
#   asl-validator      package.json / package-lock.json (npm ci -> node_modules/.bin)
#   checkov            its own venv (.venv-checkov): its dependencies pin an older boto3/botocore than ours
#   cfn-lint (+ cfn-lint-serverless) are Python dev dependencies of the project venv (pyproject.toml).
# Idempotent and quick when installed. Usage: scripts/install_validators.sh
set -euo pipefail
cd "$(dirname "$0")/.."
CHECKOV_VERSION="3.3.30"
CHECKOV_VENV="${CHECKOV_VENV:-.venv-checkov}"
PY="${PYTHON:-python3}"

if [ ! -x node_modules/.bin/asl-validator ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  command -v npm >/dev/null || { echo "npm is needed for asl-validator (Debian: apt-get install npm)"; exit 1; }
  npm ci --no-audit --no-fund --silent
fi
if ! { [ -x "$CHECKOV_VENV/bin/checkov" ] && [ "$("$CHECKOV_VENV/bin/checkov" --version 2>/dev/null)" = "$CHECKOV_VERSION" ]; }; then
  echo "Installing checkov $CHECKOV_VERSION into $CHECKOV_VENV..."
  "$PY" -m venv "$CHECKOV_VENV"
  "$CHECKOV_VENV/bin/pip" install --quiet "checkov==$CHECKOV_VERSION"
fi
