"""Model routing: every rule of `classify`, its switches, and the Answerer recording the model and why."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lectern.adapters.local.sqlite_db import SqliteDatabase
from lectern.adapters.local.sqlite_index import SqliteSearchIndex
from lectern.domain.answering import ROUTE_GATE, ROUTE_SINGLE, Answerer
from lectern.domain.chunking import ChunkingConfig, chunk_document
from lectern.domain.costing import PriceTable
from lectern.domain.models import Block, ExtractedDocument, Generation, Page, Usage
from lectern.domain.prompts import load_template
from lectern.domain.retrieval import RetrievalResult, Retriever
from lectern.domain.routing import ModelRouter, RoutingConfig, classify, is_comparison, question_parts
from tests.fakes.embedder import HashEmbedder

ON = RoutingConfig()


@pytest.mark.parametrize(
    "question",
    [
        "Compare the 2022 and 2023 revenue.",
        "How does the warranty differ from the guarantee?",
        "What is the difference between a lease and a loan?",
        "Nova Lite vs Nova Pro: which one is cheaper?",
        "Is plan A better than plan B?",
        "Which is larger, the north or the south site?",
        "Contrast the two proposals.",
    ],
)
def test_comparisons_go_to_the_strong_model(question):
    assert is_comparison(question)
    assert classify(question, 0.9, 100, ON) == ("strong", "comparison")


@pytest.mark.parametrize(
    ("question", "parts"),
    [
        ("When was Iwan Roberts born? Where was he born?", 2),
        ("When was the reactor built and who designed it?", 2),
        ("Who wrote the memo; what did it decide?", 2),
        ("Please answer: 1) the start date 2) the end date 3) the budget", 3),
        ("(a) who signed it (b) when", 2),
    ],
)
def test_multi_part_questions_go_to_the_strong_model(question, parts):
    assert question_parts(question) == parts
    assert classify(question, 0.9, 100, ON) == ("strong", "multi-part")


@pytest.mark.parametrize(
    "question",
    [
        "When was Iwan Roberts born?",
        "How many caps did Roberts win for Wales?",
        "What must coolant pressure stay below?",
        "Who was Roberts' school PE teacher and mentor?",  # one question word: one question
        "How much did Norwich City pay Wolves for Iwan Roberts?",
        "What is the maximum pressure in bar?",
    ],
)
def test_simple_questions_stay_on_the_cheap_model(question):
    assert question_parts(question) == 1 and not is_comparison(question)
    assert classify(question, 0.9, 100, ON) == ("cheap", "default")


def test_long_context_and_low_confidence_rules_and_their_thresholds():
    q = "When was it built?"
    assert classify(q, 0.9, 1200, ON) == ("strong", "long context (1200 tokens)")
    assert classify(q, 0.9, 1199, ON) == ("cheap", "default")
    assert classify(q, 0.39, 100, ON) == ("strong", "low retrieval confidence (0.39)")
    assert classify(q, 0.40, 100, ON) == ("cheap", "default")
    assert classify(q, -1.0, 100, ON) == ("cheap", "default")  # no vector search ran: no evidence
    # order: comparison wins over the others
    assert classify("Compare A and B", 0.1, 5000, ON)[1] == "comparison"


def test_each_rule_and_routing_itself_can_be_switched_off():
    off = RoutingConfig(enabled=False)
    assert classify("Compare A and B? And C?", 0.1, 9999, off) == ("cheap", "routing off")
    no_cmp = RoutingConfig(comparison=False)
    assert classify("Compare the plans.", 0.9, 10, no_cmp) == ("cheap", "default")
    no_multi = RoutingConfig(multi_part=False)
    assert classify("Who? When?", 0.9, 10, no_multi) == ("cheap", "default")
    no_long = RoutingConfig(long_context_tokens=0)
    assert classify("Who is it?", 0.9, 10**6, no_long) == ("cheap", "default")
    no_conf = RoutingConfig(min_similarity=-1)
    assert classify("Who is it?", 0.01, 10, no_conf) == ("cheap", "default")


class Model:
    def __init__(self, model_id: str) -> None:
        self.model_id = model_id
        self.calls = 0

    def generate(self, messages, *, max_tokens, temperature) -> Generation:
        self.calls += 1
        return Generation("The answer is 14 bar [1].", self.model_id, Usage(1000, 100))

    def stream(self, messages, *, max_tokens, temperature) -> Iterator[str | Generation]:
        gen = self.generate(messages, max_tokens=max_tokens, temperature=temperature)
        yield gen.text
        yield gen


def test_router_without_a_strong_model_records_the_decision_but_uses_the_cheap_one():
    cheap, strong = Model("cheap"), Model("strong")
    result = RetrievalResult([], 0.9, True)
    assert ModelRouter(cheap, strong).choose("Compare A and B", result, 10) == (strong, "strong: comparison")
    assert ModelRouter(cheap, None).choose("Compare A and B", result, 10) == (
        cheap,
        "cheap: comparison (no strong model)",
    )
    assert ModelRouter(cheap, strong).choose("What is A?", result, 10) == (cheap, "cheap: default")


@pytest.fixture
def answerer_parts(tmp_path):
    emb = HashEmbedder()
    idx = SqliteSearchIndex(SqliteDatabase(tmp_path / "x.db"), emb.dimension, emb.model_id)
    pages = [Page(1, [Block("Coolant pressure must stay below 14 bar. Valves are checked every Tuesday.")])]
    chunks = chunk_document(
        ExtractedDocument(pages),
        tenant_id="t",
        document_id="guide",
        filename="guide.pdf",
        config=ChunkingConfig(size=64, overlap=0),
        count=emb.count_tokens,
    )
    idx.replace_document("t", "guide", chunks, emb.embed_documents([c.search_text for c in chunks]))
    return Retriever(idx, emb), emb


PRICES = PriceTable.load(
    '{"models": {"amazon.nova-lite-v1:0": {"input_per_1k_tokens": 0.00006, "output_per_1k_tokens": 0.00024},'
    ' "amazon.nova-pro-v1:0": {"input_per_1k_tokens": 0.0008, "output_per_1k_tokens": 0.0032}}}'
)


def test_answerer_routes_records_route_and_prices_the_model_that_answered(answerer_parts):
    retriever, emb = answerer_parts
    cheap, strong = Model("us.amazon.nova-lite-v1:0"), Model("us.amazon.nova-pro-v1:0")
    answerer = Answerer(
        retriever=retriever,
        model=cheap,
        router=ModelRouter(cheap, strong, RoutingConfig(min_similarity=-1)),
        template=load_template("answer-v3"),
        token_counter=emb.count_tokens,
        config=None,
        prices=PRICES,
    )
    simple = answerer.answer("t", "What must coolant pressure stay below?")
    assert simple.route == "cheap: default" and simple.model == "us.amazon.nova-lite-v1:0"
    assert simple.cost_usd == pytest.approx(1000 / 1000 * 0.00006 + 100 / 1000 * 0.00024)
    events = list(answerer.stream("t", "How does coolant pressure compare with the valve schedule?"))
    hard = events[-1].answer
    assert hard.route == "strong: comparison" and hard.model == "us.amazon.nova-pro-v1:0"
    assert hard.cost_usd == pytest.approx(0.0008 + 0.1 * 0.0032)
    assert (cheap.calls, strong.calls) == (1, 1)
    gate = answerer.answer("t", "zzzz qqqq xxxx")
    assert gate.route == ROUTE_GATE and gate.cost_usd == 0.0 and (cheap.calls, strong.calls) == (1, 1)

    plain = Answerer(
        retriever=retriever, model=cheap, template=load_template("answer-v3"), token_counter=emb.count_tokens
    )
    assert plain.answer("t", "What must coolant pressure stay below?").route == ROUTE_SINGLE
