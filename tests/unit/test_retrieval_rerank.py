"""Second-stage reranking: the reranker sees the first stage's best `rerank_depth` hits and decides the order."""

from __future__ import annotations

import numpy as np

from lectern.adapters.local.sqlite_db import SqliteDatabase
from lectern.adapters.local.sqlite_index import SqliteSearchIndex
from lectern.domain.models import Chunk
from lectern.domain.retrieval import RetrievalConfig, Retriever
from tests.fakes.embedder import HashEmbedder


class ReverseReranker:
    """Puts the first stage's order upside down, and records what it was asked."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str], int]] = []

    def rerank(self, query, texts, top_n):
        self.calls.append((query, list(texts), top_n))
        order = list(range(len(texts)))[::-1][:top_n]
        return [(i, 1.0 - rank / 10) for rank, i in enumerate(order)]


def _index(tmp_path):
    emb = HashEmbedder()
    index = SqliteSearchIndex(SqliteDatabase(tmp_path / "x.db"), emb.dimension, emb.model_id)
    texts = [f"apple report number {i} " + "filler " * i for i in range(8)]
    chunks = [Chunk(f"c{i}", "t", "d" * 32, "f.txt", 1, i, t) for i, t in enumerate(texts)]
    index.replace_document("t", "d" * 32, chunks, np.vstack([emb.embed_query(t) for t in texts]))
    return index, emb


def test_reranker_reorders_the_first_stage_and_scores_come_from_it(tmp_path):
    index, emb = _index(tmp_path)
    plain = Retriever(index, emb, RetrievalConfig(rerank_depth=6)).search("t", "apple report", top_k=6, mode="bm25")
    reranker = ReverseReranker()
    reranked = Retriever(index, emb, RetrievalConfig(rerank_depth=6), reranker=reranker).retrieve(
        "t", "apple report", top_k=3, mode="bm25"
    )
    assert [h.chunk.chunk_id for h in reranked.hits] == [h.chunk.chunk_id for h in plain[::-1][:3]]
    assert [h.score for h in reranked.hits] == [1.0, 0.9, 0.8]
    query, texts, top_n = reranker.calls[0]
    assert (query, len(texts), top_n) == ("apple report", 6, 3)
    assert reranked.bm25_matched


def test_no_hits_means_no_rerank_call(tmp_path):
    index, emb = _index(tmp_path)
    reranker = ReverseReranker()
    out = Retriever(index, emb, reranker=reranker).retrieve("other-tenant", "apple", top_k=3, mode="bm25")
    assert out.hits == [] and reranker.calls == []
