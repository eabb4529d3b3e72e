"""One behaviour suite for every `SearchIndex`: the local SQLite index, the OpenSearch adapter against the
fake server, and the OpenSearch adapter against a real cluster when `OPENSEARCH_URL` is set (e.g.
`OPENSEARCH_URL=http://localhost:9200` for a local OpenSearch 2.19+ container without security)."""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from lectern.domain.models import Chunk, SearchFilters
from lectern.domain.ports import NativeHybridIndex, SearchIndex

DIM = 8


def unit(*components: float) -> np.ndarray:
    v = np.zeros(DIM, dtype=np.float32)
    v[: len(components)] = components
    return v / np.linalg.norm(v)


def make_chunks(tenant: str, doc: str, texts: list[str], start: int = 0) -> list[Chunk]:
    return [
        Chunk(f"{doc}:{i:04d}", tenant, doc, f"{doc}.txt", 1 + i // 2, i, t, token_count=len(t.split()))
        for i, t in enumerate(texts, start=start)
    ]


def vectors_for(n: int, offset: int = 0) -> np.ndarray:
    if n == 0:
        return np.zeros((0, DIM), dtype=np.float32)
    return np.stack([unit(*([0.0] * ((i + offset) % DIM) + [1.0])) for i in range(n)])


# A real cluster joins only when one is named (OPENSEARCH_URL): none can run here (no OpenSearch package on the
# registries this project reaches), so the AWS side of the contract runs against the in-repo fake that speaks
# OpenSearch's HTTP API; docs/architecture.md says so.
BACKENDS = ["sqlite", "opensearch-fake"] + (["opensearch-real"] if os.environ.get("OPENSEARCH_URL") else [])


@pytest.fixture(params=BACKENDS)
def index(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SearchIndex]:
    if request.param == "sqlite":
        from lectern.adapters.local.sqlite_db import SqliteDatabase
        from lectern.adapters.local.sqlite_index import SqliteSearchIndex

        db = SqliteDatabase(tmp_path / "index.db")
        yield SqliteSearchIndex(db, DIM, "contract-test")
        db.close()
        return
    from opensearchpy import OpenSearch

    from lectern.adapters.aws.opensearch_index import OpenSearchIndex

    if request.param == "opensearch-fake":
        from tests.fakes.opensearch_server import running_fake_opensearch

        with running_fake_opensearch() as srv:
            idx = OpenSearchIndex(OpenSearch(hosts=[srv.url]), dimension=DIM)
            idx.ensure_index()
            idx.ensure_pipeline()
            yield idx
        return
    url = os.environ["OPENSEARCH_URL"]
    name = f"lectern-contract-{uuid.uuid4().hex[:8]}"
    client = OpenSearch(hosts=[url], timeout=30)
    idx = OpenSearchIndex(client, index_name=name, pipeline_name=name, dimension=DIM)
    idx.ensure_index()
    idx.ensure_pipeline()
    yield idx
    client.indices.delete(index=name, ignore=[404])
    client.search_pipeline.delete(id=name, ignore=[404])


TEXTS = [
    "The annual leave allowance is twenty five days per year.",
    "Expense claims must be filed within thirty days with receipts.",
    "The security badge must be worn visibly at all times.",
    "Remote work requires approval from a line manager.",
]


def put(index: SearchIndex, tenant: str, doc: str, texts: list[str] = TEXTS, offset: int = 0) -> list[Chunk]:
    cs = make_chunks(tenant, doc, texts)
    index.replace_document(tenant, doc, cs, vectors_for(len(cs), offset))
    return cs


def ids(hits: list) -> list[str]:
    return [h.chunk.chunk_id for h in hits]


def test_replace_is_idempotent(index: SearchIndex) -> None:
    put(index, "t1", "d1")
    first = ids(index.bm25("t1", "expense receipts", 10))
    put(index, "t1", "d1")
    assert index.count("t1", "d1") == len(TEXTS)
    assert ids(index.bm25("t1", "expense receipts", 10)) == first == ["d1:0001"]


def test_replace_removes_stale_chunks(index: SearchIndex) -> None:
    put(index, "t1", "d1")
    put(index, "t1", "d1", ["The security badge must be worn visibly.", "Parking is free on weekends."])
    assert index.count("t1", "d1") == 2
    assert index.bm25("t1", "expense receipts", 10) == []
    hits = index.bm25("t1", "parking weekends", 10)
    assert ids(hits) == ["d1:0001"] and hits[0].chunk.text == "Parking is free on weekends."
    put(index, "t1", "d1", [])
    assert index.count("t1", "d1") == 0


def test_delete_returns_count_and_removes_only_that_document(index: SearchIndex) -> None:
    put(index, "t1", "d1")
    put(index, "t1", "d2", TEXTS[:2])
    assert index.delete_document("t1", "d1") == len(TEXTS)
    assert index.count("t1", "d1") == 0
    assert index.count("t1", "d2") == 2
    assert index.delete_document("t1", "d1") == 0
    assert {h.chunk.document_id for h in index.bm25("t1", "expense", 10)} == {"d2"}


def test_tenant_isolation_on_every_call(index: SearchIndex) -> None:
    put(index, "t1", "shared")
    put(index, "t2", "shared", ["Expense claims in tenant two are different."])
    assert index.count("t1") == len(TEXTS) and index.count("t2") == 1
    assert index.count("t3") == 0
    assert {h.chunk.tenant_id for h in index.bm25("t2", "expense claims", 10)} == {"t2"}
    assert {h.chunk.tenant_id for h in index.knn("t2", vectors_for(1)[0], 10)} == {"t2"}
    assert index.bm25("t3", "expense", 10) == [] and index.knn("t3", vectors_for(1)[0], 10) == []
    assert index.delete_document("t2", "shared") == 1
    assert index.count("t1", "shared") == len(TEXTS)


def test_bm25_ranks_the_exact_term_first(index: SearchIndex) -> None:
    put(index, "t1", "d1")
    hits = index.bm25("t1", "badge", 10)
    assert ids(hits)[0] == "d1:0002"
    assert hits[0].score > 0
    assert all(a.score >= b.score for a, b in itertools.pairwise(hits))
    assert index.bm25("t1", "zeppelin", 10) == []


def test_knn_returns_cosine_and_identical_vector_is_one(index: SearchIndex) -> None:
    cs = put(index, "t1", "d1")
    vecs = vectors_for(len(cs))
    hits = index.knn("t1", vecs[2], 10)
    assert ids(hits)[0] == "d1:0002"
    assert hits[0].score == pytest.approx(1.0, abs=1e-4)
    assert all(-1.0 - 1e-6 <= h.score <= 1.0 + 1e-6 for h in hits)
    opposite = index.knn("t1", -vecs[2], 10)
    assert opposite[-1].chunk.chunk_id == "d1:0002"
    assert opposite[-1].score == pytest.approx(-1.0, abs=1e-4)
    assert len(index.knn("t1", vecs[0], 2)) == 2


def test_filters_by_document_id_and_filename(index: SearchIndex) -> None:
    put(index, "t1", "d1")
    put(index, "t1", "d2")
    only_d2 = SearchFilters(document_ids=("d2",))
    assert {h.chunk.document_id for h in index.bm25("t1", "expense", 10, only_d2)} == {"d2"}
    assert {h.chunk.document_id for h in index.knn("t1", vectors_for(1)[0], 10, only_d2)} == {"d2"}
    by_name = SearchFilters(filenames=("d1.txt",))
    assert {h.chunk.document_id for h in index.knn("t1", vectors_for(1)[0], 10, by_name)} == {"d1"}


def test_count(index: SearchIndex) -> None:
    assert index.count("t1") == 0
    put(index, "t1", "d1")
    put(index, "t1", "d2", TEXTS[:3])
    assert (index.count("t1"), index.count("t1", "d1"), index.count("t1", "d2")) == (7, 4, 3)


def test_native_hybrid_when_offered(index: SearchIndex) -> None:
    if not isinstance(index, NativeHybridIndex):
        assert not hasattr(index, "hybrid")  # the local index fuses in the domain instead
        return
    cs = put(index, "t1", "d1")
    put(index, "t2", "d1", ["badge badge badge"])
    hits, best, matched = index.hybrid("t1", "security badge", vectors_for(len(cs))[2], 3)
    assert ids(hits)[0] == "d1:0002" and len(hits) == 3
    assert {h.chunk.tenant_id for h in hits} == {"t1"}
    assert best == pytest.approx(1.0, abs=1e-4) and matched is True
    _, _, matched = index.hybrid("t1", "zeppelin", vectors_for(1)[0], 3)
    assert matched is False
