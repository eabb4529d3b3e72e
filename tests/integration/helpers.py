from __future__ import annotations

import time

import httpx


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
