"""GET /v1/formats: the file formats Lectern reads (lectern.domain.formats), for the page's file picker."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_lambda_powertools.event_handler.api_gateway import Router

from lectern.api.schemas import FormatList, FormatOut
from lectern.domain.formats import describe

if TYPE_CHECKING:
    from lectern.api.app import ApiServices


def router(services: ApiServices) -> Router:
    r = Router()

    @r.get("/v1/formats", summary="The file formats that can be uploaded (kind, extensions, MIME types)")
    def formats() -> FormatList:
        return FormatList(formats=[FormatOut(**f) for f in describe()])  # type: ignore[arg-type]

    return r
