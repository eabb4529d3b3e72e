"""Ingestion throughput of `lectern sync` with N workers against one: the same folder synced into a fresh data dir
per run, wall time measured around the real CLI in a subprocess (model load included, reported separately by a
run over an empty folder), machine load recorded before and after.

    PYTHONPATH=lambdas .venv/bin/python scripts/bench_sync_workers.py --docs ../shared/data/docs --copies 3 \\
        --workers 1,2 --out docs/results/sync-workers.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lectern.evaluation.machine import loadavg, machine_info

REPO = Path(__file__).resolve().parents[1]


_load = loadavg


def _sync(folder: Path, data: Path, workers: int) -> tuple[float, str, int]:
    env = dict(os.environ, LECTERN_LLM="fake", LECTERN_AUTH="none", PYTHONPATH=str(REPO / "lambdas"))
    t0 = time.perf_counter()
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "lectern.cli",
            "sync",
            str(folder),
            "--data-dir",
            str(data),
            "--init",
            "--workers",
            str(workers),
        ],
        env=env,
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    return time.perf_counter() - t0, out.stdout, out.returncode


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=Path, default=REPO.parent / "shared" / "data" / "docs")
    ap.add_argument("--copies", type=int, default=3)
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="lectern-sync-bench-") as tmp:
        folder = Path(tmp) / "docs"
        for c in range(args.copies):
            shutil.copytree(args.docs, folder / f"copy{c}")
        files = [p for p in folder.rglob("*") if p.is_file()]
        empty = Path(tmp) / "empty"
        empty.mkdir()
        startup, _, _ = _sync(empty, Path(tmp) / "d-empty", 1)
        runs = []
        for r in range(args.repeats):
            for n in [int(w) for w in args.workers.split(",")]:
                data = Path(tmp) / f"d-{n}-{r}"
                before = _load()
                wall, stdout, rc = _sync(folder, data, n)
                tail = [line for line in stdout.splitlines() if "│" in line]
                runs.append(
                    {
                        "workers": n,
                        "repeat": r,
                        "wall_s": round(wall, 2),
                        "exit_code": rc,
                        "load_before": before,
                        "load_after": _load(),
                        "summary": tail,
                    }
                )
                print(
                    f"workers={n} repeat={r}: {wall:.1f} s (rc {rc}), load {before} -> {_load()}", flush=True
                )
    best = {n: min(x["wall_s"] for x in runs if x["workers"] == n) for n in {x["workers"] for x in runs}}
    report = {
        "what": "lectern sync of a folder into a fresh data dir, N workers vs 1 (best of repeats, wall seconds, "
        "CLI start-up and model load included)",
        "files": len(files),
        "corpus": f"{args.docs} x {args.copies} copies",
        "startup_s": round(startup, 2),
        "best_wall_s": best,
        "speedup_vs_1": {n: round(best[min(best)] / t, 2) for n, t in best.items()},
        "runs": runs,
        "machine": machine_info(),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    text = json.dumps(report, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
