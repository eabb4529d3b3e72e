"""The rebuild workflow (state_machines/rebuild.asl.json): after a resume, re-create the search index from
what survived in S3 — documents, their chunks and their stored embeddings — without paying for
embeddings again.

list_documents lists every `{tenant}/{doc}/original` in the bucket and writes the list to S3
(`lectern.rebuild/{run}/documents.json`, a JSON array): the state machine's Distributed Map reads it from
there, so no state ever holds the list (Step Functions' 256 KiB state limit). reindex_document re-indexes one
document from its `chunks.jsonl` and stored vectors (embedding only chunks whose vectors are missing or
stale), restores its DynamoDB record from `document.json` when the table was recreated, and marks it
INDEXED. A document that never finished ingestion (no chunks stored) goes through the normal pipeline steps
in-process instead.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from lectern.aws import container, jobs
from lectern.aws.observability import logger, metrics, tracer
from lectern.domain.clock import utc_now_iso
from lectern.domain.lifecycle import RESTORE, RESTORE_FOR_PROCESSING
from lectern.domain.models import DocumentStatus


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
def list_documents(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """{run[, tenant_id]} -> {bucket, key, count}: the list goes to S3, only its location comes back."""
    lectern = container.current()
    key = jobs.rebuild_list_key(event["run"])
    docs = [
        {"tenant_id": t, "document_id": d} for t, d in lectern.vectors.list_documents(event.get("tenant_id"))
    ]
    lectern.blobs.put(key, json.dumps(docs, separators=(",", ":")).encode(), content_type="application/json")
    logger.info("documents to rebuild", extra={"count": len(docs), "key": key})
    return {"bucket": lectern.settings.documents_bucket, "key": key, "count": len(docs)}


def _keys_exist(lectern: container.AwsLectern, *keys: str) -> bool:
    return all(lectern.blobs.exists(k) for k in keys)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def reindex_document(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    lectern = container.current()
    tenant_id, document_id = event["tenant_id"], event["document_id"]
    out = {"tenant_id": tenant_id, "document_id": document_id}
    manifest, chunks_key = jobs.manifest_key(tenant_id, document_id), jobs.chunks_key(tenant_id, document_id)
    record = lectern.documents.get(tenant_id, document_id)
    if not _keys_exist(lectern, manifest, chunks_key):
        # never finished ingestion: run the whole pipeline here (same steps, same order)
        if record is None:
            return out | {"status": "SKIPPED", "reason": "no record and no indexed copy"}
        if record.status is not DocumentStatus.PROCESSING:
            RESTORE_FOR_PROCESSING.apply(lectern.documents, tenant_id, document_id)
        doc = lectern.pipeline.run(tenant_id, document_id)
        return out | {"status": doc.status.value, "embedded": doc.chunks or 0, "reused": 0}

    chunks = jobs.load_chunks(lectern.blobs.get(chunks_key))
    ids = [c.chunk_id for c in chunks]
    embedder, store = lectern.embedder, lectern.vectors
    vectors = store.get(tenant_id, document_id, embedder.model_id, embedder.dimension, expected_chunk_ids=ids)
    embedded = 0
    if vectors is None:  # stale or missing: embed (the only case that costs Titan calls)
        vectors = embedder.embed_documents([c.search_text for c in chunks])
        store.put(tenant_id, document_id, embedder.model_id, embedder.dimension, ids, vectors)
        embedded = len(chunks)
    lectern.index.replace_document(tenant_id, document_id, chunks, np.asarray(vectors, dtype=np.float32))
    if record is None:
        doc = jobs.load_document(lectern.blobs.get(manifest))
        lectern.documents.create(doc)
        record = doc
    if record.status is not DocumentStatus.INDEXED:
        RESTORE.apply(
            lectern.documents,
            tenant_id,
            document_id,
            chunks=len(chunks),
            error=None,
            updated_at=utc_now_iso(),
        )
    metrics.add_metric(name="DocumentsReindexed", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="ReindexEmbeddedChunks", unit=MetricUnit.Count, value=embedded)
    return out | {"status": "INDEXED", "embedded": embedded, "reused": len(chunks) - embedded}
