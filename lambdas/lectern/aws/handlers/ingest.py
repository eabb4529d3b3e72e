"""Ingestion steps as Lambda entry points, one per state of state_machines/ingest.asl.json.

validate -> extract -> chunk -> embed_batch (Map) -> index -> mark_indexed, and mark_failed on any Catch. The
steps are the domain's (`lectern.domain.ingest.IngestionPipeline`); these functions move their inputs and outputs
through S3 (see `lectern.aws.jobs`) because a state may carry only 256 KB. Every step is idempotent, so the state
machine's Retry may run any of them twice:

- validate is guarded by Powertools idempotency (DynamoDB) keyed on the S3 object key and its event sequencer,
  so a duplicated EventBridge event does not start a second ingestion of the same upload;
- embed_batch looks for the batch's stored vectors first (a retry after a timeout pays Titan nothing);
- index replaces the document's chunks by deterministic ids; a partial bulk failure raises IndexWriteFailed
  (retried by the state machine, then FAILED) so a document never ends INDEXED with missing chunks.

Exceptions leave as their class names, which is what the ASL's Retry/Catch match on: ModelUnavailable and
IndexWriteFailed and DocumentBusy are retried, ExtractionError is not.
"""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from lectern.aws import container, jobs
from lectern.aws.observability import logger, metrics, tracer
from lectern.domain.documents import blob_key
from lectern.domain.errors import Conflict, ExtractionError, LecternError, NotFound
from lectern.domain.ingest import IngestionState
from lectern.domain.lifecycle import START_PROCESSING
from lectern.domain.models import Document, DocumentStatus

INTERNAL_ERROR = "Lectern could not process this document (internal error)."


class DocumentBusy(LecternError):
    """A new upload of a document that is still being ingested: the state machine retries it later."""

    code = "document_busy"


def _lectern() -> container.AwsLectern:
    return container.current()


def _document(tenant_id: str, document_id: str) -> Document:
    doc = _lectern().documents.get(tenant_id, document_id)
    if doc is None:
        raise NotFound(f"Document {document_id} has no record (deleted, or uploaded without POST /v1/documents).")
    return doc


def _job(job: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {**job, **extra}


def _timed(job: dict[str, Any], stage: str, started: float) -> dict[str, int]:
    """The job's stage timings (ms) with `stage` added, and the stage's CloudWatch metric (EMF): one metric per
    stage (`IngestExtractMs`, ...), the service dimension only, so its cost stays one metric each."""
    ms = round((time.perf_counter() - started) * 1000)
    metrics.add_metric(name=jobs.stage_metric(stage), unit=MetricUnit.Milliseconds, value=ms)
    return {**(job.get("timings") or {}), stage: ms}


# -- validate -----------------------------------------------------------------------------------------------
_persistence: DynamoDBPersistenceLayer | None = None


def _idempotency() -> DynamoDBPersistenceLayer:
    global _persistence
    if _persistence is None:
        s = _lectern().settings
        _persistence = DynamoDBPersistenceLayer(
            table_name=s.table_name,
            key_attr="pk",
            sort_key_attr="sk",
            static_pk_value="IDEMPOTENCY#ingest-validate",
            expiry_attr="ttl",
        )
    return _persistence


def _start(event: dict[str, Any]) -> dict[str, Any]:
    lectern = _lectern()
    if "detail" in event:  # S3 "Object Created" through EventBridge
        obj = event["detail"]["object"]
        key = obj["key"]
        tenant_id, document_id = jobs.parse_original_key(key)
        size = int(obj.get("size", 0))
    else:  # started by hand / by the rebuild tooling with ids
        tenant_id, document_id = event["tenant_id"], event["document_id"]
        key = blob_key(tenant_id, document_id)
        size = -1
    doc = _document(tenant_id, document_id)
    if doc.status is DocumentStatus.PROCESSING:
        raise DocumentBusy(f"Document {document_id} is still being ingested; this upload waits its turn.")
    try:
        START_PROCESSING.apply(lectern.documents, tenant_id, document_id, error=None)
    except Conflict as exc:
        raise DocumentBusy(str(exc)) from exc
    job = {"tenant_id": tenant_id, "document_id": document_id, "key": key, "size_bytes": size}
    limit = lectern.settings.max_upload_bytes
    if size > limit:
        raise ExtractionError(f"The file is {size:,} bytes; the limit is {limit:,} bytes.")
    return job


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def validate(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    config = IdempotencyConfig(
        event_key_jmespath="[detail.object.key, detail.object.sequencer]",
        expires_after_seconds=_lectern().settings.idempotency_ttl_s,
        raise_on_no_idempotency_key=False,
    )
    config.register_lambda_context(context)

    @idempotent_function(data_keyword_argument="event", persistence_store=_idempotency(), config=config)
    def run(event: dict[str, Any]) -> dict[str, Any]:
        return _start(event)

    return run(event=event)


# -- extract, chunk -----------------------------------------------------------------------------------------
def _state(job: dict[str, Any]) -> IngestionState:
    return IngestionState(document=_document(job["tenant_id"], job["document_id"]))


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def extract(job: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    lectern = _lectern()
    started = time.perf_counter()
    state = lectern.pipeline.validate(_state(job))  # reads the original and checks its real size
    job = _job(job, timings=_timed(job, "validate", started))
    started = time.perf_counter()
    state = lectern.pipeline.extract(state)
    assert state.extracted is not None
    key = jobs.extracted_key(job["tenant_id"], job["document_id"])
    lectern.blobs.put(key, jobs.dump_extracted(state.extracted))
    timings = _timed(job, "extract", started)
    return _job(job, extracted_key=key, pages=state.extracted.page_count, size_bytes=len(state.data), timings=timings)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def chunk(job: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    lectern = _lectern()
    started = time.perf_counter()
    state = _state(job)
    state.extracted = jobs.load_extracted(lectern.blobs.get(job["extracted_key"]))
    state = lectern.pipeline.chunk(state)
    assert state.chunks is not None
    key = jobs.chunks_key(job["tenant_id"], job["document_id"])
    lectern.blobs.put(key, jobs.dump_chunks(state.chunks))
    size = lectern.settings.embed_batch
    return _job(
        job,
        chunks_key=key,
        chunk_count=len(state.chunks),
        batches=jobs.batches(len(state.chunks), size),
        timings=_timed(job, "chunk", started),
    )


# -- embed (one Map item) -----------------------------------------------------------------------------------
@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def embed_batch(item: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    lectern = _lectern()
    started = time.perf_counter()
    tenant_id, document_id = item["tenant_id"], item["document_id"]
    start, end = int(item["batch"]["start"]), int(item["batch"]["end"])
    chunks = jobs.load_chunks(lectern.blobs.get(item["chunks_key"]))[start:end]
    ids = [c.chunk_id for c in chunks]
    embedder, store = lectern.embedder, lectern.vectors
    found = store.get_batch(tenant_id, document_id, embedder.model_id, embedder.dimension, start)
    if found is not None and list(found[0]) == ids:
        logger.info("batch already embedded", extra={"start": start, "end": end})
        key = store.batch_key(tenant_id, document_id, embedder.model_id, embedder.dimension, start)
        return {"start": start, "end": end, "vectors_key": key, "reused": True, "ms": _ms(started)}
    before = getattr(embedder, "input_tokens", 0)
    vectors = embedder.embed_documents([c.search_text for c in chunks])
    key = store.put_batch(tenant_id, document_id, embedder.model_id, embedder.dimension, start, ids, vectors)
    metrics.add_metric(
        name="EmbeddingTokens", unit=MetricUnit.Count, value=getattr(embedder, "input_tokens", 0) - before
    )
    return {"start": start, "end": end, "vectors_key": key, "reused": False, "ms": _ms(started)}


def _ms(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)


# -- index, mark --------------------------------------------------------------------------------------------
@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def index(job: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    lectern = _lectern()
    started = time.perf_counter()
    tenant_id, document_id = job["tenant_id"], job["document_id"]
    # the embed stage's time: the sum of its batches' (the Map runs them in parallel, so not the wall time)
    embed_ms = sum(int(b.get("ms") or 0) for b in job.get("embedded") or [])
    metrics.add_metric(name=jobs.stage_metric("embed"), unit=MetricUnit.Milliseconds, value=embed_ms)
    job = _job(job, timings={**(job.get("timings") or {}), "embed": embed_ms})
    chunks = jobs.load_chunks(lectern.blobs.get(job["chunks_key"]))
    embedder, store = lectern.embedder, lectern.vectors
    parts = []
    for batch in sorted(
        job.get("embedded") or jobs.batches(len(chunks), lectern.settings.embed_batch),
        key=lambda b: int(b["start"]),
    ):
        found = store.get_batch(tenant_id, document_id, embedder.model_id, embedder.dimension, int(batch["start"]))
        if found is None:
            raise ExtractionError("The document's embeddings are missing; upload it again.")
        parts.append((list(found[0]), np.asarray(found[1], dtype=np.float32)))
    ids = [i for p in parts for i in p[0]]
    if ids != [c.chunk_id for c in chunks]:
        raise ExtractionError("The document changed while it was being indexed; upload it again.")
    vectors = np.vstack([p[1] for p in parts])
    lectern.index.replace_document(tenant_id, document_id, chunks, vectors)  # IndexWriteFailed on partial bulk
    store.put(tenant_id, document_id, embedder.model_id, embedder.dimension, ids, vectors)
    out = {k: v for k, v in job.items() if k != "embedded"}
    return _job(out, indexed=len(chunks), timings=_timed(job, "index", started))


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def mark_indexed(job: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    lectern = _lectern()
    tenant_id, document_id = job["tenant_id"], job["document_id"]
    try:
        state = _state(job)
    except NotFound:
        lectern.index.delete_document(tenant_id, document_id)
        logger.info("document deleted during ingestion; chunks withdrawn")
        return {"tenant_id": tenant_id, "document_id": document_id, "status": "WITHDRAWN"}
    state.extracted = jobs.load_extracted(lectern.blobs.get(job["extracted_key"]))
    state.chunks = jobs.load_chunks(lectern.blobs.get(job["chunks_key"]))
    state.timings = {k: int(v) for k, v in (job.get("timings") or {}).items()}  # stored with the document
    try:
        state = lectern.pipeline.mark_indexed(state)
    except NotFound:
        logger.info("document deleted during ingestion; chunks withdrawn")
        return {"tenant_id": tenant_id, "document_id": document_id, "status": "WITHDRAWN"}
    except Conflict:
        current = lectern.documents.get(tenant_id, document_id)
        return {
            "tenant_id": tenant_id,
            "document_id": document_id,
            "status": current.status.value if current else "WITHDRAWN",
        }
    lectern.blobs.put(jobs.manifest_key(tenant_id, document_id), jobs.dump_document(state.document))
    metrics.add_metric(name="DocumentsIndexed", unit=MetricUnit.Count, value=1)
    return {"tenant_id": tenant_id, "document_id": document_id, "status": "INDEXED"}


def failure_reason(error: dict[str, Any] | None) -> str:
    """The user-facing reason: an ExtractionError's own message, otherwise a generic one (never a trace)."""
    if not error:
        return INTERNAL_ERROR
    if error.get("Error") in ("ExtractionError", "DocumentTooLarge"):
        try:
            cause = json.loads(error.get("Cause") or "{}")
            message = str(cause.get("errorMessage") or "").strip()
        except ValueError:
            message = ""
        if message:
            return message[:500]
    if error.get("Error") == "States.Timeout":
        return "Processing this document took too long."
    return INTERNAL_ERROR


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def mark_failed(job: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    tenant_id, document_id = job.get("tenant_id"), job.get("document_id")
    error = job.get("error") or {}
    if not tenant_id or not document_id:  # failed before the key was understood
        try:
            tenant_id, document_id = jobs.parse_original_key(job["detail"]["object"]["key"])
        except (KeyError, TypeError, LecternError):
            logger.warning("ingestion failed for an unknown object", extra={"error": error.get("Error")})
            return {
                "tenant_id": None,
                "document_id": None,
                "status": "IGNORED",
                "reason": error.get("Error", ""),
            }
    if error.get("Error") == "DocumentBusy":
        # another execution still owns the document: failing it here would fail that run's work
        logger.warning("upload gave up waiting for a running ingestion", extra={"document_id": document_id})
        return {"tenant_id": tenant_id, "document_id": document_id, "status": "BUSY", "reason": "busy"}
    reason = failure_reason(error)
    logger.warning("ingestion failed", extra={"document_id": document_id, "error": error.get("Error")})
    try:
        doc = _lectern().pipeline.fail(tenant_id, document_id, reason)
        status = doc.status.value
    except (NotFound, Conflict):
        current = _lectern().documents.get(tenant_id, document_id)
        status = current.status.value if current else "WITHDRAWN"
    metrics.add_metric(name="DocumentsFailed", unit=MetricUnit.Count, value=1)
    return {"tenant_id": tenant_id, "document_id": document_id, "status": status, "reason": reason}
