"""The local `IngestionTrigger`: a durable queue (document status in SQLite) worked by background threads.

The queue *is* the documents table: every document in PROCESSING is pending. `start()` only wakes a worker; on
start-up `recover()` re-queues whatever a killed process left in PROCESSING (and finishes uploads whose file was
stored but whose status was not yet moved). Each attempt is counted durably first, so a file that kills the
process cannot loop forever.

Nothing is stranded: `recover()` also removes chunks a killed delete left without a document, and a sweep
(at start, then every few minutes while running) ends upload slots unused for `upload_slot_ttl_s` FAILED with
a reason (`domain.sweep`). The per-document time limit is the pipeline's extractor's
(`adapters.local.child_extractor`). PROCESSING documents are not swept by age here: locally they are either
queued in this process (a long backlog is no fault) or re-queued by `recover()`.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import queue
import threading
from collections.abc import Callable
from datetime import timedelta

from lectern.adapters.local.sqlite_documents import SqliteDocumentRepository
from lectern.domain.documents import blob_key
from lectern.domain.errors import Conflict, IngestionInterrupted, NotFound
from lectern.domain.ingest import IngestionPipeline
from lectern.domain.lifecycle import RECEIVE_UPLOAD
from lectern.domain.models import DocumentStatus
from lectern.domain.ports import BlobStore
from lectern.domain.sweep import StuckDocumentSweeper, StuckLimits, Swept

log = logging.getLogger(__name__)


class LocalIngestionWorker:
    def __init__(
        self,
        pipeline: IngestionPipeline,
        documents: SqliteDocumentRepository,
        blobs: BlobStore,
        *,
        workers: int = 1,
        max_attempts: int = 3,
        upload_slot_ttl_s: int = 3600,
        purge_orphans: Callable[[], int] | None = None,
        batch: int = 4,
    ) -> None:
        self.pipeline = pipeline
        self.documents = documents
        self.blobs = blobs
        self.max_attempts = max_attempts
        # documents already queued behind the one a thread takes go with it through the pipelined path (1: one
        # at a time, as before issue 19)
        self.batch = max(1, batch)
        self.upload_slot_ttl_s = upload_slot_ttl_s
        self.sweep_interval_s = min(300.0, max(1.0, upload_slot_ttl_s / 4))
        self._purge_orphans = purge_orphans
        self._stop = threading.Event()
        self._sweeper = threading.Thread(target=self._sweep_loop, name="lectern-sweep", daemon=True)
        self._queue: queue.Queue[tuple[str, str] | None] = queue.Queue()
        self._threads = [
            threading.Thread(target=self._loop, name=f"lectern-ingest-{i}", daemon=True)
            for i in range(workers)
        ]
        self._started = False
        self._idle = threading.Condition()
        self._busy = 0

    # IngestionTrigger
    def start(self, tenant_id: str, document_id: str) -> None:
        with self._idle:
            self._busy += 1
        self._queue.put((tenant_id, document_id))

    def run_forever(self) -> None:
        if not self._started:
            self._started = True
            for t in self._threads:
                t.start()
            self._sweeper.start()

    def sweep(self) -> list[Swept]:
        """End upload slots unused for longer than `upload_slot_ttl_s`: FAILED, with a reason to act on."""
        limits = StuckLimits(uploading=timedelta(seconds=self.upload_slot_ttl_s))
        swept = StuckDocumentSweeper(self.documents, self.documents, limits).sweep(
            statuses=(DocumentStatus.UPLOADING,)
        )
        for s in swept:
            log.info("upload slot of %s expired unused: %s", s.document_id, s.reason)
        return swept

    def _sweep_loop(self) -> None:
        while not self._stop.wait(self.sweep_interval_s):
            try:
                self.sweep()
            except Exception:
                log.exception("sweep of unused upload slots failed")

    def recover(self) -> int:
        """Re-queue work a previous process left unfinished, remove what a killed delete left, expire unused upload
        slots. Returns how many documents were queued."""
        if self._purge_orphans is not None:
            purged = self._purge_orphans()
            if purged:
                log.info("removed the chunks of %d deleted document(s) a kill left behind", purged)
        n = 0
        for doc in self.documents.in_status(DocumentStatus.UPLOADING):
            if self.blobs.exists(blob_key(doc.tenant_id, doc.document_id)):
                try:
                    # the file arrived but the process died before the status changed: the upload's own step
                    RECEIVE_UPLOAD.apply(self.documents, doc.tenant_id, doc.document_id)
                except (Conflict, NotFound):
                    continue
        for doc in self.documents.in_status(DocumentStatus.PROCESSING):
            self.start(doc.tenant_id, doc.document_id)
            n += 1
        self.sweep()
        return n

    def wait_idle(self, timeout: float | None = None) -> bool:
        with self._idle:
            return self._idle.wait_for(lambda: self._busy == 0, timeout)

    def stop(self) -> None:
        self._stop.set()
        for _ in self._threads:
            self._queue.put(None)

    def admit(self, tenant_id: str, document_id: str) -> bool:
        """Count the attempt durably, right before the document's own work starts; a document that has
        interrupted the process too often is given up on (FAILED with the reason) instead."""
        attempts = self.documents.begin_attempt(tenant_id, document_id)
        if attempts > self.max_attempts:
            with contextlib.suppress(Conflict, NotFound):
                self.pipeline.fail(
                    tenant_id,
                    document_id,
                    f"Processing was interrupted {attempts - 1} times; the document was given up on.",
                )
            return False
        return True

    def process(self, tenant_id: str, document_id: str) -> None:
        if self.admit(tenant_id, document_id):
            self.pipeline.run(tenant_id, document_id)

    def process_many(self, items: list[tuple[str, str]]) -> None:
        """Documents queued together, pipelined (`IngestionPipeline.run_many`: the next one is extracted while
        this one is embedded), one tenant's run of consecutive items at a time."""
        start = 0
        while start < len(items):
            tenant_id = items[start][0]
            end = start
            while end < len(items) and items[end][0] == tenant_id:
                end += 1
            ids = [d for _, d in items[start:end]]
            self.pipeline.run_many(tenant_id, ids, admit=functools.partial(self.admit, tenant_id))
            start = end

    def _take_queued(self, first: tuple[str, str]) -> list[tuple[str, str]]:
        items = [first]
        while len(items) < self.batch:
            try:
                nxt = self._queue.get_nowait()
            except queue.Empty:
                break
            if nxt is None:  # a stop: leave it for the loop
                self._queue.put(None)
                break
            items.append(nxt)
        return items

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            items = self._take_queued(item) if self.batch > 1 else [item]
            try:
                if len(items) == 1:
                    self.process(*items[0])
                else:
                    self.process_many(items)
            except IngestionInterrupted:
                # not the documents' fault: try again shortly what is left (attempts are counted, so this ends)
                if not self._stop.is_set():
                    for left in self._unfinished(items):
                        with self._idle:
                            self._busy += 1  # still pending: wait_idle must not return meanwhile
                        retry = threading.Timer(1.0, self._queue.put, args=(left,))
                        retry.daemon = True
                        retry.start()
            except Exception:
                log.exception("ingestion worker error for %s", ", ".join(d for _, d in items))
            finally:
                with self._idle:
                    self._busy -= len(items)
                    self._idle.notify_all()

    def _unfinished(self, items: list[tuple[str, str]]) -> list[tuple[str, str]]:
        if len(items) == 1:
            return items
        left = []
        for tenant_id, document_id in items:
            doc = self.documents.get(tenant_id, document_id)
            if doc is not None and doc.status is DocumentStatus.PROCESSING:
                left.append((tenant_id, document_id))
        return left
