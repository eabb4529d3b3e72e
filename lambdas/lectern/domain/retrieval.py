"""Retrieval: BM25, vector and hybrid search over the `SearchIndex` port."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from lectern.domain.errors import ValidationFailed
from lectern.domain.fusion import FusionConfig, fuse
from lectern.domain.models import ScoredChunk, SearchFilters
from lectern.domain.ports import Embedder, NativeHybridIndex, SearchIndex

SearchMode = Literal["hybrid", "bm25", "vector"]
MAX_QUERY_CHARS = 2000


@dataclass(frozen=True)
class RetrievalConfig:
    candidates: int = 100  # per sub-query, as OpenSearch recommends (100-200) for the normalization processor
    fusion: FusionConfig = field(default_factory=FusionConfig)
    # Let an index that fuses natively (NativeHybridIndex: OpenSearch's hybrid query) do mode="hybrid" in one
    # round trip. Its own pipeline's weights then apply, not `fusion`; indexes without it keep domain fusion.
    engine_fusion: bool = False
    # With a reranker, the first stage's best `rerank_depth` hits are re-ordered by it (a second, costlier stage).
    rerank_depth: int = 20


@dataclass(frozen=True)
class RetrievalResult:
    hits: list[ScoredChunk]
    best_similarity: float  # highest cosine similarity among vector candidates (-1 when none ran)
    bm25_matched: bool


class Reranker(Protocol):
    """A second-stage scorer (Bedrock Rerank on AWS): (index into `texts`, relevance) of the best `top_n`."""

    def rerank(self, query: str, texts: Sequence[str], top_n: int) -> list[tuple[int, float]]: ...


class PassageGuard(Protocol):
    def check_passages(self, tenant_id: str, passages: list[ScoredChunk]) -> list[ScoredChunk]: ...


class GuardedSearch:
    """Search results under the answers' output policy (POST /v1/search, `lectern search`): every route that
    returns stored text applies the same passage check as an answer's context — PII masked (a BLOCK entity such
    as an SSN or a card number masked too, never returned raw), and a passage the injection detector flags
    dropped or its instructions redacted, as the policy's `passage_action` says. Answers' citations and
    best_passages already come from the checked passages. `enabled=False` (LECTERN_MASK_SEARCH_RESULTS=false)
    returns the stored text as it is, for an owner searching their own documents."""

    def __init__(self, retriever: Retriever, guard: PassageGuard | None, *, enabled: bool = True) -> None:
        self.retriever = retriever
        self.guard = guard
        self.enabled = enabled

    def search(
        self,
        tenant_id: str,
        query: str,
        *,
        top_k: int = 10,
        mode: SearchMode = "hybrid",
        filters: SearchFilters | None = None,
    ) -> list[ScoredChunk]:
        hits = self.retriever.search(tenant_id, query, top_k=top_k, mode=mode, filters=filters)
        if self.guard is None or not self.enabled or not hits:
            return hits
        return self.guard.check_passages(tenant_id, hits)


class Retriever:
    def __init__(
        self,
        index: SearchIndex,
        embedder: Embedder,
        config: RetrievalConfig | None = None,
        reranker: Reranker | None = None,
    ) -> None:
        self.index = index
        self.embedder = embedder
        self.config = config or RetrievalConfig()
        self.reranker = reranker

    def retrieve(
        self,
        tenant_id: str,
        query: str,
        *,
        top_k: int = 10,
        mode: SearchMode = "hybrid",
        filters: SearchFilters | None = None,
    ) -> RetrievalResult:
        if self.reranker is None:
            return self._first_stage(tenant_id, query, top_k=top_k, mode=mode, filters=filters)
        depth = max(top_k, self.config.rerank_depth)
        first = self._first_stage(tenant_id, query, top_k=depth, mode=mode, filters=filters)
        if not first.hits:
            return first
        order = self.reranker.rerank(query.strip(), [h.chunk.search_text for h in first.hits], top_k)
        hits = [ScoredChunk(first.hits[i].chunk, score) for i, score in order if 0 <= i < len(first.hits)]
        return RetrievalResult(hits=hits, best_similarity=first.best_similarity, bm25_matched=first.bm25_matched)

    def _first_stage(
        self,
        tenant_id: str,
        query: str,
        *,
        top_k: int,
        mode: SearchMode,
        filters: SearchFilters | None,
    ) -> RetrievalResult:
        query = query.strip()
        if not query:
            raise ValidationFailed("The query is empty.")
        if len(query) > MAX_QUERY_CHARS:
            raise ValidationFailed(f"The query is {len(query)} characters; the limit is {MAX_QUERY_CHARS}.")
        n = max(self.config.candidates, top_k)
        if mode == "hybrid" and self.config.engine_fusion and isinstance(self.index, NativeHybridIndex):
            hits, best, matched = self.index.hybrid(
                tenant_id, query, self.embedder.embed_query(query), top_k, filters, n
            )
            return RetrievalResult(hits=hits, best_similarity=best, bm25_matched=matched)
        lexical: list[ScoredChunk] = []
        semantic: list[ScoredChunk] = []
        if mode in ("hybrid", "bm25"):
            lexical = self.index.bm25(tenant_id, query, n, filters)
        if mode in ("hybrid", "vector"):
            semantic = self.index.knn(tenant_id, self.embedder.embed_query(query), n, filters)
        best = max((h.score for h in semantic), default=-1.0)
        if mode == "bm25":
            hits = lexical[:top_k]
        elif mode == "vector":
            hits = semantic[:top_k]
        else:
            hits = self._fuse(lexical, semantic, top_k)
        return RetrievalResult(hits=hits, best_similarity=best, bm25_matched=bool(lexical))

    def _fuse(self, lexical: list[ScoredChunk], semantic: list[ScoredChunk], top_k: int) -> list[ScoredChunk]:
        chunks = {h.chunk.chunk_id: h.chunk for h in (*lexical, *semantic)}
        fused = fuse(
            [{h.chunk.chunk_id: h.score for h in lexical}, {h.chunk.chunk_id: h.score for h in semantic}],
            self.config.fusion,
        )
        return [ScoredChunk(chunks[str(cid)], score) for cid, score in fused[:top_k]]

    def search(
        self,
        tenant_id: str,
        query: str,
        *,
        top_k: int = 10,
        mode: SearchMode = "hybrid",
        filters: SearchFilters | None = None,
    ) -> list[ScoredChunk]:
        return self.retrieve(tenant_id, query, top_k=top_k, mode=mode, filters=filters).hits
