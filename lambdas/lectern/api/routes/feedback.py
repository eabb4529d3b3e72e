"""POST /v1/feedback: a rating (and an optional comment) on one of the caller's answers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body

from lectern.api.routes import ERRORS, caller
from lectern.api.schemas import FeedbackRequest, FeedbackResponse
from lectern.domain.errors import NotFound

if TYPE_CHECKING:
    from lectern.api.app import ApiServices


def router(services: ApiServices) -> Router:
    r = Router()

    @r.post(
        "/v1/feedback",
        summary="Thumbs up or down (and an optional comment) on one of your answers, by its query_id",
        responses=ERRORS,
    )
    def feedback(body: Annotated[FeedbackRequest, Body()]) -> FeedbackResponse:
        if services.feedback is None:
            raise NotFound("Feedback is not recorded by this deployment.")
        trace = services.feedback.give(caller(r).tenant_id, body.query_id, body.rating, body.comment)
        return FeedbackResponse(
            query_id=trace.query_id,
            rating=trace.rating or body.rating,
            comment=trace.comment,
            recorded_at=trace.feedback_at or "",
        )

    return r
