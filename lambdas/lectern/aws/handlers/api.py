"""REST API entry point: the same Powertools resolver and routes as the local server (lectern.api.app)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from lectern.api.app import build_app
from lectern.aws import container
from lectern.aws.observability import logger, metrics, tracer

_app = None


def _resolver() -> Any:
    global _app
    if _app is None:
        _app = build_app(container.current().api_services())
    return _app


def reset() -> None:
    """Forget the resolver (tests that install another container)."""
    global _app
    _app = None


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics(capture_cold_start_metric=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return _resolver().resolve(event, context)
