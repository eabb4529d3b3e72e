"""`lectern sync` killed with SIGKILL mid-run, then run again: the index equals a fresh sync of the final folder
(real CLI in a subprocess, real ONNX embedder)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.unit.test_sync_runner import snapshot

REPO = Path(__file__).resolve().parents[2]
ENV = dict(
    os.environ, LECTERN_LLM="fake", LECTERN_AUTH="none", PYTHONPATH=str(REPO / "lambdas"), COLUMNS="80"
)


def lectern(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "lectern.cli", *args],
        cwd=REPO,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def make_folder(folder: Path, n: int, version: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    words = [
        "coolant",
        "pressure",
        "badge",
        "parking",
        "laptop",
        "memo",
        "travel",
        "policy",
        "budget",
        "audit",
    ]
    for i in range(n):
        text = " ".join(words[(i + j + version) % len(words)] for j in range(400))
        (folder / f"doc{i:02d}.txt").write_text(f"Document {i} version {version}.\n\n{text}\n")


def test_sync_killed_mid_run_then_resumed_equals_a_fresh_sync(tmp_path: Path) -> None:
    folder, data, fresh = tmp_path / "docs", tmp_path / "data", tmp_path / "fresh"
    make_folder(folder, 12, version=1)
    first = lectern("sync", str(folder), "--data-dir", str(data), "--init")
    out, _ = first.communicate(timeout=300)
    assert first.returncode == 0, out
    # the final folder: 4 edited, 2 deleted, 1 renamed, 6 new (16 files)
    make_folder(folder, 18, version=2)
    for i in range(4, 12):
        (folder / f"doc{i:02d}.txt").write_text(
            (folder / f"doc{i:02d}.txt").read_text().replace("version 2", "version 1")
        )
    for i in (10, 11):
        (folder / f"doc{i:02d}.txt").unlink()
    (folder / "doc09.txt").rename(folder / "renamed09.txt")
    rng = random.Random(17)
    for attempt in range(2):  # two kills at different points, then a full run
        workers = ("1", "3")[attempt]  # one kill with one worker, one with three in flight
        proc = lectern("sync", str(folder), "--delete", "--data-dir", str(data), "--workers", workers)
        assert proc.stdout is not None
        done = 0
        target = rng.randint(2, 6)
        deadline = time.monotonic() + 180
        while done < target and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            done += line.startswith("[")
        time.sleep(rng.random() * 0.3)  # land the kill inside the next file's ingestion
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert done >= target, f"sync made no progress before kill {attempt}"
    resume = lectern("sync", str(folder), "--delete", "--data-dir", str(data))
    out, _ = resume.communicate(timeout=300)
    assert resume.returncode == 0, out
    assert "summary" in out
    again = lectern("sync", str(folder), "--delete", "--data-dir", str(data), "--dry-run")
    plan, _ = again.communicate(timeout=120)
    assert plan.strip().endswith("plan: 16 unchanged"), plan
    ref = lectern("sync", str(folder), "--data-dir", str(fresh), "--init")
    out, _ = ref.communicate(timeout=300)
    assert ref.returncode == 0, out
    assert snapshot(data) == snapshot(fresh)
