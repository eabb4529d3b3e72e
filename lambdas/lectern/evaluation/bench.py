"""`lectern bench`: how fast Lectern is on this machine, written as JSON and PNG plots.

* ingestion throughput: SciFact abstracts as .txt uploads through the normal pipeline (extraction, chunking,
  embedding, one SQLite transaction per document), in chunks/s, and as a fraction of the embedder's raw speed
  on exactly the same chunk texts;
* retrieval latency (`Retriever.search`, top_k=10, query embedding included) at each index size, on distinct
  texts: every SciFact chunk with its real vector (from an evaluation index when `vectors_from` names one,
  otherwise the whole corpus chunked and embedded here, the vectors kept in an embedding cache), then new
  chunks of sentences drawn from them with vectors derived from their sources' (see `DistinctChunks`) —
  embedding 100k chunks on a 2-core machine takes hours;
* full answers with the configured model (the local llama model by default): time to first token and total;
* handler overhead: an API Gateway event through `build_app`'s resolver to a response, against the same domain
  call made directly, with a hashing embedder and the extractive fake model so only the handler is measured;
* Lambda cold start: a fresh interpreter importing each handler module, against a bare interpreter start.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import json
import os
import pkgutil
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from lectern.evaluation.machine import command_line, loadavg, machine_info, now_iso, peak_rss_mib
from lectern.evaluation.retrieval import percentile, read_jsonl, read_qrels
from lectern.settings import LocalSettings

BENCH_TENANT = "bench"
INGEST_TENANT = "ingest"
NOISE_STD = 0.0165  # per component: |noise| ~ 0.32 on a unit 384-d vector, cosine ~0.95 after re-normalising
SYNTHETIC_DOC_CHUNKS = 10


def current_rss_mib() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return 0.0


def _stats(values: Sequence[float]) -> dict[str, float]:
    return {
        "p50": round(percentile(values, 0.5), 2),
        "p95": round(percentile(values, 0.95), 2),
        "p99": round(percentile(values, 0.99), 2),
        "mean": round(statistics.fmean(values), 2) if values else 0.0,
        "n": len(values),
    }


def _timed(fn: Callable[[], object], n: int, warmup: int = 2) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


@dataclass
class BenchReport:
    ingestion: dict[str, Any] = field(default_factory=dict)
    retrieval: list[dict[str, Any]] = field(default_factory=list)
    answers: dict[str, Any] = field(default_factory=dict)
    handler: list[dict[str, Any]] = field(default_factory=list)
    cold_start: dict[str, Any] = field(default_factory=dict)
    peak_rss_mib: float = 0.0
    notes: list[str] = field(default_factory=list)
    machine: dict[str, object] = field(default_factory=dict)
    command: str = ""
    created_at: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    def table(self) -> Table:
        t = Table("what", "figure", title="lectern bench")
        ing = self.ingestion
        if ing:
            t.add_row(
                "ingestion",
                f"{ing['pipeline_chunks_per_s']} chunks/s = {ing['fraction_of_raw']:.0%} of the embedder's "
                f"{ing['raw_chunks_per_s']} chunks/s",
            )
        for r in self.retrieval:
            t.add_row(
                f"search {r['mode']} @ {r['chunks']:,}",
                "p50 {p50} / p95 {p95} / p99 {p99} ms".format(**r["latency_ms"]),
            )
        if self.answers.get("ttft_ms"):
            a = self.answers
            t.add_row("answer TTFT", f"p50 {a['ttft_ms']['p50']} ms ({a['model']})")
            t.add_row("answer total", f"p50 {a['total_ms']['p50']} ms")
        for h in self.handler:
            t.add_row(f"handler {h['route']}", f"overhead p50 {h['overhead_ms_p50']} ms")
        for m in self.cold_start.get("modules", []):
            where = " (Lambda env)" if m.get("lambda_env") else ""
            t.add_row(f"import {m['module']}{where}", f"{m['import_ms_median']} ms")
        t.add_row("peak RSS", f"{self.peak_rss_mib} MiB")
        return t

    def plot(self, folder: Path) -> list[Path]:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        written = []
        if self.retrieval:
            sizes = sorted({r["chunks"] for r in self.retrieval})
            modes = ["bm25", "vector", "hybrid"]
            fig, axes = plt.subplots(1, len(sizes), figsize=(5 * len(sizes), 3.6), sharey=True, squeeze=False)
            for ax, size in zip(axes[0], sizes, strict=True):
                rows = {r["mode"]: r for r in self.retrieval if r["chunks"] == size}
                x = np.arange(len(modes))
                for j, q in enumerate(("p50", "p95", "p99")):
                    vals = [rows[m]["latency_ms"][q] if m in rows else 0 for m in modes]
                    ax.bar(x + (j - 1) * 0.27, vals, 0.27, label=q)
                ax.set_xticks(x, modes)
                ax.set_title(f"{size:,} chunks")
                ax.set_ylabel("ms per search (top 10)")
            axes[0][0].legend()
            fig.suptitle("Lectern retrieval latency")
            fig.tight_layout()
            p = folder / "bench-latency.png"
            fig.savefig(p, dpi=110)
            plt.close(fig)
            written.append(p)
        mods = self.cold_start.get("modules", [])
        if mods:
            fig, ax = plt.subplots(figsize=(7, 0.6 + 0.5 * (len(mods) + 1)))
            names = ["python (bare)"] + [m["module"] + (" (Lambda env)" if m.get("lambda_env") else "") for m in mods]
            vals = [self.cold_start["bare_interpreter_ms_median"]] + [m["process_ms_median"] for m in mods]
            ax.barh(names, vals)
            ax.set_xlabel("ms, fresh interpreter start + import (median)")
            ax.invert_yaxis()
            fig.tight_layout()
            p = folder / "bench-cold-start.png"
            fig.savefig(p, dpi=110)
            plt.close(fig)
            written.append(p)
        return written


# -- ingestion ---------------------------------------------------------------------------------------------
def bench_ingestion(lectern: Any, corpus: Sequence[dict[str, Any]], docs: int) -> dict[str, Any]:
    from lectern.evaluation.answers import _Inline

    svc = lectern.document_service
    svc.trigger = _Inline()
    batch = list(corpus[:docs])
    payloads = [(f"{d['_id']}.txt", f"{d.get('title', '')}\n\n{d.get('text', '')}".encode()) for d in batch]
    # warm the ONNX session so its one-time set-up is not charged to either side
    lectern.embedder.embed_documents(["warm-up text"] * 4)

    def ingest(tenant: str, part: Sequence[tuple[str, bytes]], pipelined: bool) -> float:
        t0 = time.perf_counter()
        ids = []
        for name, data in part:
            doc, _ = svc.create_upload(tenant, name, "text/plain", len(data))
            svc.receive_upload(tenant, doc.document_id, data)
            ids.append(doc.document_id)
            if not pipelined:
                lectern.pipeline.run(tenant, doc.document_id)
        if pipelined:
            lectern.pipeline.run_many(tenant, ids)
        return time.perf_counter() - t0

    def raw(tenant: str, start: int) -> tuple[float, int]:
        rows = (
            lectern.index.db.connection()
            .execute(
                "SELECT heading, text FROM chunks WHERE tenant_id = ? ORDER BY rowid LIMIT -1 OFFSET ?",
                (tenant, start),
            )
            .fetchall()
        )
        texts = [f"{h}\n{t}" if h else t for h, t in rows]
        t0 = time.perf_counter()
        lectern.embedder.embed_documents(texts)
        return time.perf_counter() - t0, len(texts)

    # The same documents three ways, in rounds (a slice of the documents each) whose order rotates, so a load
    # that changes during the run weighs on each way alike: document by document (`run`, as before issue 19),
    # pipelined (`run_many`), and the embedder alone on the chunks the pipelined way wrote (so after it).
    rounds = max(1, min(3, len(payloads)))
    times = {"sequential": 0.0, "pipelined": 0.0, "raw": 0.0}
    by_round: list[dict[str, object]] = []
    chunks = 0
    for r in range(rounds):
        by_round.append({"order": [], "loadavg_at_start": next(iter(loadavg()), None)})
        part = payloads[r::rounds]
        order = [["sequential", "pipelined", "raw"], ["pipelined", "raw", "sequential"]][r % 2]
        for way in order:
            if way == "raw":
                dt, n = raw(INGEST_TENANT, chunks)
                chunks += n
            else:
                tenant = INGEST_TENANT if way == "pipelined" else INGEST_TENANT + "-sequential"
                dt = ingest(tenant, part, pipelined=way == "pipelined")
            times[way] += dt
            by_round[-1][f"{way}_s"] = round(dt, 2)
            by_round[-1]["order"].append(way)  # type: ignore[attr-defined]
    pipeline_rate = chunks / times["pipelined"]
    raw_rate = chunks / times["raw"]
    sequential_rate = chunks / times["sequential"]
    return {
        "documents": len(payloads),
        "chunks": chunks,
        "rounds": rounds,
        "pipeline_s": round(times["pipelined"], 2),
        "pipeline_chunks_per_s": round(pipeline_rate, 1),
        "sequential_s": round(times["sequential"], 2),
        "sequential_chunks_per_s": round(sequential_rate, 1),
        "raw_embed_s": round(times["raw"], 2),
        "raw_chunks_per_s": round(raw_rate, 1),
        "fraction_of_raw": round(pipeline_rate / raw_rate, 3),
        "sequential_fraction_of_raw": round(sequential_rate / raw_rate, 3),
        "embedder_batch_size": getattr(lectern.embedder, "batch_size", None),
        "by_round": by_round,
        "loadavg_at_end": loadavg(),
    }


# -- retrieval at size -------------------------------------------------------------------------------------
@dataclass
class BenchPool:
    """Real chunks (heading, text) with their real vectors: the seed of the latency test's corpus."""

    headings: list[str]
    texts: list[str]
    vectors: np.ndarray

    def __len__(self) -> int:
        return len(self.texts)


def load_pool(vectors_from: Path | None) -> BenchPool | None:
    """Real chunk texts and vectors from an evaluation index (`lectern eval retrieval --data-dir ...`)."""
    if vectors_from is None:
        return None
    import sqlite3

    db = vectors_from / "lectern.db" if vectors_from.is_dir() else vectors_from
    if not db.is_file():
        return None
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT heading, text, vector FROM chunks ORDER BY rowid").fetchall()
    finally:
        conn.close()
    if not rows:
        return None
    vectors = np.frombuffer(b"".join(r[2] for r in rows), dtype=np.float32).reshape(len(rows), -1)
    return BenchPool([r[0] for r in rows], [r[1] for r in rows], vectors)


def corpus_pool(
    lectern: Any, corpus: Sequence[dict[str, Any]], cache_path: Path | None, console: Console | None = None
) -> BenchPool:
    """Every document of the BEIR corpus through Lectern's chunker and embedder (the evaluation's chunking),
    the vectors remembered in `cache_path` (`CachingEmbedder`) so a second run embeds nothing."""
    from lectern.domain.chunking import ChunkingConfig, chunk_document
    from lectern.evaluation.retrieval import corpus_document

    settings = lectern.settings
    config = ChunkingConfig(size=settings.chunk_size, overlap=settings.chunk_overlap)
    chunks = [
        c
        for d in corpus
        for c in chunk_document(
            corpus_document(d),
            tenant_id=BENCH_TENANT,
            document_id=d["_id"],
            filename=d["_id"],
            config=config,
            count=lectern.embedder.count_tokens,
        )
    ]
    embedder = lectern.embedder
    cache = None
    if cache_path is not None:
        from lectern.evaluation.embedding_cache import CachingEmbedder

        cache = embedder = CachingEmbedder(lectern.embedder, cache_path)
    try:
        parts = []
        step = 512
        for start in range(0, len(chunks), step):
            if console and start % (step * 4) == 0:
                console.print(f"[dim]embedding the corpus: {start:,}/{len(chunks):,} chunks[/dim]")
            parts.append(embedder.embed_documents([c.search_text for c in chunks[start : start + step]]))
    finally:
        if cache is not None:
            cache.close()
    vectors = np.concatenate(parts) if parts else np.zeros((0, lectern.embedder.dimension), np.float32)
    return BenchPool([c.heading for c in chunks], [c.text for c in chunks], vectors.astype(np.float32))


_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(])")


class DistinctChunks:
    """Chunk number i of the latency test's corpus, every text distinct.

    The first len(pool) are the real chunks with their real vectors. Beyond them each chunk is new text: whole
    sentences drawn (seeded by i) from random real chunks until a real chunk's length (also drawn) is reached,
    so term statistics and posting lists grow the way a larger corpus of the same domain's would, not by
    repeating one set of chunks. Its vector is the length-weighted mean of its sources' real vectors plus
    Gaussian noise, re-normalised: embedding a million chunks on a 2-core machine takes days, and an exact
    scan costs the same whatever the vectors hold.
    """

    def __init__(self, pool: BenchPool, seed: int = 7) -> None:
        self.pool = pool
        self.seed = seed
        self.sentences = [[s for s in _SENTENCE.split(t) if s.strip()] or [t] for t in pool.texts]
        self.lengths = np.array([len(t.split()) for t in pool.texts])
        self._seen: set[bytes] = {hashlib.blake2b(t.encode(), digest_size=12).digest() for t in pool.texts}

    def chunk(self, i: int) -> tuple[str, str, np.ndarray]:
        """(heading, text, unit vector) of chunk number i."""
        pool = self.pool
        if i < len(pool):
            return pool.headings[i], pool.texts[i], pool.vectors[i]
        rng = np.random.default_rng((self.seed, i))
        while True:
            target = int(self.lengths[rng.integers(len(self.lengths))])
            words, parts, weights, sources = 0, [], [], []
            while words < target:
                src = int(rng.integers(len(pool)))
                sents = self.sentences[src]
                s = sents[int(rng.integers(len(sents)))]
                parts.append(s)
                n = len(s.split())
                words += n
                weights.append(n)
                sources.append(src)
            text = " ".join(parts)
            key = hashlib.blake2b(text.encode(), digest_size=12).digest()
            if key not in self._seen:  # a repeat (a one-sentence chunk drawn twice) is drawn again
                self._seen.add(key)
                break
        v = np.average(pool.vectors[sources], axis=0, weights=weights)
        v = v / np.linalg.norm(v) + rng.normal(0.0, NOISE_STD, size=v.shape)
        return "", text, (v / np.linalg.norm(v)).astype(np.float32)


def grow_index(lectern: Any, corpus: DistinctChunks, start: int, stop: int) -> float:
    """Add chunks number `start`..`stop`-1 (documents of SYNTHETIC_DOC_CHUNKS chunks). Seconds spent."""
    from lectern.domain.chunking import chunk_id
    from lectern.domain.models import Chunk

    t0 = time.perf_counter()
    for doc_start in range(start, stop, SYNTHETIC_DOC_CHUNKS):
        ids = range(doc_start, min(stop, doc_start + SYNTHETIC_DOC_CHUNKS))
        document_id = f"syn-{doc_start // SYNTHETIC_DOC_CHUNKS:06d}"
        chunks, vecs = [], []
        for ordinal, i in enumerate(ids):
            heading, text, v = corpus.chunk(i)
            chunks.append(
                Chunk(
                    chunk_id=chunk_id(document_id, ordinal, text),
                    tenant_id=BENCH_TENANT,
                    document_id=document_id,
                    filename=f"{document_id}.txt",
                    page=1,
                    ordinal=ordinal,
                    text=text,
                    heading=heading,
                    token_count=len(text.split()),
                )
            )
            vecs.append(v)
        lectern.index.replace_document(BENCH_TENANT, document_id, chunks, np.asarray(vecs, dtype=np.float32))
    return time.perf_counter() - t0


def bench_retrieval(lectern: Any, size: int, queries: Sequence[str], build_s: float) -> list[dict[str, Any]]:
    rows = []
    t0 = time.perf_counter()
    lectern.retriever.search(BENCH_TENANT, queries[0], top_k=10, mode="vector")  # loads the vector matrix
    first_ms = (time.perf_counter() - t0) * 1000
    warm = getattr(lectern.index, "warm", None)
    t0 = time.perf_counter()
    if warm is not None:
        warm()  # the in-memory BM25 postings, built in the background after a write (FTS5 answers meanwhile)
    warm_ms = (time.perf_counter() - t0) * 1000 if warm is not None else None
    for mode in ("bm25", "vector", "hybrid"):
        lat = []
        for q in queries:
            t = time.perf_counter()
            lectern.retriever.search(BENCH_TENANT, q, top_k=10, mode=mode)
            lat.append((time.perf_counter() - t) * 1000)
        rows.append(
            {
                "chunks": size,
                "mode": mode,
                "latency_ms": _stats(lat),
                "first_query_after_write_ms": round(first_ms, 1),
                "bm25_postings_build_ms": round(warm_ms, 1) if warm_ms is not None else None,
                "build_s": round(build_s, 1),
                "rss_mib": current_rss_mib(),
                "loadavg": loadavg(),
            }
        )
    return rows


# -- answers -----------------------------------------------------------------------------------------------
def bench_answers(lectern: Any, questions: Sequence[str]) -> dict[str, Any]:
    model = lectern.model
    t0 = time.perf_counter()
    warm = getattr(model, "warm", None)
    if warm:
        warm()
        ready = getattr(model, "_ready", None)
        if ready is not None:
            ready.wait(timeout=300)
    start_s = time.perf_counter() - t0
    if getattr(model, "status", "ok") == "error":
        return {"model": model.model_id, "skipped": f"model failed to start: {getattr(model, '_error', '')}"}
    ttft, total, abstained, out_tokens = [], [], 0, []
    for q in questions:
        t = time.perf_counter()
        first = None
        answer = None
        for ev in lectern.answerer.stream(BENCH_TENANT, q):
            if ev.kind == "token" and first is None:
                first = (time.perf_counter() - t) * 1000
            if ev.kind == "done":
                answer = ev.answer
        total.append((time.perf_counter() - t) * 1000)
        if answer is not None and answer.abstained and answer.model == "retrieval-gate":
            abstained += 1
            total.pop()
            continue
        ttft.append(first or 0.0)
        if answer is not None:
            out_tokens.append(answer.usage.output_tokens)
    return {
        "model": model.model_id,
        "questions": len(questions),
        "answered_by_model": len(ttft),
        "gated_without_model": abstained,
        "model_start_s": round(start_s, 1),
        "ttft_ms": _stats(ttft),
        "total_ms": _stats(total),
        "output_tokens_mean": round(statistics.fmean(out_tokens), 1) if out_tokens else 0,
        "max_context_tokens": lectern.settings.max_context_tokens,
    }


# -- handler overhead --------------------------------------------------------------------------------------
class HashingEmbedder:
    """A deterministic stand-in embedder (a seeded random unit vector per text): no model in the
    measurement."""

    model_id = "hashing-bench"
    dimension = 384

    def _vec(self, text: str) -> np.ndarray:
        seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
        v = np.random.default_rng(seed).normal(size=self.dimension).astype(np.float32)
        return v / np.linalg.norm(v)

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        return np.stack([self._vec(t) for t in texts]) if texts else np.zeros((0, self.dimension), np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        return self._vec(text)


def bench_handler(
    settings: LocalSettings, corpus: Sequence[dict[str, Any]], n: int = 200
) -> list[dict[str, Any]]:
    from lectern.evaluation.answers import _Inline
    from lectern.local.container import build_local
    from lectern.local.server import LambdaContext, to_api_gateway_event

    s = settings.model_copy(update={"data_dir": settings.data_dir / "handler", "llm": "fake"})
    lectern = build_local(s, embedder=HashingEmbedder())
    try:
        lectern.document_service.trigger = _Inline()
        tenant = s.tenant_id
        for d in corpus[:50]:
            data = f"{d.get('title', '')}\n\n{d.get('text', '')}".encode()
            doc, _ = lectern.document_service.create_upload(
                tenant, f"{d['_id']}.txt", "text/plain", len(data)
            )
            lectern.document_service.receive_upload(tenant, doc.document_id, data)
            lectern.pipeline.run(tenant, doc.document_id)
        app = lectern.make_app()
        question = corpus[0].get("title") or "cells"
        json_h = {"content-type": "application/json", "accept": "application/json"}
        sse_h = {"content-type": "application/json", "accept": "text/event-stream"}

        def event(
            method: str, path: str, body: dict[str, Any] | None, headers: dict[str, str]
        ) -> dict[str, Any]:
            raw = json.dumps(body).encode() if body is not None else b""
            return to_api_gateway_event(method, path, dict(headers), raw, "127.0.0.1")

        cases: list[tuple[str, dict[str, Any], Callable[[], object] | None]] = [
            ("GET /v1/health", event("GET", "/v1/health", None, json_h), lectern.health),
            (
                "GET /v1/documents",
                event("GET", "/v1/documents", None, json_h),
                lambda: lectern.document_service.list(tenant),
            ),
            (
                "POST /v1/search",
                event("POST", "/v1/search", {"query": question, "top_k": 10}, json_h),
                lambda: lectern.retriever.search(tenant, question, top_k=10),
            ),
            (
                "POST /v1/query (JSON)",
                event("POST", "/v1/query", {"question": question}, json_h),
                lambda: lectern.answerer.answer(tenant, question),
            ),
            (
                "POST /v1/query (SSE, buffered)",
                event("POST", "/v1/query", {"question": question}, sse_h),
                lambda: list(lectern.answerer.stream(tenant, question)),
            ),
        ]

        def resolve(ev: dict[str, Any]) -> dict[str, Any]:
            return app.resolve(ev, LambdaContext())  # type: ignore[arg-type]  # the local stand-in context

        rows = []
        for route, ev, direct in cases:
            status = resolve(ev).get("statusCode")
            if status != 200:
                raise RuntimeError(f"{route} answered {status} in the handler benchmark")
            handler = _timed(functools.partial(resolve, ev), n)
            domain = _timed(direct, n) if direct else []
            h, d = _stats(handler), _stats(domain)
            rows.append(
                {
                    "route": route,
                    "handler_ms": h,
                    "domain_ms": d,
                    "overhead_ms_p50": round(h["p50"] - d["p50"], 3),
                    "overhead_ms_p95": round(h["p95"] - d["p95"], 3),
                }
            )
        return rows
    finally:
        lectern.close()


# -- cold start --------------------------------------------------------------------------------------------
def handler_modules() -> list[str]:
    mods = ["lectern.api.app"]
    try:
        handlers = importlib.import_module("lectern.aws.handlers")

        mods += sorted(
            f"lectern.aws.handlers.{m.name}"
            for m in pkgutil.iter_modules(handlers.__path__)
            if not m.name.startswith("_")
        )
    except ImportError:
        pass
    return mods


_PROBE = (
    "import time, importlib, sys; t = time.perf_counter(); importlib.import_module(sys.argv[1]); "
    "print((time.perf_counter() - t) * 1000)"
)


def lambda_environment(root: Path) -> dict[str, str]:
    """What the Lambda runtime sets that changes what an import does: with LAMBDA_TASK_ROOT the X-Ray SDK (loaded
    by Powertools' Tracer) takes its local sampler; without it, it builds the centralised sampler's two botocore
    X-Ray clients (~250 ms) that no Lambda ever builds."""
    return {
        "LAMBDA_TASK_ROOT": str(root),
        "AWS_LAMBDA_FUNCTION_NAME": "lectern-bench",
        "AWS_REGION": os.environ.get("AWS_REGION", "us-east-1"),
    }


def bench_cold_start(modules: Sequence[str], repeats: int = 5) -> dict[str, Any]:
    """Median import time of each module in a fresh interpreter. The `lectern.aws.handlers.*` modules are
    measured twice: plain (as before issue 19) and in the Lambda runtime's environment (`lambda_env`)."""
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    task_root = Path(tempfile.mkdtemp(prefix="lectern-task-root-"))

    def wall(args: list[str], run_env: dict[str, str]) -> tuple[float, str]:
        t0 = time.perf_counter()
        out = subprocess.run(args, capture_output=True, text=True, env=run_env, check=True)  # noqa: S603
        return (time.perf_counter() - t0) * 1000, out.stdout.strip()

    bare = [wall([sys.executable, "-c", "pass"], env)[0] for _ in range(repeats)]
    rows = []
    runs = [(m, False) for m in modules]
    runs += [(m, True) for m in modules if m.startswith("lectern.aws.handlers.")]
    for m, in_lambda in runs:
        run_env = {**env, **lambda_environment(task_root)} if in_lambda else env
        proc, imp = [], []
        for _ in range(repeats):
            w, out = wall([sys.executable, "-c", _PROBE, m], run_env)
            proc.append(w)
            imp.append(float(out.splitlines()[-1]))
        trace = subprocess.run(  # noqa: S603
            [sys.executable, "-X", "importtime", "-c", f"import {m}"], capture_output=True, text=True, env=run_env
        ).stderr
        rows.append(
            {
                "module": m,
                "lambda_env": in_lambda,
                "import_ms_median": round(statistics.median(imp), 1),
                "process_ms_median": round(statistics.median(proc), 1),
                "heaviest_imports": heaviest_imports(trace),
            }
        )
    shutil.rmtree(task_root, ignore_errors=True)
    return {
        "bare_interpreter_ms_median": round(statistics.median(bare), 1),
        "repeats": repeats,
        "modules": rows,
    }


_IMPORTTIME = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)")


def heaviest_imports(trace: str, top: int = 6) -> list[dict[str, object]]:
    """The packages that cost the most (cumulative microseconds), from `python -X importtime`: a package counts
    each time another package imports it (so `botocore` under `aws_xray_sdk` shows, not only `lectern` at the
    top); lectern itself (the total) and the interpreter's start-up modules are left out."""
    entries = [(len(m.group(3)), m.group(4), int(m.group(2))) for m in _IMPORTTIME.finditer(trace)]
    tops: dict[str, int] = {}
    stack: list[tuple[int, str]] = []
    for indent, name, cumulative in reversed(entries):  # parents come after their children in the trace
        while stack and stack[-1][0] >= indent:
            stack.pop()
        root = name.split(".")[0]
        if root != (stack[-1][1] if stack else None) and root not in _STARTUP:
            tops[root] = tops.get(root, 0) + cumulative
        stack.append((indent, root))
    ranked = sorted(tops.items(), key=lambda kv: -kv[1])[:top]
    return [{"package": k, "ms": round(v / 1000, 1)} for k, v in ranked]


_STARTUP = frozenset(
    {"lectern", "site", "encodings", "_frozen_importlib_external", "_io", "marshal", "posix", "zipimport"}
)


# -- all of it ---------------------------------------------------------------------------------------------
def run_bench(
    settings: LocalSettings,
    dataset: Path,
    *,
    sizes: Sequence[int] = (10_000, 100_000),
    ingest_docs: int = 150,
    answer_queries: int = 5,
    queries: int = 200,
    vectors_from: Path | None = None,
    embedding_cache: Path | None = None,
    pool_docs: int | None = None,
    skip: Sequence[str] = (),
    console: Console | None = None,
) -> BenchReport:
    from lectern.local.container import build_local

    def say(msg: str) -> None:
        if console:
            console.print(f"[dim]{msg}[/dim]")

    report = BenchReport(machine=machine_info(), command=command_line(), created_at=now_iso())
    corpus = list(read_jsonl(dataset / "corpus.jsonl"))
    qrels = read_qrels(dataset / "qrels" / "test.tsv")
    all_q = {q["_id"]: q["text"] for q in read_jsonl(dataset / "queries.jsonl")}
    test_queries = [all_q[q] for q in qrels if q in all_q][:queries]
    # time the pipeline, not the answer cache
    lectern = build_local(settings.model_copy(update={"cache_enabled": False}))
    try:
        pool = load_pool(vectors_from)
        if "ingestion" not in skip:
            say(f"ingestion: {ingest_docs} documents through the pipeline")
            report.ingestion = bench_ingestion(lectern, corpus, ingest_docs)
        if "retrieval" not in skip:
            if pool is None:
                n = len(corpus[:pool_docs])
                say(f"retrieval: chunking and embedding {n:,} documents (cache: {embedding_cache})")
                pool = corpus_pool(lectern, corpus[:pool_docs], embedding_cache, console)
            chunks = DistinctChunks(pool)
            report.notes.append(
                f"retrieval: {len(pool):,} real {dataset.name} chunks with their real vectors"
                + (f" (the first {pool_docs:,} documents)" if pool_docs and vectors_from is None else "")
                + ", then "
                "generated chunks of whole sentences drawn at random from them (every text distinct; lengths "
                "drawn from the real chunks'), each with the length-weighted mean of its sources' vectors "
                f"plus Gaussian noise (std {NOISE_STD} per component), re-normalised"
            )
            built = 0
            for size in sorted(sizes):
                say(f"retrieval: building {size:,} chunks")
                build_s = grow_index(lectern, chunks, built, size)
                built = size
                report.retrieval += bench_retrieval(lectern, size, test_queries, build_s)
                if size == min(sizes) and answer_queries and "answers" not in skip:
                    say(f"answers: {answer_queries} questions with {settings.llm}")
                    report.answers = bench_answers(lectern, test_queries[:answer_queries])
    finally:
        lectern.close()
    if "handler" not in skip:
        say("handler overhead")
        report.handler = bench_handler(settings, corpus)
    if "cold_start" not in skip:
        say("cold starts")
        report.cold_start = bench_cold_start(handler_modules())
    report.peak_rss_mib = peak_rss_mib()
    report.machine["loadavg_at_end"] = loadavg()
    return report
