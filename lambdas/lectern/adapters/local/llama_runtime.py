"""Which llama.cpp CPU backend this machine runs, and a real generation proving it before the venv is ready.

scripts/install_llama.sh builds llama-cpp-python with llama.cpp's runtime dispatch (`GGML_BACKEND_DL=ON`,
`GGML_CPU_ALL_VARIANTS=ON`): one shared library per CPU generation (`libggml-cpu-haswell.so`,
`libggml-cpu-zen4.so`, `libggml-cpu-sapphirerapids.so`, ...), none of them built for the machine that compiled
them. llama.cpp would pick one by asking each library's score function, but that function reads CPUID only —
it does not check that the kernel enabled the registers (its own source says "FIXME: this does not check for
OS support") — and llama-cpp-python never loads the libraries at all (llama.cpp looks beside the executable
and in the working directory, neither of which is the wheel's folder). So Lectern chooses:

1. the CPU features the kernel reports in /proc/cpuinfo (it clears the flags of features whose register state
   it does not manage, e.g. AVX-512 under a hypervisor that hides it, AMX on kernels before 5.16);
2. the variants this build ships whose every required feature is present, best first, by llama.cpp's own
   scoring;
3. at install time (`check`), a real generation of a few tokens with the packaged model in a child process per
   variant, best first: a variant whose child dies (SIGILL, SIGSEGV, ...) is rejected and the next one tried.
   The result is recorded in the virtual environment (`lectern-llama-check.json`) with the CPU's fingerprint;
4. at run time (`load_cpu_backend`, in the model server's own process), the recorded variant when the CPU is
   the one it was checked on, else the best ranked one. `LECTERN_LLAMA_CPU_VARIANT` forces a variant.

A build without variants (`LECTERN_LLAMA_CMAKE_ARGS` set to a single-target build) has its CPU backend linked
in; then nothing is chosen and `check` tests that one build.

Standard library only: the model server's child process and the install script import this before llama_cpp.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import hashlib
import importlib.metadata as md
import json
import os
import platform
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHECK_FILE = "lectern-llama-check.json"  # in the virtual environment (sys.prefix), written by `check`
BUILD_FILE = "lectern-llama-build.json"  # in the virtual environment, written by scripts/install_llama.sh
VARIANT_ENV = "LECTERN_LLAMA_CPU_VARIANT"
_LIB_PREFIX = "libggml-cpu-"

# ggml/src/CMakeLists.txt (GGML_CPU_ALL_VARIANTS), x86: variant -> the GGML_* features it is compiled with.
X86_VARIANTS: dict[str, tuple[str, ...]] = {
    "x64": (),
    "sse42": ("SSE42",),
    "sandybridge": ("SSE42", "AVX"),
    "ivybridge": ("SSE42", "AVX", "F16C"),
    "piledriver": ("SSE42", "AVX", "F16C", "FMA"),
    "haswell": ("SSE42", "AVX", "F16C", "FMA", "AVX2", "BMI2"),
    "skylakex": ("SSE42", "AVX", "F16C", "FMA", "AVX2", "BMI2", "AVX512"),
    "cannonlake": ("SSE42", "AVX", "F16C", "FMA", "AVX2", "BMI2", "AVX512", "AVX512_VBMI"),
    "cascadelake": ("SSE42", "AVX", "F16C", "FMA", "AVX2", "BMI2", "AVX512", "AVX512_VNNI"),
    "icelake": ("SSE42", "AVX", "F16C", "FMA", "AVX2", "BMI2", "AVX512", "AVX512_VBMI", "AVX512_VNNI"),
    "cooperlake": ("SSE42", "AVX", "F16C", "FMA", "AVX2", "BMI2", "AVX512", "AVX512_VNNI", "AVX512_BF16"),
    "zen4": (
        "SSE42",
        "AVX",
        "F16C",
        "FMA",
        "AVX2",
        "BMI2",
        "AVX512",
        "AVX512_VBMI",
        "AVX512_VNNI",
        "AVX512_BF16",
    ),
    "alderlake": ("SSE42", "AVX", "F16C", "FMA", "AVX2", "BMI2", "AVX_VNNI"),
    "sapphirerapids": (
        "SSE42",
        "AVX",
        "F16C",
        "FMA",
        "AVX2",
        "BMI2",
        "AVX512",
        "AVX512_VBMI",
        "AVX512_VNNI",
        "AVX512_BF16",
        "AMX_TILE",
        "AMX_INT8",
    ),
}
# The /proc/cpuinfo flags each feature needs (the AVX512 group is what ggml's score function checks).
X86_FLAGS: dict[str, tuple[str, ...]] = {
    "SSE42": ("sse4_2",),
    "AVX": ("avx",),
    "F16C": ("f16c",),
    "FMA": ("fma",),
    "AVX2": ("avx2",),
    "BMI2": ("bmi2",),
    "AVX_VNNI": ("avx_vnni",),
    "AVX512": ("avx512f", "avx512cd", "avx512vl", "avx512dq", "avx512bw"),
    "AVX512_VBMI": ("avx512vbmi",),
    "AVX512_VNNI": ("avx512_vnni",),
    "AVX512_BF16": ("avx512_bf16",),
    "AMX_TILE": ("amx_tile",),
    "AMX_INT8": ("amx_int8",),
}
# ggml_backend_cpu_x86_score: each feature's weight (AMX_TILE itself is not scored).
X86_SCORE: dict[str, int] = {
    "FMA": 1,
    "F16C": 1 << 1,
    "SSE42": 1 << 2,
    "BMI2": 1 << 3,
    "AVX": 1 << 4,
    "AVX2": 1 << 5,
    "AVX_VNNI": 1 << 6,
    "AVX512": 1 << 7,
    "AVX512_VBMI": 1 << 8,
    "AVX512_BF16": 1 << 9,
    "AVX512_VNNI": 1 << 10,
    "AMX_INT8": 1 << 11,
}
# Linux arm64: variant -> features; feature -> the /proc/cpuinfo "Features" word (HWCAP names).
ARM_VARIANTS: dict[str, tuple[str, ...]] = {
    "armv8.0_1": (),
    "armv8.2_1": ("DOTPROD",),
    "armv8.2_2": ("DOTPROD", "FP16"),
    "armv8.2_3": ("DOTPROD", "FP16", "SVE"),
    "armv8.6_1": ("DOTPROD", "FP16", "SVE", "I8MM"),
    "armv8.6_2": ("DOTPROD", "FP16", "SVE", "I8MM", "SVE2"),
    "armv9.2_1": ("DOTPROD", "FP16", "SVE", "I8MM", "SME"),
    "armv9.2_2": ("DOTPROD", "FP16", "SVE", "I8MM", "SVE2", "SME"),
}
ARM_FLAGS: dict[str, tuple[str, ...]] = {
    "DOTPROD": ("asimddp",),
    "FP16": ("asimdhp",),
    "SVE": ("sve",),
    "I8MM": ("i8mm",),
    "SVE2": ("sve2",),
    "SME": ("sme",),
}
# The flags worth printing when a generation fails (all of them would be 100+ words).
_REPORTED_FLAGS = sorted({f for flags in (*X86_FLAGS.values(), *ARM_FLAGS.values()) for f in flags})


class RuntimeCheckError(RuntimeError):
    """The llama.cpp runtime cannot run here; the message says what happened and what to do."""


@dataclass(frozen=True)
class CpuInfo:
    arch: str  # "x86_64" | "aarch64" | ...
    model: str
    flags: frozenset[str]
    kernel: str = ""

    @property
    def fingerprint(self) -> str:
        """Same CPU model, same enabled features, same kernel: the recorded check still holds."""
        text = "|".join((self.arch, self.model, " ".join(sorted(self.flags)), self.kernel))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def reported_flags(self) -> str:
        seen = [f for f in _REPORTED_FLAGS if f in self.flags]
        return " ".join(seen) or "(none of the SIMD flags llama.cpp uses)"


def read_cpu(cpuinfo: str | None = None, arch: str | None = None, kernel: str | None = None) -> CpuInfo:
    """The CPU as the kernel reports it. `cpuinfo`/`arch`/`kernel` are for tests (another machine's text)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            cpuinfo = ""
    model, flags = "", set[str]()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("model name", "cpu model", "hardware") and not model:
            model = value.strip()
        elif key in ("flags", "features") and not flags:
            flags = set(value.split())
    return CpuInfo(
        arch=arch or platform.machine(),
        model=model,
        flags=frozenset(flags),
        kernel=platform.release() if kernel is None else kernel,
    )


def _table(arch: str) -> tuple[dict[str, tuple[str, ...]], dict[str, tuple[str, ...]]]:
    if arch in ("x86_64", "amd64", "AMD64"):
        return X86_VARIANTS, X86_FLAGS
    if arch in ("aarch64", "arm64"):
        return ARM_VARIANTS, ARM_FLAGS
    return {}, {}


def supported(cpu: CpuInfo, variant: str) -> bool:
    variants, flags = _table(cpu.arch)
    if variant not in variants:
        return False
    return all(f in cpu.flags for feature in variants[variant] for f in flags[feature])


def score(cpu: CpuInfo, variant: str) -> int:
    """llama.cpp's score for a supported variant (x86: its bit weights; arm64: the number of features)."""
    variants, _ = _table(cpu.arch)
    features = variants.get(variant, ())
    if cpu.arch in ("x86_64", "amd64", "AMD64"):
        return 1 + sum(X86_SCORE.get(f, 0) for f in features)
    return 1 + len(features)


def rank_variants(cpu: CpuInfo, available: Iterable[str]) -> list[str]:
    """The available variants this CPU and kernel can run, best first."""
    ok = [v for v in available if supported(cpu, v)]
    return sorted(ok, key=lambda v: (-score(cpu, v), v))


def variant_libraries() -> dict[str, Path]:
    """The CPU backend variants the installed llama-cpp-python ships: name -> shared library."""
    try:
        files = md.files("llama_cpp_python") or []
    except md.PackageNotFoundError:
        return {}
    found: dict[str, Path] = {}
    for f in files:
        name = f.name
        if name.startswith(_LIB_PREFIX) and name.endswith(".so"):
            path = Path(str(f.locate())).resolve()
            if path.is_file():
                found[name[len(_LIB_PREFIX) : -len(".so")]] = path
    return found


def _venv_file(name: str, prefix: str | None = None) -> Path:
    return Path(prefix or sys.prefix) / name


def read_json(path: Path) -> dict[str, object]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def build_info(prefix: str | None = None) -> dict[str, object]:
    """How the installed wheel was built (scripts/install_llama.sh records it); {} when unknown."""
    return read_json(_venv_file(BUILD_FILE, prefix))


def recorded_check(cpu: CpuInfo, prefix: str | None = None) -> dict[str, object]:
    """The install-time check's record when it was made on this CPU and kernel, else {}."""
    record = read_json(_venv_file(CHECK_FILE, prefix))
    return record if record.get("ok") and record.get("cpu_fingerprint") == cpu.fingerprint else {}


def choose_variant(
    cpu: CpuInfo, available: dict[str, Path], *, forced: str | None = None, recorded: str | None = None
) -> str | None:
    """The variant to load: forced (LECTERN_LLAMA_CPU_VARIANT) > recorded by `check` > best ranked. None when
    the build has no variants (its CPU backend is linked in)."""
    if not available:
        if forced:
            raise RuntimeCheckError(
                f"{VARIANT_ENV}={forced} but this llama-cpp-python build has no CPU variants (a single-"
                "target build); unset it or rebuild with scripts/install_llama.sh."
            )
        return None
    ranked = rank_variants(cpu, available)
    if forced:
        if forced not in available:
            raise RuntimeCheckError(
                f"{VARIANT_ENV}={forced}: this build has no such CPU variant "
                f"(it has: {', '.join(sorted(available))})."
            )
        if forced not in ranked:
            raise RuntimeCheckError(
                f"{VARIANT_ENV}={forced}: this CPU or its kernel lacks features that variant needs "
                f"(CPU flags seen: {cpu.reported_flags()})."
            )
        return forced
    if recorded and recorded in ranked:
        return recorded
    if not ranked:
        raise RuntimeCheckError(
            f"None of this build's CPU variants ({', '.join(sorted(available))}) can run on this CPU "
            f"(CPU flags seen: {cpu.reported_flags()})."
        )
    return ranked[0]


def load_cpu_backend(variant: str | None = None) -> str | None:
    """In the process that will run llama.cpp, before any model is loaded: register the chosen CPU backend
    with the ggml library llama_cpp itself uses. Returns the variant loaded (None: a build without
    variants)."""
    cpu = read_cpu()
    available = variant_libraries()
    forced = variant or os.environ.get(VARIANT_ENV) or None
    recorded = recorded_check(cpu).get("variant")
    chosen = choose_variant(cpu, available, forced=forced, recorded=str(recorded) if recorded else None)
    if chosen is None:
        return None
    lib = _linked_libggml()
    lib.ggml_backend_reg_count.restype = ctypes.c_size_t
    if lib.ggml_backend_reg_count() > 0:
        return chosen  # already loaded in this process
    lib.ggml_backend_load.argtypes = [ctypes.c_char_p]
    lib.ggml_backend_load.restype = ctypes.c_void_p
    if not lib.ggml_backend_load(str(available[chosen]).encode()):
        raise RuntimeCheckError(f"llama.cpp refused to load its CPU backend {available[chosen]}.")
    return chosen


def _linked_libggml() -> ctypes.CDLL:
    """The libggml that libllama itself is linked against. The wheel holds several copies of it (libggml.so,
    libggml.so.0, ... are separate files: wheels have no symbolic links), and a backend registered with
    another copy would be invisible to llama.cpp; so: the copy the dynamic loader mapped for libllama."""
    import llama_cpp.llama_cpp  # noqa: F401  loads libllama, and with it its libggml

    try:
        maps = Path("/proc/self/maps").read_text().splitlines()
    except OSError:
        maps = []
    for line in maps:
        path = line.split()[-1] if line.split() else ""
        name = Path(path).name
        if name == "libggml.so" or (name.startswith("libggml.so.") and name[len("libggml.so.") :].isdigit()):
            return ctypes.CDLL(path)  # same file as the mapped one: the same handle, not a second copy
    return ctypes.CDLL("libggml.so.0")  # by soname: the loaded object if there is one


# --- the install-time check: one real generation per variant, in a child process --------------------

SMOKE_PROMPT = "Count from 1 to 5, separated by spaces."


@dataclass
class Attempt:
    variant: str | None
    ok: bool
    detail: str  # "4 tokens in 1.2 s: ..." or "killed by SIGILL (illegal instruction)"
    returncode: int = 0


@dataclass
class CheckResult:
    ok: bool
    variant: str | None
    attempts: list[Attempt] = field(default_factory=list)


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            sig = signal.Signals(-code)
        except ValueError:
            return f"killed by signal {-code}"
        reason = {
            signal.SIGILL: "illegal instruction: code for a CPU feature this machine or its kernel lacks",
            signal.SIGSEGV: "segmentation fault / general protection fault",
            signal.SIGBUS: "bus error",
            signal.SIGFPE: "arithmetic exception",
            signal.SIGABRT: "aborted",
            signal.SIGKILL: "sent by a user, a timeout or the out-of-memory killer",
        }.get(sig, signal.strsignal(sig) or sig.name)
        return f"killed by {sig.name} ({reason})"
    return f"exit code {code}"


def _child_command(python: str, model: Path, variant: str | None) -> list[str]:
    cmd = [python, "-m", "lectern.adapters.local.llama_runtime", "generate", "--model", str(model)]
    return cmd + (["--variant", variant] if variant else [])


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["OMP_WAIT_POLICY"] = "PASSIVE"
    env.pop(VARIANT_ENV, None)  # the child is told its variant on the command line
    package_root = str(Path(__file__).resolve().parents[3])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
    return env


def run_check(
    model: Path,
    *,
    python: str = sys.executable,
    variants: Sequence[str | None] | None = None,
    timeout_s: float = 300.0,
    runner: Callable[..., subprocess.CompletedProcess[str]] = subprocess.run,
) -> CheckResult:
    """Generate a few tokens with `model` in a child process for each candidate variant, best first; the first
    that answers wins. `variants` defaults to the ranked variants of `python`'s llama-cpp-python build (asked
    in a child, so a broken install cannot crash this process)."""
    if variants is None:
        variants = list_candidates(python, runner=runner) or [None]
    result = CheckResult(ok=False, variant=None)
    for variant in variants:
        print(
            f"  llama.cpp CPU backend {variant or '(built in)'}: generating...", file=sys.stderr, flush=True
        )
        try:
            proc = runner(
                _child_command(python, model, variant),
                capture_output=True,
                text=True,
                timeout=timeout_s,
                env=_child_env(),
                check=False,
            )
        except subprocess.TimeoutExpired:
            result.attempts.append(Attempt(variant, False, f"no answer within {timeout_s:.0f} s", -9))
            continue
        out = proc.stdout.strip().splitlines()
        if proc.returncode == 0 and out and out[-1].startswith("{"):
            info = json.loads(out[-1])
            detail = f"{info['tokens']} tokens in {info['seconds']:.1f} s: {info['text']!r}"
            result.attempts.append(Attempt(variant, True, detail))
            result.ok, result.variant = True, variant
            return result
        tail = (proc.stderr or "").strip().splitlines()[-3:]
        detail = describe_exit(proc.returncode) + (f"; last output: {' | '.join(tail)[:400]}" if tail else "")
        result.attempts.append(Attempt(variant, False, detail, proc.returncode))
    return result


def list_candidates(
    python: str, *, runner: Callable[..., subprocess.CompletedProcess[str]] = subprocess.run
) -> list[str | None]:
    proc = runner(
        [python, "-m", "lectern.adapters.local.llama_runtime", "variants", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        env=_child_env(),
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeCheckError(
            f"Could not list the llama.cpp CPU variants with {python} ({describe_exit(proc.returncode)}): "
            f"{(proc.stderr or '').strip()[-400:]}"
        )
    data = json.loads(proc.stdout)
    return list(data["ranked"]) if data["available"] else [None]


def failure_message(result: CheckResult, cpu: CpuInfo, build: dict[str, object], venv: str) -> str:
    tried = "\n".join(f"  - {a.variant or 'built-in CPU backend'}: {a.detail}" for a in result.attempts)
    flags = build.get("cmake_args") or "(unknown: not installed by scripts/install_llama.sh)"
    return (
        "The local language model could not generate on this machine: llama.cpp crashed or failed.\n"
        f"{tried}\n"
        f"CPU: {cpu.model or 'unknown'} ({cpu.arch}, kernel {cpu.kernel}); "
        f"flags seen: {cpu.reported_flags()}\n"
        f"llama-cpp-python build flags: {flags}\n"
        "To rebuild: delete the cached wheel and build again, e.g.\n"
        f"  rm -rf {build.get('cache_dir') or '~/.cache/lectern/wheels/<key>'} && make venv\n"
        "or choose a plain baseline build:\n"
        "  LECTERN_LLAMA_CMAKE_ARGS='-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON' "
        "make venv\n"
        f"The virtual environment {venv} is not marked ready."
    )


def _generate(model: Path, variant: str | None, max_tokens: int = 8) -> dict[str, object]:
    loaded = load_cpu_backend(variant)
    import llama_cpp

    start = time.perf_counter()
    llm = llama_cpp.Llama(
        model_path=str(model), n_ctx=512, n_threads=max(1, min(4, os.cpu_count() or 1)), verbose=False
    )
    out: Any = llm.create_chat_completion(
        messages=[{"role": "user", "content": SMOKE_PROMPT}], max_tokens=max_tokens, temperature=0.0
    )
    text = out["choices"][0]["message"]["content"] or ""
    tokens = int(out["usage"]["completion_tokens"])
    if tokens <= 0:
        raise RuntimeCheckError("the model generated no tokens")
    return {"variant": loaded, "tokens": tokens, "seconds": time.perf_counter() - start, "text": text}


def _bench(model: Path, variant: str | None, prompt: str, max_tokens: int, threads: int) -> dict[str, object]:
    """One timed streamed answer in a fresh process: load, time to first token, decode speed."""
    loaded = load_cpu_backend(variant)
    import llama_cpp

    t0 = time.perf_counter()
    llm = llama_cpp.Llama(
        model_path=str(model), n_ctx=4096, n_threads=threads, n_threads_batch=threads, verbose=False
    )
    load_s = time.perf_counter() - t0
    prompt_tokens = len(llm.tokenize(prompt.encode()))
    start = time.perf_counter()
    first = end = 0.0
    tokens = 0
    chunks: Any = llm.create_chat_completion(
        messages=[{"role": "user", "content": prompt}], max_tokens=max_tokens, temperature=0.0, stream=True
    )
    for chunk in chunks:
        if chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
            end = time.perf_counter()
            first = first or end
            tokens += 1
    return {
        "variant": loaded,
        "load_s": load_s,
        "prompt_tokens": prompt_tokens,
        "ttft_s": first - start,
        "completion_tokens": tokens,
        "decode_tokens_per_s": (tokens - 1) / (end - first) if tokens > 1 else 0.0,
        "prompt_tokens_per_s": prompt_tokens / (first - start) if first else 0.0,
    }


def _default_model() -> Path:
    """The GGUF `lectern up` would run: LECTERN_LLM_MODEL_PATH, else the packaged model (assembled once)."""
    from lectern.adapters.local.model_files import ModelFileError, ensure_gguf

    cache = Path(os.environ.get("LECTERN_MODEL_CACHE", Path.home() / ".cache" / "lectern" / "models"))
    override = os.environ.get("LECTERN_LLM_MODEL_PATH") or None
    try:
        return ensure_gguf(cache, override=Path(override) if override else None)
    except ModelFileError as exc:
        raise RuntimeCheckError(str(exc)) from None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lectern.adapters.local.llama_runtime",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_check = sub.add_parser(
        "check", help="generate a few tokens per variant (best first); record the result"
    )
    p_check.add_argument("--python", default=sys.executable, help="the interpreter of the venv to check")
    p_check.add_argument("--model", type=Path, help="a GGUF (default: the packaged model)")
    p_check.add_argument("--timeout", type=float, default=300.0)
    p_check.add_argument(
        "--if-stale",
        action="store_true",
        help="do nothing when the recorded check holds for this CPU, kernel and build",
    )
    p_var = sub.add_parser("variants", help="the CPU variants of the installed build, ranked for this CPU")
    p_var.add_argument("--json", action="store_true")
    p_gen = sub.add_parser("generate", help="(child process) load one variant and generate a few tokens")
    p_gen.add_argument("--model", type=Path, required=True)
    p_gen.add_argument("--variant")
    p_bench = sub.add_parser("bench", help="(child process) one timed streamed answer; prints JSON")
    p_bench.add_argument("--model", type=Path, required=True)
    p_bench.add_argument("--variant")
    p_bench.add_argument("--prompt-file", type=Path, required=True)
    p_bench.add_argument("--max-tokens", type=int, default=64)
    p_bench.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)

    cpu = read_cpu()
    if args.command == "variants":
        available = variant_libraries()
        ranked = rank_variants(cpu, available)
        if args.json:
            print(json.dumps({"available": sorted(available), "ranked": ranked, "cpu": cpu.reported_flags()}))
        else:
            print(f"CPU: {cpu.model} ({cpu.arch}); flags: {cpu.reported_flags()}")
            print("Runs here, best first: " + (", ".join(ranked) or "(a build without variants)"))
        return 0
    if args.command == "generate":
        print(json.dumps(_generate(args.model, args.variant)), flush=True)
        return 0
    if args.command == "bench":
        prompt = args.prompt_file.read_text()
        print(json.dumps(_bench(args.model, args.variant, prompt, args.max_tokens, args.threads)), flush=True)
        return 0

    # check: which venv? the one whose interpreter is --python
    prefix = subprocess.run(  # noqa: S603 - our interpreter argument, no shell
        [args.python, "-c", "import sys; print(sys.prefix)"], capture_output=True, text=True, check=True
    ).stdout.strip()
    record_path = _venv_file(CHECK_FILE, prefix)
    build = build_info(prefix)
    recorded = recorded_check(cpu, prefix)
    if args.if_stale and recorded and recorded.get("build") == build:
        print(
            f"llama.cpp was checked on this CPU ({recorded.get('variant') or 'built-in'} backend, "
            f"{recorded.get('checked_at')})."
        )
        return 0
    record_path.unlink(missing_ok=True)  # never leave an old "ok" behind a failing check
    print("Checking the local model runtime on this CPU: a few tokens with the packaged model...", flush=True)
    try:
        model = args.model or _default_model()
        result = run_check(model, python=args.python, timeout_s=args.timeout)
    except RuntimeCheckError as exc:
        print(f"llama.cpp runtime check failed: {exc}", file=sys.stderr)
        return 1
    if not result.ok:
        print(failure_message(result, cpu, build, prefix), file=sys.stderr)
        return 1
    for a in result.attempts[:-1]:
        print(f"CPU variant {a.variant} rejected: {a.detail}", file=sys.stderr)
    record = {
        "ok": True,
        "variant": result.variant,
        "rejected": {str(a.variant): a.detail for a in result.attempts if not a.ok},
        "cpu_fingerprint": cpu.fingerprint,
        "cpu": {"model": cpu.model, "arch": cpu.arch, "kernel": cpu.kernel, "flags": cpu.reported_flags()},
        "build": build,
        "model": str(model),
        "checked_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "generation": result.attempts[-1].detail,
    }
    tmp = record_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(tmp, record_path)
    print(
        f"llama.cpp generates on this CPU with the {result.variant or 'built-in'} backend "
        f"({result.attempts[-1].detail})."
    )
    return 0


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
