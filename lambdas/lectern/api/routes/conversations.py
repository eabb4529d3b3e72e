"""/v1/conversations: the caller's conversations (list, one with its turns, delete). Turns are added by asking
`/v1/query` with a `conversation_id`; an unknown id, or another tenant's or user's, is 404."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Path

from lectern.api.routes import ERRORS, caller
from lectern.api.schemas import ConversationList, ConversationOut, ConversationSummary
from lectern.domain.conversations import ConversationService
from lectern.domain.errors import NotFound

if TYPE_CHECKING:
    from lectern.api.app import ApiServices


def router(services: ApiServices) -> Router:
    r = Router()

    def service() -> ConversationService:
        if services.conversations is None:
            raise NotFound("Conversations are not kept by this deployment.")
        return services.conversations

    @r.get("/v1/conversations", summary="Your conversations, most recent first (without their turns)")
    def list_conversations() -> ConversationList:
        who = caller(r)
        found = service().list(who.tenant_id, who.user_id)
        return ConversationList(conversations=[ConversationSummary.of(c) for c in found])

    @r.get("/v1/conversations/<conversation_id>", summary="One of your conversations with its turns", responses=ERRORS)
    def get_conversation(conversation_id: Annotated[str, Path(max_length=200)]) -> ConversationOut:
        who = caller(r)
        return ConversationOut.of(service().get(who.tenant_id, who.user_id, conversation_id))

    @r.delete(
        "/v1/conversations/<conversation_id>",
        summary="Delete one of your conversations and its turns",
        responses={204: {"description": "Deleted"}, **ERRORS},
    )
    def delete_conversation(conversation_id: Annotated[str, Path(max_length=200)]) -> Response[None]:
        who = caller(r)
        service().delete(who.tenant_id, who.user_id, conversation_id)
        return Response(204, content_types.APPLICATION_JSON, None)

    return r
