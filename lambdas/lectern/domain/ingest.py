"""Ingestion: validate -> extract -> chunk -> embed -> index -> mark_indexed.

The same steps, in the same order, are the states of the Step Functions definition on AWS
(state_machines/ingest.asl.json); locally `IngestionPipeline.run` calls them in sequence. Each step is
idempotent: a run that is interrupted (kill -9) and started again replaces the document's chunks with the same
deterministic chunk ids, so nothing is lost or duplicated.

Identity: a document INDEXED replaces every older document of its source path (`supersede`), and a document
FAILED replaces the older FAILED ones of its source path, so a source has at most one FAILED row however often it
is retried. Each step's duration is kept (`Document.timings`, milliseconds) so a slow ingestion can be diagnosed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace

import numpy as np

from lectern.domain.chunking import ChunkingConfig, chunk_document
from lectern.domain.documents import blob_key, is_older, page_image_key, remove_document
from lectern.domain.errors import Conflict, ExtractionError, IngestionInterrupted, NotFound
from lectern.domain.extraction import ExtractionLimits, extract
from lectern.domain.layout import attach_boxes
from lectern.domain.lifecycle import MARK_FAILED, MARK_INDEXED
from lectern.domain.models import Chunk, Document, DocumentStatus, ExtractedDocument
from lectern.domain.ocr import bind_to_document
from lectern.domain.ports import BlobStore, DocumentRepository, Embedder, SearchIndex

log = logging.getLogger(__name__)

INGESTION_STEPS: tuple[str, ...] = ("validate", "extract", "chunk", "embed", "index", "mark_indexed")
EMBED_BATCH = 32

Progress = Callable[[str, int, int], None]
Admit = Callable[[str], bool]
Extractor = Callable[[bytes, str, str, ExtractionLimits], ExtractedDocument]
TIMED_STEPS: tuple[str, ...] = ("validate", "extract", "chunk", "embed", "index")
# the steps `run_many` runs ahead, on a thread, for the next documents (locally extraction itself is in a child
# process, so it overlaps the embedder's ONNX threads); the rest stays in order on the caller's thread
PREPARE_STEPS: tuple[str, ...] = ("validate", "extract", "chunk")
PIPELINE_DEPTH = 8  # documents prepared ahead (their extracted text and chunks are held meanwhile)


def _no_progress(step: str, done: int, total: int) -> None:
    return None


@dataclass
class IngestionState:
    """What flows from step to step (on AWS: the state machine's state, with large parts in S3)."""

    document: Document
    data: bytes = b""
    extracted: ExtractedDocument | None = None
    chunks: list[Chunk] | None = None
    vectors: np.ndarray | None = None
    timings: dict[str, int] = field(default_factory=dict)


@dataclass
class Prepared:
    """The first steps of one document, run ahead (`IngestionPipeline.prepare`): the state, or what they raised.
    No state: the document was gone or no longer PROCESSING when it was prepared (`run` looks again)."""

    state: IngestionState | None
    error: Exception | None
    skip: bool = False  # the caller's `admit` refused it (run_many does not run it)


def _steps_left(prepared: Prepared) -> tuple[str, ...]:
    """What `run` still has to do for a prepared document (raising what its preparation raised)."""
    if prepared.error is not None:
        raise prepared.error
    names = INGESTION_STEPS[len(PREPARE_STEPS) :]
    if prepared.state is not None and prepared.state.vectors is not None:  # embedded with its neighbours
        names = tuple(n for n in names if n != "embed")
    return names


def _take_group(ahead: deque[tuple[str, Future[Prepared]]]) -> list[tuple[str, Prepared]]:
    """The next document (waiting for it) and those already prepared behind it, up to EMBED_BATCH chunks."""
    document_id, future = ahead.popleft()
    group = [(document_id, future.result())]
    n = _chunk_count(group[0][1])
    while ahead and ahead[0][1].done() and n + _chunk_count(ahead[0][1].result()) <= EMBED_BATCH:
        doc_id, fut = ahead.popleft()
        group.append((doc_id, fut.result()))
        n += _chunk_count(group[-1][1])
    return group


def _chunk_count(p: Prepared) -> int:
    return len(p.state.chunks or ()) if p.state is not None and p.error is None else 0


class IngestionPipeline:
    def __init__(
        self,
        *,
        documents: DocumentRepository,
        blobs: BlobStore,
        index: SearchIndex,
        embedder: Embedder,
        token_counter: Callable[[str], int],
        chunking: ChunkingConfig,
        limits: ExtractionLimits,
        extractor: Extractor | None = None,
        supersede_versions: bool = True,
    ) -> None:
        self.documents = documents
        self.blobs = blobs
        self.index = index
        self.embedder = embedder
        self.count = token_counter
        self.chunking = chunking
        self.limits = limits
        self.extractor: Extractor = extractor or extract
        # an INDEXED document replaces the older ones of its source path; a FAILED one the older FAILED ones
        self.supersede_versions = supersede_versions
        self._prepare_pools = threading.local()  # run_many's preparing thread, per calling thread

    # -- steps ---------------------------------------------------------------------------------------------
    def validate(self, state: IngestionState) -> IngestionState:
        doc = state.document
        try:
            state.data = self.blobs.get(blob_key(doc.tenant_id, doc.document_id))
        except KeyError as exc:
            raise ExtractionError("The uploaded file is missing; upload it again.") from exc
        if len(state.data) > self.limits.max_bytes:
            raise ExtractionError(
                f"The file is {len(state.data):,} bytes; the limit is {self.limits.max_bytes:,} bytes."
            )
        return state

    def extract(self, state: IngestionState) -> IngestionState:
        doc = state.document
        limits = bind_to_document(self.limits, doc.tenant_id, doc.document_id)  # e.g. Textract: where, what cache
        extracted = self.extractor(state.data, doc.filename, doc.content_type, limits)
        # page images go next to the original (the passage view shows them); the state carries text and boxes
        for number, png in sorted(extracted.page_images.items()):
            self.blobs.put(page_image_key(doc.tenant_id, doc.document_id, number), png)
        state.extracted = replace(extracted, page_images={}) if extracted.page_images else extracted
        return state

    def chunk(self, state: IngestionState) -> IngestionState:
        assert state.extracted is not None
        doc = state.document
        state.chunks = chunk_document(
            state.extracted,
            tenant_id=doc.tenant_id,
            document_id=doc.document_id,
            filename=doc.filename,
            config=self.chunking,
            count=self.count,
        )
        state.chunks = attach_boxes(state.chunks, state.extracted)  # each chunk's words' boxes on its page
        if not state.chunks:
            raise ExtractionError("The document contains no text to index.")
        return state

    def embed(self, state: IngestionState, progress: Progress = _no_progress) -> IngestionState:
        assert state.chunks is not None
        texts = [c.search_text for c in state.chunks]
        parts = []
        for start in range(0, len(texts), EMBED_BATCH):
            parts.append(self.embedder.embed_documents(texts[start : start + EMBED_BATCH]))
            progress("embed", min(start + EMBED_BATCH, len(texts)), len(texts))
        state.vectors = np.vstack(parts)
        return state

    def index_chunks(self, state: IngestionState) -> IngestionState:
        assert state.chunks is not None and state.vectors is not None
        doc = state.document
        self.index.replace_document(doc.tenant_id, doc.document_id, state.chunks, state.vectors)
        return state

    def mark_indexed(self, state: IngestionState) -> IngestionState:
        assert state.extracted is not None and state.chunks is not None
        doc = state.document
        try:
            state.document = MARK_INDEXED.apply(
                self.documents,
                doc.tenant_id,
                doc.document_id,
                pages=state.extracted.page_count,
                chunks=len(state.chunks),
                error=None,
                timings=dict(state.timings) or None,
            )
        except NotFound:
            # Deleted while we worked: take our chunks back out of the index.
            self.index.delete_document(doc.tenant_id, doc.document_id)
            raise
        except Conflict:
            # Moved on while we worked. INDEXED: a repeated run of the same upload finished first, and its chunks
            # are ours (deterministic ids) - leave them. FAILED: the document must not stay searchable.
            current = self.documents.get(doc.tenant_id, doc.document_id)
            if current is None or current.status is DocumentStatus.FAILED:
                self.index.delete_document(doc.tenant_id, doc.document_id)
            raise
        try:
            self.supersede(state.document)
        except Exception:  # the new version is indexed; a leftover old one is removed by its next supersede
            log.exception("could not remove the versions %s replaces", doc.document_id)
        return state

    def supersede(self, doc: Document) -> list[str]:
        """Remove every older document of `doc`'s source path (the versions `doc` replaces). Returns their ids."""
        if not doc.source_path or not self.supersede_versions:
            return []
        gone = []
        for old in self.documents.find_by_source(doc.tenant_id, doc.source_path):
            if old.document_id != doc.document_id and is_older(old, doc):
                remove_document(self.documents, self.index, self.blobs, old.tenant_id, old.document_id)
                gone.append(old.document_id)
        return gone

    # -- driver --------------------------------------------------------------------------------------------
    def _steps(
        self, state: IngestionState, names: Iterable[str], progress: Progress = _no_progress
    ) -> IngestionState:
        steps: dict[str, Callable[[IngestionState], IngestionState]] = {
            "validate": self.validate,
            "extract": self.extract,
            "chunk": self.chunk,
            "embed": lambda s: self.embed(s, progress),
            "index": self.index_chunks,
            "mark_indexed": self.mark_indexed,
        }
        for name in names:
            progress(name, INGESTION_STEPS.index(name), len(INGESTION_STEPS))
            started = time.perf_counter()
            try:
                state = steps[name](state)
            finally:
                if name in TIMED_STEPS:
                    state.timings[name] = round((time.perf_counter() - started) * 1000)
        return state

    def prepare(self, tenant_id: str, document_id: str, admit: Admit | None = None) -> Prepared:
        """validate, extract and chunk one document, ahead of `run` (which embeds, indexes and marks it). What
        these steps raise is kept for `run` to handle, as if it had run them itself. `admit(document_id)`, if
        given, is asked first, right before the document's own work starts (the local worker counts an attempt
        there); False skips the document."""
        if admit is not None and not admit(document_id):
            return Prepared(None, None, skip=True)
        doc = self.documents.get(tenant_id, document_id)
        if doc is None or doc.status is not DocumentStatus.PROCESSING:
            return Prepared(None, None)
        state = IngestionState(document=doc)
        try:
            return Prepared(self._steps(state, PREPARE_STEPS), None)
        except Exception as exc:  # re-raised by run, which sorts expected from unexpected
            return Prepared(state, exc)

    def run(
        self,
        tenant_id: str,
        document_id: str,
        progress: Progress = _no_progress,
        prepared: Prepared | None = None,
    ) -> Document:
        """Run every step. Expected failures end the document FAILED with a user-facing reason. With `prepared`
        (from `prepare`), the first steps were already run: only embed, index and mark_indexed are left."""
        doc = self.documents.get(tenant_id, document_id)
        if doc is None:
            raise NotFound(f"Document {document_id} was not found.")
        if doc.status is not DocumentStatus.PROCESSING:
            return doc  # a repeated trigger for a document already finished: nothing to do
        state = IngestionState(document=doc)
        try:
            if prepared is not None and prepared.state is not None:
                state = prepared.state
                state.document = doc
                names = _steps_left(prepared)
            else:
                names = INGESTION_STEPS
            state = self._steps(state, names, progress)
        except ExtractionError as exc:
            return self.fail(tenant_id, document_id, exc.message, timings=state.timings)
        except IngestionInterrupted:
            log.warning("ingestion of %s interrupted; it stays PROCESSING and is retried", document_id)
            raise
        except (NotFound, Conflict):
            log.info("document %s changed during ingestion; its chunks were withdrawn", document_id)
            current = self.documents.get(tenant_id, document_id)
            if current is None:
                raise
            return current
        except Exception:
            log.exception("ingestion of %s failed", document_id)
            return self.fail(
                tenant_id,
                document_id,
                "Lectern could not process this document (internal error).",
                timings=state.timings,
            )
        progress("done", len(INGESTION_STEPS), len(INGESTION_STEPS))
        return state.document

    def run_many(
        self, tenant_id: str, document_ids: Iterable[str], admit: Admit | None = None
    ) -> list[Document]:
        """`run` for each document, pipelined: the next documents (up to PIPELINE_DEPTH) are validated,
        extracted and chunked on a thread while this one is embedded and indexed. Each document is still
        embedded, written (one index transaction, as `run`) and marked on its own, in order, so what a crash
        leaves is what `run` would leave: documents INDEXED before it, the rest PROCESSING and retried.
        Returns the documents run (not those `admit` refused)."""
        done: list[Document] = []
        ahead: deque[tuple[str, Future[Prepared]]] = deque()
        ids = iter(document_ids)
        # one long-lived preparing thread per calling thread (locally it owns one extraction child, reused)
        pool: ThreadPoolExecutor | None = getattr(self._prepare_pools, "pool", None)
        if pool is None:
            pool = self._prepare_pools.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lectern-prepare")

        def fill() -> None:
            while len(ahead) < PIPELINE_DEPTH:
                nxt = next(ids, None)
                if nxt is None:
                    return
                ahead.append((nxt, pool.submit(self.prepare, tenant_id, nxt, admit)))

        try:
            fill()
            while ahead:
                group = _take_group(ahead)  # prepared documents embedded together, in one call
                fill()
                done += self._run_group(tenant_id, group)
        finally:
            for _, future in ahead:  # an interruption: what was prepared ahead is dropped (still PROCESSING)
                future.cancel()
        return done

    def _run_group(self, tenant_id: str, group: list[tuple[str, Prepared]]) -> list[Document]:
        if len(group) > 1:
            self._embed_together([p for _, p in group])
        done = []
        for doc_id, prepared in group:
            if prepared.skip:
                continue
            try:
                done.append(self.run(tenant_id, doc_id, prepared=prepared))
            except NotFound:  # deleted meanwhile: nothing left to do for it; the others go on
                log.info("document %s was deleted during ingestion", doc_id)
        return done

    def _embed_together(self, group: list[Prepared]) -> None:
        """One embedder call for the chunks of several prepared documents; each gets its rows (and its share of
        the time). A failure other than an interruption leaves them unembedded: `run` then embeds each on its
        own and fails only the document at fault."""
        states = [p.state for p in group if p.state is not None and p.error is None and p.state.chunks]
        if len(states) < 2:
            return
        texts = [c.search_text for st in states for c in st.chunks or ()]
        started = time.perf_counter()
        try:
            vectors = self.embedder.embed_documents(texts)
        except IngestionInterrupted:
            raise
        except Exception:
            log.warning("embedding %d documents together failed; embedding them one by one", len(states))
            return
        elapsed_ms = (time.perf_counter() - started) * 1000
        row = 0
        for st in states:
            k = len(st.chunks or ())
            st.vectors = vectors[row : row + k]
            st.timings["embed"] = round(elapsed_ms * k / len(texts))
            row += k

    def fail(
        self, tenant_id: str, document_id: str, reason: str, *, timings: dict[str, int] | None = None
    ) -> Document:
        """FAILED with `reason`; older FAILED documents of the same source path are removed (one FAILED row per
        source). An older INDEXED version stays searchable."""
        self.index.delete_document(tenant_id, document_id)
        extra: dict[str, object] = {"timings": dict(timings)} if timings else {}
        doc = MARK_FAILED.apply(
            self.documents,
            tenant_id,
            document_id,
            error=reason,
            **extra,
        )
        if doc.source_path and self.supersede_versions:
            for old in self.documents.find_by_source(tenant_id, doc.source_path):
                if old.status is DocumentStatus.FAILED and is_older(old, doc):
                    remove_document(self.documents, self.index, self.blobs, tenant_id, old.document_id)
        return doc
