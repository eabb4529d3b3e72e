"""CloudFormation custom resource (Provider framework onEvent): create the OpenSearch index and search pipeline.

Idempotent by construction: both calls succeed when the index or pipeline already exists, so a redeploy after
`cdk destroy` (or a second deploy) never fails with "already exists". Delete keeps the data: the index goes away
with the domain/collection itself, and a paused deployment is rebuilt from S3.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from lectern.aws import container
from lectern.aws.observability import logger


@logger.inject_lambda_context(clear_state=True)
def on_event(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    s = container.current().settings
    physical_id = f"{s.opensearch_index}/{s.opensearch_pipeline}"
    request = event.get("RequestType")
    if request in ("Create", "Update"):
        index = container.current().index
        index.ensure_index()
        index.ensure_pipeline()
        logger.info("index and pipeline ready", extra={"index": s.opensearch_index})
    return {"PhysicalResourceId": physical_id, "Data": {"IndexName": s.opensearch_index}}
