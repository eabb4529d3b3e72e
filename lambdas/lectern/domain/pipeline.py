"""The answer pipeline, declared once: a request value, a typed event stream, and small stages around the core.

    AnswerPipeline(core, [BudgetStage, <observe>, TraceStage, CacheStage, QuestionGuardStage])

Each stage sees the request and the stream of the stages inside it (`next`), and may answer by itself (a cache
hit), refuse (the budget), rewrite the request (the guard masks PII in the question before the cache sees it)
or watch the events go by (traces, metrics). The core (`lectern.domain.answering.Answerer`) retrieves, gates,
routes, prompts, generates and cites. Nothing forwards unknown attributes: what a caller needs from the core
(the retriever, a prompt plan) it asks `pipeline.core` for.

Events, in order: `Status` (retrieving, generating, verifying — with the elapsed time), `Token`*, `Citations`,
`Done` (the whole Answer). Tokens the model writes are `provisional`: a draft, shown as such, until `Done` decides
(the grounding check and the abstention rules run after generation; a withheld answer's `Done` carries
`withheld` and `withheld_reason` and its best passages instead of citations). Tokens that are already the final
text (a cache hit, the retrieval gate's "I don't know") are not provisional. Errors are exceptions inside the
pipeline (a `LecternError` carries the code and a message safe to show); the API turns one raised mid-stream into
an `error` event (`Failed`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Literal, Protocol

from lectern.domain.models import Answer, Citation, SearchFilters

Stage = Literal["retrieving", "generating", "verifying"]


@dataclass(frozen=True)
class AnswerRequest:
    tenant_id: str
    question: str
    top_k: int | None = None
    filters: SearchFilters | None = None
    user_id: str | None = None
    live: bool = True  # stream tokens as the model writes them (False: one request/response model call)
    question_checked: bool = False  # the guard has already checked (and masked) the question
    conversation_id: str | None = None  # a follow-up in this conversation (lectern.domain.conversations)
    remember: bool = False  # record the turn (a new conversation when conversation_id is None)

    def replace(self, **changes: object) -> AnswerRequest:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Status:
    stage: Stage
    elapsed_ms: int
    kind: ClassVar[str] = "status"


@dataclass(frozen=True)
class Token:
    text: str
    provisional: bool = False  # a draft the Done event may still withhold (model output before the checks)
    kind: ClassVar[str] = "token"


@dataclass(frozen=True)
class Citations:
    citations: list[Citation] = field(default_factory=list)
    kind: ClassVar[str] = "citations"


@dataclass(frozen=True)
class Done:
    answer: Answer
    kind: ClassVar[str] = "done"


@dataclass(frozen=True)
class Failed:
    code: str
    message: str
    kind: ClassVar[str] = "error"


AnswerEvent = Status | Token | Citations | Done | Failed
Next = Callable[[AnswerRequest], Iterator[AnswerEvent]]


class Core(Protocol):
    """The innermost answerer: events for one request."""

    def events(self, request: AnswerRequest) -> Iterator[AnswerEvent]: ...


class AnswerStage(Protocol):
    def run(self, request: AnswerRequest, next: Next) -> Iterator[AnswerEvent]: ...


def final_answer(events: Iterator[AnswerEvent]) -> Answer:
    answer = None
    for event in events:
        if isinstance(event, Done):
            answer = event.answer
    if answer is None:
        raise RuntimeError("the answer stream ended without a done event")
    return answer


class Answers:
    """`stream` (live tokens) and `answer` (one request/response model call) for anything with `events`."""

    def events(self, request: AnswerRequest) -> Iterator[AnswerEvent]:
        raise NotImplementedError

    def stream(
        self,
        tenant_id: str,
        question: str,
        *,
        top_k: int | None = None,
        filters: SearchFilters | None = None,
        user_id: str | None = None,
        conversation_id: str | None = None,
        remember: bool = False,
    ) -> Iterator[AnswerEvent]:
        return self.events(
            AnswerRequest(
                tenant_id,
                question,
                top_k,
                filters,
                user_id,
                live=True,
                conversation_id=conversation_id,
                remember=remember,
            )
        )

    def answer(
        self,
        tenant_id: str,
        question: str,
        *,
        top_k: int | None = None,
        filters: SearchFilters | None = None,
        user_id: str | None = None,
        conversation_id: str | None = None,
        remember: bool = False,
    ) -> Answer:
        request = AnswerRequest(
            tenant_id,
            question,
            top_k,
            filters,
            user_id,
            live=False,
            conversation_id=conversation_id,
            remember=remember,
        )
        return final_answer(self.events(request))


class AnswerPipeline(Answers):
    """`core` wrapped in `stages`, outermost first."""

    def __init__(self, core: Core, stages: Sequence[AnswerStage] = ()) -> None:
        self.core = core
        self.stages = tuple(stages)
        handler: Next = core.events
        for stage in reversed(self.stages):
            handler = _bind(stage, handler)
        self._handler = handler

    def events(self, request: AnswerRequest) -> Iterator[AnswerEvent]:
        return self._handler(request)

    def stage(self, cls: type) -> object | None:
        """The stage of this type, if the pipeline has one (tests, evaluation)."""
        return next((s for s in self.stages if isinstance(s, cls)), None)


def _bind(stage: AnswerStage, inner: Next) -> Next:
    def handler(request: AnswerRequest) -> Iterator[AnswerEvent]:
        return stage.run(request, inner)

    return handler


class QuestionGuardStage:
    """The guard's question check (PII masked, attacks refused) before any stage that stores or looks up the
    question: the cache never keeps a raw SSN, and a cache hit cannot bypass the guard."""

    def __init__(self, guard: object) -> None:
        self.guard = guard

    def run(self, request: AnswerRequest, next: Next) -> Iterator[AnswerEvent]:
        q = request.question.strip() if request.question else ""
        if q and not request.question_checked:
            checked = self.guard.check_question(request.tenant_id, q)  # type: ignore[attr-defined]
            request = request.replace(question=checked, question_checked=True)
        return next(request)
