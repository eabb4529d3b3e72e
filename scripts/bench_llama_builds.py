#!/usr/bin/env python3
"""Time to first token and decode speed of llama.cpp builds side by side, in one run, on this machine.

Each configuration is a Python interpreter with llama-cpp-python installed (a venv) and optionally a CPU
variant of a runtime-dispatch build. Every measurement is a fresh child process (`llama_runtime bench`): load
the packaged GGUF, stream one answer to the same RAG-shaped prompt (a system instruction, five passages of a
real document from ../shared/data/docs, a question), greedy, `--max-tokens` tokens. Configurations run
interleaved, round after round, so a change in the machine's load hits all of them alike; the median of the
rounds is reported, with the load average before and after.

  .venv/bin/python scripts/bench_llama_builds.py \\
      --config portable=.venv/bin/python --config portable-haswell=.venv/bin/python:haswell \\
      --config native=/tmp/native/bin/python --rounds 3 --out docs/results/llama-builds.json

A native build for the comparison: `CMAKE_ARGS=-DGGML_NATIVE=ON pip wheel llama-cpp-python==0.3.36` into a
throwaway venv (never into the project's: it would not run on another CPU).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "lambdas"))

from lectern.adapters.local.llama_runtime import read_cpu  # noqa: E402
from lectern.evaluation.machine import machine_info  # noqa: E402

SYSTEM = (
    "You are a careful assistant. Answer the question using only the numbered passages. Write a short answer "
    "in full sentences and end each sentence with its source number like [1]. If the passages do not contain "
    "the answer, say exactly: I don't know based on the provided documents."
)


def rag_prompt(doc: Path, passages: int = 5, chars: int = 700) -> str:
    text = " ".join(doc.read_text(errors="replace").split())
    parts = [f"[{i + 1}] ({doc.name})\n{text[i * chars : (i + 1) * chars]}" for i in range(passages)]
    return (
        f"{SYSTEM}\n\n"
        + "\n\n".join(parts)
        + "\n\nQuestion: When was the club founded, and where does it play?"
    )


def run_one(
    python: str, variant: str | None, model: Path, prompt_file: Path, max_tokens: int, threads: int
) -> dict:
    cmd = [
        python,
        "-m",
        "lectern.adapters.local.llama_runtime",
        "bench",
        "--model",
        str(model),
        "--prompt-file",
        str(prompt_file),
        "--max-tokens",
        str(max_tokens),
        "--threads",
        str(threads),
    ]
    if variant:
        cmd += ["--variant", variant]
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE", PYTHONPATH=str(REPO / "lambdas"))
    env.pop("LECTERN_LLAMA_CPU_VARIANT", None)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr[-1000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def build_of(python: str) -> dict:
    code = (
        "import json, sys; from pathlib import Path; p = Path(sys.prefix) / 'lectern-llama-build.json'; "
        "print(p.read_text() if p.exists() else '{}')"
    )
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True).stdout
    return json.loads(out or "{}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--config",
        action="append",
        required=True,
        help="NAME=PYTHON[:VARIANT]; repeat for each build to compare",
    )
    parser.add_argument("--model", type=Path, help="a GGUF (default: the packaged model)")
    parser.add_argument(
        "--doc", type=Path, default=REPO.parent / "shared" / "data" / "docs" / "norwich-city.txt"
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    if args.model is None:
        from lectern.adapters.local.model_files import ensure_gguf

        args.model = ensure_gguf(
            Path(os.environ.get("LECTERN_MODEL_CACHE", Path.home() / ".cache/lectern/models"))
        )
    configs = []
    for spec in args.config:
        name, _, target = spec.partition("=")
        python, _, variant = target.partition(":")
        configs.append((name, python, variant or None))
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write(rag_prompt(args.doc))
        prompt_file = Path(f.name)
    load_before = os.getloadavg()
    runs: dict[str, list[dict]] = {name: [] for name, _, _ in configs}
    started = time.time()
    for r in range(args.rounds):
        for name, python, variant in configs:
            result = run_one(python, variant, args.model, prompt_file, args.max_tokens, args.threads)
            runs[name].append(result)
            print(
                f"round {r + 1} {name:>18}: variant {result['variant'] or 'built in'}, "
                f"TTFT {result['ttft_s']:.2f} s ({result['prompt_tokens']} prompt tokens, "
                f"{result['prompt_tokens_per_s']:.0f}/s), "
                f"decode {result['decode_tokens_per_s']:.1f} tokens/s",
                flush=True,
            )
    prompt_file.unlink()
    cpu = read_cpu()
    report = {
        "what": "llama.cpp builds: TTFT and decode speed, one streamed RAG answer per fresh process, "
        "median of rounds",
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "machine": machine_info(),
        "cpu_flags": cpu.reported_flags(),
        "load_avg_before": load_before,
        "load_avg_after": os.getloadavg(),
        "wall_s": round(time.time() - started, 1),
        "model": args.model.name,
        "threads": args.threads,
        "max_tokens": args.max_tokens,
        "platform": platform.platform(),
        "configs": {},
    }
    for name, python, _ in configs:
        rs = runs[name]
        report["configs"][name] = {
            "python": python,
            "variant": rs[0]["variant"],
            "build": build_of(python).get(
                "cmake_args", "native (-DGGML_NATIVE=ON)" if "native" in name else ""
            ),
            "prompt_tokens": rs[0]["prompt_tokens"],
            "ttft_s_median": round(statistics.median(x["ttft_s"] for x in rs), 3),
            "prompt_tokens_per_s_median": round(statistics.median(x["prompt_tokens_per_s"] for x in rs), 1),
            "decode_tokens_per_s_median": round(statistics.median(x["decode_tokens_per_s"] for x in rs), 2),
            "load_s_median": round(statistics.median(x["load_s"] for x in rs), 3),
            "runs": rs,
        }
    print(
        json.dumps(
            {
                k: {m: v[m] for m in ("variant", "ttft_s_median", "decode_tokens_per_s_median")}
                for k, v in report["configs"].items()
            },
            indent=2,
        )
    )
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
