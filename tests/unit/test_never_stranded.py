"""Ingestion never strands a document: extraction under a time limit in a child process (killed -> FAILED with
the reason), a crash of the extractor is the document's failure, unused upload slots expire into FAILED, and a
worker start resumes what a killed process left PROCESSING."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from lectern.adapters.local.child_extractor import ChildProcessExtractor
from lectern.domain.errors import ExtractionError
from lectern.domain.extraction import ExtractionLimits
from lectern.domain.models import DocumentStatus
from lectern.local.container import build_local
from lectern.settings import LocalSettings
from tests.fakes.embedder import HashEmbedder

LIMITS = ExtractionLimits(max_bytes=10_000_000, max_pages=100)


def slow_extract(data: bytes, filename: str, content_type: str, limits: ExtractionLimits) -> Any:
    if data.startswith(b"SLOW"):
        time.sleep(60)
    if data.startswith(b"CRASH"):
        import os

        os._exit(3)
    if data.startswith((b"KILLONCE:", b"KILL")):
        import os
        import signal

        marker = Path(data.split(b":", 1)[1].split()[0].decode()) if data.startswith(b"KILLONCE:") else None
        if marker is None or not marker.exists():
            if marker is not None:
                marker.write_text("killed once")
            os.kill(os.getpid(), signal.SIGKILL)  # as an operator's kill -9 or the OOM killer would
        data = b"survived " + data
    from lectern.domain.extraction import extract

    return extract(data, filename, content_type, limits)


SLOW = "tests.unit.test_never_stranded:slow_extract"  # imported by the child


def test_the_child_extracts_and_reports_extraction_errors(tmp_path: Path) -> None:
    ex = ChildProcessExtractor(30, log_path=tmp_path / "extract.log")
    try:
        doc = ex(b"# Title\n\nSome text.", "a.md", "text/markdown", LIMITS)
        assert doc.page_count == 1 and "Some text." in doc.pages[0].blocks[-1].text
        with pytest.raises(ExtractionError, match="PDF"):
            ex(b"not a pdf", "a.pdf", "application/pdf", LIMITS)
        again = ex(b"plain words", "b.txt", "text/plain", LIMITS)  # the same child goes on
        assert again.page_count == 1
    finally:
        ex.close()


def test_a_slow_file_is_stopped_at_the_limit_and_a_crash_is_the_files_failure(tmp_path: Path) -> None:
    ex = ChildProcessExtractor(1.5, log_path=tmp_path / "extract.log", target=SLOW)
    try:
        t0 = time.monotonic()
        with pytest.raises(ExtractionError, match=r"longer than the 1.5 s limit"):
            ex(b"SLOW file", "slow.txt", "text/plain", LIMITS)
        assert time.monotonic() - t0 < 10
        with pytest.raises(ExtractionError, match=r"crashed the extractor \(exit code 3\)"):
            ex(b"CRASH", "c.txt", "text/plain", LIMITS)
        assert ex(b"fine text", "ok.txt", "text/plain", LIMITS).page_count == 1  # a fresh child after each
    finally:
        ex.close()


def test_a_worker_process_killed_once_is_replaced_and_the_document_retried(tmp_path: Path) -> None:
    ex = ChildProcessExtractor(30, target=SLOW)
    try:
        marker = tmp_path / "killed"
        doc = ex(f"KILLONCE:{marker} the memo text".encode(), "m.txt", "text/plain", LIMITS)
        assert marker.exists() and "memo text" in doc.pages[0].blocks[0].text
        with pytest.raises(ExtractionError, match=r"crashed the extractor \(signal 9\)"):
            ex(b"KILL every time", "k.txt", "text/plain", LIMITS)  # killed twice: the file's failure
    finally:
        ex.close()


def test_an_extractor_that_cannot_start_interrupts_without_failing_the_document(tmp_path: Path) -> None:
    from lectern.domain.errors import IngestionInterrupted

    lec = open_lectern(tmp_path)
    broken = ChildProcessExtractor(30, target="tests.unit.test_never_stranded:no_such_function")
    lec.override(extractor=broken)
    try:
        svc = lec.document_service

        class _Nothing:
            def start(self, tenant_id: str, document_id: str) -> None:
                return None

        svc.trigger = _Nothing()
        doc, _ = svc.create_upload("default", "x.txt", None, 5)
        svc.receive_upload("default", doc.document_id, b"hello")
        with pytest.raises(IngestionInterrupted):
            lec.pipeline.run("default", doc.document_id)
        assert svc.get("default", doc.document_id).status is DocumentStatus.PROCESSING  # not FAILED: retried
    finally:
        lec.close()


def open_lectern(tmp_path: Path, **over: Any) -> Any:
    s = LocalSettings.from_env(
        {}, data_dir=tmp_path / "d", llm="fake", auth="none", cache_enabled=False, **over
    )
    return build_local(s, embedder=HashEmbedder())


def test_the_worker_fails_a_slow_document_with_the_reason_and_goes_on(tmp_path: Path) -> None:
    lec = open_lectern(tmp_path)
    lec.override(extractor=ChildProcessExtractor(1.5, target=SLOW))
    try:
        svc = lec.document_service
        lec.worker.run_forever()
        ids = []
        for name, data in (
            ("slow.txt", b"SLOW and pathological"),
            ("fine.txt", b"The garage closes at nine."),
        ):
            doc, _ = svc.create_upload("default", name, None, len(data))
            svc.receive_upload("default", doc.document_id, data)
            ids.append(doc.document_id)
        assert lec.worker.wait_idle(30)
        slow, fine = (svc.get("default", i) for i in ids)
        assert slow.status is DocumentStatus.FAILED and "1.5 s limit" in (slow.error or "")
        assert slow.timings and slow.timings["extract"] >= 1400
        assert fine.status is DocumentStatus.INDEXED
    finally:
        lec.close()


def test_unused_upload_slots_expire_into_failed_with_a_reason(tmp_path: Path) -> None:
    lec = open_lectern(tmp_path, upload_slot_ttl_s=60)
    try:
        svc = lec.document_service
        old, _ = svc.create_upload("default", "never.txt", None, 10)
        fresh, _ = svc.create_upload("default", "soon.txt", None, 10)
        # age the first slot past the limit
        past = (datetime.now(UTC) - timedelta(seconds=120)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        with lec.db.transaction() as conn:
            conn.execute("UPDATE documents SET updated_at = ? WHERE document_id = ?", (past, old.document_id))
        swept = lec.worker.sweep()
        assert [s.document_id for s in swept] == [old.document_id]
        expired = svc.get("default", old.document_id)
        assert expired.status is DocumentStatus.FAILED
        assert "not received" in (expired.error or "") and "Upload the file again" in (expired.error or "")
        assert svc.get("default", fresh.document_id).status is DocumentStatus.UPLOADING
        # the expired slot cannot be used any more, with a message that says why
        from lectern.domain.errors import Conflict

        with pytest.raises(Conflict, match="expired"):
            svc.receive_upload("default", old.document_id, b"0123456789")
    finally:
        lec.close()


def test_a_worker_start_resumes_stranded_documents_and_removes_orphan_chunks(tmp_path: Path) -> None:
    lec = open_lectern(tmp_path)
    svc = lec.document_service

    class _Nothing:
        def start(self, tenant_id: str, document_id: str) -> None:
            return None

    svc.trigger = _Nothing()  # as if the process was killed right after the upload was stored
    data = b"The cafeteria opens at eight."
    doc, _ = svc.create_upload("default", "cafe.txt", None, len(data))
    svc.receive_upload("default", doc.document_id, data)
    gone, _ = svc.create_upload("default", "gone.txt", None, 5)
    svc.receive_upload("default", gone.document_id, b"words")
    lec.pipeline.run("default", gone.document_id)
    lec.documents.delete("default", gone.document_id)  # killed between a delete's two writes
    assert lec.index.count("default", gone.document_id) > 0
    lec.close()

    lec = open_lectern(tmp_path)
    try:
        assert lec.worker.recover() == 1
        lec.worker.run_forever()
        assert lec.worker.wait_idle(30)
        assert lec.document_service.get("default", doc.document_id).status is DocumentStatus.INDEXED
        assert lec.index.count("default", gone.document_id) == 0
    finally:
        lec.close()
