"""POST /v1/query (JSON, or server-sent events with Accept: text/event-stream) and POST /v1/search."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, Protocol

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body

from lectern.api.routes import ERRORS, caller
from lectern.api.schemas import (
    CitationOut,
    ErrorResponse,
    QueryRequest,
    QueryResponse,
    SearchRequest,
    SearchResponse,
    SearchResult,
)
from lectern.domain.errors import LecternError
from lectern.domain.pipeline import AnswerEvent, Citations, Done, Failed, Status, Token

if TYPE_CHECKING:
    from lectern.api.app import ApiServices

SSE = "text/event-stream"


class EventSink(Protocol):
    """Where server-sent events go as they happen (locally: the open HTTP connection)."""

    def send(self, event: str, data: dict) -> None: ...


def sse_frame(event: str, data: dict) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


class BufferSink:
    """Collects the events into one body (API Gateway without response streaming returns it whole)."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    def send(self, event: str, data: dict) -> None:
        self.parts.append(sse_frame(event, data))


def emit(events: Iterator[AnswerEvent], sink: EventSink) -> None:
    """The pipeline's typed events as server-sent events: status*, token*, citations, done — or error.
    A token with `provisional: true` is a draft that `done` may withhold (`withheld`, `withheld_reason`)."""
    try:
        for ev in events:
            if isinstance(ev, Status):
                sink.send("status", {"stage": ev.stage, "elapsed_ms": ev.elapsed_ms})
            elif isinstance(ev, Token):
                sink.send("token", {"text": ev.text, "provisional": ev.provisional})
            elif isinstance(ev, Citations):
                sink.send("citations", {"citations": [CitationOut.of(c).model_dump() for c in ev.citations]})
            elif isinstance(ev, Done):
                sink.send("done", QueryResponse.of(ev.answer).model_dump())
    except LecternError as exc:
        # Headers (200) may already be out: the error travels as an event.
        failed = Failed(exc.code, exc.message)
        sink.send("error", {"error": {"code": failed.code, "message": failed.message}})


def _chain(first: AnswerEvent, rest: Iterator[AnswerEvent]) -> Iterator[AnswerEvent]:
    yield first
    yield from rest


def router(services: ApiServices) -> Router:
    r = Router()

    @r.post(
        "/v1/query",
        summary="Ask a question; with Accept: text/event-stream the answer streams (status*, token*, citations, done)",
        responses={
            503: {"description": "No model", "content": {"application/json": {"model": ErrorResponse}}},
            **ERRORS,
        },
    )
    def query(body: Annotated[QueryRequest, Body()]) -> Response[QueryResponse | str]:
        who = caller(r)
        filters = body.filters.to_domain() if body.filters else None
        headers = r.current_event.headers
        remember = services.conversations is not None  # every answer is a turn: a new conversation or this one
        if SSE in (headers.get("accept") or headers.get("Accept") or ""):
            live: EventSink | None = r.context.get("sse_sink")
            sink = live or BufferSink()
            events = services.answerer.stream(
                who.tenant_id,
                body.question,
                top_k=body.top_k,
                filters=filters,
                user_id=who.user_id,
                conversation_id=body.conversation_id,
                remember=remember,
            )
            first = next(events)  # validation, guard and budget errors surface here, before any 200 goes out
            emit(_chain(first, events), sink)
            body_text = "".join(sink.parts) if isinstance(sink, BufferSink) else ""
            return Response(200, SSE, body_text, headers={"Cache-Control": "no-cache"})
        answer = services.answerer.answer(
            who.tenant_id,
            body.question,
            top_k=body.top_k,
            filters=filters,
            user_id=who.user_id,
            conversation_id=body.conversation_id,
            remember=remember,
        )
        return Response(200, content_types.APPLICATION_JSON, QueryResponse.of(answer))

    @r.post("/v1/search", summary="Search passages (hybrid, bm25 or vector)", responses=ERRORS)
    def search(body: Annotated[SearchRequest, Body()]) -> SearchResponse:
        filters = body.filters.to_domain() if body.filters else None
        hits = (services.search or services.retriever).search(
            caller(r).tenant_id, body.query, top_k=body.top_k, mode=body.mode, filters=filters
        )
        return SearchResponse(results=[SearchResult.of(h) for h in hits])

    return r
