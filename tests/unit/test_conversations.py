"""Follow-up rewriting and the conversation stage, without I/O (an in-memory store; the adapters have their own
contract suite)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lectern.adapters.local.sqlite_conversations import SqliteConversationStore
from lectern.adapters.local.sqlite_db import SqliteDatabase
from lectern.domain.conversations import (
    ConversationService,
    ConversationStage,
    FollowUpRewriter,
    Turn,
    accept_rewrite,
    carry_terms,
    depends_on_context,
)
from lectern.domain.errors import NotFound, ValidationFailed
from lectern.domain.models import Answer, ChatMessage, Generation, Usage
from lectern.domain.pipeline import AnswerPipeline, AnswerRequest, Done, Token, final_answer


def turn(q: str, standalone: str | None = None) -> Turn:
    return Turn(q, standalone or q, "The daily meal allowance is 55 EUR. [1]", "q1", "2026-12-03T10:00:00Z")


def test_dependent_follow_ups_are_told_from_standalone_questions():
    for q in ("And what about the second one?", "How much is it?", "what about hotels?", "Where?", "and trains"):
        assert depends_on_context(q), q
    for q in ("How many caps did Iwan Roberts win for Wales?", "What is Galaxy Gaming's trading symbol?"):
        assert not depends_on_context(q), q


def test_terms_rule_carries_the_previous_key_terms_it_lacks():
    assert carry_terms("And how much is it in France?", "What is the daily meal allowance?") == (
        "And how much is it in France? (daily meal allowance)"
    )
    assert carry_terms("meal allowance?", "daily meal allowance") == "meal allowance? (daily)"


class Scripted:
    model_id = "scripted"

    def __init__(self, reply: str | Exception) -> None:
        self.reply = reply
        self.seen: list[list[ChatMessage]] = []

    def generate(self, messages, *, max_tokens, temperature):
        self.seen.append(list(messages))
        if isinstance(self.reply, Exception):
            raise self.reply
        return Generation(self.reply, self.model_id, Usage(1, 1))


def test_model_rewrite_is_used_when_it_reads_as_one_question():
    model = Scripted("Standalone question: How many caps did Iwan Roberts win for Wales?\n")
    r = FollowUpRewriter(model).rewrite("How many caps did he win?", [turn("When was Iwan Roberts born?")])
    assert (r.question, r.method) == ("How many caps did Iwan Roberts win for Wales?", "model")
    prompt = model.seen[0][-1].content
    assert "User: When was Iwan Roberts born?" in prompt and "Follow-up: How many caps did he win?" in prompt


@pytest.mark.parametrize("reply", ["", "   ", "The answer is 15 [1].", "x" * 1000, RuntimeError("model down")])
def test_a_bad_or_failed_model_rewrite_falls_back_to_the_terms_rule(reply):
    r = FollowUpRewriter(Scripted(reply)).rewrite("And him?", [turn("When was Iwan Roberts born?")])
    assert r.method == "terms" and r.question == "And him? (Iwan Roberts born)"


def test_no_history_no_rewrite_and_a_standalone_follow_up_is_kept():
    assert FollowUpRewriter(None).rewrite("How much?", []).method == "none"
    r = FollowUpRewriter(None).rewrite("What is Galaxy Gaming's trading symbol?", [turn("When was Iwan born?")])
    assert (r.question, r.method) == ("What is Galaxy Gaming's trading symbol?", "none")
    assert accept_rewrite('"Who wrote it?"', "who?") == "Who wrote it?"


class Core:
    """Answers with the question it was given, so the test sees what the inner stages searched."""

    def __init__(self) -> None:
        self.questions: list[str] = []

    def events(self, request: AnswerRequest) -> Iterator:
        self.questions.append(request.question)
        yield Token("searched: " + request.question)
        yield Done(Answer("searched: " + request.question, [], "m", Usage(), 1, "v", query_id="qid"))


@pytest.fixture
def pipeline(tmp_path):
    db = SqliteDatabase(tmp_path / "c.db")
    service = ConversationService(SqliteConversationStore(db), max_turns=3)
    core = Core()
    yield AnswerPipeline(core, [ConversationStage(service, FollowUpRewriter(None))]), core, service
    db.close()


def test_stage_starts_rewrites_records_and_refuses(pipeline):
    p, core, service = pipeline
    first = p.answer("t", "What is the daily meal allowance?", user_id="alice", remember=True)
    cid = first.conversation_id
    assert cid and first.rewrite == "none"
    follow = p.answer("t", "And in France?", user_id="alice", conversation_id=cid)
    assert core.questions[-1] == "And in France? (daily meal allowance)"  # retrieval saw the standalone question
    assert follow.standalone_question == core.questions[-1] and follow.rewrite == "terms"
    conv = service.get("t", "alice", cid)
    assert [t.question for t in conv.turns] == ["What is the daily meal allowance?", "And in France?"]
    assert conv.turns[1].standalone_question == core.questions[-1]
    # nothing asked, nothing stored: no conversation without remember/conversation_id
    assert p.answer("t", "Standalone?", user_id="alice").conversation_id == ""
    assert len(service.list("t", "alice")) == 1
    # another tenant / user / unknown id: NotFound before any event, and the inner stages never run
    asked = len(core.questions)
    for tenant, user, c in (("other", "alice", cid), ("t", "bob", cid), ("t", "alice", "nope")):
        with pytest.raises(NotFound):
            next(p.stream(tenant, "And?", user_id=user, conversation_id=c))
    with pytest.raises(ValidationFailed):
        next(p.stream("t", "And?", user_id="alice", conversation_id="bad id"))
    assert len(core.questions) == asked
    p.answer("t", "And Spain?", user_id="alice", conversation_id=cid)
    with pytest.raises(ValidationFailed, match="3 turns"):
        final_answer(p.stream("t", "And Italy?", user_id="alice", conversation_id=cid))
    assert service.get("t", "alice", cid).turn_count == 3
