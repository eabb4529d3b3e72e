"""Choosing llama.cpp's CPU backend from the kernel's view of the CPU, and the install-time generation check.

The /proc/cpuinfo texts are trimmed copies of real machines' (the AMD EPYC of this project's CI, an Intel
Sapphire Rapids with AMX, a Haswell, a VM that hides AVX-512, an AWS Graviton 3). The check's children are
stub interpreters (shell scripts) that answer, fail, or die of a signal like a crashing llama.cpp would.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from lectern.adapters.local import llama_runtime as rt

ZEN5 = """processor	: 0
vendor_id	: AuthenticAMD
model name	: AMD EPYC
flags		: fpu sse sse2 ssse3 fma sse4_1 sse4_2 avx f16c avx2 bmi1 bmi2 avx512f avx512dq \
avx512ifma avx512cd avx512bw avx512vl avx_vnni avx512_bf16 avx512vbmi avx512_vbmi2 avx512_vnni \
avx512_bitalg avx512_vpopcntdq
"""
SAPPHIRE_RAPIDS = """model name	: Intel(R) Xeon(R) Platinum 8488C
flags		: fpu sse sse2 ssse3 fma sse4_1 sse4_2 avx f16c avx2 bmi1 bmi2 avx512f avx512dq \
avx512cd avx512bw avx512vl avx512vbmi avx512_vnni avx512_bf16 avx512_fp16 avx_vnni amx_bf16 amx_tile amx_int8
"""
HASWELL = """model name	: Intel(R) Xeon(R) CPU E5-2676 v3 @ 2.40GHz
flags		: fpu sse sse2 ssse3 fma sse4_1 sse4_2 avx f16c avx2 bmi1 bmi2
"""
# AVX-512 hardware behind a hypervisor/kernel that does not enable its registers: the kernel clears the flags.
VM_NO_AVX512 = """model name	: Intel(R) Xeon(R) Gold 6348 CPU @ 2.60GHz
flags		: fpu sse sse2 ssse3 fma sse4_1 sse4_2 avx f16c avx2 bmi1 bmi2
"""
GRAVITON3 = """processor	: 0
BogoMIPS	: 2100.00
Features	: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp \
cpuid asimdrdm jscvt fcma lrcpc dcpop sha3 sm3 sm4 asimddp sha512 sve asimdfhm dit uscat ilrcpc flagm ssbs \
paca pacg dcpodp svei8mm svebf16 i8mm bf16
CPU implementer	: 0x41
"""
X86_BUILD = [
    "x64",
    "sse42",
    "sandybridge",
    "ivybridge",
    "piledriver",
    "haswell",
    "skylakex",
    "cannonlake",
    "cascadelake",
    "icelake",
    "cooperlake",
    "zen4",
    "alderlake",
    "sapphirerapids",
]
ARM_BUILD = list(rt.ARM_VARIANTS)


@pytest.mark.parametrize(
    ("cpuinfo", "arch", "best", "also"),
    [
        (ZEN5, "x86_64", "zen4", ["icelake", "cooperlake", "haswell", "alderlake"]),
        (SAPPHIRE_RAPIDS, "x86_64", "sapphirerapids", ["zen4", "icelake", "alderlake"]),
        (HASWELL, "x86_64", "haswell", ["piledriver", "sse42", "x64"]),
        (VM_NO_AVX512, "x86_64", "haswell", []),
        (GRAVITON3, "aarch64", "armv8.6_1", ["armv8.2_3", "armv8.0_1"]),
    ],
)
def test_ranking_follows_the_kernels_flags(cpuinfo: str, arch: str, best: str, also: list[str]) -> None:
    cpu = rt.read_cpu(cpuinfo, arch=arch, kernel="6.1")
    ranked = rt.rank_variants(cpu, X86_BUILD if arch == "x86_64" else ARM_BUILD)
    assert ranked[0] == best
    assert set(also) <= set(ranked)
    if cpuinfo in (HASWELL, VM_NO_AVX512):
        assert not any(v in ranked for v in ("skylakex", "icelake", "zen4", "sapphirerapids", "alderlake"))
    if cpuinfo is ZEN5:
        assert "sapphirerapids" not in ranked  # no AMX
    if cpuinfo is GRAVITON3:
        assert not any(v.startswith("armv9") for v in ranked)  # no SVE2/SME
    # the order is llama.cpp's own score, best first
    scores = [rt.score(cpu, v) for v in ranked]
    assert scores == sorted(scores, reverse=True)


def test_fingerprint_changes_with_cpu_and_kernel() -> None:
    a = rt.read_cpu(ZEN5, arch="x86_64", kernel="6.1")
    assert a.fingerprint == rt.read_cpu(ZEN5, arch="x86_64", kernel="6.1").fingerprint
    assert a.fingerprint != rt.read_cpu(SAPPHIRE_RAPIDS, arch="x86_64", kernel="6.1").fingerprint
    assert a.fingerprint != rt.read_cpu(ZEN5, arch="x86_64", kernel="6.8").fingerprint


def test_choose_variant_forced_recorded_and_errors() -> None:
    cpu = rt.read_cpu(HASWELL, arch="x86_64", kernel="6.1")
    libs = {v: Path(f"/lib/libggml-cpu-{v}.so") for v in X86_BUILD}
    assert rt.choose_variant(cpu, libs) == "haswell"
    assert rt.choose_variant(cpu, libs, recorded="sse42") == "sse42"  # the check rejected something better
    assert rt.choose_variant(cpu, libs, recorded="zen4") == "haswell"  # a record that cannot hold here
    assert rt.choose_variant(cpu, libs, forced="x64") == "x64"
    assert rt.choose_variant(cpu, {}) is None  # a single-target build: its backend is linked in
    with pytest.raises(rt.RuntimeCheckError, match="lacks features"):
        rt.choose_variant(cpu, libs, forced="icelake")
    with pytest.raises(rt.RuntimeCheckError, match="no such CPU variant"):
        rt.choose_variant(cpu, libs, forced="pentium")
    with pytest.raises(rt.RuntimeCheckError, match="no CPU variants"):
        rt.choose_variant(cpu, {}, forced="haswell")
    with pytest.raises(rt.RuntimeCheckError, match="None of this build"):
        rt.choose_variant(cpu, {"zen4": libs["zen4"]})


def test_describe_exit_names_the_signal() -> None:
    assert "SIGILL" in rt.describe_exit(-4) and "illegal instruction" in rt.describe_exit(-4)
    assert "SIGSEGV" in rt.describe_exit(-11)
    assert "out-of-memory" in rt.describe_exit(-9)
    assert rt.describe_exit(3) == "exit code 3"


# --- the check, with stub interpreters --------------------


def _stub(
    tmp_path: Path,
    crash_on: set[str],
    prefix: Path,
    ranked: list[str],
    *,
    installed: bool = False,
    script: Path | None = None,
) -> Path:
    """A stand-in for a venv's python: lists `ranked` variants, dies of SIGSEGV generating with a variant in
    `crash_on` (`*` = every variant), answers for the others; delegates the check itself to real Python."""
    die = 'echo "llama_model_load: loading model" >&2; kill -SEGV $$'
    if "*" in crash_on:
        crash = die
    else:
        crash = "\n".join(f'    case "$*" in *"--variant {v}"*) {die} ;; esac' for v in sorted(crash_on))
    answer = json.dumps({"variant": "ok", "tokens": 4, "seconds": 0.4, "text": "ready"})
    listing = json.dumps({"available": ranked, "ranked": ranked, "cpu": "avx2"})
    script = script or tmp_path / "python"
    # installed: install_llama.sh's probes find llama-cpp-python and the model parts in place
    probes = '  "- "*) exit 0 ;;\n  "-c "*"importlib.metadata"*) exit 0 ;;' if installed else ""
    script.write_text(f"""#!/bin/sh
case "$*" in
  *"print(sys.prefix)"*) echo "{prefix}" ;;
{probes}
  *"llama_runtime variants"*) echo '{listing}' ;;
  *"llama_runtime generate"*)
{crash}
    echo '{answer}' ;;
  *) exec "{sys.executable}" "$@" ;;
esac
""")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script


@pytest.fixture
def venv(tmp_path: Path) -> Path:
    prefix = tmp_path / "venv"
    prefix.mkdir()
    (prefix / rt.BUILD_FILE).write_text(
        json.dumps(
            {
                "cmake_args": "-DGGML_NATIVE=OFF -DGGML_BACKEND_DL=ON -DGGML_CPU_ALL_VARIANTS=ON",
                "cache_dir": "/cache/llama_cpp_python-0.3.36-abc",
            }
        )
    )
    return prefix


def _check(python: Path, model: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(Path(rt.__file__).resolve().parents[3]))
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "lectern.adapters.local.llama_runtime",
            "check",
            "--python",
            str(python),
            "--model",
            str(model),
            "--timeout",
            "30",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def test_check_falls_back_past_a_crashing_variant_and_records_it(tmp_path: Path, venv: Path) -> None:
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF")
    stub = _stub(tmp_path, {"sapphirerapids"}, venv, ["sapphirerapids", "zen4", "haswell"])
    proc = _check(stub, model)
    assert proc.returncode == 0, proc.stderr
    assert "sapphirerapids rejected: killed by SIGSEGV" in proc.stderr
    record = json.loads((venv / rt.CHECK_FILE).read_text())
    assert record["ok"] and record["variant"] == "zen4"
    assert "SIGSEGV" in record["rejected"]["sapphirerapids"]
    assert record["cpu_fingerprint"] == rt.read_cpu().fingerprint
    assert record["build"]["cmake_args"].startswith("-DGGML_NATIVE=OFF")


def test_check_fails_with_what_a_user_needs_and_marks_nothing_ready(tmp_path: Path, venv: Path) -> None:
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF")
    (venv / rt.CHECK_FILE).write_text(json.dumps({"ok": True, "variant": "haswell"}))  # from an earlier run
    stub = _stub(tmp_path, {"*"}, venv, ["zen4", "haswell"])
    proc = _check(stub, model)
    assert proc.returncode == 1
    msg = proc.stderr
    assert "could not generate on this machine" in msg
    assert "zen4: killed by SIGSEGV" in msg and "haswell: killed by SIGSEGV" in msg
    assert "llama_model_load: loading model" in msg  # the child's last words
    assert "flags seen:" in msg and "-DGGML_CPU_ALL_VARIANTS=ON" in msg  # CPU flags and build flags
    assert "rm -rf /cache/llama_cpp_python-0.3.36-abc && make venv" in msg  # how to rebuild
    assert "LECTERN_LLAMA_CMAKE_ARGS=" in msg
    assert "not marked ready" in msg
    assert not (venv / rt.CHECK_FILE).exists(), "a failing check left the venv marked ready"


def test_recorded_check_only_holds_on_the_same_cpu(tmp_path: Path) -> None:
    cpu = rt.read_cpu()
    (tmp_path / rt.CHECK_FILE).write_text(
        json.dumps({"ok": True, "variant": "haswell", "cpu_fingerprint": cpu.fingerprint})
    )
    assert rt.recorded_check(cpu, str(tmp_path))["variant"] == "haswell"
    other = rt.read_cpu(SAPPHIRE_RAPIDS, arch="x86_64", kernel="6.1")
    assert rt.recorded_check(other, str(tmp_path)) == {}


def _chatty_tools(tmp_path: Path) -> str:
    """`ldd` and `c++` that print far more than a pipe holds: under `set -o pipefail`, `tool | head -1` then dies
    of SIGPIPE (exit 141 — what failed CI's `make venv`), while a reader that drains the pipe does not."""
    bin_dir = tmp_path / "chatty-bin"
    bin_dir.mkdir()
    lines = 'i=0; while [ $i -lt 20000 ]; do echo "line $i of a long version banner"; i=$((i+1)); done'
    for name, body in {"ldd": lines, "c++": f'[ "$1" = "-dumpfullversion" ] && exit 1\n{lines}'}.items():
        tool = bin_dir / name
        tool.write_text(f"#!/bin/sh\n{body}\n")
        tool.chmod(tool.stat().st_mode | stat.S_IEXEC)
    return f"{bin_dir}{os.pathsep}{os.environ['PATH']}"


def test_install_script_fails_loudly_and_leaves_the_venv_unmarked(tmp_path: Path, venv: Path) -> None:
    """scripts/install_llama.sh end to end with a venv whose llama.cpp dies on every variant (and, on PATH,
    compiler/libc tools whose version banners overflow a pipe: the cache key must still be computed)."""
    (venv / "bin").mkdir()
    _stub(tmp_path, {"*"}, venv, ["zen4", "haswell"], installed=True, script=venv / "bin" / "python")
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF")
    repo = Path(rt.__file__).resolve().parents[4]
    env = dict(
        os.environ,
        PYTHONPATH=str(repo / "lambdas"),
        LECTERN_LLM_MODEL_PATH=str(model),
        LECTERN_WHEEL_CACHE=str(tmp_path / "wheels"),
        PATH=_chatty_tools(tmp_path),
    )
    proc = subprocess.run(
        ["bash", str(repo / "scripts" / "install_llama.sh"), str(venv)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "already installed" in proc.stdout  # the stub's llama-cpp-python and model parts
    assert "zen4: killed by SIGSEGV" in proc.stderr and "flags seen:" in proc.stderr
    assert f"{venv} is not ready" in proc.stderr
    assert not (venv / rt.CHECK_FILE).exists()
