"""The REST API: Powertools event-handler routes with pydantic models.

The same resolver runs in Lambda behind API Gateway and locally behind `lectern.local.server`, which turns
each HTTP request into an API Gateway proxy event. Routes stay thin (parse, call the domain, shape the response)
and live in `lectern.api.routes`, one Router per resource. Here: the services they use, CORS, the error table
(`lectern.api.errors`), and the one middleware that identifies the caller — once per request — and applies the
tenant's request rate before any route does work.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, CORSConfig, Response
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.utilities.data_classes.api_gateway_proxy_event import APIGatewayProxyEvent

from lectern.api.errors import register_error_handlers
from lectern.api.routes import CALLER, Caller, conversations, documents, feedback, formats, health, query
from lectern.api.routes.query import SSE, BufferSink, EventSink, emit, sse_frame
from lectern.domain.conversations import ConversationService
from lectern.domain.documents import DocumentService
from lectern.domain.feedback import FeedbackService
from lectern.domain.pipeline import AnswerPipeline
from lectern.domain.retrieval import Retriever

__all__ = ["SSE", "ApiServices", "BufferSink", "Caller", "EventSink", "build_app", "emit", "sse_frame"]

TenantResolver = Callable[[APIGatewayProxyEvent], str]
# the caller within the tenant, given the event and its already-resolved tenant; None = anonymous
UserResolver = Callable[[APIGatewayProxyEvent, str], str | None]

# No identity needed: health, and the local upload target (authorised by its signed policy, like S3)
PUBLIC_PATHS = ("/v1/health",)
PUBLIC_PREFIXES = ("/v1/uploads/",)


@dataclass
class ApiServices:
    documents: DocumentService
    retriever: Retriever
    answerer: AnswerPipeline
    tenant_of: TenantResolver
    health: Callable[[], dict[str, str]]
    feedback: FeedbackService | None = None
    conversations: ConversationService | None = None
    # the caller's identity within the tenant (prompt A/B bucket); None = anonymous (always prompt A)
    user_of: UserResolver | None = None
    # per-tenant request rate (lectern.domain.limits.TenantLimits); None = unlimited
    limits: Any = None
    # origins allowed to call the API from a browser (the page on CloudFront); empty = same origin only
    cors_origins: tuple[str, ...] = ()
    # why a component is not ok: component -> reason (e.g. the local model server's last exit)
    health_details: Callable[[], dict[str, str]] | None = None
    # search under the answers' output policy (lectern.domain.retrieval.GuardedSearch); None = the bare retriever
    search: Any = None

    def identify(self, event: APIGatewayProxyEvent) -> Caller:
        tenant = self.tenant_of(event)
        return Caller(tenant, self.user_of(event, tenant) if self.user_of else None)


def _cors(origins: tuple[str, ...]) -> CORSConfig | None:
    if not origins:
        return None
    return CORSConfig(
        allow_origin=origins[0],
        extra_origins=list(origins[1:]),
        allow_headers=["Authorization", "Content-Type", "X-Api-Key", "Accept"],
        expose_headers=["Retry-After"],
        max_age=600,
    )


def build_app(services: ApiServices) -> APIGatewayRestResolver:
    app = APIGatewayRestResolver(enable_validation=True, cors=_cors(services.cors_origins))
    register_error_handlers(app)

    def identify_and_limit(app: APIGatewayRestResolver, next_middleware: NextMiddleware) -> Response:
        """Every route but the public ones: the caller must be identified (401 otherwise) and within its request
        rate (429 + Retry-After) before the route does work. The caller is resolved here, once."""
        path = app.current_event.path
        if path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES):
            app.context.pop(CALLER, None)
            return next_middleware(app)
        who = services.identify(app.current_event)
        if services.limits is not None:
            services.limits.check_request(who.tenant_id)
        app.append_context(**{CALLER: who})
        return next_middleware(app)

    app.use(middlewares=[identify_and_limit])
    for module in (health, documents, formats, query, feedback, conversations):
        app.include_router(module.router(services))
    return app
