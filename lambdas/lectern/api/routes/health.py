"""GET /v1/health: liveness and each component's status, with the reason when one is not ok."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_lambda_powertools.event_handler.api_gateway import Router

import lectern
from lectern.api.schemas import Health

if TYPE_CHECKING:
    from lectern.api.app import ApiServices

HEALTHY = ("ok", "starting", "idle")


def router(services: ApiServices) -> Router:
    r = Router()

    @r.get("/v1/health", summary="Liveness and component status")
    def health() -> Health:
        components = services.health()
        details = services.health_details() if services.health_details else {}
        return Health(
            status="ok" if all(v in HEALTHY for v in components.values()) else "degraded",
            version=lectern.__version__,
            components=components,
            details=details,
        )

    return r
