"""CloudFormation custom resource (Provider framework onEvent): create the OpenSearch index and, on a managed
domain, the hybrid search pipeline.

Idempotent by construction: both calls succeed when the index or pipeline already exists, so a redeploy after
`cdk destroy` (or a second deploy) never fails with "already exists". Delete keeps the data: the index goes away
with the domain/collection itself, and a paused deployment is rebuilt from S3.

The function lives in the Search stack and is given only the search settings (`SearchSettings`: endpoint,
kind, index, pipeline, dimension), not the Service functions' full configuration. On OpenSearch Serverless no
search pipeline is created: the retriever fuses in the domain there (`AwsLectern.retriever`, engine fusion
only on a managed domain), so the pipeline would be unused, and a collection may reject the call.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from lectern.aws.container import search_index
from lectern.aws.observability import logger
from lectern.aws.settings import SearchSettings


@logger.inject_lambda_context(clear_state=True)
def on_event(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    s = SearchSettings.from_env()
    physical_id = f"{s.opensearch_index}/{s.opensearch_pipeline}"
    request = event.get("RequestType")
    pipeline = s.opensearch_kind == "managed"
    if request in ("Create", "Update"):
        index = search_index(s)
        index.ensure_index()
        if pipeline:
            index.ensure_pipeline()
        logger.info("index ready", extra={"index": s.opensearch_index, "pipeline": pipeline})
    return {"PhysicalResourceId": physical_id, "Data": {"IndexName": s.opensearch_index}}
