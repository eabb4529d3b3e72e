"""The local `IngestionTrigger`: a durable queue (document status in SQLite) worked by background threads.

The queue *is* the documents table: every document in PROCESSING is pending. `start()` only wakes a worker; on
start-up `recover()` re-queues whatever a killed process left in PROCESSING (and finishes uploads whose file was
stored but whose status was not yet moved). Each attempt is counted durably first, so a file that kills the
process cannot loop forever.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading

from lectern.adapters.local.sqlite_documents import SqliteDocumentRepository
from lectern.domain.documents import blob_key
from lectern.domain.errors import Conflict, NotFound
from lectern.domain.ingest import IngestionPipeline
from lectern.domain.models import DocumentStatus
from lectern.domain.ports import BlobStore

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
    ) -> None:
        self.pipeline = pipeline
        self.documents = documents
        self.blobs = blobs
        self.max_attempts = max_attempts
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

    def recover(self) -> int:
        """Re-queue work a previous process left unfinished. Returns how many documents were queued."""
        n = 0
        for doc in self.documents.in_status(DocumentStatus.UPLOADING):
            if self.blobs.exists(blob_key(doc.tenant_id, doc.document_id)):
                try:
                    self.documents.update(
                        doc.tenant_id,
                        doc.document_id,
                        status=DocumentStatus.PROCESSING,
                        allowed_from=[DocumentStatus.UPLOADING],
                    )
                except (Conflict, NotFound):
                    continue
        for doc in self.documents.in_status(DocumentStatus.PROCESSING):
            self.start(doc.tenant_id, doc.document_id)
            n += 1
        return n

    def wait_idle(self, timeout: float | None = None) -> bool:
        with self._idle:
            return self._idle.wait_for(lambda: self._busy == 0, timeout)

    def stop(self) -> None:
        for _ in self._threads:
            self._queue.put(None)

    def process(self, tenant_id: str, document_id: str) -> None:
        attempts = self.documents.begin_attempt(tenant_id, document_id)
        if attempts > self.max_attempts:
            with contextlib.suppress(Conflict, NotFound):
                self.pipeline.fail(
                    tenant_id,
                    document_id,
                    f"Processing was interrupted {attempts - 1} times; the document was given up on.",
                )
            return
        self.pipeline.run(tenant_id, document_id)

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            try:
                self.process(*item)
            except Exception:
                log.exception("ingestion worker error for %s", item[1])
            finally:
                with self._idle:
                    self._busy -= 1
                    self._idle.notify_all()
