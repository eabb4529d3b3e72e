"""The API's routes, one Powertools `Router` per resource, built per resolver by `lectern.api.app.build_app`.

Each module's `router(services)` returns a fresh Router (a pooled local resolver must never share a Router, whose
request state lives on the resolver that included it). Routes read the caller from `caller(router)`: resolved
once per request by the middleware in `lectern.api.app`.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse

from lectern.api.schemas import ErrorResponse
from lectern.domain.errors import Unauthenticated

CALLER = "lectern_caller"


@dataclass(frozen=True)
class Caller:
    """Who is asking: the tenant (whose documents they see) and the user within it (prompt A/B bucket)."""

    tenant_id: str
    user_id: str | None = None


def caller(router: Router) -> Caller:
    found = router.context.get(CALLER)
    if found is None:  # a route outside the middleware's reach: never answer without an identity
        raise Unauthenticated("This request carries no identity; sign in again.")
    return found


ERRORS: dict[int, OpenAPIResponse] = {
    400: {"description": "Bad request", "content": {"application/json": {"model": ErrorResponse}}},
    404: {"description": "Not found", "content": {"application/json": {"model": ErrorResponse}}},
    422: {"description": "Invalid request", "content": {"application/json": {"model": ErrorResponse}}},
}
