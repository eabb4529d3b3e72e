"""Scans through the local API, with extraction in its child process: an image-only PDF is INDEXED and answers a
question from its text; an OCR engine that crashes leaves its document FAILED with the reason while everything
indexed before (and the failed document's stored file) stays as it was."""

from __future__ import annotations

import sqlite3
import stat
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from tests.integration.helpers import upload, wait_status
from tests.integration.live_server import open_settings

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ocr"
QUESTION = "Who is the contractor on site, and what is its job reference?"


@pytest.fixture(scope="module")
def served(tmp_path_factory, embedder) -> Iterator[tuple[object, str, Path]]:
    from lectern.adapters.local.extractive_model import ExtractiveChatModel
    from lectern.local.container import build_local, frontend_dir
    from lectern.local.server import LocalServer
    from lectern.settings import LocalSettings

    root = tmp_path_factory.mktemp("ocr")
    settings = LocalSettings.from_env({}, data_dir=root / "data", llm="fake", port=0, **open_settings())
    assert settings.ocr == "tesseract" and settings.ingest_time_limit_s > 0  # the defaults: OCR, in a child
    lectern = build_local(settings, embedder=embedder, model=ExtractiveChatModel())
    server = LocalServer("127.0.0.1", 0, lectern.make_app, frontend_dir(), 60 * 1024 * 1024)
    lectern.signer.base_url = server.url
    lectern.worker.run_forever()
    t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    yield lectern, server.url, root
    server.shutdown()
    server.server_close()
    lectern.close()


def _chunks(root: Path, document_id: str) -> list[tuple]:
    with sqlite3.connect(root / "data" / "lectern.db") as conn:
        return conn.execute(
            "SELECT chunk_id, text FROM chunks WHERE document_id = ? ORDER BY ordinal", (document_id,)
        ).fetchall()


def test_an_image_only_pdf_is_indexed_and_answers_from_its_text(served) -> None:
    _, url, _ = served
    doc_id = upload(url, "notice.pdf", (FIXTURES / "notice.pdf").read_bytes())
    doc = wait_status(url, doc_id, {"INDEXED", "FAILED"}, timeout=120)
    assert doc["status"] == "INDEXED", doc
    assert doc["pages"] == 1 and doc["chunks"] >= 1
    r = httpx.post(f"{url}/v1/query", json={"question": QUESTION}, timeout=60)
    assert r.status_code == 200, r.text
    body = r.json()
    assert not body["abstained"], body
    assert "Brennan Pipeworks" in body["answer"] and "4471-B" in body["answer"]
    assert body["citations"] and {c["document_id"] for c in body["citations"]} == {doc_id}
    assert all(c["page"] == 1 for c in body["citations"])

    # the same scan as a PNG is indexed too (the image formats go through the same door)
    png_id = upload(url, "notice.png", (FIXTURES / "notice.png").read_bytes())
    assert wait_status(url, png_id, {"INDEXED", "FAILED"}, timeout=120)["status"] == "INDEXED"


def test_a_crashing_engine_leaves_the_document_failed_and_the_rest_intact(served, tmp_path: Path) -> None:
    from lectern.adapters.local.tesseract_ocr import TesseractOcr
    from lectern.domain.documents import blob_key

    lectern, url, root = served
    good_id = upload(url, "mixed.pdf", (FIXTURES / "mixed.pdf").read_bytes())
    good = wait_status(url, good_id, {"INDEXED", "FAILED"}, timeout=120)
    assert good["status"] == "INDEXED", good
    before = _chunks(root, good_id)

    stub = tmp_path / "tesseract"
    stub.write_text("#!/bin/sh\nkill -SEGV $$\n")
    stub.chmod(stub.stat().st_mode | stat.S_IXUSR)
    pipeline = lectern.pipeline
    limits = pipeline.limits
    pipeline.limits = replace(limits, ocr=TesseractOcr(binary=str(stub)))  # the engine travels to the child
    try:
        data = (FIXTURES / "notice.pdf").read_bytes()
        bad_id = upload(url, "crash.pdf", data)
        bad = wait_status(url, bad_id, {"INDEXED", "FAILED"}, timeout=120)
    finally:
        pipeline.limits = limits
    assert bad["status"] == "FAILED"
    assert bad["error"] == ("OCR of page 1 failed: the OCR engine crashed (SIGSEGV); the page image may be damaged."), (
        bad
    )
    assert lectern.blobs.get(blob_key(lectern.settings.tenant_id, bad_id)) == data  # the upload is kept
    assert httpx.get(f"{url}/v1/health", timeout=10).json()["status"] == "ok"
    now = httpx.get(f"{url}/v1/documents/{good_id}", timeout=10).json()
    assert (now["status"], now["chunks"]) == ("INDEXED", good["chunks"])
    assert _chunks(root, good_id) == before


def test_a_citation_of_a_scanned_page_carries_its_boxes_and_the_page_image_is_served(served) -> None:
    """Layout for citations: the cited passage's words have boxes on the page, the supporting sentence's boxes
    cover the words the answer rests on, and the page's image comes back as PNG; a page without an image, a
    page beyond the document and another tenant's document are 404 through the one error mapping."""
    import io

    from PIL import Image

    lectern, url, _ = served
    doc_id = upload(url, "notice-layout.pdf", (FIXTURES / "notice.pdf").read_bytes())
    assert wait_status(url, doc_id, {"INDEXED", "FAILED"}, timeout=120)["status"] == "INDEXED"
    r = httpx.post(f"{url}/v1/query", json={"question": QUESTION, "filters": {"document_ids": [doc_id]}}, timeout=60)
    assert r.status_code == 200, r.text
    cite = r.json()["citations"][0]
    assert cite["document_id"] == doc_id and cite["page"] == 1
    words = [w for w in cite["text"].split() if any(ch.isalnum() for ch in w)]
    assert len(cite["boxes"]) >= 0.9 * len(words)
    start, end = cite["support_start"], cite["support_end"]
    inside = [b for b in cite["boxes"] if b[0] < end and b[1] > start]
    assert inside and any(cite["text"][b[0] : b[1]].startswith("Brennan") for b in inside)
    for _s, _e, x0, y0, x1, y1 in cite["boxes"]:
        assert 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1

    img = httpx.get(f"{url}/v1/documents/{doc_id}/pages/1/image", headers={"accept": "image/png"}, timeout=30)
    assert img.status_code == 200 and img.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(img.content)).format == "PNG"

    missing = httpx.get(f"{url}/v1/documents/{doc_id}/pages/2/image", timeout=30)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    bad = httpx.get(f"{url}/v1/documents/{doc_id}/pages/0/image", timeout=30)
    assert bad.status_code in (400, 422) and "error" in bad.json()

    from lectern.domain.errors import NotFound

    with pytest.raises(NotFound):  # the same document id under another tenant is not there
        lectern.api_services().documents.page_image("someone-else", doc_id, 1)
    assert lectern.api_services().documents.page_image(lectern.settings.tenant_id, doc_id, 1) == img.content
