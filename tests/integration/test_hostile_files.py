"""Hostile uploads over real HTTP: each ends in a clear 4xx at the door or a FAILED document with a readable
reason (or, for odd but legitimate files, INDEXED), within a time bound; the server stays up; a document
indexed before is untouched; and no uploaded filename ever becomes a path.

The corpus is built in memory by tests/fixtures/hostile.py (zip bombs, lying zip headers, a PDF claiming a
billion pages, truncated and garbage files behind valid extensions, 100k-deep HTML, control characters,
path-traversal, 10k-character unicode and NUL-byte filenames...).
"""

from __future__ import annotations

import re
import sqlite3
import threading
import time
import unicodedata
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fixtures.hostile import UNCLOSED_MARKUP, Hostile, corpus
from tests.integration.helpers import upload, wait_status
from tests.integration.live_server import open_settings

CASES = corpus()
TIME_BOUND_S = 20.0  # upload → terminal status, per file (the slowest case takes ~2 s here)

GUIDE = b"""# Reactor handbook

## History
The Zorblax reactor was commissioned in 1987 in Tromso. It was designed by Ingrid Haldorsen.

## Safety
Coolant pressure must stay below 14 bar. Operators check the valves every Tuesday.
"""
QUESTION = "When was the Zorblax reactor commissioned?"

# Everything Lectern may write under its data directory: names made from ids only.
_ALLOWED_PATHS = re.compile(
    r"^(lectern\.db(-wal|-shm|-journal)?|secret\.key|files|files/default|files/default/[0-9a-f]{32}"
    r"|files/default/[0-9a-f]{32}/original|logs|logs/extract\.log"  # the extractor child's fixed log file
    r"|files/default/[0-9a-f]{32}/pages|files/default/[0-9a-f]{32}/pages/[0-9]+\.png)$"  # page images by number
)


class Sandbox:
    def __init__(self, root: Path, lectern, url: str) -> None:
        self.root = root  # the data dir's parent: nothing may appear here but the data dir
        self.data = root / "data"
        self.lectern = lectern
        self.url = url
        self.baseline: dict = {}


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory, embedder) -> Iterator[Sandbox]:
    from lectern.adapters.local.extractive_model import ExtractiveChatModel
    from lectern.local.container import build_local, frontend_dir
    from lectern.local.server import LocalServer
    from lectern.settings import LocalSettings

    root = tmp_path_factory.mktemp("hostile")
    settings = LocalSettings.from_env({}, data_dir=root / "data", llm="fake", port=0, **open_settings())
    lectern = build_local(settings, embedder=embedder, model=ExtractiveChatModel())
    server = LocalServer("127.0.0.1", 0, lectern.make_app, frontend_dir(), 60 * 1024 * 1024)
    lectern.signer.base_url = server.url
    lectern.worker.run_forever()
    t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    box = Sandbox(root, lectern, server.url)
    doc_id = upload(box.url, "handbook.md", GUIDE)
    doc = wait_status(box.url, doc_id, {"INDEXED", "FAILED"})
    assert doc["status"] == "INDEXED", doc
    box.baseline = {"doc": doc, "answer": _answer(box.url), "chunks": _chunk_rows(box.data, doc_id)}
    yield box
    server.shutdown()
    server.server_close()
    lectern.close()


def _answer(base: str) -> tuple[str, list[tuple[str, str]]]:
    r = httpx.post(f"{base}/v1/query", json={"question": QUESTION}, timeout=30)
    assert r.status_code == 200, r.text
    body = r.json()
    return body["answer"], [(c["document_id"], c["snippet"]) for c in body["citations"]]


def _chunk_rows(data: Path, document_id: str) -> list[tuple]:
    with sqlite3.connect(data / "lectern.db") as conn:
        return conn.execute(
            "SELECT chunk_id, ordinal, text FROM chunks WHERE document_id = ? ORDER BY ordinal",
            (document_id,),
        ).fetchall()


def _send(base: str, case: Hostile) -> tuple[httpx.Response, httpx.Response | None]:
    """POST /v1/documents, then (when a slot is granted) the multipart upload, the file part named as sent."""
    created = httpx.post(
        f"{base}/v1/documents",
        json={"filename": case.filename, "content_type": case.content_type, "size_bytes": len(case.data)},
        timeout=30,
    )
    if created.status_code != 201:
        return created, None
    slot = created.json()["upload"]
    up = httpx.post(slot["url"], data=slot["fields"], files={"file": (case.filename, case.data)}, timeout=60)
    return created, up


def _readable(message: str) -> bool:
    return (
        5 <= len(message) <= 300
        and "Traceback" not in message
        and "/tmp" not in message
        and "Error:" not in message  # no "SomeParserError: ..." leaking through
        and all(unicodedata.category(ch)[0] != "C" for ch in message)
    )


def _assert_no_stray_files(box: Sandbox) -> None:
    entries = {p.relative_to(box.root).as_posix() for p in box.root.rglob("*")}
    outside = {e for e in entries if e != "data" and not e.startswith("data/")}
    assert not outside, f"files outside the data dir: {outside}"
    inside = {p.relative_to(box.data).as_posix() for p in box.data.rglob("*")}
    unexpected = {e for e in inside if not _ALLOWED_PATHS.match(e) and "/.upload-" not in e}
    assert not unexpected, f"paths not made of ids: {unexpected}"


def _assert_world_intact(box: Sandbox) -> None:
    base = box.url
    health = httpx.get(f"{base}/v1/health", timeout=10)
    assert health.status_code == 200 and health.json()["status"] == "ok", health.text
    good = box.baseline["doc"]
    now = httpx.get(f"{base}/v1/documents/{good['document_id']}", timeout=10).json()
    assert (now["status"], now["chunks"], now["pages"]) == (good["status"], good["chunks"], good["pages"])
    assert _chunk_rows(box.data, good["document_id"]) == box.baseline["chunks"]
    assert _answer(base) == box.baseline["answer"]
    _assert_no_stray_files(box)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_upload_is_refused_or_failed_cleanly(sandbox: Sandbox, case: Hostile):
    base = sandbox.url
    start = time.monotonic()
    created, up = _send(base, case)
    if case.http is not None:
        assert created.status_code == case.http, created.text
        err = created.json()["error"]
        assert err["code"] and _readable(err["message"]), err
        _assert_world_intact(sandbox)
        return
    assert created.status_code == 201, created.text
    assert up is not None and up.status_code == 204, up.text
    doc_id = created.json()["document_id"]
    doc = wait_status(base, doc_id, {"INDEXED", "FAILED"}, timeout=TIME_BOUND_S + 10)
    elapsed = time.monotonic() - start
    assert elapsed < TIME_BOUND_S, f"{case.name} took {elapsed:.1f} s"

    # the display name is a name, never a path, and is free of control and bidi-override characters
    name = doc["filename"]
    assert name and len(name) <= 255 and "/" not in name and "\\" not in name and ".." not in name
    assert all(unicodedata.category(ch)[0] != "C" for ch in name), ascii(name)
    assert (sandbox.data / "files" / "default" / doc_id / "original").is_file()

    if case.reason is not None:
        assert doc["status"] == "FAILED", doc
        assert re.search(case.reason, doc["error"]), doc["error"]
        assert _readable(doc["error"]), doc["error"]
        assert not doc["chunks"] and not _chunk_rows(sandbox.data, doc_id)
    else:
        assert case.indexed_text is not None
        assert doc["status"] == "INDEXED", doc
        hits = httpx.post(
            f"{base}/v1/search",
            json={"query": case.indexed_text, "mode": "bm25", "filters": {"document_ids": [doc_id]}},
            timeout=30,
        ).json()["results"]
        assert hits and case.indexed_text.lower() in hits[0]["text"].lower(), hits[:1]
        for _, _, text in _chunk_rows(sandbox.data, doc_id):
            assert not re.search("[\x00-\x08\x0b-\x1f\x7f]", text), ascii(text[:200])
    _assert_world_intact(sandbox)


def test_upload_form_filename_and_empty_file_part(sandbox: Sandbox):
    """The multipart part's own filename is ignored (only ids make paths); an empty part is a 400."""
    base = sandbox.url
    created = httpx.post(f"{base}/v1/documents", json={"filename": "ok.txt", "size_bytes": 5}).json()
    slot = created["upload"]
    empty = httpx.post(slot["url"], data=slot["fields"], files={"file": ("../../x.txt", b"")})
    assert empty.status_code == 400 and "empty" in empty.json()["error"]["message"]
    sneaky = httpx.post(
        slot["url"], data=slot["fields"], files={"file": ("../../../../tmp/x\x00.sh", b"hello")}
    )
    assert sneaky.status_code == 204, sneaky.text
    doc = wait_status(base, created["document_id"], {"INDEXED", "FAILED"})
    assert doc["status"] == "INDEXED" and doc["filename"] == "ok.txt"
    _assert_world_intact(sandbox)


def test_malformed_requests_get_4xx_not_5xx(sandbox: Sandbox):
    base = sandbox.url
    slot = httpx.post(f"{base}/v1/documents", json={"filename": "m.txt", "size_bytes": 5}).json()["upload"]
    cases = [
        httpx.post(slot["url"], content=b"not multipart", headers={"content-type": "text/plain"}),
        httpx.post(
            slot["url"],
            content=b"--x\r\ngarbage",
            headers={"content-type": "multipart/form-data; boundary=x"},
        ),
        httpx.post(slot["url"], data={"policy": "!!!", "x-lectern-signature": "0"}, files={"file": b"hello"}),
        httpx.post(
            f"{base}/v1/documents",
            content=b"\xff\xfe\x00garbage",
            headers={"content-type": "application/json"},
        ),
        httpx.post(f"{base}/v1/documents", json=["a", "list"]),
        httpx.post(f"{base}/v1/documents", json={"filename": "a.txt", "size_bytes": "NaN"}),
        httpx.post(f"{base}/v1/documents", json={"filename": "a.txt", "size_bytes": 10**30}),
        httpx.post(f"{base}/v1/documents", json={"filename": "\x00" * 50, "size_bytes": 3}),
        httpx.post(f"{base}/v1/uploads/{'0' * 32}", data={"key": "default/x/original"}, files={"file": b"x"}),
        httpx.post(f"{base}/v1/uploads/..%2F..%2Fetc", files={"file": b"x"}),
    ]
    for r in cases:
        assert 400 <= r.status_code < 500, (r.request.url, r.status_code, r.text)
        assert _readable(r.json()["error"]["message"]), r.text
    _assert_world_intact(sandbox)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", sorted(UNCLOSED_MARKUP))
def test_unclosed_markup_is_extracted_in_linear_time(name: str):
    from lectern.domain.errors import ExtractionError
    from lectern.domain.extraction import extract

    data, filename = UNCLOSED_MARKUP[name]
    start = time.monotonic()
    try:
        doc = extract(data, filename)
        assert doc.char_count > 0
    except ExtractionError as exc:  # refusing is fine too, as long as it is quick and says why
        assert _readable(str(exc))
    elapsed = time.monotonic() - start
    assert elapsed < 5.0, f"{name}: {len(data):,} bytes took {elapsed:.1f} s"
