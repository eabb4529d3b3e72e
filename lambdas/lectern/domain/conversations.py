"""Conversations: follow-up questions answered in the context of the turns before them.

A conversation belongs to one tenant and one user within it (its `owner`: the user id's short hash, or
"anonymous"); every store call names both, so another tenant's or another user's conversation id reads as
absent (404), never as someone else's history. The store is a port (`lectern.domain.ports.ConversationStore`):
SQLite locally, a DynamoDB table with TTL on AWS; conversations expire `retention_days` after their last turn.

`ConversationStage` sits in the answer pipeline after the question guard (history keeps the masked question)
and before the cache (the cache is keyed by the standalone question). With a `conversation_id` it loads the
history (NotFound before any event when unknown), rewrites a follow-up into a standalone question
(`FollowUpRewriter`), lets the inner stages answer that, then appends the turn. The answer carries the
`conversation_id` and the `standalone_question`, so the user sees what was searched.

Rewriting: with a chat model, one short generation ("rewrite the follow-up as a standalone question"), accepted
only when it reads as one question; otherwise — and with a model that cannot rewrite (the extractive test
model) — a deterministic rule: a follow-up that depends on the context (a pronoun, "the second one", "what
about", or at most two content words) gets the previous standalone question's names appended (capitalised
words: what "he" or "it" most often refers to), and its key terms too when the follow-up has at most two content
words of its own. That is not a paraphrase, and the response says which method was used
(`rewrite`: "model" | "terms" | "none").
"""

from __future__ import annotations

import dataclasses
import logging
import re
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from lectern.domain.clock import utc_now_iso
from lectern.domain.errors import NotFound, ValidationFailed
from lectern.domain.feedback import user_hash
from lectern.domain.models import ChatMessage
from lectern.domain.pipeline import AnswerEvent, AnswerRequest, Done, Next
from lectern.domain.text import STOPWORDS, query_terms

if TYPE_CHECKING:
    from lectern.domain.ports import ChatModel, ConversationStore

log = logging.getLogger(__name__)

RewriteMethod = Literal["none", "model", "terms"]
CONVERSATION_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_TURNS = 50  # a conversation refuses more turns (the page offers a new one)
HISTORY_TURNS = 3  # turns the rewriter sees
ANSWER_CHARS = 2000  # stored per answer
TITLE_CHARS = 80


@dataclass(frozen=True)
class Turn:
    question: str  # as asked (after the guard masked it)
    standalone_question: str  # what was searched
    answer: str
    query_id: str
    at: str
    abstained: bool = False
    rewrite: RewriteMethod = "none"
    cited: tuple[str, ...] = ()  # filenames of the cited passages, in citation order


@dataclass(frozen=True)
class Conversation:
    tenant_id: str
    owner: str
    conversation_id: str
    title: str
    created_at: str
    updated_at: str
    turns: tuple[Turn, ...] = field(default_factory=tuple)
    turn_count: int = 0  # equals len(turns) when the turns were read; list() leaves turns empty


def turn_to_dict(turn: Turn) -> dict[str, object]:
    return {**dataclasses.asdict(turn), "cited": list(turn.cited)}


def turn_of(data: dict) -> Turn:
    known = {f.name for f in dataclasses.fields(Turn)}
    return Turn(**{k: v for k, v in data.items() if k in known} | {"cited": tuple(data.get("cited") or ())})


def owner_of(user_id: str | None) -> str:
    """The key a user's conversations are stored under (never the raw user id)."""
    return user_hash(user_id) or "anonymous"


def check_conversation_id(conversation_id: str) -> str:
    if not CONVERSATION_ID.fullmatch(conversation_id or ""):
        raise ValidationFailed("A conversation id is 1-64 letters, digits, '-' or '_'.")
    return conversation_id


def new_conversation_id() -> str:
    return uuid.uuid4().hex


# -- rewriting ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Rewrite:
    question: str
    method: RewriteMethod


# words that make a question lean on what came before
_DEPENDENT = frozenset(
    "it its it's they them their theirs those these that this he him his she her hers there same one ones "  # noqa: SIM905
    "other another second first third last former latter also too either neither else".split()
)
_DEPENDENT_OPENINGS = ("and ", "what about", "how about", "and?", "also ", "then ", "so ", "but ")

REWRITE_PROMPT = (
    "Rewrite the user's follow-up question as one standalone question that can be understood without the "
    "conversation. Replace pronouns and references such as 'it', 'he', 'the second one' by what they refer to. "
    "Do not answer it. If the follow-up is already standalone, repeat it unchanged. Reply with the question "
    "only, on one line."
)


def depends_on_context(question: str) -> bool:
    q = " ".join(question.lower().split())
    words = re.findall(r"[a-z']+", q)
    if q.startswith(_DEPENDENT_OPENINGS) or any(w in _DEPENDENT for w in words):
        return True
    return len(query_terms(question)) <= 2


_NAME = re.compile(r"\b[A-Z][\w'’.-]*")


def names_in(question: str) -> list[str]:
    """Capitalised words after the first (names: 'Iwan Roberts', 'Galaxy Gaming'); carried terms first."""
    head, _, carried = question.partition(" (")
    words = [w.rstrip(".") for w in _NAME.findall(carried)] + [w.rstrip(".") for w in _NAME.findall(head)[1:]]
    return [w for w in words if w.lower() not in STOPWORDS]


def carry_terms(question: str, previous: str, limit: int = 6) -> str:
    """The follow-up with what it refers to appended: the previous standalone question's names, and — when the
    follow-up has at most two content words of its own — the previous key terms too, each once, in order."""
    have = {t.lower() for t in query_terms(question)}
    extra: list[str] = []
    candidates = names_in(previous)
    if len(query_terms(question)) <= 2:
        candidates += query_terms(previous.partition(" (")[0])
    for term in candidates:
        if term.lower() not in have and term.lower() not in {e.lower() for e in extra}:
            extra.append(term)
    extra = extra[:limit]
    return f"{question} ({' '.join(extra)})" if extra else question


class FollowUpRewriter:
    """Rewrites a follow-up into a standalone question (module docstring). `model` None: the terms rule."""

    def __init__(self, model: ChatModel | None, *, max_tokens: int = 80) -> None:
        self.model = model
        self.max_tokens = max_tokens

    def rewrite(self, question: str, history: Sequence[Turn]) -> Rewrite:
        if not history:
            return Rewrite(question, "none")
        if self.model is not None:
            found = self._with_model(question, history[-HISTORY_TURNS:])
            if found is not None:
                return Rewrite(found, "model" if found != question else "none")
        if depends_on_context(question):
            carried = carry_terms(question, history[-1].standalone_question)
            if carried != question:
                return Rewrite(carried, "terms")
        return Rewrite(question, "none")

    def _with_model(self, question: str, history: Sequence[Turn]) -> str | None:
        lines = []
        for t in history:
            lines.append(f"User: {t.standalone_question}")
            lines.append(f"Assistant: {' '.join(t.answer.split())[:300]}")
        user = "Conversation:\n" + "\n".join(lines) + f"\n\nFollow-up: {question}\nStandalone question:"
        messages = [ChatMessage("system", REWRITE_PROMPT), ChatMessage("user", user)]
        assert self.model is not None
        try:
            text = self.model.generate(messages, max_tokens=self.max_tokens, temperature=0.0).text
        except Exception:  # a failed rewrite must not fail the answer: the rule below still applies
            log.warning("follow-up rewrite failed; using the terms rule", exc_info=True)
            return None
        return accept_rewrite(text, question)


def accept_rewrite(text: str, question: str) -> str | None:
    """The model's rewrite when it reads as one question of sensible length, else None."""
    lines = [ln.strip() for ln in (text or "").strip().splitlines() if ln.strip()]
    if not lines:
        return None
    line = re.sub(r"^(standalone question|question|rewritten question)\s*:\s*", "", lines[0], flags=re.I)
    line = line.strip().strip("\"'“”").strip()
    if not (3 <= len(line) <= max(300, 3 * len(question))) or re.search(r"\[\d+\]", line):
        return None
    return line


# -- the service and the pipeline stage --------------------------------------------------------------------
class ConversationService:
    """List, read and delete a user's conversations; start one and append turns (the stage does)."""

    def __init__(
        self, store: ConversationStore, *, max_turns: int = MAX_TURNS, clock: Callable[[], str] = utc_now_iso
    ) -> None:
        self.store = store
        self.max_turns = max_turns
        self.clock = clock

    def list(self, tenant_id: str, user_id: str | None) -> list[Conversation]:
        return self.store.list(tenant_id, owner_of(user_id))

    def get(self, tenant_id: str, user_id: str | None, conversation_id: str) -> Conversation:
        found = self.store.get(tenant_id, owner_of(user_id), check_conversation_id(conversation_id))
        if found is None:
            raise NotFound(f"No conversation {conversation_id}.")
        return found

    def delete(self, tenant_id: str, user_id: str | None, conversation_id: str) -> None:
        if not self.store.delete(tenant_id, owner_of(user_id), check_conversation_id(conversation_id)):
            raise NotFound(f"No conversation {conversation_id}.")

    def record(self, tenant_id: str, user_id: str | None, conversation_id: str | None, turn: Turn) -> str:
        """Append `turn` (starting a new conversation when `conversation_id` is None); returns the id."""
        owner = owner_of(user_id)
        if conversation_id is None:
            conversation_id = new_conversation_id()
            title = " ".join(turn.question.split())[:TITLE_CHARS]
            self.store.create(Conversation(tenant_id, owner, conversation_id, title, turn.at, turn.at), turn)
            return conversation_id
        self.store.append(tenant_id, owner, conversation_id, turn, max_turns=self.max_turns)
        return conversation_id


class ConversationStage:
    """The answer pipeline's conversation stage (module docstring)."""

    def __init__(self, service: ConversationService | None, rewriter: FollowUpRewriter) -> None:
        self.service = service  # None: this deployment keeps no conversations
        self.rewriter = rewriter

    def run(self, request: AnswerRequest, next: Next) -> Iterator[AnswerEvent]:
        if self.service is None and request.conversation_id is not None:
            raise NotFound("Conversations are not kept by this deployment.")
        if self.service is None or (request.conversation_id is None and not request.remember):
            yield from next(request)
            return
        asked = request.question.strip()
        history: tuple[Turn, ...] = ()
        if request.conversation_id is not None:
            conv = self.service.get(request.tenant_id, request.user_id, request.conversation_id)
            if conv.turn_count >= self.service.max_turns:
                raise ValidationFailed(
                    f"This conversation has reached {self.service.max_turns} turns; start a new one."
                )
            history = conv.turns
        rewrite = self.rewriter.rewrite(asked, history)
        inner = request.replace(question=rewrite.question) if rewrite.question != asked else request
        for event in next(inner):
            if isinstance(event, Done):
                event = Done(self._remember(request, asked, rewrite, event))
            yield event

    def _remember(self, request: AnswerRequest, asked: str, rewrite: Rewrite, done: Done):  # -> Answer
        assert self.service is not None
        a = done.answer
        turn = Turn(
            question=asked,
            standalone_question=rewrite.question,
            answer=a.answer[:ANSWER_CHARS],
            query_id=a.query_id,
            at=self.service.clock(),
            abstained=a.abstained,
            rewrite=rewrite.method,
            cited=tuple(c.filename for c in a.citations),
        )
        cid = request.conversation_id
        try:
            cid = self.service.record(request.tenant_id, request.user_id, cid, turn)
        except NotFound:
            raise
        except Exception:  # the answer stands; the turn is missing from the history (logged)
            log.warning("could not record a turn of conversation %s", cid, exc_info=True)
        return dataclasses.replace(
            a, conversation_id=cid or "", standalone_question=rewrite.question, rewrite=rewrite.method
        )
