"""The REST API: Powertools event-handler routes with pydantic models.

The same resolver runs in Lambda behind API Gateway and locally behind `lectern.local.server`, which turns
each HTTP request into an API Gateway proxy event. Routes stay thin: parse, call the domain, shape the
response.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Annotated, Any, Protocol

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, CORSConfig, Response, content_types
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.event_handler.openapi.params import Body, Path
from aws_lambda_powertools.utilities.data_classes.api_gateway_proxy_event import APIGatewayProxyEvent

import lectern
from lectern.api.errors import register_error_handlers
from lectern.api.schemas import (
    CitationOut,
    CreateDocumentRequest,
    CreateDocumentResponse,
    DocumentList,
    DocumentOut,
    ErrorResponse,
    FeedbackRequest,
    FeedbackResponse,
    Health,
    QueryRequest,
    QueryResponse,
    SearchRequest,
    SearchResponse,
    SearchResult,
    UploadOut,
)
from lectern.domain.answering import Answerer, AnswerEvent
from lectern.domain.documents import DocumentService
from lectern.domain.errors import LecternError, NotFound
from lectern.domain.feedback import FeedbackService
from lectern.domain.retrieval import Retriever

TenantResolver = Callable[[APIGatewayProxyEvent], str]
UserResolver = Callable[[APIGatewayProxyEvent], str | None]
SSE = "text/event-stream"


class EventSink(Protocol):
    """Where server-sent events go as they happen (locally: the open HTTP connection)."""

    def send(self, event: str, data: dict) -> None: ...


@dataclass
class ApiServices:
    documents: DocumentService
    retriever: Retriever
    answerer: Answerer
    tenant_of: TenantResolver
    health: Callable[[], dict[str, str]]
    feedback: FeedbackService | None = None
    # the caller's identity within the tenant (prompt A/B bucket); None = anonymous (always prompt A)
    user_of: UserResolver | None = None
    # per-tenant request rate (lectern.domain.limits.TenantLimits); None = unlimited
    limits: Any = None
    # origins allowed to call the API from a browser (the page on CloudFront); empty = same origin only
    cors_origins: tuple[str, ...] = ()
    # why a component is not ok: component -> reason (e.g. the local model server's last exit)
    health_details: Callable[[], dict[str, str]] | None = None


def sse_frame(event: str, data: dict) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


class BufferSink:
    """Collects the events into one body (API Gateway without response streaming returns it whole)."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    def send(self, event: str, data: dict) -> None:
        self.parts.append(sse_frame(event, data))


def _emit(events: Iterator[AnswerEvent], sink: EventSink) -> None:
    try:
        for ev in events:
            if ev.kind == "token":
                sink.send("token", {"text": ev.text})
            elif ev.kind == "citations":
                sink.send("citations", {"citations": [CitationOut.of(c).model_dump() for c in ev.citations]})
            elif ev.kind == "done" and ev.answer is not None:
                sink.send("done", QueryResponse.of(ev.answer).model_dump())
    except LecternError as exc:
        # Headers (200) may already be out: the error travels as an event.
        sink.send("error", {"error": {"code": exc.code, "message": exc.message}})


_ERRORS = {
    400: {"description": "Bad request", "content": {"application/json": {"model": ErrorResponse}}},
    404: {"description": "Not found", "content": {"application/json": {"model": ErrorResponse}}},
    422: {"description": "Invalid request", "content": {"application/json": {"model": ErrorResponse}}},
}


def build_app(services: ApiServices) -> APIGatewayRestResolver:
    cors = None
    if services.cors_origins:
        cors = CORSConfig(
            allow_origin=services.cors_origins[0],
            extra_origins=list(services.cors_origins[1:]),
            allow_headers=["Authorization", "Content-Type", "X-Api-Key", "Accept"],
            expose_headers=["Retry-After"],
            max_age=600,
        )
    app = APIGatewayRestResolver(enable_validation=True, cors=cors)
    register_error_handlers(app)

    def tenant() -> str:
        return services.tenant_of(app.current_event)

    def user() -> str | None:
        return services.user_of(app.current_event) if services.user_of else None

    def identify_and_limit(app: APIGatewayRestResolver, next_middleware: NextMiddleware) -> Response:
        """Every route but health and the upload target (authorised by its signed policy, like S3): the caller must
        be identified (401 otherwise) and within its request rate (429 + Retry-After) before the route does work."""
        path = app.current_event.path
        if path.startswith("/v1/uploads/"):  # multipart, checked by the upload route itself
            return next_middleware(app)
        if path != "/v1/health":
            tenant_id = tenant()
            if services.limits is not None:
                services.limits.check_request(tenant_id)
        return next_middleware(app)

    app.use(middlewares=[identify_and_limit])

    @app.get("/v1/health", summary="Liveness and component status")
    def health() -> Health:
        components = services.health()
        ok = all(v in ("ok", "starting", "idle") for v in components.values())
        details = services.health_details() if services.health_details else {}
        return Health(
            status="ok" if ok else "degraded",
            version=lectern.__version__,
            components=components,
            details=details,
        )

    @app.post(
        "/v1/documents",
        summary="Create a document and get an upload slot (S3 presigned POST shape)",
        responses={
            201: {
                "description": "Created",
                "content": {"application/json": {"model": CreateDocumentResponse}},
            },
            413: {"description": "Too large", "content": {"application/json": {"model": ErrorResponse}}},
            415: {
                "description": "Unsupported type",
                "content": {"application/json": {"model": ErrorResponse}},
            },
            **_ERRORS,
        },
    )
    def create_document(body: Annotated[CreateDocumentRequest, Body()]) -> Response[CreateDocumentResponse]:
        doc, slot = services.documents.create_upload(
            tenant(), body.filename, body.content_type, body.size_bytes
        )
        out = CreateDocumentResponse(
            document_id=doc.document_id, upload=UploadOut(url=slot.url, fields=slot.fields)
        )
        return Response(201, content_types.APPLICATION_JSON, out)

    @app.get("/v1/documents", summary="List documents")
    def list_documents() -> DocumentList:
        return DocumentList(documents=[DocumentOut.of(d) for d in services.documents.list(tenant())])

    @app.get("/v1/documents/<document_id>", summary="Get a document's status", responses=_ERRORS)
    def get_document(document_id: Annotated[str, Path(max_length=64)]) -> DocumentOut:
        return DocumentOut.of(services.documents.get(tenant(), document_id))

    @app.delete(
        "/v1/documents/<document_id>",
        summary="Delete a document, its chunks and index entries",
        responses={204: {"description": "Deleted"}, **_ERRORS},
    )
    def delete_document(document_id: Annotated[str, Path(max_length=64)]) -> Response[None]:
        services.documents.delete(tenant(), document_id)
        return Response(204, content_types.APPLICATION_JSON, "")

    @app.post(
        "/v1/query",
        summary="Ask a question; with Accept: text/event-stream the answer streams (token*, citations, done)",
        responses={
            503: {"description": "No model", "content": {"application/json": {"model": ErrorResponse}}},
            **_ERRORS,
        },
    )
    def query(body: Annotated[QueryRequest, Body()]) -> Response[QueryResponse | str]:
        filters = body.filters.to_domain() if body.filters else None
        if SSE in (app.current_event.headers.get("accept") or app.current_event.headers.get("Accept") or ""):
            live: EventSink | None = app.context.get("sse_sink")
            sink = live or BufferSink()
            events = services.answerer.stream(
                tenant(), body.question, top_k=body.top_k, filters=filters, user_id=user()
            )
            first = next(events)  # validation and retrieval errors surface here, before any 200 goes out
            _emit(_chain(first, events), sink)
            body_text = "".join(sink.parts) if isinstance(sink, BufferSink) else ""
            return Response(200, SSE, body_text, headers={"Cache-Control": "no-cache"})
        answer = services.answerer.answer(
            tenant(), body.question, top_k=body.top_k, filters=filters, user_id=user()
        )
        return Response(200, content_types.APPLICATION_JSON, QueryResponse.of(answer))

    @app.post("/v1/search", summary="Search passages (hybrid, bm25 or vector)", responses=_ERRORS)
    def search(body: Annotated[SearchRequest, Body()]) -> SearchResponse:
        filters = body.filters.to_domain() if body.filters else None
        hits = services.retriever.search(
            tenant(), body.query, top_k=body.top_k, mode=body.mode, filters=filters
        )
        return SearchResponse(results=[SearchResult.of(h) for h in hits])

    _feedback_route(app, services, tenant)
    return app


def _feedback_route(app: APIGatewayRestResolver, services: ApiServices, tenant: Callable[[], str]) -> None:
    @app.post(
        "/v1/feedback",
        summary="Thumbs up or down (and an optional comment) on one of your answers, by its query_id",
        responses=_ERRORS,
    )
    def feedback(body: Annotated[FeedbackRequest, Body()]) -> FeedbackResponse:
        if services.feedback is None:
            raise NotFound("Feedback is not recorded by this deployment.")
        trace = services.feedback.give(tenant(), body.query_id, body.rating, body.comment)
        return FeedbackResponse(
            query_id=trace.query_id,
            rating=trace.rating or body.rating,
            comment=trace.comment,
            recorded_at=trace.feedback_at or "",
        )


def _chain(first: AnswerEvent, rest: Iterator[AnswerEvent]) -> Iterator[AnswerEvent]:
    yield first
    yield from rest
