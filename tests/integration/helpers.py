from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest


def upload(base: str, filename: str, data: bytes, content_type: str = "") -> str:
    """Create a document and upload its bytes through the returned slot, exactly as a browser would."""
    r = httpx.post(
        f"{base}/v1/documents",
        json={"filename": filename, "content_type": content_type, "size_bytes": len(data)},
    )
    assert r.status_code == 201, r.text
    slot = r.json()
    up = httpx.post(slot["upload"]["url"], data=slot["upload"]["fields"], files={"file": (filename, data)})
    assert up.status_code == 204, up.text
    return slot["document_id"]


def wait_status(base: str, document_id: str, want: set[str], timeout: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout
    doc: dict = {}
    while time.monotonic() < deadline:
        doc = httpx.get(f"{base}/v1/documents/{document_id}").json()
        if doc.get("status") in want:
            return doc
        time.sleep(0.1)
    raise AssertionError(f"document {document_id} stuck in {doc.get('status')}: {doc}")


def parse_sse(text: str) -> list[tuple[str, str]]:
    events = []
    for frame in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in frame.splitlines() if ": " in line)
        events.append((lines.get("event", ""), lines.get("data", "")))
    return events


def start_lectern_up(data_dir: Path, port: int, log: Path, env: dict[str, str]) -> subprocess.Popen:
    """`lectern up` in a child on loopback (its own session, so a test can kill the group), output to `log`,
    returned once /v1/health answers 200; a child that exits or never answers fails the test with its log."""
    repo = Path(__file__).resolve().parents[2]
    cmd = [sys.executable, "-m", "lectern.cli", "up", "--host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen(
        [*cmd, "--data-dir", str(data_dir)],
        cwd=repo,
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"server exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.2)
    proc.kill()
    pytest.fail("server did not start")
