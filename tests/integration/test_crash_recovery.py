"""kill -9 during writes: the index stays consistent; the server resumes ingestion with no loss or duplicates."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from tests.integration.crash_writer import DIM, expected_chunks
from tests.integration.helpers import start_lectern_up, upload

REPO = Path(__file__).resolve().parents[2]


def _check_index(db_path: Path, acked: set[int]) -> None:
    from lectern.adapters.local.sqlite_db import SqliteDatabase
    from lectern.adapters.local.sqlite_index import SqliteSearchIndex

    conn = sqlite3.connect(db_path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    rows = conn.execute(
        "SELECT document_id, COUNT(*), MIN(ordinal), MAX(ordinal) FROM chunks GROUP BY document_id"
    ).fetchall()
    for doc, n, lo, hi in rows:
        want = expected_chunks(int(doc[1:]))
        assert (n, lo, hi) == (want, 0, want - 1), f"{doc} is partially written: {n} chunks, want {want}"
    present = {int(doc[1:]) for doc, *_ in rows}
    assert acked <= present, f"acknowledged documents lost: {sorted(acked - present)}"
    total = conn.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
    assert conn.execute("SELECT COUNT(*) FROM chunks_fts").fetchone()[0] == total
    dup = conn.execute("SELECT COUNT(*) - COUNT(DISTINCT chunk_id) FROM chunks").fetchone()[0]
    assert dup == 0
    conn.close()
    index = SqliteSearchIndex(SqliteDatabase(db_path), DIM, "test-model")
    import numpy as np

    q = np.ones(DIM, dtype=np.float32) / np.sqrt(DIM)
    assert len(index.knn("t", q, 1000)) == total
    assert len(index.bm25("t", "lorem", 1000)) == total


def test_kill_during_index_writes_leaves_a_consistent_index(tmp_path: Path):
    db_path = tmp_path / "index.db"
    rng = random.Random(7)
    acked_ever: set[int] = set()
    for round_ in range(5):
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.integration.crash_writer", str(db_path), str(round_ * 1000)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        acks: list[int] = []
        deadline = time.monotonic() + 60
        target = rng.randint(3, 25)
        while len(acks) < target and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if line.startswith("ACK"):
                acks.append(int(line.split()[1]))
        time.sleep(rng.random() * 0.05)  # land the kill at a random point of the next transaction
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert len(acks) >= target, "the writer made no progress"
        acked_ever |= set(acks)
        _check_index(db_path, acked_ever)


def _start_server(data_dir: Path, port: int, log: Path) -> subprocess.Popen:
    env = dict(os.environ, LECTERN_LLM="fake", LECTERN_AUTH="none", PYTHONPATH=str(REPO / "lambdas"))
    return start_lectern_up(data_dir, port, log, env)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _doc_text(i: int) -> bytes:
    paras = [
        f"Report {i}, section {j}. The measured value for item {i}-{j} was {i * 31 + j} units, "
        f"recorded by station {j % 7} under protocol {i}. " * 3
        for j in range(40)
    ]
    return "\n\n".join(paras).encode()


def test_kill_server_during_ingestion_and_query_then_restart(tmp_path: Path):
    data = tmp_path / "data"
    log = tmp_path / "server.log"
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    proc = _start_server(data, port, log)
    ids = [upload(base, f"report-{i}.txt", _doc_text(i)) for i in range(6)]
    # wait until ingestion is under way, then kill -9 mid-work
    deadline = time.monotonic() + 60
    statuses: list[str] = []
    while time.monotonic() < deadline:
        statuses = [d["status"] for d in httpx.get(f"{base}/v1/documents").json()["documents"]]
        if statuses.count("INDEXED") >= 1 and statuses.count("PROCESSING") >= 2:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert statuses.count("PROCESSING") >= 2, f"the kill did not land during ingestion: {statuses}"

    proc = _start_server(data, port, log)
    assert "Resuming ingestion of" in log.read_text()
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            docs = httpx.get(f"{base}/v1/documents").json()["documents"]
            if all(d["status"] == "INDEXED" for d in docs):
                break
            assert not any(d["status"] == "FAILED" for d in docs), docs
            time.sleep(0.2)
        assert sorted(d["document_id"] for d in docs) == sorted(ids)
        assert all(d["status"] == "INDEXED" for d in docs), docs

        # now kill it in the middle of a streamed answer
        got_bytes = threading.Event()

        def ask() -> None:
            try:
                with httpx.stream(
                    "POST",
                    f"{base}/v1/query",
                    json={"question": "What was measured for item 3-5?"},
                    headers={"Accept": "text/event-stream"},
                    timeout=30,
                ) as r:
                    for _ in r.iter_bytes():
                        got_bytes.set()
            except httpx.HTTPError:
                pass

        t = threading.Thread(target=ask)
        t.start()
        got_bytes.wait(30)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        t.join(10)
        proc = _start_server(data, port, log)
        after = httpx.get(f"{base}/v1/documents").json()["documents"]
        assert [(d["document_id"], d["status"], d["chunks"]) for d in after] == [
            (d["document_id"], d["status"], d["chunks"]) for d in docs
        ]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)

    conn = sqlite3.connect(data / "lectern.db")
    per_doc = dict(conn.execute("SELECT document_id, COUNT(*) FROM chunks GROUP BY document_id").fetchall())
    assert per_doc == {d["document_id"]: d["chunks"] for d in after}, "index and metadata disagree"
    assert conn.execute("SELECT COUNT(*) - COUNT(DISTINCT chunk_id) FROM chunks").fetchone()[0] == 0
    assert conn.execute("SELECT COUNT(*) FROM chunks_fts").fetchone()[0] == sum(per_doc.values())
    files = list((data / "files").rglob("original"))
    assert len(files) == len(ids)
