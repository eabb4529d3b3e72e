"""Retrieval evaluation on any BEIR-format folder (corpus.jsonl, queries.jsonl, qrels/<split>.tsv).

The corpus goes through Lectern's own chunker, embedder and index (the fast path: no extraction step, since
BEIR
documents are already text; a title becomes a heading block, as a document's heading would). A document's
score
for a query is its best chunk's score. Metrics come from pytrec_eval (trec_eval's implementation): NDCG@10,
Recall@100, MRR@10 (recip_rank over the top 10).

How each mode is ranked:
* for every query the index is asked once for its BM25 and its k-NN chunk lists (`index.bm25`/`index.knn`, the
  calls the `Retriever` makes), deep enough (`COMPONENT_DEPTH` chunks) that bm25 and vector rank >= 100
  documents;
* hybrid fuses the first `candidates` chunks of each list with `lectern.domain.fusion.fuse` and the configured
  `FusionConfig` — the computation `Retriever` performs (a unit test checks that the top 10 agree);
* latency is measured separately, on the product call itself: `Retriever.search(query, top_k=10, mode)`.
Because the lists are kept, the fusion settings can be swept offline (`sweep`) without querying again.
The index is kept in the data dir and reused while the corpus and the chunking settings are unchanged.
"""

from __future__ import annotations

import hashlib
import json
import statistics
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from lectern.domain.chunking import ChunkingConfig, chunk_document
from lectern.domain.fusion import FusionConfig, FusionMethod, fuse
from lectern.domain.models import Block, ExtractedDocument, Page
from lectern.evaluation.machine import command_line, loadavg, machine_info, now_iso, peak_rss_mib
from lectern.settings import LocalSettings

EVAL_TENANT = "eval"
COMPONENT_DEPTH = 600  # chunks asked of bm25 / k-NN per query: enough to rank >= 100 distinct documents
RUN_DEPTH = 100  # documents per query handed to pytrec_eval
CORPUS_FORMAT = "title-as-heading-v1"

Ranked = list[tuple[str, str, float]]  # (chunk_id, document_id, score), best first


# -- data --------------------------------------------------------------------------------------------------
def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
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


@dataclass
class BeirData:
    name: str
    corpus: list[dict[str, Any]]
    queries: dict[str, str]  # only the queries that have judgements in the chosen split
    qrels: dict[str, dict[str, int]]


def load_beir(
    dataset: Path, split: str = "test", *, max_queries: int | None = None, max_docs: int | None = None
) -> BeirData:
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
    return BeirData(dataset.name, corpus, {q: all_queries[q] for q in qids}, qrels)


def corpus_document(doc: dict[str, Any]) -> ExtractedDocument:
    blocks = []
    if doc.get("title"):
        blocks.append(Block(doc["title"], "heading", 1))
    blocks.append(Block(doc.get("text", ""), "paragraph"))
    return ExtractedDocument(pages=[Page(1, blocks)], title=doc.get("title"))


# -- indexing ----------------------------------------------------------------------------------------------
def _fingerprint(corpus: Sequence[dict[str, Any]], settings: LocalSettings, model_id: str) -> str:
    h = hashlib.sha256(f"{CORPUS_FORMAT}/{settings.chunk_size}/{settings.chunk_overlap}/{model_id}".encode())
    for d in corpus:
        h.update(d["_id"].encode())
        h.update(hashlib.sha256((d.get("title", "") + "\x1f" + d.get("text", "")).encode()).digest())
    return h.hexdigest()[:16]


def build_index(lectern: Any, corpus: list[dict[str, Any]], console: Console | None) -> tuple[float, bool]:
    """Index the corpus (one Lectern document per corpus entry, id = BEIR id).

    Returns (seconds the indexing took, whether an existing index was reused).
    """
    settings = lectern.settings
    marker = settings.data_dir / "eval-index.json"
    fp = _fingerprint(corpus, settings, lectern.embedder.model_id)
    if marker.exists():
        saved = json.loads(marker.read_text())
        if saved.get("fingerprint") == fp and lectern.index.count(EVAL_TENANT) > 0:
            return float(saved.get("indexing_s", 0.0)), True
    # Documents of an earlier, different corpus go; the others are replaced one by one below.
    wanted = {d["_id"] for d in corpus}
    present = lectern.index.db.connection().execute(
        "SELECT DISTINCT document_id FROM chunks WHERE tenant_id = ?", (EVAL_TENANT,)
    )
    for (did,) in present.fetchall():
        if did not in wanted:
            lectern.index.delete_document(EVAL_TENANT, did)
    started = time.perf_counter()
    config = ChunkingConfig(size=settings.chunk_size, overlap=settings.chunk_overlap)
    count = lectern.embedder.count_tokens
    batch_docs = 64
    with Progress(console=console, disable=console is None) as progress:
        task = progress.add_task("indexing corpus", total=len(corpus))
        for start in range(0, len(corpus), batch_docs):
            batch = corpus[start : start + batch_docs]
            per_doc = [
                chunk_document(
                    corpus_document(d),
                    tenant_id=EVAL_TENANT,
                    document_id=d["_id"],
                    filename=d["_id"],
                    config=config,
                    count=count,
                )
                for d in batch
            ]
            flat = [c for chunks in per_doc for c in chunks]
            vectors = lectern.embedder.embed_documents([c.search_text for c in flat])
            offset = 0
            for d, chunks in zip(batch, per_doc, strict=True):
                lectern.index.replace_document(
                    EVAL_TENANT, d["_id"], chunks, vectors[offset : offset + len(chunks)]
                )
                offset += len(chunks)
            progress.advance(task, len(batch))
    elapsed = time.perf_counter() - started
    marker.write_text(json.dumps({"fingerprint": fp, "indexing_s": elapsed}))
    return elapsed, False


# -- ranking -----------------------------------------------------------------------------------------------
@dataclass
class QueryCandidates:
    lexical: Ranked
    semantic: Ranked


def collect_candidates(
    lectern: Any, queries: dict[str, str], depth: int = COMPONENT_DEPTH, console: Console | None = None
) -> dict[str, QueryCandidates]:
    """Each query's BM25 and k-NN chunk lists, best first, exactly as the index returns them to the
    Retriever."""
    out: dict[str, QueryCandidates] = {}
    with Progress(console=console, disable=console is None, transient=True) as progress:
        task = progress.add_task("querying", total=len(queries))
        for qid, text in queries.items():
            q = text.strip()
            lex = lectern.index.bm25(EVAL_TENANT, q, depth)
            sem = lectern.index.knn(EVAL_TENANT, lectern.embedder.embed_query(q), depth)
            out[qid] = QueryCandidates(
                [(h.chunk.chunk_id, h.chunk.document_id, h.score) for h in lex],
                [(h.chunk.chunk_id, h.chunk.document_id, h.score) for h in sem],
            )
            progress.advance(task)
    return out


def hybrid_ranking(c: QueryCandidates, fusion: FusionConfig, candidates: int) -> Ranked:
    """The Retriever's hybrid ranking over the first `candidates` chunks of each sub-query."""
    lex, sem = c.lexical[:candidates], c.semantic[:candidates]
    doc_of = {cid: did for cid, did, _ in (*lex, *sem)}
    fused = fuse([{cid: s for cid, _, s in lex}, {cid: s for cid, _, s in sem}], fusion)
    return [(str(cid), doc_of[str(cid)], s) for cid, s in fused]


def document_run(ranked: Iterable[tuple[str, str, float]], depth: int = RUN_DEPTH) -> dict[str, float]:
    """Documents in order of their best chunk. Scores are rank-based so pytrec_eval keeps our order
    exactly."""
    seen: dict[str, None] = {}
    for _, did, _ in ranked:
        seen.setdefault(did, None)
        if len(seen) == depth:
            break
    return {did: float(depth - i) for i, did in enumerate(seen)}


def mode_runs(
    cands: dict[str, QueryCandidates], fusion: FusionConfig, candidates: int, modes: Sequence[str]
) -> dict[str, dict[str, dict[str, float]]]:
    runs: dict[str, dict[str, dict[str, float]]] = {}
    for mode in modes:
        if mode == "bm25":
            runs[mode] = {q: document_run(c.lexical) for q, c in cands.items()}
        elif mode == "vector":
            runs[mode] = {q: document_run(c.semantic) for q, c in cands.items()}
        elif mode == "hybrid":
            runs[mode] = {q: document_run(hybrid_ranking(c, fusion, candidates)) for q, c in cands.items()}
        else:
            raise ValueError(f"unknown mode {mode!r}")
    return runs


def evaluate(qrels: dict[str, dict[str, int]], run: dict[str, dict[str, float]]) -> dict[str, float]:
    """Mean NDCG@10, Recall@100 and MRR@10 over every judged query (a query with no results scores 0)."""
    import pytrec_eval

    run = {q: r for q, r in run.items() if q in qrels and r}
    top10 = {q: dict(sorted(d.items(), key=lambda kv: -kv[1])[:10]) for q, d in run.items()}
    full = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10", "recall.100"}).evaluate(run)
    mrr = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(top10)
    n = max(1, len(qrels))
    return {
        "ndcg_at_10": sum(v["ndcg_cut_10"] for v in full.values()) / n,
        "recall_at_100": sum(v["recall_100"] for v in full.values()) / n,
        "mrr_at_10": sum(v["recip_rank"] for v in mrr.values()) / n,
    }


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return 0.0
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def time_product_search(
    lectern: Any, queries: dict[str, str], mode: str, top_k: int = 10
) -> tuple[list[float], dict[str, list[str]]]:
    """Milliseconds per `Retriever.search` call (query embedding included), after one warm-up call, and the
    chunk ids each call returned (to check that the offline ranking agrees with the product's)."""
    first = next(iter(queries.values()))
    lectern.retriever.search(EVAL_TENANT, first, top_k=top_k, mode=mode)
    latencies, returned = [], {}
    for qid, q in queries.items():
        t0 = time.perf_counter()
        hits = lectern.retriever.search(EVAL_TENANT, q, top_k=top_k, mode=mode)
        latencies.append((time.perf_counter() - t0) * 1000)
        returned[qid] = [h.chunk.chunk_id for h in hits]
    return latencies, returned


def agreement(
    returned: dict[str, list[str]], cands: dict[str, QueryCandidates], mode: str, fusion: FusionConfig, n: int
) -> float:
    """Share of queries whose product top-k chunk list equals the offline ranking's (ties may reorder a
    few)."""
    same = 0
    for qid, ids in returned.items():
        c = cands[qid]
        ranked = (
            c.lexical if mode == "bm25" else c.semantic if mode == "vector" else hybrid_ranking(c, fusion, n)
        )
        same += [cid for cid, _, _ in ranked[: len(ids)]] == ids
    return round(same / max(1, len(returned)), 4)


# -- tuning ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FusionChoice:
    method: FusionMethod
    bm25_weight: float
    candidates: int
    rank_constant: int = 60

    def config(self) -> FusionConfig:
        w = round(self.bm25_weight, 6)
        return FusionConfig(
            method=self.method, weights=(w, round(1.0 - w, 6)), rank_constant=self.rank_constant
        )


def default_grid() -> list[FusionChoice]:
    grid = [FusionChoice("min_max", round(w / 20, 2), c) for c in (50, 100, 200, 300) for w in range(0, 21)]
    grid += [FusionChoice("rrf", 0.5, c, k) for c in (50, 100, 200, 300) for k in (10, 30, 60)]
    return grid


def sweep(
    cands: dict[str, QueryCandidates], qrels: dict[str, dict[str, int]], grid: Sequence[FusionChoice]
) -> list[dict[str, Any]]:
    rows = []
    for choice in grid:
        run = {
            q: document_run(hybrid_ranking(c, choice.config(), choice.candidates)) for q, c in cands.items()
        }
        m = evaluate(qrels, run)
        rows.append({**asdict(choice), **{k: round(v, 4) for k, v in m.items()}})
    return rows


# -- report ------------------------------------------------------------------------------------------------
@dataclass
class ModeResult:
    system: str
    mode: str
    ndcg_at_10: float
    recall_at_100: float
    mrr_at_10: float
    queries: int
    latency_ms_p50: float
    latency_ms_p95: float
    latency_ms_p99: float
    latency_queries: int
    note: str = ""
    product_agreement: float | None = None


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
    index_reused: bool = False
    peak_rss_mib: float = 0.0
    command: str = ""
    created_at: str = ""
    peers: dict[str, object] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> RetrievalReport:
        data = json.loads(text)
        data["results"] = [ModeResult(**r) for r in data["results"]]
        return cls(**data)

    def table(self) -> Table:
        t = Table(
            "system",
            "mode",
            "NDCG@10",
            "Recall@100",
            "MRR@10",
            "queries",
            "p50 ms",
            "p95 ms",
            title=f"{self.dataset} ({self.split})",
        )
        for r in self.results:
            t.add_row(
                r.system,
                r.mode,
                f"{r.ndcg_at_10:.4f}",
                f"{r.recall_at_100:.4f}",
                f"{r.mrr_at_10:.4f}",
                str(r.queries),
                f"{r.latency_ms_p50:.1f}",
                f"{r.latency_ms_p95:.1f}",
            )
        return t

    def markdown(self) -> str:
        lines = [
            "| system | mode | NDCG@10 | Recall@100 | MRR@10 | queries | p50 ms | p95 ms | p99 ms |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {r.system} | {r.mode} | {r.ndcg_at_10:.4f} | {r.recall_at_100:.4f} | {r.mrr_at_10:.4f} | "
            f"{r.queries} | {r.latency_ms_p50:.1f} | {r.latency_ms_p95:.1f} | {r.latency_ms_p99:.1f} |"
            for r in self.results
        ]
        return "\n".join(lines)


def _settings_dict(settings: LocalSettings, model_id: str) -> dict[str, object]:
    return {
        "chunk_size": settings.chunk_size,
        "chunk_overlap": settings.chunk_overlap,
        "fusion": settings.fusion,
        "bm25_weight": settings.bm25_weight,
        "candidates": settings.candidates,
        "embedder": model_id,
        "corpus_format": CORPUS_FORMAT,
    }


def open_eval_lectern(settings: LocalSettings, embedding_cache: Path | None) -> Any:
    from lectern.local.container import build_local, make_embedder

    embedder = make_embedder()
    if embedding_cache is not None:
        from lectern.evaluation.embedding_cache import CachingEmbedder

        embedder = CachingEmbedder(embedder, embedding_cache)
    return build_local(settings, embedder=embedder)


def run_retrieval_eval(
    settings: LocalSettings,
    dataset: Path,
    *,
    split: str = "test",
    modes: list[str] | None = None,
    max_queries: int | None = None,
    max_docs: int | None = None,
    latency_queries: int = 200,
    peers: bool = False,
    embedding_cache: Path | None = None,
    console: Console | None = None,
) -> RetrievalReport:
    data = load_beir(dataset, split, max_queries=max_queries, max_docs=max_docs)
    machine = machine_info()
    lectern = open_eval_lectern(settings, embedding_cache)
    modes = modes or ["bm25", "vector", "hybrid"]
    try:
        indexing_s, reused = build_index(lectern, data.corpus, console)
        cands = collect_candidates(lectern, data.queries, console=console)
        fusion = lectern.retriever.config.fusion
        runs = mode_runs(cands, fusion, settings.candidates, modes)
        timed = dict(list(data.queries.items())[:latency_queries])
        results = []
        for mode in modes:
            m = evaluate(data.qrels, runs[mode])
            lat, returned = time_product_search(lectern, timed, mode)
            results.append(
                ModeResult(
                    "lectern",
                    mode,
                    round(m["ndcg_at_10"], 4),
                    round(m["recall_at_100"], 4),
                    round(m["mrr_at_10"], 4),
                    len(data.queries),
                    round(percentile(lat, 0.5), 2),
                    round(percentile(lat, 0.95), 2),
                    round(percentile(lat, 0.99), 2),
                    len(lat),
                    "Retriever.search(top_k=10)",
                    agreement(returned, cands, mode, fusion, settings.candidates),
                )
            )
        chunks = lectern.index.count(EVAL_TENANT)
        peer_info: dict[str, object] = {}
        if peers:
            from lectern.evaluation.peers import run_peers

            peer_results, peer_info = run_peers(lectern, data, list(timed.values()), console=console)
            results += peer_results
        model_id = lectern.embedder.model_id
    finally:
        lectern.close()
    machine["loadavg_at_end"] = loadavg()
    return RetrievalReport(
        dataset=data.name,
        split=split,
        documents=len(data.corpus),
        chunks=chunks,
        results=results,
        settings=_settings_dict(settings, model_id),
        machine=machine,
        indexing_s=round(indexing_s, 1),
        index_reused=reused,
        peak_rss_mib=peak_rss_mib(),
        command=command_line(),
        created_at=now_iso(),
        peers=peer_info,
    )


def run_tuning(
    settings: LocalSettings,
    dataset: Path,
    *,
    split: str = "train",
    embedding_cache: Path | None = None,
    console: Console | None = None,
) -> dict[str, Any]:
    """Sweep fusion settings on `split` (train: never the split that is reported) for the current chunking."""
    data = load_beir(dataset, split)
    lectern = open_eval_lectern(settings, embedding_cache)
    try:
        build_index(lectern, data.corpus, console)
        cands = collect_candidates(lectern, data.queries, console=console)
        components = {
            mode: {k: round(v, 4) for k, v in evaluate(data.qrels, run).items()}
            for mode, run in mode_runs(cands, FusionConfig(), 100, ["bm25", "vector"]).items()
        }
        rows = sweep(cands, data.qrels, default_grid())
        chunks = lectern.index.count(EVAL_TENANT)
    finally:
        lectern.close()
    best = max(rows, key=lambda r: r["ndcg_at_10"])
    return {
        "dataset": data.name,
        "split": split,
        "queries": len(data.queries),
        "chunk_size": settings.chunk_size,
        "chunk_overlap": settings.chunk_overlap,
        "chunks": chunks,
        "components": components,
        "best": best,
        "grid": rows,
        "median_ndcg": statistics.median(r["ndcg_at_10"] for r in rows),
        "command": command_line(),
        "created_at": now_iso(),
        "machine": machine_info(),
    }
