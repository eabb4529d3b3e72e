"""The semantic answer cache around the Answerer, with the SQLite store and an in-memory document table."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lectern.adapters.local.sqlite_cache import SqliteAnswerCache
from lectern.adapters.local.sqlite_db import SqliteDatabase
from lectern.domain.cache import (
    CacheConfig,
    SemanticCache,
    decide,
    key_terms,
    normalise_question,
    terms_agree,
)
from lectern.domain.errors import GuardrailBlocked, ModelUnavailable
from lectern.domain.models import (
    Answer,
    Chunk,
    Citation,
    Document,
    DocumentStatus,
    ScoredChunk,
    SearchFilters,
    Usage,
)
from lectern.domain.pipeline import AnswerPipeline, AnswerRequest, Citations, Done, QuestionGuardStage, Token
from tests.fakes.embedder import HashEmbedder

T = "acme"


class Docs:
    def __init__(self) -> None:
        self.items: dict[tuple[str, str], Document] = {}
        self.gets = 0

    def add(self, doc_id: str, *, tenant: str = T, updated: str = "2026-01-01T00:00:00.000000Z") -> None:
        self.items[(tenant, doc_id)] = Document(
            tenant, doc_id, f"{doc_id}.txt", "text/plain", 10, DocumentStatus.INDEXED, updated, updated,
            sha256="abc",
        )  # fmt: skip

    def get(self, tenant_id: str, document_id: str) -> Document | None:
        self.gets += 1
        return self.items.get((tenant_id, document_id))


class FakeTemplate:
    def __init__(self, version: str) -> None:
        self.version = version


class FakeRetriever:
    def __init__(self) -> None:
        self.embedder = HashEmbedder()


class FakeAnswerer:
    """Answers with a citation of `cite` (or abstains); counts calls; can fail."""

    def __init__(self) -> None:
        self.retriever = FakeRetriever()
        self.template = FakeTemplate("answer-v3")
        self.calls = 0
        self.cite = "d1"
        self.abstain = False
        self.fail: Exception | None = None
        self.guard: Any = None
        self.kwargs: list[dict[str, Any]] = []

    def _make(self, question: str, top_k: int | None) -> Answer:
        self.calls += 1
        if self.fail is not None:
            raise self.fail
        if self.abstain:
            return Answer(
                "I don't know based on the provided documents.", [], "m", Usage(), 5, "answer-v3", True
            )
        chunk = Chunk("c1", T, self.cite, f"{self.cite}.txt", 1, 0, "passage text")
        cit = Citation(1, self.cite, f"{self.cite}.txt", 1, "passage", 0.9, "c1")
        return Answer(
            f"answer to {question} [1]", [cit], "nova-lite", Usage(100, 20), 900, self.template.version,
            retrieved=[ScoredChunk(chunk, 0.9)], query_id=f"q{self.calls}", cost_usd=0.001,
            route="cheap: default",
        )  # fmt: skip

    def events(self, request: AnswerRequest) -> Iterator[Any]:
        """The core of a pipeline: the request's events (the kwargs it was asked with recorded)."""
        self.kwargs.append({"user_id": request.user_id} if request.user_id else {})
        a = self._make(request.question, request.top_k)
        if request.live:
            yield Token(a.answer[:5])
            yield Token(a.answer[5:])
        yield Citations(a.citations)
        yield Done(a)


class Cached:
    """The cache stage in a pipeline around `inner` (with the guard in front when `inner.guard` is set), plus
    the stage's own attributes, as the tests below use them."""

    def __init__(self, inner: FakeAnswerer, stage: SemanticCache) -> None:
        self.inner, self.stage = inner, stage

    def _pipeline(self) -> AnswerPipeline:
        guard = [QuestionGuardStage(self.inner.guard)] if self.inner.guard is not None else []
        return AnswerPipeline(self.inner, [*guard, self.stage])

    def answer(self, tenant_id: str, question: str, **kwargs: Any) -> Answer:
        return self._pipeline().answer(tenant_id, question, **kwargs)

    def stream(self, tenant_id: str, question: str, **kwargs: Any) -> Iterator[Any]:
        return self._pipeline().stream(tenant_id, question, **kwargs)

    def __getattr__(self, name: str) -> Any:  # the stage's config, store, lookup, remember
        return getattr(self.stage, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in ("inner", "stage"):
            object.__setattr__(self, name, value)
        else:
            setattr(self.stage, name, value)


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def env(tmp_path: Path):
    db = SqliteDatabase(tmp_path / "lectern.db")
    store = SqliteAnswerCache(db)
    docs = Docs()
    docs.add("d1")
    docs.add("d2")
    inner = FakeAnswerer()
    clock = Clock()
    outcomes: list[tuple[bool, str]] = []
    # blind to digits, as a real sentence embedder nearly is ("over $50" vs "over $500": 0.905 with MiniLM)
    words = HashEmbedder()
    stage = SemanticCache(
        store, docs, config=CacheConfig(threshold=0.85, ttl_s=3600, max_entries=50), clock=clock,
        on_lookup=lambda hit, tier: outcomes.append((hit, tier)),
        embed=lambda t: words.embed_query(re.sub(r"\d", "", t)),
        prompt_version=lambda user_id: inner.template.version,
    )  # fmt: skip
    cache = Cached(inner, stage)
    yield cache, inner, docs, store, clock, outcomes
    db.close()


Q = "What is the refund policy for damaged laptops?"


def test_miss_then_exact_hit_returns_the_cached_answer_as_a_hit(env) -> None:
    cache, inner, _docs, _store, _clock, outcomes = env
    first = cache.answer(T, Q)
    assert not first.cache_hit and inner.calls == 1
    second = cache.answer(T, "  what is the REFUND policy for damaged laptops ")
    assert inner.calls == 1, "the model must not be called on a hit"
    assert second.cache_hit and second.answer == first.answer and second.citations == first.citations
    assert second.query_id and second.query_id != first.query_id
    assert second.usage == Usage() and second.cost_usd == 0.0 and second.retrieved == []
    assert second.model == "nova-lite" and second.prompt_version == "answer-v3"
    assert second.route == "cache: exact" and second.latency_ms < 900
    assert outcomes == [(False, "no_match"), (True, "exact")]


def test_paraphrase_hits_the_similarity_tier(env) -> None:
    cache, inner, *_, outcomes = env
    cache.answer(T, Q)
    hit = cache.answer(T, "Refund policy for damaged laptops: what is it?")
    assert hit.cache_hit and hit.route == "cache: similar" and inner.calls == 1
    assert outcomes[-1] == (True, "similar")


def test_near_miss_with_another_number_is_refused_by_the_key_terms_guard(env) -> None:
    cache, inner, *_, outcomes = env
    cache.answer(T, "What is the refund policy for orders over $50?")
    miss = cache.answer(T, "What is the refund policy for orders over $500?")
    assert not miss.cache_hit and inner.calls == 2
    assert outcomes[-1] == (False, "key_terms")
    # without the guard the same pair is a (false) hit: the guard is what refused it
    cache.config = dataclasses.replace(cache.config, key_terms_guard=False)
    assert cache.answer(T, "What is the refund policy for orders over $5000?").cache_hit


def test_unrelated_question_is_a_miss_below_threshold(env) -> None:
    cache, inner, *_, outcomes = env
    cache.answer(T, Q)
    assert not cache.answer(T, "Who signed the delivery memo in May?").cache_hit
    assert outcomes[-1] == (False, "no_match") and inner.calls == 2


@pytest.mark.parametrize(
    "kwargs",
    [
        {"top_k": 3},
        {"filters": SearchFilters(document_ids=("d2",))},
        {"filters": SearchFilters(filenames=("x",))},
    ],
)
def test_other_retrieval_settings_are_another_scope(env, kwargs) -> None:
    cache, _inner, *_ = env
    cache.answer(T, Q)
    assert not cache.answer(T, Q, **kwargs).cache_hit
    assert cache.answer(T, Q, **kwargs).cache_hit  # and that scope caches on its own


def test_prompt_version_is_part_of_the_key(env) -> None:
    cache, inner, *_ = env
    cache.answer(T, Q)
    inner.template = FakeTemplate("answer-v4")
    assert not cache.answer(T, Q).cache_hit


def test_ab_prompt_version_comes_from_prompt_for_user(env) -> None:
    cache, inner, *_ = env
    inner.prompt_for = lambda user: FakeTemplate("B" if user == "bob" else "A")
    inner.template = FakeTemplate("A")
    cache.answer(T, Q, user_id="alice")
    assert inner.kwargs[-1] == {"user_id": "alice"}  # passed through to the Answerer
    assert cache.answer(T, Q, user_id="carol").cache_hit  # also version A
    inner.template = FakeTemplate("B")
    assert not cache.answer(T, Q, user_id="bob").cache_hit


def test_tenants_never_share_entries(env) -> None:
    cache, _inner, docs, *_ = env
    docs.add("d1", tenant="other")
    cache.answer(T, Q)
    assert not cache.answer("other", Q).cache_hit


def test_changed_cited_document_invalidates_and_deletes_the_entry(env) -> None:
    cache, inner, docs, store, _clock, outcomes = env
    cache.answer(T, Q)
    assert cache.answer(T, Q).cache_hit
    docs.add("d1", updated="2026-02-02T00:00:00.000000Z")  # re-uploaded: a new version
    assert store.count(T) == 1
    miss = cache.answer(T, Q)
    assert not miss.cache_hit and inner.calls == 2
    assert outcomes[-1] == (False, "stale")
    assert cache.answer(T, Q).cache_hit  # the fresh answer was cached against the new version


def test_deleted_or_reprocessing_document_invalidates(env) -> None:
    cache, inner, docs, store, *_ = env
    cache.answer(T, Q)
    doc = docs.items[(T, "d1")]
    docs.items[(T, "d1")] = dataclasses.replace(doc, status=DocumentStatus.PROCESSING)
    assert not cache.answer(T, Q).cache_hit  # and the fresh answer is not cached: its source is not INDEXED
    assert store.count(T) == 0
    del docs.items[(T, "d1")]
    assert not cache.answer(T, Q).cache_hit and inner.calls == 3


def test_a_paraphrase_of_a_stale_entry_is_a_miss_too(env) -> None:
    cache, _inner, docs, store, *_ = env
    cache.answer(T, Q)
    del docs.items[(T, "d1")]
    assert not cache.answer(T, "Refund policy for damaged laptops: what is it?").cache_hit
    assert store.count(T) == 0


def test_abstentions_and_errors_are_not_cached(env) -> None:
    cache, inner, _docs, store, *_ = env
    inner.abstain = True
    assert cache.answer(T, Q).abstained
    assert not cache.answer(T, Q).cache_hit and store.count(T) == 0
    inner.abstain = False
    inner.fail = ModelUnavailable("down")
    with pytest.raises(ModelUnavailable):
        cache.answer(T, Q)
    assert store.count(T) == 0


def test_ttl_expires_entries(env) -> None:
    cache, inner, _docs, _store, clock, _ = env
    cache.answer(T, Q)
    clock.now += 3599
    assert cache.answer(T, Q).cache_hit
    clock.now += 2
    assert not cache.answer(T, Q).cache_hit and inner.calls == 2


def test_size_bound_evicts_least_recently_used(env) -> None:
    cache, _inner, _docs, store, clock, _ = env
    cache.config = dataclasses.replace(cache.config, max_entries=3)
    questions = [f"Which invoice number {n} was paid by Globex?" for n in range(5)]
    for _i, q in enumerate(questions[:3]):
        clock.now += 1
        cache.answer(T, q)
    clock.now += 1
    assert cache.answer(T, questions[0]).cache_hit  # touched: now the most recently used
    for q in questions[3:]:
        clock.now += 1
        cache.answer(T, q)
    assert store.count(T) == 3
    assert cache.answer(T, questions[0]).cache_hit
    assert not cache.answer(T, questions[1]).cache_hit  # the least recently used went first


def test_stream_hit_emits_whole_text_then_citations_then_done(env) -> None:
    cache, inner, *_ = env
    events = list(cache.stream(T, Q))  # miss: the inner stream passes through and is cached
    assert [e.kind for e in events] == ["token", "token", "citations", "done"]
    events = list(cache.stream(T, Q))
    assert [e.kind for e in events] == ["token", "citations", "done"] and inner.calls == 1
    done = events[-1].answer
    assert done is not None and done.cache_hit
    assert events[0].text == done.answer and events[1].citations == done.citations


def test_store_failure_is_a_miss_not_an_error(env) -> None:
    cache, inner, *_, outcomes = env

    class Broken:
        def __getattr__(self, name: str) -> Any:
            def fail(*a: Any, **k: Any) -> Any:
                raise OSError("disk gone")

            return fail

    cache.store = Broken()
    assert cache.answer(T, Q).answer.startswith("answer to")
    assert cache.answer(T, Q).answer.startswith("answer to") and inner.calls == 2
    assert outcomes[-1] == (False, "error")


def test_hit_still_runs_the_question_guardrail(env) -> None:
    cache, inner, *_ = env
    cache.answer(T, Q)

    class Guard:
        def check_question(self, tenant_id: str, question: str) -> str:
            raise GuardrailBlocked("blocked", policies=("topic",))

    inner.guard = Guard()
    with pytest.raises(GuardrailBlocked):
        cache.answer(T, Q)


def test_entry_records_versions_of_cited_and_prompted_documents(env) -> None:
    from lectern.domain.cache import exact_key, scope_of

    cache, _inner, _docs, store, clock, _ = env
    cache.answer(T, Q)
    entry = store.get(T, exact_key(scope_of("answer-v3", None, None), Q), now=clock.now)
    assert entry is not None and entry.question == Q
    assert entry.sources == {"d1": "2026-01-01T00:00:00.000000Z|abc"}
    assert entry.expires_at == clock.now + 3600 and entry.vector is not None and entry.vector.shape == (64,)


def test_store_nearest_ranks_by_cosine_within_a_scope(tmp_path: Path) -> None:
    from lectern.domain.cache import CacheEntry

    db = SqliteDatabase(tmp_path / "x.db")
    store = SqliteAnswerCache(db)
    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(4, 8)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    for i, v in enumerate(vecs):
        store.put(
            CacheEntry(
                T, f"k{i}", "s1" if i < 3 else "s2", f"q{i}", v, {"answer": "a"}, {"d1": "v"}, 0.0, 100.0
            ),
            max_entries=10,
        )
    got = store.nearest(T, "s1", vecs[1], 2, now=1.0)
    assert [e.key for e, _ in got] == ["k1", got[1][0].key] and got[0][1] == pytest.approx(1.0, abs=1e-5)
    assert all(e.scope == "s1" for e, _ in got)
    assert store.get(T, "k1", now=1.0).sources == {"d1": "v"}
    assert store.nearest(T, "s1", vecs[1], 2, now=100.0) == []  # expired
    assert store.nearest(T, "s1", np.ones(16, dtype=np.float32), 2, now=1.0) == []  # another embedder
    db.close()


@pytest.mark.parametrize(
    ("a", "b", "agree"),
    [
        ("Who is the CEO of Acme?", "Who is the CFO of Acme?", False),
        ("When was Iwan Roberts born?", "When was Roberts born?", True),
        ("Refund for orders over $50?", "refund for orders over $500", False),
        ("Refund for orders over fifty dollars?", "Refund for orders over 50 dollars?", False),
        ("Were five trucks used?", "Were 5 trucks used?", True),
        ("Does vitamin D reduce fracture risk?", "Does vitamin D lower fracture risk?", True),
        ("Does vitamin D reduce fracture risk?", "Does vitamin D increase fracture risk?", False),
        ("Can the Handbook replace legal research?", "Can the Handbook not replace legal research?", False),
        ("Is it allowed?", "Isn't it allowed?", False),
        ("What does 28 U.S.C. § 586(b) say?", "What does 28 U.S.C. § 586(a) say?", False),
        ("Is BRCA1 linked to cancer?", "Is BRCA2 linked to cancer?", False),
        ("Does vitamin D help?", "Does vitamin C help?", False),
    ],
)
def test_key_terms_guard(a: str, b: str, agree: bool) -> None:
    assert terms_agree(a, b) is agree, (key_terms(a), key_terms(b))


def test_normalised_question_and_exact_rule() -> None:
    assert normalise_question("  What IS  the policy?! ") == "what is the policy"
    assert normalise_question("Who’s there?") == normalise_question("who's there")
    assert decide("What is X?", "what is x", 0.1, threshold=0.9, guard=True)  # exact tier ignores cosine
    assert not decide("What is X?", "What is Y?", 0.89, threshold=0.9, guard=False)


def test_the_cache_only_ever_sees_the_guarded_question(env, tmp_path: Path) -> None:
    cache, inner, _docs, _store, *_ = env

    class Masking:
        def check_question(self, tenant_id: str, question: str) -> str:
            return question.replace("123-45-6789", "{US_SSN}")

    inner.guard = Masking()
    cache.answer(T, "What is the refund policy for SSN 123-45-6789 and damaged laptops?")
    dump = b"".join(p.read_bytes() for p in tmp_path.glob("lectern.db*"))
    assert b"123-45-6789" not in dump and b"{US_SSN}" in dump
    # asked again: the masked text is the key, so it is an exact hit
    again = cache.answer(T, "What is the refund policy for SSN 123-45-6789 and damaged laptops?")
    assert again.cache_hit
