"""The alternatives a user would pick for local hybrid RAG, run on the same chunks and the same vectors.

* LangChain: `EnsembleRetriever` (weighted RRF, weights 0.5/0.5, c=60 — its defaults) over `BM25Retriever`
  (rank_bm25 with LangChain's default preprocessing, a whitespace split) and a FAISS vector store. FAISS is
  built
  with `FAISS.from_embeddings` from the very vectors Lectern stored for those chunks, and it embeds queries
  through Lectern's ONNX embedder wrapped as a LangChain `Embeddings`: same embeddings, no second embedding
  pass.
* rank_bm25 alone (`BM25Okapi`, lower-cased word tokens) and bm25s alone (its recipe: English stop words and
  the Snowball stemmer).
Every system indexes Lectern's chunks (search text = heading trail + text) and ranks documents by their best
chunk, as Lectern does, so the comparison is of ranking, not of chunking. Quality is measured at depth
`COMPONENT_DEPTH` chunks, latency with k=10 on the same queries as Lectern's latency.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import numpy as np
from rich.console import Console

from lectern.evaluation.retrieval import (
    COMPONENT_DEPTH,
    EVAL_TENANT,
    BeirData,
    ModeResult,
    document_run,
    evaluate,
    percentile,
)

_WORDS = re.compile(r"\w+")


def _tokens(text: str) -> list[str]:
    return _WORDS.findall(text.lower())


def _version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "missing"


def load_chunks(lectern: Any) -> tuple[list[str], list[str], list[str], np.ndarray]:
    """(chunk ids, document ids, search texts, vectors) of the evaluation tenant, from Lectern's own index."""
    rows = (
        lectern.index.db.connection()
        .execute(
            "SELECT chunk_id, document_id, heading, text, vector FROM chunks WHERE tenant_id = ?"
            " ORDER BY rowid",
            (EVAL_TENANT,),
        )
        .fetchall()
    )
    ids = [r[0] for r in rows]
    docs = [r[1] for r in rows]
    texts = [f"{r[2]}\n{r[3]}" if r[2] else r[3] for r in rows]
    dim = lectern.embedder.dimension
    vectors = np.frombuffer(b"".join(r[4] for r in rows), dtype=np.float32).reshape(len(rows), dim)
    return ids, docs, texts, vectors


def _lc_embeddings(embedder: Any) -> Any:
    from langchain_core.embeddings import Embeddings

    class LecternEmbeddings(Embeddings):
        """Lectern's ONNX MiniLM behind LangChain's Embeddings interface."""

        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            return embedder.embed_documents(texts).tolist()

        def embed_query(self, text: str) -> list[float]:
            return embedder.embed_query(text).tolist()

    return LecternEmbeddings()


Search = Callable[[str, int], list[str]]  # (query, k) -> document ids of the ranked chunks


def _langchain(
    lectern: Any, ids: list[str], docs: list[str], texts: list[str], vectors: np.ndarray
) -> dict[str, Search]:
    from langchain_classic.retrievers import EnsembleRetriever
    from langchain_community.retrievers import BM25Retriever
    from langchain_community.vectorstores import FAISS

    metas = [{"doc_id": d, "chunk_id": c} for c, d in zip(ids, docs, strict=True)]
    bm25 = BM25Retriever.from_texts(texts, metadatas=metas)
    faiss = FAISS.from_embeddings(
        list(zip(texts, vectors.tolist(), strict=True)), _lc_embeddings(lectern.embedder), metadatas=metas
    )

    def bm25_search(q: str, k: int) -> list[str]:
        bm25.k = k
        return [d.metadata["doc_id"] for d in bm25.invoke(q)]

    def faiss_search(q: str, k: int) -> list[str]:
        return [d.metadata["doc_id"] for d in faiss.similarity_search(q, k=k)]

    ensembles: dict[int, Any] = {}

    def ensemble_search(q: str, k: int) -> list[str]:
        bm25.k = k
        if k not in ensembles:
            ensembles[k] = EnsembleRetriever(
                retrievers=[bm25, faiss.as_retriever(search_kwargs={"k": k})], weights=[0.5, 0.5]
            )
        return [d.metadata["doc_id"] for d in ensembles[k].invoke(q)]

    return {"bm25": bm25_search, "faiss": faiss_search, "ensemble": ensemble_search}


def _rank_bm25(docs: list[str], texts: list[str]) -> Search:
    from rank_bm25 import BM25Okapi

    bm25 = BM25Okapi([_tokens(t) for t in texts])

    def search(q: str, k: int) -> list[str]:
        scores = bm25.get_scores(_tokens(q))
        top = np.argsort(-scores, kind="stable")[:k]
        return [docs[i] for i in top if scores[i] > 0]

    return search


def _bm25s(docs: list[str], texts: list[str]) -> Search:
    import bm25s
    import Stemmer

    stemmer = Stemmer.Stemmer("english")
    retriever = bm25s.BM25()
    retriever.index(
        bm25s.tokenize(texts, stopwords="en", stemmer=stemmer, show_progress=False), show_progress=False
    )

    def search(q: str, k: int) -> list[str]:
        tokens = bm25s.tokenize([q], stopwords="en", stemmer=stemmer, show_progress=False)
        results, scores = retriever.retrieve(tokens, k=min(k, len(docs)), show_progress=False, n_threads=1)
        return [docs[int(i)] for i, s in zip(results[0], scores[0], strict=True) if s > 0]

    return search


def run_peers(
    lectern: Any, data: BeirData, timed: Sequence[str], console: Console | None = None
) -> tuple[list[ModeResult], dict[str, object]]:
    ids, docs, texts, vectors = load_chunks(lectern)
    systems: list[tuple[str, str, Search, str]] = []
    build: dict[str, float] = {}
    t0 = time.perf_counter()
    lc = _langchain(lectern, ids, docs, texts, vectors)
    build["langchain (BM25Retriever + FAISS from stored vectors)"] = round(time.perf_counter() - t0, 2)
    systems += [
        ("langchain", "bm25", lc["bm25"], "BM25Retriever (rank_bm25, whitespace split)"),
        ("langchain", "faiss", lc["faiss"], "FAISS IndexFlatL2, same vectors"),
        ("langchain", "ensemble", lc["ensemble"], "EnsembleRetriever, weighted RRF 0.5/0.5, c=60"),
    ]
    t0 = time.perf_counter()
    systems.append(("rank_bm25", "bm25", _rank_bm25(docs, texts), "BM25Okapi, lower-cased \\w+ tokens"))
    build["rank_bm25"] = round(time.perf_counter() - t0, 2)
    t0 = time.perf_counter()
    systems.append(("bm25s", "bm25", _bm25s(docs, texts), "bm25s, English stop words + Snowball stemmer"))
    build["bm25s"] = round(time.perf_counter() - t0, 2)

    results = []
    for system, mode, search, note in systems:
        if console:
            console.print(f"[dim]peer {system}/{mode}[/dim]")
        run = {
            qid: document_run(("", d, 0.0) for d in search(q, COMPONENT_DEPTH))
            for qid, q in data.queries.items()
        }
        m = evaluate(data.qrels, run)
        search(timed[0], 10)
        lat = []
        for q in timed:
            t = time.perf_counter()
            search(q, 10)
            lat.append((time.perf_counter() - t) * 1000)
        results.append(
            ModeResult(
                system,
                mode,
                round(m["ndcg_at_10"], 4),
                round(m["recall_at_100"], 4),
                round(m["mrr_at_10"], 4),
                len(data.queries),
                round(percentile(lat, 0.5), 2),
                round(percentile(lat, 0.95), 2),
                round(percentile(lat, 0.99), 2),
                len(lat),
                note,
            )
        )
    info: dict[str, object] = {
        "build_s": build,
        "versions": {
            p: _version(p)
            for p in (
                "langchain-core",
                "langchain-community",
                "langchain-classic",
                "faiss-cpu",
                "rank-bm25",
                "bm25s",
            )
        },
        "chunks": len(ids),
    }
    return results, info
