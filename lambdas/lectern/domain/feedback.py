"""Query traces and feedback.

Every answer leaves a `QueryTrace` (tenant, time, prompt version, model, route, tokens, cost, latency, cache
hit); `POST /v1/feedback` attaches a thumbs up/down (and an optional comment) to the trace of that tenant's
query.
`TraceStage` sits outside the cache in the answer pipeline, so a cached answer is traced as a cache hit.
The question text is not stored (it may hold personal data); the user id is stored as a short hash, enough to
count distinct users per prompt version.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from lectern.domain.clock import utc_now_iso
from lectern.domain.errors import NotFound
from lectern.domain.models import Answer
from lectern.domain.pipeline import AnswerEvent, AnswerRequest, Done, Next

if TYPE_CHECKING:
    from lectern.domain.ports import QueryLog

log = logging.getLogger(__name__)

Rating = Literal["up", "down"]
MAX_COMMENT_CHARS = 2000


@dataclass(frozen=True)
class QueryTrace:
    tenant_id: str
    query_id: str
    created_at: str  # ISO-8601 UTC, sorts as text
    prompt_version: str
    model: str
    route: str
    input_tokens: int
    output_tokens: int
    cost_usd: float
    latency_ms: int
    cache_hit: bool = False
    abstained: bool = False
    user_hash: str | None = None
    rating: Rating | None = None
    comment: str | None = None
    feedback_at: str | None = None
    withheld: str | None = None  # why the answer was withheld (Answer.withheld), None when it was given
    withheld_reason: str | None = None

    @classmethod
    def of(cls, tenant_id: str, answer: Answer, *, user_id: str | None, at: str) -> QueryTrace:
        return cls(
            tenant_id=tenant_id,
            query_id=answer.query_id,
            created_at=at,
            prompt_version=answer.prompt_version,
            model=answer.model,
            route=answer.route,
            input_tokens=answer.usage.input_tokens,
            output_tokens=answer.usage.output_tokens,
            cost_usd=answer.cost_usd,
            latency_ms=answer.latency_ms,
            cache_hit=answer.cache_hit,
            abstained=answer.abstained,
            user_hash=user_hash(user_id),
            withheld=answer.withheld,
            withheld_reason=answer.withheld_reason or None,
        )


def user_hash(user_id: str | None) -> str | None:
    return hashlib.sha256(user_id.encode()).hexdigest()[:16] if user_id else None


class TraceStage:
    """The answer pipeline's trace stage: every answer given (a cache hit too) is recorded for feedback and
    evaluation. A failing trace write is logged, never turned into a failed answer: the user already has it."""

    def __init__(self, log_: QueryLog, clock: Callable[[], str] = utc_now_iso) -> None:
        self.log = log_
        self.clock = clock

    def run(self, request: AnswerRequest, next: Next) -> Iterator[AnswerEvent]:
        for event in next(request):
            if isinstance(event, Done):
                self._record(request.tenant_id, event.answer, request.user_id)
            yield event

    def _record(self, tenant_id: str, answer: Answer, user_id: str | None) -> None:
        if not answer.query_id:
            return
        try:
            self.log.record(QueryTrace.of(tenant_id, answer, user_id=user_id, at=self.clock()))
        except Exception:  # the answer stands; the missing trace is logged
            log.warning("could not record the trace of query %s", answer.query_id, exc_info=True)


class FeedbackService:
    def __init__(
        self,
        log_: QueryLog,
        clock: Callable[[], str] = utc_now_iso,
        on_feedback: Callable[[QueryTrace], None] | None = None,
    ) -> None:
        self.log = log_
        self.clock = clock
        self.on_feedback = on_feedback  # metrics (AWS: ThumbsDown per prompt version); a failure is only logged

    def give(self, tenant_id: str, query_id: str, rating: Rating, comment: str | None = None) -> QueryTrace:
        """Attach feedback to one of this tenant's queries (a later rating replaces an earlier one)."""
        if rating not in ("up", "down"):
            raise ValueError(f"rating must be 'up' or 'down', not {rating!r}")
        comment = (comment or "").strip()[:MAX_COMMENT_CHARS] or None
        if self.log.get(tenant_id, query_id) is None:
            raise NotFound(f"No query {query_id} to give feedback on.")
        trace = self.log.add_feedback(tenant_id, query_id, rating, comment, self.clock())
        if self.on_feedback is not None:
            try:
                self.on_feedback(trace)
            except Exception:  # the rating is stored; a lost metric must not fail the request
                log.warning("could not emit the feedback metric of query %s", query_id, exc_info=True)
        return trace
