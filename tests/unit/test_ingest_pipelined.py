"""`IngestionPipeline.run_many` (issue 19): the next documents are extracted and chunked while one is embedded,
with the same outcome per document as `run` one at a time, bad documents FAILED with their reason while the
others go on, and an interruption leaving what `run` would leave (INDEXED before it, PROCESSING after it)."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lectern.domain.errors import IngestionInterrupted
from lectern.domain.models import DocumentStatus
from lectern.local.container import build_local
from lectern.settings import LocalSettings
from tests.fakes.embedder import HashEmbedder

DOCS = [
    ("a.txt", b"The garage closes at nine on weekdays.\n\nIt opens at seven."),
    ("empty.txt", b"   \n\n  "),  # no text: FAILED with the reason
    ("b.md", b"# Boiler\n\nThe boiler is serviced every spring by the caretaker."),
    ("broken.pdf", b"%PDF-1.7 not really a pdf"),  # FAILED: the extractor's message
    ("c.txt", b"Parcels are kept at the front desk for two weeks."),
]


class NoTrigger:
    def start(self, tenant_id: str, document_id: str) -> None:
        return None


def open_lectern(tmp_path: Path, embedder: Any) -> Any:
    s = LocalSettings.from_env(
        {}, data_dir=tmp_path / "d", llm="fake", auth="none", cache_enabled=False, ingest_time_limit_s=0
    )
    lec = build_local(s, embedder=embedder)
    lec.document_service.trigger = NoTrigger()
    return lec


def upload(lec: Any, tenant: str) -> list[str]:
    ids = []
    for name, data in DOCS:
        doc, _ = lec.document_service.create_upload(tenant, name, None, len(data))
        lec.document_service.receive_upload(tenant, doc.document_id, data)
        ids.append(doc.document_id)
    return ids


def outcome(lec: Any, tenant: str, ids: Sequence[str]) -> list[tuple[str, str | None, list[str]]]:
    rows = []
    for i in ids:
        doc = lec.document_service.get(tenant, i)
        texts = [
            r[0]
            for r in lec.index.db.connection().execute(
                "SELECT text FROM chunks WHERE tenant_id = ? AND document_id = ? ORDER BY rowid", (tenant, i)
            )
        ]
        rows.append((doc.status.value, doc.error, texts))
    return rows


def test_run_many_gives_each_document_the_outcome_of_run(tmp_path: Path) -> None:
    lec = open_lectern(tmp_path, HashEmbedder())
    try:
        one_by_one = upload(lec, "t1")
        for i in one_by_one:
            lec.pipeline.run("t1", i)
        pipelined = upload(lec, "t2")
        docs = lec.pipeline.run_many("t2", pipelined)
        assert [d.document_id for d in docs] == pipelined
        expected = outcome(lec, "t1", one_by_one)
        assert outcome(lec, "t2", pipelined) == expected
        assert [s for s, _, _ in expected] == ["INDEXED", "FAILED", "INDEXED", "FAILED", "INDEXED"]
        assert "no text" in (expected[1][1] or "")
        timings = lec.document_service.get("t2", pipelined[0]).timings
        assert set(timings) == {"validate", "extract", "chunk", "embed", "index"}
        # a repeated run over finished documents changes nothing
        lec.pipeline.run_many("t2", pipelined)
        assert outcome(lec, "t2", pipelined) == expected
    finally:
        lec.close()


class GatedEmbedder(HashEmbedder):
    """Holds the first embedding until the next document has been chunked: proof of the overlap."""

    def __init__(self) -> None:
        self.prepared = threading.Event()
        self.calls = 0

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        if self.calls == 1:
            assert self.prepared.wait(10), "the next document was not prepared while this one was embedded"
        return super().embed_documents(texts)


def test_the_next_document_is_prepared_while_one_is_embedded(tmp_path: Path) -> None:
    emb = GatedEmbedder()
    lec = open_lectern(tmp_path, emb)
    try:
        pipeline = lec.pipeline
        real_prepare = pipeline.prepare

        def prepare(tenant_id: str, document_id: str, admit: Any = None) -> Any:
            p = real_prepare(tenant_id, document_id, admit)
            if document_id == ids[2]:  # b.md: prepared while a.txt is held in its embedding
                emb.prepared.set()
            return p

        pipeline.prepare = prepare
        ids = upload(lec, "t")
        pipeline.run_many("t", ids)
        assert [s for s, _, _ in outcome(lec, "t", ids)] == ["INDEXED", "FAILED", "INDEXED", "FAILED", "INDEXED"]
    finally:
        lec.close()


class InterruptingEmbedder(HashEmbedder):
    """Interrupted (as a shutdown would) when it is given the boiler document's text, until `armed` is off."""

    def __init__(self) -> None:
        self.armed = True

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        if self.armed and any("boiler" in t for t in texts):
            raise IngestionInterrupted("stopped")
        return super().embed_documents(texts)


def test_an_interruption_leaves_what_run_would_and_a_rerun_finishes(tmp_path: Path) -> None:
    emb = InterruptingEmbedder()
    lec = open_lectern(tmp_path, emb)
    try:
        ids = upload(lec, "t")
        with pytest.raises(IngestionInterrupted):
            lec.pipeline.run_many("t", ids)
        final = ["INDEXED", "FAILED", "INDEXED", "FAILED", "INDEXED"]
        after = outcome(lec, "t", ids)
        assert after[2][0] == "PROCESSING" and after[2][2] == []  # the interrupted one: no chunks half-written
        assert after[4][0] == "PROCESSING" and after[4][2] == []  # behind it: prepared at most, never written
        for (status, _, texts), end in zip(after, final, strict=True):  # each one finished or untouched
            assert status == end or (status == "PROCESSING" and texts == [])
        emb.armed = False
        lec.pipeline.run_many("t", ids)
        assert [s for s, _, _ in outcome(lec, "t", ids)] == final
        assert lec.document_service.get("t", ids[2]).status is DocumentStatus.INDEXED
    finally:
        lec.close()


class RecordingEmbedder(HashEmbedder):
    """Holds its first call until every document is prepared, then records what each call was given."""

    def __init__(self) -> None:
        self.all_prepared = threading.Event()
        self.calls: list[list[str]] = []

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        if not self.calls:
            assert self.all_prepared.wait(10)
            time.sleep(0.5)  # the last preparation's future is marked done just after it returns
        self.calls.append(list(texts))
        return super().embed_documents(texts)


def test_documents_prepared_behind_one_are_embedded_together(tmp_path: Path) -> None:
    emb = RecordingEmbedder()
    lec = open_lectern(tmp_path, emb)
    try:
        pipeline = lec.pipeline
        real_prepare = pipeline.prepare
        seen: list[str] = []

        def prepare(tenant_id: str, document_id: str, admit: Any = None) -> Any:
            p = real_prepare(tenant_id, document_id, admit)
            seen.append(document_id)
            if len(seen) == len(DOCS):
                emb.all_prepared.set()
            return p

        pipeline.prepare = prepare
        ids = upload(lec, "t")
        pipeline.run_many("t", ids)
        # a.txt alone (the others were not ready yet), then b.md and c.txt in one call (the bad ones have none)
        assert len(emb.calls) == 2
        assert any("boiler" in t for t in emb.calls[1]) and any("Parcels" in t for t in emb.calls[1])
        assert [s for s, _, _ in outcome(lec, "t", ids)] == ["INDEXED", "FAILED", "INDEXED", "FAILED", "INDEXED"]
        for i in (ids[2], ids[4]):
            assert "embed" in lec.document_service.get("t", i).timings
    finally:
        lec.close()


def test_the_worker_takes_queued_documents_together(tmp_path: Path) -> None:
    """Queued before the worker starts, the five go through run_many together; each is counted one attempt."""
    lec = open_lectern(tmp_path, HashEmbedder())
    try:
        worker = lec.worker
        batches: list[int] = []
        real = worker.process_many

        def process_many(items: list[tuple[str, str]]) -> None:
            batches.append(len(items))
            real(items)

        worker.process_many = process_many
        ids = upload(lec, "t")
        for i in ids:
            worker.start("t", i)
        worker.run_forever()
        assert worker.wait_idle(30)
        assert batches and batches[0] >= 2 and sum(batches) <= len(ids)
        assert [s for s, _, _ in outcome(lec, "t", ids)] == ["INDEXED", "FAILED", "INDEXED", "FAILED", "INDEXED"]
        attempts = [
            r[0]
            for i in ids
            for r in lec.db.connection().execute(
                "SELECT attempts FROM documents WHERE tenant_id = 't' AND document_id = ?", (i,)
            )
        ]
        assert attempts == [1, 1, 1, 1, 1]
    finally:
        lec.close()
