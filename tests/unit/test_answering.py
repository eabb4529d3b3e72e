"""Answering over a real SQLite index with test doubles for the embedder and the model."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest

from lectern.adapters.local.sqlite_db import SqliteDatabase
from lectern.adapters.local.sqlite_index import SqliteSearchIndex
from lectern.domain.answering import I_DONT_KNOW, AnswerConfig, Answerer, build_context, clean_answer
from lectern.domain.chunking import ChunkingConfig, chunk_document
from lectern.domain.errors import ValidationFailed
from lectern.domain.models import Block, ChatMessage, ExtractedDocument, Generation, Page, ScoredChunk, Usage
from lectern.domain.prompts import load_template
from lectern.domain.retrieval import Retriever
from tests.fakes.embedder import HashEmbedder


class ScriptedModel:
    model_id = "scripted"

    def __init__(self, reply: str) -> None:
        self.reply = reply
        self.calls: list[Sequence[ChatMessage]] = []

    def generate(self, messages, *, max_tokens, temperature) -> Generation:
        self.calls.append(messages)
        return Generation(self.reply, self.model_id, Usage(100, 10))

    def stream(self, messages, *, max_tokens, temperature) -> Iterator[str | Generation]:
        gen = self.generate(messages, max_tokens=max_tokens, temperature=temperature)
        yield from (gen.text[i : i + 5] for i in range(0, len(gen.text), 5))
        yield gen


@pytest.fixture
def index(tmp_path):
    emb = HashEmbedder()
    idx = SqliteSearchIndex(SqliteDatabase(tmp_path / "x.db"), emb.dimension, emb.model_id)
    docs = {
        "memo": [Page(1, [Block("There were 200 laptops delivered on January 23, 2023 by three trucks.")])],
        "guide": [Page(1, [Block("Intro.")]), Page(2, [Block("Coolant pressure must stay below 14 bar.")])],
    }
    for doc_id, pages in docs.items():
        chunks = chunk_document(
            ExtractedDocument(pages),
            tenant_id="t",
            document_id=doc_id,
            filename=f"{doc_id}.pdf",
            config=ChunkingConfig(size=64, overlap=0),
            count=emb.count_tokens,
        )
        idx.replace_document("t", doc_id, chunks, emb.embed_documents([c.search_text for c in chunks]))
    return idx, emb


def _answerer(index, reply: str, **cfg) -> tuple[Answerer, ScriptedModel]:
    idx, emb = index
    model = ScriptedModel(reply)
    return Answerer(
        retriever=Retriever(idx, emb),
        model=model,
        template=load_template("answer-v2"),
        token_counter=emb.count_tokens,
        config=AnswerConfig(**cfg),
    ), model


def test_answer_cites_the_passages_the_model_referenced(index):
    answerer, model = _answerer(index, "Coolant must stay below 14 bar [1].")
    a = answerer.answer("t", "What must coolant pressure stay below?")
    assert a.answer == "Coolant must stay below 14 bar [1]." and not a.abstained
    assert [(c.n, c.filename, c.page) for c in a.citations] == [(1, "guide.pdf", 2)]
    assert a.model == "scripted" and a.usage == Usage(100, 10) and a.prompt_version == "answer-v2"
    prompt = model.calls[0][1].content
    assert "[1] (guide.pdf, page 2)" in prompt and "Question: What must coolant pressure stay below?" in prompt


def test_retrieval_gate_abstains_without_calling_the_model(index):
    answerer, model = _answerer(index, "should not be called")
    a = answerer.answer("t", "Quelle est la capitale du Pérou ?")
    assert a.abstained and a.answer == I_DONT_KNOW and a.citations == [] and model.calls == []


def test_model_abstention_drops_citations(index):
    answerer, _ = _answerer(index, "I don't know based on the provided documents.")
    a = answerer.answer("t", "How many laptops had a warranty?")
    assert a.abstained and a.citations == []


def test_stream_emits_status_tokens_then_citations_then_done(index):
    answerer, _ = _answerer(index, "200 laptops [1].")
    events = list(answerer.stream("t", "How many laptops were delivered?"))
    kinds = [e.kind for e in events]
    assert kinds[-2:] == ["citations", "done"] and set(kinds[:-2]) == {"status", "token"}
    stages = [e.stage for e in events if e.kind == "status"]
    assert stages[:2] == ["retrieving", "generating"]  # before the tokens, with the time elapsed so far
    assert kinds.index("token") > kinds.index("status")
    elapsed = [e.elapsed_ms for e in events if e.kind == "status"]
    assert elapsed == sorted(elapsed) and elapsed[0] >= 0
    assert "".join(e.text for e in events if e.kind == "token") == "200 laptops [1]."


def test_no_markers_means_the_best_supporting_passage_is_cited(index):
    answerer, _ = _answerer(index, "Two hundred laptops.", min_relative_score=0.0)
    a = answerer.answer("t", "How many laptops were delivered?")
    assert [(c.n, c.filename) for c in a.citations] == [(1, "memo.pdf")]  # only the passage that supports it
    assert a.answer == "Two hundred laptops [1]."


def _guarded(index, reply: str) -> Answerer:
    from lectern.adapters.local.guardrails import build_local_guard

    answerer, _ = _answerer(index, reply, min_relative_score=0.0, min_similarity=0.0)
    answerer.guard = build_local_guard(learned_injection=False)
    return answerer


def test_an_unsupported_draft_is_streamed_as_provisional_and_withheld_with_its_reason(index):
    answerer = _guarded(index, "The laptops were painted bright orange by Norwegian monks in Bergen [1].")
    events = list(answerer.stream("t", "How many laptops were delivered?"))
    tokens = [e for e in events if e.kind == "token"]
    assert tokens and all(t.provisional for t in tokens)  # the draft was never the answer
    assert "".join(t.text for t in tokens).startswith("The laptops were painted")
    done = events[-1].answer
    assert done.abstained and done.answer == I_DONT_KNOW and done.citations == []
    assert done.withheld == "not_supported" and "not supported" in done.withheld_reason
    assert done.best_passages and done.best_passages[0].filename == "memo.pdf"  # the closest passage is shown
    first = done.best_passages[0]
    assert first.text[first.support_start : first.support_end].startswith("There were 200 laptops")
    assert [e.kind for e in events if e.kind != "status"][-2:] == ["citations", "done"]


def test_a_supported_draft_keeps_its_text_and_numbers(index):
    question = "How many laptops were delivered and what about coolant pressure?"
    answerer = _guarded(index, "")
    prompt = [p.chunk.text[:7] for p in answerer.plan("t", question).passages]
    coolant, memo = prompt.index("Coolant") + 1, prompt.index("There w") + 1
    assert len(prompt) == 3 and memo != 1  # the answer cites the memo first: its number must change
    answerer.model.reply = f"There were 200 laptops delivered [{memo}] [9]. Coolant must stay below 14 bar [{coolant}]."
    events = list(answerer.stream("t", question))
    draft = "".join(e.text for e in events if e.kind == "token")
    done = events[-1].answer
    assert not done.abstained and done.withheld is None and done.withheld_reason == ""
    assert draft.startswith("There were 200 laptops delivered [1]") and "below 14 bar [2]." in draft
    assert done.answer == "There were 200 laptops delivered [1]. Coolant must stay below 14 bar [2]."
    assert [(c.n, c.filename) for c in done.citations] == [(1, "memo.pdf"), (2, "guide.pdf")]
    assert [c.text[c.support_start : c.support_end] for c in done.citations] == [
        "There were 200 laptops delivered on January 23, 2023 by three trucks.",
        "Coolant pressure must stay below 14 bar.",
    ]
    assert done.best_passages == []  # the intro passage is not cited, so it is not a source


def test_model_abstention_and_retrieval_gate_say_why(index):
    answerer, _ = _answerer(index, "I don't know based on the provided documents.")
    a = answerer.answer("t", "How many laptops had a warranty?")
    assert a.withheld == "no_answer_in_passages" and a.withheld_reason and a.best_passages
    gated = list(answerer.stream("t", "Quelle est la capitale du Pérou ?"))
    assert [e.provisional for e in gated if e.kind == "token"] == [False]  # the gate's text is final
    done = gated[-1].answer
    assert done.withheld == "no_relevant_passages" and done.abstained


def test_other_tenants_see_nothing(index):
    answerer, model = _answerer(index, "x")
    a = answerer.answer("someone-else", "How many laptops were delivered?")
    assert a.abstained and model.calls == []


@pytest.mark.parametrize("q", ["", "   ", "x" * 2001])
def test_bad_questions(index, q):
    answerer, _ = _answerer(index, "x")
    with pytest.raises(ValidationFailed):
        answerer.answer("t", q)


def test_footnote_markers_in_a_passage_do_not_reach_the_prompt():
    from lectern.domain.answering import format_context
    from lectern.domain.models import Chunk

    c = Chunk("c", "t", "d", "wiki.html", 3, 0, "Roberts was born on 26 June 1968,[1] in Bangor.[12]")
    expected = "[1] (wiki.html, page 3)\nRoberts was born on 26 June 1968, in Bangor."
    assert format_context([ScoredChunk(c, 1.0)]) == expected


def test_echoed_headers_are_cleaned():
    assert clean_answer("[2] (a b.pdf, page 3)\nIt is 5 bar.") == "[2] It is 5 bar."


def test_context_budget_and_relative_cutoff():
    from lectern.domain.models import Chunk

    def hit(score, words=10):
        c = Chunk(
            chunk_id=str(score),
            tenant_id="t",
            document_id="d",
            filename="f",
            page=1,
            ordinal=0,
            text="w " * words,
        )
        return ScoredChunk(c, score)

    hits = [hit(1.0), hit(0.8), hit(0.2)]
    assert len(build_context(hits, 1000, lambda s: len(s.split()), 0.3)) == 2
    assert len(build_context(hits, 30, lambda s: len(s.split()), 0.0)) == 1  # budget: 10 + 12 per passage


@pytest.mark.parametrize(
    "similarity,bm25,off_topic",
    [(0.60, False, False), (0.20, True, False), (0.20, False, True), (0.10, True, True), (0.03, True, True)],
)
def test_retrieval_gate_rule(index, similarity, bm25, off_topic):
    answerer, _ = _answerer(index, "x", min_similarity=0.25)
    assert answerer._off_topic(similarity, bm25) is off_topic


def test_a_model_saying_the_documents_do_not_specify_it_is_an_abstention():
    from lectern.domain.answering import is_abstention

    assert is_abstention("The budget for 2027 is not specified in the provided documents.")
    assert is_abstention("That is not stated in the passages.")
    assert is_abstention("I don't know.")
    # an answer that merely contains the words is not an abstention
    assert not is_abstention("The error code is not found in the log file; restart the service. [1]")
    assert not is_abstention("Leave is 27 days; part-time staff get it pro rata. [1]")
