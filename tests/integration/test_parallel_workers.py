"""N local ingestion workers keep the crash safety of one: kill -9 of an extraction worker process and kill -9 of
the whole server mid-ingestion lose nothing and duplicate nothing (real server, real ONNX embedder)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import httpx

from tests.integration.helpers import start_lectern_up, upload

REPO = Path(__file__).resolve().parents[2]


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _extraction_children(server_pid: int) -> list[int]:
    """The forkserver's children: one extraction process per busy ingestion thread."""
    found = []
    for pid in _children(server_pid):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"forkserver" in cmd:
            found += _children(pid)
    return found


def _start(data: Path, port: int, log: Path, workers: int) -> subprocess.Popen:
    env = dict(
        os.environ,
        LECTERN_LLM="fake",
        LECTERN_AUTH="none",
        LECTERN_INGEST_WORKERS=str(workers),
        PYTHONPATH=str(REPO / "lambdas"),
    )
    return start_lectern_up(data, port, log, env)


def _doc(i: int) -> bytes:
    return "\n\n".join(
        f"Ledger {i}, entry {j}: station {j % 5} logged {i * 17 + j} crates under contract {i}. " * 3
        for j in range(30)
    ).encode()


def test_parallel_workers_survive_kill9_of_a_worker_and_of_the_server(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data, log, base = tmp_path / "data", tmp_path / "server.log", f"http://127.0.0.1:{port}"
    proc = _start(data, port, log, workers=3)
    try:
        ids = [upload(base, f"ledger-{i}.txt", _doc(i)) for i in range(9)]
        # kill -9 an extraction worker process while documents are being processed
        killed = []
        deadline = time.monotonic() + 60
        while not killed and time.monotonic() < deadline:
            kids = _extraction_children(proc.pid)
            if kids:
                os.kill(kids[0], signal.SIGKILL)
                killed.append(kids[0])
            time.sleep(0.02)
        assert killed, "no extraction worker process was seen"
        # then kill the whole server while several documents are in flight
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
        proc = _start(data, port, log, workers=3)
        deadline = time.monotonic() + 240
        docs: list[dict] = []
        while time.monotonic() < deadline:
            docs = httpx.get(f"{base}/v1/documents").json()["documents"]
            if all(d["status"] == "INDEXED" for d in docs):
                break
            assert not any(d["status"] == "FAILED" for d in docs), docs
            time.sleep(0.2)
        assert sorted(d["document_id"] for d in docs) == sorted(ids)  # no loss, no extra document
        assert all(d["status"] == "INDEXED" for d in docs), docs
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)
    conn = sqlite3.connect(data / "lectern.db")
    per_doc = dict(conn.execute("SELECT document_id, COUNT(*) FROM chunks GROUP BY document_id").fetchall())
    assert per_doc == {d["document_id"]: d["chunks"] for d in docs}, "index and metadata disagree"
    assert conn.execute("SELECT COUNT(*) - COUNT(DISTINCT chunk_id) FROM chunks").fetchone()[0] == 0
    assert conn.execute("SELECT COUNT(*) FROM chunks_fts").fetchone()[0] == sum(per_doc.values())
    # every document holds exactly the chunks a single ingestion makes (same count for the same text shape)
    assert len(set(per_doc.values())) == 1
