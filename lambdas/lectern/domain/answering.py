"""Grounded answering: retrieve, decide whether the documents can answer, prompt, generate, cite.

"I don't know" has three sources: a retrieval gate (no passage is similar enough to the question: the model is
not even called), the prompt (the model is told to answer exactly I_DONT_KNOW when the passages lack the answer)
and the guard's grounding check (the drafted answer is not supported by the passages it cites). Each comes back
with no citations, `abstained=True`, `withheld` + `withheld_reason` saying which, and the best passages. The
model's tokens stream as provisional (a draft): the done event decides (docs/decisions.md, 2026-12-03).
"""

from __future__ import annotations

import dataclasses
import re
import time
import uuid
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from typing import Protocol

from lectern.domain.citations import StreamRenumberer, best_passages, cite, reattribute
from lectern.domain.costing import PriceTable, default_prices
from lectern.domain.errors import LecternError, ValidationFailed
from lectern.domain.models import (
    Answer,
    ChatMessage,
    Citation,
    Generation,
    ScoredChunk,
    SearchFilters,
    Usage,
    Withheld,
)
from lectern.domain.pipeline import AnswerEvent, AnswerRequest, Answers, Citations, Done, Status, Token
from lectern.domain.ports import ChatModel
from lectern.domain.prompts import PromptSplit, PromptTemplate, mark_passage
from lectern.domain.retrieval import RetrievalResult, Retriever
from lectern.domain.routing import ModelRouter

I_DONT_KNOW = "I don't know based on the provided documents."
WITHHELD_REASONS: dict[Withheld, str] = {
    "no_relevant_passages": "No passage in your documents is close enough to the question.",
    "no_answer_in_passages": "The closest passages in your documents do not contain the answer.",
    "not_supported": "The drafted answer was not supported by the passages it cited, so it was withheld.",
}
ROUTE_GATE = "none: retrieval gate"  # the model was not called
ROUTE_SINGLE = "default: one model"  # no router configured
MAX_QUESTION_CHARS = 2000
_CITE_RE = re.compile(r"\[(\d{1,2})\]")
# Small models sometimes echo a passage header ("[1] (memo.pdf, page 1)"): keep the marker, drop the header.
_ECHO_RE = re.compile(r"\[(\d{1,2})\] \([^()\n]{1,300}, page \d+\)\s*")
_ABSTAIN_RE = re.compile(
    r"\b(i do not know|i don'?t know|i dont know|not (?:contained|mentioned) in the"
    # "... is not specified in the provided documents" (a small model's own way of saying it; seen in the
    # grounding calibration's drafts, un-14): only when it names the documents/passages/context
    r"|not (?:specified|stated|given|provided|found|included) in (?:the |these |any of the )?(?:provided |given )?"
    r"(?:documents?|passages?|context|sources?|texts?))",
    re.I,
)


@dataclass(frozen=True)
class AnswerConfig:
    top_k: int = 5
    max_context_tokens: int = 600  # prompt length bounds time to first token on a CPU model
    min_similarity: float = 0.25  # below this best cosine similarity, and with no BM25 match, abstain
    min_relative_score: float = 0.3  # passages scoring under this fraction of the best one stay out of the prompt
    max_tokens: int = 256
    temperature: float = 0.1


def build_context(
    hits: list[ScoredChunk], budget: int, count: Callable[[str], int], min_relative: float = 0.0
) -> list[ScoredChunk]:
    used: list[ScoredChunk] = []
    spent = 0
    best = hits[0].score if hits else 0.0
    for hit in hits:
        if used and best > 0 and hit.score < min_relative * best:
            break
        t = count(hit.chunk.text) + 12
        if used and spent + t > budget:
            break
        used.append(hit)
        spent += t
    return used


# Footnote markers inside a document ("born on 26 June 1968,[1] and ...") look exactly like the answer's citation
# markers: a model that copies them would cite a passage by accident. They leave the prompt (not the stored text).
_FOOTNOTE_RE = re.compile(r"\[\d{1,3}\]")


def format_context(passages: list[ScoredChunk], marker: str | None = None) -> str:
    """The numbered passages; with a marker (a spotlighting prompt) each one enclosed in its data tags."""
    if marker:
        return "\n\n".join(
            mark_passage(i, f"({p.chunk.filename}, page {p.chunk.page})", _FOOTNOTE_RE.sub("", p.chunk.text), marker)
            for i, p in enumerate(passages, start=1)
        )
    return "\n\n".join(
        f"[{i}] ({p.chunk.filename}, page {p.chunk.page})\n{_FOOTNOTE_RE.sub('', p.chunk.text)}"
        for i, p in enumerate(passages, start=1)
    )


def clean_answer(text: str) -> str:
    return _ECHO_RE.sub(lambda m: f"[{m.group(1)}] ", text).strip()


def cited_numbers(text: str, available: int) -> list[int]:
    seen: dict[int, None] = {}
    for m in _CITE_RE.finditer(text):
        n = int(m.group(1))
        if 1 <= n <= available:
            seen.setdefault(n, None)
    return list(seen)


def is_abstention(text: str) -> bool:
    head = text.strip()[:160]
    return not head or bool(_ABSTAIN_RE.search(head))


def checked_answer(
    guard: AnswerGuard | None, tenant_id: str, draft: str, passages: list[ScoredChunk], question: str
) -> str:
    """The final answer (what is returned, stored or cached): the draft with its markers moved to the passages
    that hold each claim (a small model often cites the wrong number, and grounding checks the cited passages),
    then through the guard (grounding, PII). Replayed on stored drafts by lectern.evaluation.grounding."""
    text = reattribute(draft, passages, question)
    if guard is not None:
        text = guard.check_answer(tenant_id, text, passages, question=question)
    return text


def withheld_because(draft: str, checked: str, passages: int) -> Withheld | None:
    """Why an answer is withheld (None: it is not), from the model's draft and the guard's checked text. The
    guard answers I_DONT_KNOW for a draft it found unsupported; otherwise the model said so itself. Also replayed
    on stored drafts by the grounding calibration (lectern.evaluation.grounding)."""
    if not (is_abstention(checked) and not cited_numbers(checked, passages)):
        return None
    return "no_answer_in_passages" if is_abstention(draft) else "not_supported"


class AnswerGuard(Protocol):
    """Guardrail policy around an answer (local detectors, or Bedrock's ApplyGuardrail on AWS).

    Each method returns what may go on (the question or answer with PII masked, the passages that are safe to
    put in a prompt) or raises GuardrailBlocked with a message that is safe to show.
    """

    def check_question(self, tenant_id: str, question: str) -> str: ...
    def check_passages(self, tenant_id: str, passages: list[ScoredChunk]) -> list[ScoredChunk]: ...
    def check_answer(
        self, tenant_id: str, answer: str, passages: list[ScoredChunk], question: str | None = None
    ) -> str: ...


class Answerer(Answers):
    def __init__(
        self,
        *,
        retriever: Retriever,
        model: ChatModel,
        template: PromptTemplate,
        token_counter: Callable[[str], int],
        config: AnswerConfig | None = None,
        guard: AnswerGuard | None = None,
        router: ModelRouter | None = None,
        prompt_b: PromptTemplate | None = None,
        prompt_b_share: float = 0.0,
        prices: PriceTable | None = None,
    ) -> None:
        self.retriever = retriever
        self.model = model
        self.template = template  # version A (everyone, unless an A/B split is configured)
        self.prompts = PromptSplit(template, prompt_b, prompt_b_share)
        self.count = token_counter
        self.config = config or AnswerConfig()
        self.guard = guard
        self.router = router
        self.prices = prices or default_prices()

    def prompt_for(self, user_id: str | None) -> PromptTemplate:
        """The prompt version this user gets (stable per user; A when there is no split or no user id)."""
        return self.prompts.choose(user_id)

    def _off_topic(self, best_similarity: float, bm25_matched: bool) -> bool:
        """The retrieval gate. A keyword match rescues a low-similarity question (codes, names), but only down
        to half the threshold: below that, sharing a common word is no evidence the documents are on topic."""
        floor = self.config.min_similarity
        return best_similarity < floor / 2 or (best_similarity < floor and not bm25_matched)

    def _models(self) -> list[ChatModel]:
        models = [self.model]
        if self.router is not None:
            models += [m for m in (self.router.cheap, self.router.strong) if m is not None]
        return list({id(m): m for m in models}.values())

    def _refuse_if_no_model_is_up(self) -> None:
        """Models that know they are down (a supervised local server that is restarting) say so through an
        optional `check_available()`; when every model this answerer could route to is down, the question is
        refused before retrieval. A model without the check (Bedrock, SageMaker) is taken to be up."""
        first: Exception | None = None
        for model in self._models():
            check = getattr(model, "check_available", None)
            if check is None:
                return
            try:
                check()
                return
            except LecternError as exc:
                first = first or exc
        if first is not None:
            raise first

    def _check(self, question: str) -> str:
        q = question.strip()
        if not q:
            raise ValidationFailed("The question is empty.")
        if len(q) > MAX_QUESTION_CHARS:
            raise ValidationFailed(f"The question is {len(q)} characters; the limit is {MAX_QUESTION_CHARS}.")
        return q

    def plan(
        self,
        tenant_id: str,
        question: str,
        *,
        top_k: int | None = None,
        filters: SearchFilters | None = None,
        user_id: str | None = None,
        question_checked: bool = False,
    ) -> AnswerPlan:
        """Everything before generation: checks, retrieval, context, the gate, the route, the prompt.

        `answer`/`stream` run it and then call the chosen model; the routing evaluation runs it alone (no
        model is called), so it measures the decisions the service would make."""
        template = self.prompt_for(user_id)
        q = self._check(question)
        if self.guard is not None and not question_checked:
            q = self.guard.check_question(tenant_id, q)
        k = top_k or self.config.top_k
        result = self.retriever.retrieve(tenant_id, q, top_k=k, filters=filters)
        hits = result.hits
        if self.guard is not None and hits:
            # before the context cut: a poisoned passage that ranked first must not push the good ones out
            hits = self.guard.check_passages(tenant_id, hits)
        passages = build_context(hits, self.config.max_context_tokens, self.count, self.config.min_relative_score)
        if not passages or self._off_topic(result.best_similarity, result.bm25_matched):
            return AnswerPlan(q, template, result, [], True, None, ROUTE_GATE, [], 0, candidates=hits)
        context_tokens = sum(self.count(p.chunk.text) + 12 for p in passages)
        if self.router is not None:
            model, route = self.router.choose(q, result, context_tokens)
        else:
            model, route = self.model, ROUTE_SINGLE
        marker = template.new_marker()  # per request: spotlighting prompts mark passages as untrusted data
        messages = template.render(context=format_context(passages, marker), question=q, marker=marker)
        return AnswerPlan(q, template, result, passages, False, model, route, messages, context_tokens, candidates=hits)

    def events(self, request: AnswerRequest) -> Iterator[AnswerEvent]:
        """The core of the answer pipeline (lectern.domain.pipeline): one request's events."""
        started = time.perf_counter()

        def status(stage: str) -> Status:
            return Status(stage, int((time.perf_counter() - started) * 1000))  # type: ignore[arg-type]

        # a bad or blocked question fails before any event (a 400, not an error in the middle of a stream)
        q = self._check(request.question)
        if self.guard is not None and not request.question_checked:
            request = request.replace(question=self.guard.check_question(request.tenant_id, q), question_checked=True)
        self._refuse_if_no_model_is_up()  # a known outage is a 503 before any event, not an error mid-stream
        yield status("retrieving")
        plan = self.plan(
            request.tenant_id,
            request.question,
            top_k=request.top_k,
            filters=request.filters,
            user_id=request.user_id,
            question_checked=request.question_checked,
        )
        meta = _Meta(uuid.uuid4().hex, plan.template.version, plan.route, started)
        if plan.gated:
            yield Token(I_DONT_KNOW)  # the final text, not a draft
            yield Citations()
            yield Done(
                self._withheld(meta, "no_relevant_passages", ROUTE_GATE, Usage(), [], plan.candidates, plan.question)
            )
            return
        yield status("generating")
        final, parts = yield from self._generate(plan, live=request.live)
        draft = clean_answer(final.text if final and final.text else "".join(parts))
        if self.guard is not None:
            yield status("verifying")
        text = checked_answer(self.guard, request.tenant_id, draft, plan.passages, plan.question)
        usage = final.usage if final else Usage()
        model_id = final.model if final else plan.model.model_id  # type: ignore[union-attr]
        passages = plan.passages
        reason = withheld_because(draft, text, len(passages))
        if reason is not None:
            yield Citations()
            yield Done(self._withheld(meta, reason, model_id, usage, passages, passages, plan.question))
            return
        text, citations = cite(text, passages, plan.question)
        yield Citations(citations)
        yield Done(self._answer(meta, text, citations, model_id, usage, False, passages))

    def _withheld(
        self,
        meta: _Meta,
        reason: Withheld,
        model: str,
        usage: Usage,
        retrieved: list[ScoredChunk],
        closest: list[ScoredChunk],
        question: str,
    ) -> Answer:
        answer = self._answer(meta, I_DONT_KNOW, [], model, usage, True, retrieved)
        return dataclasses.replace(
            answer,
            withheld=reason,
            withheld_reason=WITHHELD_REASONS[reason],
            best_passages=best_passages(closest, question),
        )

    def _generate(
        self, plan: AnswerPlan, *, live: bool
    ) -> Generator[AnswerEvent, None, tuple[Generation | None, list[str]]]:
        """Call the planned model: streamed (tokens yielded as they come, PII the model writes masked on the way,
        holding back a few characters at a time) or in one request/response call when nobody reads the tokens."""
        model = plan.model
        assert model is not None
        cfg = self.config
        if not live:
            return model.generate(plan.messages, max_tokens=cfg.max_tokens, temperature=cfg.temperature), []
        final: Generation | None = None
        parts: list[str] = []
        masker = self.guard.stream_masker() if self.guard is not None and hasattr(self.guard, "stream_masker") else None
        numbers = StreamRenumberer(len(plan.passages))  # the draft carries the numbers the answer will
        for item in model.stream(plan.messages, max_tokens=cfg.max_tokens, temperature=cfg.temperature):
            if isinstance(item, Generation):
                final = item
                continue
            parts.append(item)
            out = numbers.push(masker.push(item) if masker is not None else item)
            if out:
                yield Token(out, provisional=True)
        tail = numbers.push(masker.flush()) if masker is not None else ""
        if tail := tail + numbers.flush():
            yield Token(tail, provisional=True)
        return final, parts

    def _answer(
        self,
        meta: _Meta,
        text: str,
        citations: list[Citation],
        model: str,
        usage: Usage,
        abstained: bool,
        retrieved: list[ScoredChunk] | None = None,
    ) -> Answer:
        return Answer(
            answer=text,
            citations=citations,
            model=model,
            usage=usage,
            latency_ms=int((time.perf_counter() - meta.started) * 1000),
            prompt_version=meta.prompt_version,
            abstained=abstained,
            retrieved=retrieved or [],
            query_id=meta.query_id,
            cost_usd=self.prices.tokens(model, usage).usd,
            route=meta.route,
        )


@dataclass(frozen=True)
class AnswerPlan:
    """What `Answerer.plan` decided for one question (model None when the retrieval gate answers)."""

    question: str
    template: PromptTemplate
    retrieval: RetrievalResult
    passages: list[ScoredChunk]
    gated: bool
    model: ChatModel | None
    route: str
    messages: list[ChatMessage]
    context_tokens: int
    candidates: list[ScoredChunk] = dataclasses.field(default_factory=list)  # checked hits, before the context cut


@dataclass
class _Meta:
    """What one answer records besides its text: id, prompt version, route, start time."""

    query_id: str
    prompt_version: str
    route: str
    started: float
