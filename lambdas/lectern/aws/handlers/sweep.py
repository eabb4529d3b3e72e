"""The periodic sweep (an EventBridge schedule): documents stuck UPLOADING or PROCESSING past their limit
become FAILED with a reason (`lectern.domain.sweep`). An upload whose EventBridge delivery failed for good
(its event waits in the upload dead-letter queue) or an ingestion that died would otherwise stay in progress
forever.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from lectern.aws import container
from lectern.aws.observability import logger, metrics, tracer


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def mark_stuck(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    swept = container.current().sweeper.sweep()
    for s in swept:
        logger.warning(
            "stuck document marked FAILED",
            extra={"tenant_id": s.tenant_id, "document_id": s.document_id, "was": s.was.value},
        )
    metrics.add_metric(name="StuckDocumentsFailed", unit=MetricUnit.Count, value=len(swept))
    return {
        "failed": [
            {"tenant_id": s.tenant_id, "document_id": s.document_id, "was": s.was.value, "reason": s.reason}
            for s in swept
        ]
    }
