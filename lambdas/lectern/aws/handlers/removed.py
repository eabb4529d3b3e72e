"""S3 "Object Deleted" (EventBridge) for a document's original: the document goes, with its chunks (OpenSearch)
and everything ingestion derived from it under `{tenant}/{doc}/` (extracted text, chunks, the S3 vector store's
batches, the manifest).

A deletion through the API (or a `replace` superseding an older version) removes the record first, then the
objects, so the event it causes finds nothing left and is a no-op; an object deleted straight in S3 (console, CLI,
a bucket tool) now takes its document out of the index too. Only a deletion that leaves the key without a current
object counts: an older version expiring under the lifecycle rule keeps the document.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from lectern.aws import container, jobs
from lectern.aws.observability import logger, metrics, tracer
from lectern.domain.documents import remove_document
from lectern.domain.errors import LecternError


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def on_removed(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    key = str(((event.get("detail") or {}).get("object") or {}).get("key") or "")
    try:
        tenant_id, document_id = jobs.parse_original_key(key)
    except LecternError:
        logger.warning("deletion of an object that is no document original", extra={"key": key[:200]})
        return {"status": "IGNORED"}
    lectern = container.current()
    if lectern.blobs.exists(key):  # a noncurrent version went (lifecycle); the document's original is still there
        return {"tenant_id": tenant_id, "document_id": document_id, "status": "KEPT"}
    existed = lectern.documents.get(tenant_id, document_id) is not None
    remove_document(lectern.documents, lectern.index, lectern.blobs, tenant_id, document_id)
    if existed:
        logger.info("original deleted in S3: document removed", extra={"document_id": document_id})
        metrics.add_metric(name="DocumentsRemovedByS3", unit=MetricUnit.Count, value=1)
    return {"tenant_id": tenant_id, "document_id": document_id, "status": "REMOVED" if existed else "ABSENT"}
