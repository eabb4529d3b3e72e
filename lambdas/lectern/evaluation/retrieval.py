"""Retrieval evaluation on any BEIR-format folder (corpus.jsonl, queries.jsonl, qrels/<split>.tsv).

The corpus goes through Lectern's own chunker, embedder and index (the fast path: no extraction step, since BEIR
documents are already text). A document's score for a query is its best chunk's score. Metrics come from
pytrec_eval (trec_eval's implementation): NDCG@10, Recall@100, MRR@10 (recip_rank over the top 10).
The index is kept in the data dir and reused while the corpus and the chunking settings are unchanged.
"""

from __future__ import annotations

import hashlib
import json
import platform
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from lectern.domain.chunking import ChunkingConfig, chunk_document
from lectern.domain.models import Block, ExtractedDocument, Page
from lectern.settings import LocalSettings

EVAL_TENANT = "eval"


@dataclass
class ModeResult:
    mode: str
    ndcg_at_10: float
    recall_at_100: float
    mrr_at_10: float
    queries: int
    latency_ms_p50: float
    latency_ms_p95: float


@dataclass
class RetrievalReport:
    dataset: str
    split: str
    documents: int
    chunks: int
    results: list[ModeResult]
    settings: dict[str, object]
    machine: dict[str, object] = field(default_factory=dict)
    indexing_s: float = 0.0
    created_at: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    def table(self) -> Table:
        t = Table("mode", "NDCG@10", "Recall@100", "MRR@10", "queries", "p50 ms", "p95 ms",
                  title=f"{self.dataset} ({self.split})")
        for r in self.results:
            t.add_row(r.mode, f"{r.ndcg_at_10:.4f}", f"{r.recall_at_100:.4f}", f"{r.mrr_at_10:.4f}", str(r.queries),
                      f"{r.latency_ms_p50:.1f}", f"{r.latency_ms_p95:.1f}")
        return t

    def markdown(self) -> str:
        lines = ["| mode | NDCG@10 | Recall@100 | MRR@10 | queries | p50 ms | p95 ms |", "|---|---|---|---|---|---|---|"]
        lines += [
            f"| {r.mode} | {r.ndcg_at_10:.4f} | {r.recall_at_100:.4f} | {r.mrr_at_10:.4f} | {r.queries} | "
            f"{r.latency_ms_p50:.1f} | {r.latency_ms_p95:.1f} |"
            for r in self.results
        ]
        return "\n".join(lines)


def read_jsonl(path: Path) -> Iterator[dict]:
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    with path.open(encoding="utf-8") as f:
        for i, line in enumerate(f):
            parts = line.rstrip("\n").split("\t")
            if i == 0 and parts[0] == "query-id":
                continue
            if len(parts) >= 3:
                qrels.setdefault(parts[0], {})[parts[1]] = int(parts[2])
    return qrels


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def corpus_document(doc: dict) -> ExtractedDocument:
    blocks = []
    if doc.get("title"):
        blocks.append(Block(doc["title"], "heading", 1))
    blocks.append(Block(doc.get("text", ""), "paragraph"))
    return ExtractedDocument(pages=[Page(1, blocks)], title=doc.get("title"))


def _fingerprint(corpus: list[dict], settings: LocalSettings, model_id: str) -> str:
    h = hashlib.sha256(f"{settings.chunk_size}/{settings.chunk_overlap}/{model_id}".encode())
    for d in corpus:
        h.update(d["_id"].encode())
        h.update(str(len(d.get("text", ""))).encode())
    return h.hexdigest()[:16]


def build_index(lectern, corpus: list[dict], console: Console | None) -> float:  # type: ignore[no-untyped-def]
    """Index the corpus (one Lectern document per corpus entry, id = BEIR id). Returns seconds spent."""
    settings = lectern.settings
    marker = settings.data_dir / "eval-index.json"
    fp = _fingerprint(corpus, settings, lectern.embedder.model_id)
    if marker.exists() and json.loads(marker.read_text()).get("fingerprint") == fp:
        return float(json.loads(marker.read_text()).get("indexing_s", 0.0))
    started = time.perf_counter()
    config = ChunkingConfig(size=settings.chunk_size, overlap=settings.chunk_overlap)
    count = lectern.embedder.count_tokens
    batch_docs = 64
    with Progress(console=console, disable=console is None) as progress:
        task = progress.add_task("indexing corpus", total=len(corpus))
        for start in range(0, len(corpus), batch_docs):
            batch = corpus[start : start + batch_docs]
            per_doc = [
                chunk_document(corpus_document(d), tenant_id=EVAL_TENANT, document_id=d["_id"], filename=d["_id"],
                               config=config, count=count)
                for d in batch
            ]
            flat = [c for chunks in per_doc for c in chunks]
            vectors = lectern.embedder.embed_documents([c.search_text for c in flat])
            offset = 0
            for d, chunks in zip(batch, per_doc, strict=True):
                lectern.index.replace_document(EVAL_TENANT, d["_id"], chunks, vectors[offset : offset + len(chunks)])
                offset += len(chunks)
            progress.advance(task, len(batch))
    elapsed = time.perf_counter() - started
    marker.write_text(json.dumps({"fingerprint": fp, "indexing_s": elapsed}))
    return elapsed


def run_queries(lectern, queries: dict[str, str], mode: str, depth: int = 100) -> tuple[dict[str, dict[str, float]], list[float]]:  # type: ignore[no-untyped-def]
    run: dict[str, dict[str, float]] = {}
    latencies: list[float] = []
    for qid, text in queries.items():
        t0 = time.perf_counter()
        hits = lectern.retriever.search(EVAL_TENANT, text, top_k=depth * 3, mode=mode)
        latencies.append((time.perf_counter() - t0) * 1000)
        docs: dict[str, float] = {}
        for h in hits:
            did = h.chunk.document_id
            if did not in docs:
                docs[did] = h.score
        run[qid] = dict(list(docs.items())[:depth])
    return run, latencies


def evaluate(qrels: dict[str, dict[str, int]], run: dict[str, dict[str, float]]) -> dict[str, float]:
    import pytrec_eval

    top10 = {q: dict(sorted(d.items(), key=lambda kv: -kv[1])[:10]) for q, d in run.items()}
    full = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10", "recall.100"}).evaluate(run)
    mrr = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(top10)
    n = max(1, len(qrels))
    return {
        "ndcg_at_10": sum(v["ndcg_cut_10"] for v in full.values()) / n,
        "recall_at_100": sum(v["recall_100"] for v in full.values()) / n,
        "mrr_at_10": sum(v["recip_rank"] for v in mrr.values()) / n,
    }


def run_retrieval_eval(
    settings: LocalSettings,
    dataset: Path,
    *,
    split: str = "test",
    modes: list[str] | None = None,
    max_queries: int | None = None,
    max_docs: int | None = None,
    console: Console | None = None,
) -> RetrievalReport:
    from lectern.local.container import build_local

    for name in ("corpus.jsonl", "queries.jsonl", f"qrels/{split}.tsv"):
        if not (dataset / name).is_file():
            raise FileNotFoundError(f"{dataset} is not a BEIR folder: {name} is missing")
    qrels = read_qrels(dataset / "qrels" / f"{split}.tsv")
    all_queries = {q["_id"]: q["text"] for q in read_jsonl(dataset / "queries.jsonl")}
    qids = [q for q in qrels if q in all_queries][: max_queries or None]
    qrels = {q: qrels[q] for q in qids}
    corpus = list(read_jsonl(dataset / "corpus.jsonl"))
    if max_docs is not None:
        judged = {d for rel in qrels.values() for d in rel}
        corpus = [d for i, d in enumerate(corpus) if i < max_docs or d["_id"] in judged]
    lectern = build_local(settings)
    try:
        indexing_s = build_index(lectern, corpus, console)
        results = []
        for mode in modes or ["bm25", "vector", "hybrid"]:
            run, lat = run_queries(lectern, {q: all_queries[q] for q in qids}, mode)
            m = evaluate(qrels, run)
            results.append(ModeResult(mode, round(m["ndcg_at_10"], 4), round(m["recall_at_100"], 4),
                                      round(m["mrr_at_10"], 4), len(qids), round(_percentile(lat, 0.5), 2),
                                      round(_percentile(lat, 0.95), 2)))
        chunks = lectern.index.count(EVAL_TENANT)
    finally:
        lectern.close()
    return RetrievalReport(
        dataset=dataset.name,
        split=split,
        documents=len(corpus),
        chunks=chunks,
        results=results,
        settings={
            "chunk_size": settings.chunk_size, "chunk_overlap": settings.chunk_overlap, "fusion": settings.fusion,
            "bm25_weight": settings.bm25_weight, "candidates": settings.candidates,
            "embedder": "all-MiniLM-L6-v2-onnx-int8",
        },
        machine={"platform": platform.platform(), "python": platform.python_version(),
                 "cpus": __import__("os").cpu_count()},
        indexing_s=round(indexing_s, 1),
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
