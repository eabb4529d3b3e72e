"""The DynamoDB answer cache in moto: item layout, both tiers, pagination, TTL, eviction, and the whole
SemanticCache against the DynamoDB document repository (a re-processed cited document invalidates)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import numpy as np
import pytest
from moto import mock_aws

from lectern.adapters.aws import clients
from lectern.adapters.aws.dynamo_cache import DynamoAnswerCache
from lectern.adapters.aws.dynamo_documents import DynamoDocumentRepository
from lectern.adapters.aws.table import create_table, deserialize_item
from lectern.domain.cache import CacheConfig, CacheEntry, SemanticCache
from lectern.domain.models import Document, DocumentStatus
from tests.fakes.embedder import HashEmbedder
from tests.unit.test_cache import Cached, FakeAnswerer

TABLE = "lectern-cache-test"
T = "acme"


@pytest.fixture
def ddb() -> Iterator[object]:
    with mock_aws():
        client = clients.client("dynamodb")
        create_table(client, TABLE)
        yield client


def unit(rng: np.random.Generator, d: int = 32) -> np.ndarray:
    v = rng.normal(size=d).astype(np.float32)
    return v / np.linalg.norm(v)


def entry(
    key: str, vec: np.ndarray, *, scope: str = "s1", created: float = 1000.0, tenant: str = T
) -> CacheEntry:
    return CacheEntry(
        tenant, key, scope, f"question {key}", vec, {"answer": f"a-{key}", "citations": []},
        {"d1": "2026|abc"}, created, created + 3600,
    )  # fmt: skip


def record_calls(client) -> list[str]:
    calls: list[str] = []
    client.meta.events.register("before-call.dynamodb.*", lambda model, **_: calls.append(model.name))
    return calls


def test_item_layout_and_exact_get(ddb) -> None:
    cache = DynamoAnswerCache(TABLE, client_or_resource=ddb)
    vec = unit(np.random.default_rng(1))
    cache.put(entry("k1", vec), max_entries=10)
    items = {i["sk"]["S"]: deserialize_item(i) for i in ddb.scan(TableName=TABLE)["Items"]}  # test only
    assert set(items) == {"CACHE#E#k1", "CACHE#V#k1"}
    e, v = items["CACHE#E#k1"], items["CACHE#V#k1"]
    assert e["pk"] == v["pk"] == "TENANT#acme" and e["ttl"] == v["ttl"] == 4600
    assert e["type"] == "CACHE_ENTRY" and json.loads(e["answer"])["answer"] == "a-k1"
    assert e["sources"] == {"d1": "2026|abc"} and "vector" not in e
    assert len(bytes(v["vector"])) == 32 * 2  # float16
    got = cache.get(T, "k1", now=2000.0)
    assert got is not None and got.question == "question k1" and got.sources == {"d1": "2026|abc"}
    assert cache.get(T, "k1", now=4600.0) is None  # past ttl although DynamoDB has not deleted it yet
    assert cache.get("other", "k1", now=2000.0) is None


def test_nearest_ranks_within_scope_across_pages_with_query_only(ddb) -> None:
    rng = np.random.default_rng(2)
    cache = DynamoAnswerCache(TABLE, client_or_resource=ddb, page_limit=2)
    vecs = [unit(rng) for _ in range(7)]
    for i, v in enumerate(vecs):
        cache.put(entry(f"k{i}", v, scope="s1" if i < 6 else "s2"), max_entries=100)
    calls = record_calls(ddb)
    got = cache.nearest(T, "s1", vecs[4], 3, now=2000.0)
    assert next(e.key for e, _ in got) == "k4" and got[0][1] == pytest.approx(1.0, abs=2e-3)
    sims = [s for _, s in got]
    assert sims == sorted(sims, reverse=True) and len(got) == 3
    assert all(e.scope == "s1" for e, _ in got)
    assert set(calls) == {"Query", "GetItem"} and calls.count("Query") >= 3  # paginated, never a Scan
    assert calls.count("GetItem") == 3
    calls.clear()
    assert [e.key for e, _ in cache.nearest(T, "s1", vecs[4], 3, now=2000.0, min_similarity=0.999)] == ["k4"]
    assert calls.count("GetItem") == 1  # candidates under the threshold are not fetched
    exact = [float(vecs[4] @ v) for v in vecs[:6]]
    assert got[1][1] == pytest.approx(sorted(exact, reverse=True)[1], abs=2e-3)  # float16 is close enough
    assert cache.nearest(T, "s1", vecs[4], 3, now=5000.0) == []  # all expired
    assert cache.nearest(T, "s1", np.ones(64, dtype=np.float32) / 8, 3, now=2000.0) == []  # other dimension


def test_eviction_is_oldest_first_and_removes_both_items(ddb) -> None:
    rng = np.random.default_rng(3)
    cache = DynamoAnswerCache(TABLE, client_or_resource=ddb)
    for i in range(5):
        cache.put(entry(f"k{i}", unit(rng), created=1000.0 + i), max_entries=3)
    assert cache.count(T) == 3
    assert cache.get(T, "k0", now=1500.0) is None and cache.get(T, "k1", now=1500.0) is None
    assert cache.get(T, "k4", now=1500.0) is not None
    cache.delete(T, "k4")
    assert cache.get(T, "k4", now=1500.0) is None and cache.count(T) == 2
    skeys = {i["sk"]["S"] for i in ddb.scan(TableName=TABLE)["Items"]}
    assert skeys == {"CACHE#E#k2", "CACHE#V#k2", "CACHE#E#k3", "CACHE#V#k3"}


def _doc(doc_id: str) -> Document:
    return Document(T, doc_id, "memo.pdf", "application/pdf", 10, DocumentStatus.UPLOADING,
                    "2026-11-29T10:00:00.000000Z", "2026-11-29T10:00:00.000000Z")  # fmt: skip


def test_semantic_cache_on_dynamodb_invalidated_by_reprocessing_the_cited_document(ddb) -> None:
    S = DocumentStatus
    docs = DynamoDocumentRepository(TABLE, client_or_resource=ddb)
    docs.create(_doc("d1"))
    docs.update(T, "d1", status=S.PROCESSING, allowed_from=[S.UPLOADING])
    docs.update(T, "d1", status=S.INDEXED, allowed_from=[S.PROCESSING], sha256="v1")
    inner = FakeAnswerer()
    words = HashEmbedder()
    hits: list[tuple[bool, str]] = []
    cache = Cached(inner, SemanticCache(
        DynamoAnswerCache(TABLE, client_or_resource=ddb), docs, config=CacheConfig(threshold=0.85),
        embed=lambda t: words.embed_query(re.sub(r"\d", "", t)), on_lookup=lambda h, t: hits.append((h, t)),
        prompt_version=lambda user_id: inner.template.version,
    ))  # fmt: skip
    q = "How many blankets were delivered on January 23?"
    assert not cache.answer(T, q).cache_hit
    assert cache.answer(T, "how many blankets were delivered on january 23").cache_hit  # exact tier
    assert cache.answer(T, "On January 23, how many blankets were delivered?").cache_hit  # similarity tier
    assert not cache.answer(
        T, "How many blankets were delivered on January 24?"
    ).cache_hit  # key terms differ
    assert inner.calls == 2
    # a new version of the cited document: uploaded again, processed, indexed
    docs.update(T, "d1", status=S.PROCESSING, allowed_from=[S.INDEXED])
    docs.update(T, "d1", status=S.INDEXED, allowed_from=[S.PROCESSING], sha256="v2")
    assert not cache.answer(T, "On January 23, how many blankets were delivered?").cache_hit
    assert inner.calls == 3
    assert hits == [
        (False, "no_match"),
        (True, "exact"),
        (True, "similar"),
        (False, "key_terms"),
        (False, "stale"),
    ]


def test_cache_lookup_metrics_emit_hits_and_misses() -> None:
    from aws_lambda_powertools import Metrics

    from lectern.aws.observability import cache_lookup_metrics

    m = Metrics(namespace="LecternTest", service="t")
    on_lookup = cache_lookup_metrics(m)
    on_lookup(True, "exact")
    on_lookup(False, "no_match")
    on_lookup(True, "similar")
    assert m.metric_set["CacheHits"]["Value"] == [1.0, 0.0, 1.0]
    assert m.metric_set["CacheMisses"]["Value"] == [0.0, 1.0, 0.0]
    assert m.metric_set["CacheHits"]["Unit"] == "Count"
    m.clear_metrics()


@pytest.mark.parametrize("enabled", [True, False])
def test_aws_container_puts_the_cache_behind_the_metered_answerer(ddb, enabled: bool) -> None:
    from lectern.aws.container import AwsLectern
    from lectern.aws.observability import MetricsStage
    from lectern.aws.settings import AwsSettings
    from lectern.domain.conversations import ConversationStage
    from lectern.domain.feedback import TraceStage
    from lectern.domain.limits import BudgetStage

    settings = AwsSettings(
        documents_bucket="lectern-docs", table_name=TABLE, opensearch_endpoint="https://search.example.com",
        cache_enabled=enabled, cache_threshold=0.93, cache_max_entries=42,
    )  # fmt: skip
    lectern = AwsLectern(settings, retriever=FakeAnswerer().retriever)
    pipeline = lectern.answerer
    # outermost the token budget, then the metrics (so cache hits are metered), the trace, the conversation
    # (a follow-up is rewritten before the cache is asked, so the cache is keyed by the standalone question)
    kinds = [type(s) for s in pipeline.stages]
    assert kinds[:4] == [BudgetStage, MetricsStage, TraceStage, ConversationStage]
    assert kinds[4:] == ([SemanticCache] if enabled else [])
    cache = pipeline.stage(SemanticCache)
    if not enabled:
        assert cache is None
        return
    assert isinstance(cache, SemanticCache) and isinstance(cache.store, DynamoAnswerCache)
    assert cache.store.table_name == TABLE and cache.documents is lectern.documents
    assert cache.config.threshold == 0.93 and cache.config.max_entries == 42 and cache.on_lookup is not None
