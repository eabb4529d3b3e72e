"""OpenSearchIndex behaviour beyond the shared contract: failures, batching, Serverless, signing, set-up, and
engine-side hybrid fusion agreeing with the domain's fusion (all against the fake server on loopback)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import numpy as np
import pytest
from opensearchpy import OpenSearch

from lectern.adapters.aws.opensearch_index import OpenSearchIndex
from lectern.domain.errors import IndexWriteFailed
from lectern.domain.fusion import FusionConfig
from lectern.domain.models import Chunk
from lectern.domain.retrieval import RetrievalConfig, Retriever
from tests.fakes.embedder import HashEmbedder
from tests.fakes.opensearch_server import FakeOpenSearchServer, running_fake_opensearch

DIM = 4


def doc(
    tenant: str, document: str, n: int, text: str = "leave policy paragraph"
) -> tuple[list[Chunk], np.ndarray]:
    cs = [Chunk(f"{document}:{i:04d}", tenant, document, "f.txt", 1, i, f"{text} {i}") for i in range(n)]
    vs = np.tile(np.array([0.5, 0.5, 0.5, 0.5], dtype=np.float32), (n, 1))
    return cs, vs


@pytest.fixture
def server() -> Iterator[FakeOpenSearchServer]:
    with running_fake_opensearch() as srv:
        yield srv


def make(srv: FakeOpenSearchServer, **kw: object) -> OpenSearchIndex:
    idx = OpenSearchIndex(OpenSearch(hosts=[srv.url]), dimension=kw.pop("dimension", DIM), **kw)  # type: ignore[arg-type]
    idx.ensure_index()
    return idx


def test_mapping_error_is_not_retryable_and_leaves_no_chunks(server: FakeOpenSearchServer) -> None:
    idx = make(server)
    idx.replace_document("t", "d", *doc("t", "d", 3))
    assert idx.count("t", "d") == 3
    server.fake.fail_chunk_ids = {"d:0001": 400}
    with pytest.raises(IndexWriteFailed) as err:
        idx.replace_document("t", "d", *doc("t", "d", 4, "new text"))
    assert (err.value.failed, err.value.total, err.value.retryable) == (1, 4, False)
    # Never "INDEXED with missing chunks": what this call half-wrote and the old chunks are both gone.
    assert idx.count("t", "d") == 0


def test_throttled_items_are_retryable_and_a_retry_completes(server: FakeOpenSearchServer) -> None:
    idx = make(server)
    server.fake.fail_chunk_ids = {"d:0000": 429, "d:0002": 429}
    with pytest.raises(IndexWriteFailed) as err:
        idx.replace_document("t", "d", *doc("t", "d", 3))
    assert (err.value.failed, err.value.retryable) == (2, True)
    server.fake.fail_chunk_ids = {}
    idx.replace_document("t", "d", *doc("t", "d", 3))
    assert idx.count("t", "d") == 3


def test_bulk_is_split_by_bytes_and_only_the_last_batch_waits_for_refresh(
    server: FakeOpenSearchServer,
) -> None:
    idx = make(server, max_bulk_bytes=700)
    cs, vs = doc("t", "d", 7)
    batches = idx.bulk_batches(cs, vs)
    assert len(batches) > 2 and all(len(b) <= 700 for b in batches)
    assert b"".join(batches).count(b'"index"') == 7
    idx.replace_document("t", "d", cs, vs)
    bulks = [r for r in server.fake.requests if r["path"] == "/_bulk"]
    assert len(bulks) == len(batches)
    assert [r["params"].get("refresh") for r in bulks] == [None] * (len(bulks) - 1) + ["wait_for"]
    assert idx.count("t", "d") == 7


def test_serverless_writes_without_ids_refresh_or_delete_by_query() -> None:
    with running_fake_opensearch(serverless=True) as srv:
        idx = make(srv, serverless=True)
        idx.replace_document("t", "d", *doc("t", "d", 3))
        idx.replace_document("t", "d", *doc("t", "d", 2, "other words"))  # stale chunks removed by _id
        assert idx.count("t", "d") == 2
        assert [h.chunk.chunk_id for h in idx.bm25("t", "other", 10)] == ["d:0000", "d:0001"]
        assert idx.bm25("t", "policy", 10) == []
        assert idx.delete_document("t", "d") == 2 and idx.count("t") == 0
        paths = {r["path"] for r in srv.fake.requests}
        assert not any(p.endswith(("_delete_by_query", "_refresh")) for p in paths)
        assert all("refresh" not in r["params"] for r in srv.fake.requests)


def test_fake_serverless_rejects_what_a_managed_adapter_sends() -> None:
    """The Serverless fake really does refuse client ids, so the test above proves something."""
    with running_fake_opensearch(serverless=True) as srv:
        managed = make(srv)  # serverless=False on a Serverless collection
        with pytest.raises(IndexWriteFailed) as err:
            managed.replace_document("t", "d", *doc("t", "d", 2))
        assert err.value.retryable is False


@pytest.mark.parametrize(("kind", "service"), [("managed", "es"), ("serverless", "aoss")])
def test_from_settings_signs_requests_with_sigv4(
    server: FakeOpenSearchServer, kind: str, service: str
) -> None:
    idx = OpenSearchIndex.from_settings(server.url, "eu-west-1", kind, dimension=DIM)  # type: ignore[arg-type]
    assert idx.serverless is (kind == "serverless")
    idx.ensure_index()
    auth = server.fake.requests[-1]["headers"]["Authorization"]
    assert auth.startswith("AWS4-HMAC-SHA256 Credential=testing/")
    assert f"/eu-west-1/{service}/aws4_request" in auth


def test_ensure_index_is_idempotent_survives_a_race_and_checks_dimension(
    server: FakeOpenSearchServer,
) -> None:
    idxs = [OpenSearchIndex(OpenSearch(hosts=[server.url]), dimension=DIM) for _ in range(4)]
    errors: list[BaseException] = []

    def run(i: OpenSearchIndex) -> None:
        try:
            i.ensure_index()
            i.ensure_pipeline()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in idxs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert (
        sum(1 for r in server.fake.requests if r["method"] == "PUT" and r["path"] == "/lectern-chunks") >= 1
    )
    with pytest.raises(RuntimeError, match="4-dimensional"):
        OpenSearchIndex(OpenSearch(hosts=[server.url]), dimension=8).ensure_index()


def test_fake_rejects_unknown_request_shapes(server: FakeOpenSearchServer) -> None:
    from opensearchpy.exceptions import RequestError

    make(server)
    client = OpenSearch(hosts=[server.url])
    with pytest.raises(RequestError):
        client.search(index="lectern-chunks", body={"query": {"match_phrase": {"text": "x"}}})
    with pytest.raises(RequestError):
        client.search(index="lectern-chunks", body={"query": {"hybrid": {"queries": [{"match_all": {}}]}}})


CORPUS = [
    "Annual leave is twenty five days and unused leave expires in March.",
    "Expense claims need receipts and must be filed within thirty days.",
    "The security badge must be worn at all times inside the office.",
    "Remote work requires written approval from a line manager.",
    "Parental leave is sixteen weeks at full pay.",
    "Travel bookings go through the approved agency; leave requests go to HR.",
]


@pytest.mark.parametrize("method", ["min_max", "rrf"])
@pytest.mark.parametrize("query", ["how many days of annual leave", "badge office", "approval for travel"])
def test_engine_fusion_agrees_with_domain_fusion(method: str, query: str) -> None:
    emb = HashEmbedder()
    with running_fake_opensearch() as srv:
        weights = (0.3, 0.7)
        idx = OpenSearchIndex(
            OpenSearch(hosts=[srv.url]),
            dimension=emb.dimension,
            fusion=method,
            bm25_weight=weights[0],  # type: ignore[arg-type]
        )
        idx.ensure_index()
        idx.ensure_pipeline()
        cs = [Chunk(f"d:{i:04d}", "t", "d", "f.txt", 1, i, t) for i, t in enumerate(CORPUS)]
        idx.replace_document("t", "d", cs, emb.embed_documents([c.search_text for c in cs]))
        fusion = FusionConfig(method=method, weights=weights)  # type: ignore[arg-type]
        domain = Retriever(idx, emb, RetrievalConfig(fusion=fusion)).retrieve("t", query, top_k=5)
        engine = Retriever(idx, emb, RetrievalConfig(fusion=fusion, engine_fusion=True)).retrieve(
            "t", query, top_k=5
        )
        msearches = [r for r in srv.fake.requests if r["path"] == "/_msearch"]
    assert len(msearches) == 1  # engine fusion is one round trip
    assert [h.chunk.chunk_id for h in engine.hits] == [h.chunk.chunk_id for h in domain.hits]
    assert [h.score for h in engine.hits] == pytest.approx([h.score for h in domain.hits], abs=1e-9)
    assert engine.best_similarity == pytest.approx(domain.best_similarity, abs=1e-6)
    assert engine.bm25_matched == domain.bm25_matched


def test_an_index_made_before_word_boxes_gets_the_field_and_keeps_its_chunks(server: FakeOpenSearchServer) -> None:
    """The mapping is strict, so an older index (no `boxes`) would refuse every new chunk; ensure_index adds the
    field (PUT _mapping keeps every document), old chunks read back without boxes, new ones with theirs."""
    from lectern.adapters.aws.opensearch_index import BOXES_FIELD

    idx = OpenSearchIndex(OpenSearch(hosts=[server.url]), dimension=DIM)
    old_body = idx.index_body()
    del old_body["mappings"]["properties"][BOXES_FIELD]
    server.fake.create_index(idx.index_name, old_body)
    old_chunks, vs = doc("t", "old", 2)
    strict = OpenSearchIndex(OpenSearch(hosts=[server.url]), dimension=DIM)
    with pytest.raises(IndexWriteFailed):  # what happens without the migration: strict mapping refuses boxes
        strict.replace_document("t", "old", old_chunks, vs)
    for i, c in enumerate(old_chunks):  # chunks written by the older version: no boxes field at all
        server.fake.indices[idx.index_name].docs[f"t/{c.chunk_id}"] = {
            "tenant_id": "t", "document_id": "old", "chunk_id": c.chunk_id, "filename": "f.txt", "page": 1,
            "ordinal": i, "token_count": 3, "heading": "", "text": c.text, "embedding": [0.5] * DIM,
        }  # fmt: skip
    idx.ensure_index()
    assert BOXES_FIELD in server.fake.indices[idx.index_name].mapping["properties"]
    idx.ensure_index()  # again: nothing to add
    boxed = [Chunk("new:0000", "t", "new", "s.pdf", 1, 0, "North 41", boxes=((0, 5, 0.1, 0.2, 0.3, 0.25),))]
    idx.replace_document("t", "new", boxed, vs[:1])
    got = {s.chunk.chunk_id: s.chunk for s in idx.bm25("t", "paragraph north", 10)}
    assert set(got) == {"old:0000", "old:0001", "new:0000"}
    assert got["old:0000"].text == old_chunks[0].text and got["old:0000"].boxes == ()
    assert got["new:0000"].boxes == boxed[0].boxes
