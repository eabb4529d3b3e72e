"""Benchmark helpers: the embedding cache, import-time parsing, the synthetic index growth, the stand-in
embedder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lectern.evaluation.bench import (
    BENCH_TENANT,
    BenchPool,
    DistinctChunks,
    HashingEmbedder,
    _stats,
    grow_index,
    heaviest_imports,
)
from lectern.evaluation.embedding_cache import CachingEmbedder
from tests.fakes.embedder import HashEmbedder


class _Counting(HashEmbedder):
    def __init__(self) -> None:
        self.embedded = 0

    def embed_documents(self, texts):
        self.embedded += len(texts)
        return super().embed_documents(texts)


def test_cache_returns_the_inner_vectors_and_embeds_each_text_once(tmp_path: Path):
    inner = _Counting()
    cache = CachingEmbedder(inner, tmp_path / "cache.sqlite")
    texts = ["alpha beta", "gamma", "alpha beta", "delta cells"]
    first = cache.embed_documents(texts)
    np.testing.assert_allclose(first, inner.__class__.__mro__[1]().embed_documents(texts))
    assert (
        inner.embedded == 4
    )  # a duplicate inside one call is embedded (not yet cached) but not stored twice
    again = cache.embed_documents(["gamma", "new text"])
    np.testing.assert_allclose(again[0], first[1])
    assert inner.embedded == 5 and cache.hits == 1
    cache.close()


def test_cache_seeds_from_an_index(tmp_path: Path):
    from lectern.evaluation.retrieval import build_index
    from lectern.local.container import build_local
    from lectern.settings import LocalSettings

    lectern = build_local(LocalSettings(data_dir=tmp_path / "d", llm="fake"), embedder=HashEmbedder())
    build_index(lectern, [{"_id": "a", "title": "T", "text": "some words here"}], None)
    lectern.close()
    inner = _Counting()
    cache = CachingEmbedder(inner, tmp_path / "c.sqlite")
    assert cache.import_index(tmp_path / "d" / "lectern.db") == 1
    cache.embed_documents(["T\nT\nsome words here"])  # heading trail + heading piece + paragraph
    assert inner.embedded == 0


def test_heaviest_imports_sums_top_level_packages():
    trace = (
        "import time: self [us] | cumulative | imported package\n"
        "import time:       100 |        100 |   numpy.core\n"
        "import time:       300 |       5000 | numpy\n"
        "import time:        50 |       2000 | pydantic\n"
        "import time:        10 |         10 |     pydantic.x\n"
    )
    assert heaviest_imports(trace) == [{"package": "numpy", "ms": 5.0}, {"package": "pydantic", "ms": 2.0}]


def test_stats_percentiles():
    s = _stats([float(i) for i in range(1, 101)])
    assert (s["p50"], s["p95"], s["p99"], s["n"]) == (pytest.approx(51.0, abs=1), 95.0, 99.0, 100)


def test_hashing_embedder_is_deterministic_and_unit_length():
    e = HashingEmbedder()
    v = e.embed_query("x")
    np.testing.assert_array_equal(v, e.embed_documents(["x"])[0])
    assert np.linalg.norm(v) == pytest.approx(1.0, abs=1e-5)


class _RecordingIndex:
    def __init__(self) -> None:
        self.docs: dict[str, tuple[list, np.ndarray]] = {}

    def replace_document(self, tenant_id, document_id, chunks, vectors):
        assert tenant_id == BENCH_TENANT
        self.docs[document_id] = (list(chunks), vectors)


class _Holder:
    def __init__(self) -> None:
        self.index = _RecordingIndex()


def _pool(n: int) -> BenchPool:
    rng = np.random.default_rng(0)
    base = rng.normal(size=(n, 384)).astype(np.float32)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    texts = [
        f"Sentence {i} about cells. Another claim {i} on genes! Short one {i}?" if i % 3 else f"Solo {i}."
        for i in range(n)
    ]
    return BenchPool([f"Title {i}" for i in range(n)], texts, base)


def test_grow_index_starts_with_the_real_chunks_then_adds_distinct_texts():
    pool = _pool(25)
    holder = _Holder()
    grow_index(holder, DistinctChunks(pool), 0, 2000)
    vectors = np.concatenate([v for _, v in holder.index.docs.values()])
    chunks = [c for cs, _ in holder.index.docs.values() for c in cs]
    assert len(chunks) == 2000 and len({c.chunk_id for c in chunks}) == 2000
    assert len({c.search_text for c in chunks}) == 2000  # no text repeated, unlike copies of the pool
    assert [c.text for c in chunks[:25]] == pool.texts and [c.heading for c in chunks[:25]] == pool.headings
    np.testing.assert_allclose(vectors[:25], pool.vectors)  # the real ones, unchanged
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    sentences = {s for t in pool.texts for s in t.split(" ") if s}
    assert all(set(c.text.split(" ")) <= sentences for c in chunks[25:])  # built of the pool's sentences
    # a generated chunk's vector lies near the vectors of the chunks its sentences came from
    c = next(c for c in chunks[25:] if "Solo" not in c.text)
    src = {int(w.rstrip(".!?")) for w in c.text.split() if w.rstrip(".!?").isdigit()}
    v = vectors[chunks.index(c)]
    assert max(float(v @ pool.vectors[i]) for i in src) > 0.3


def test_distinct_chunks_are_reproducible():
    pool = _pool(10)
    a, b = DistinctChunks(pool), DistinctChunks(pool)
    for i in (10, 11, 500):
        ha, ta, va = a.chunk(i)
        hb, tb, vb = b.chunk(i)
        assert (ha, ta) == (hb, tb)
        np.testing.assert_array_equal(va, vb)


def test_bench_ingestion_measures_both_ways_on_the_same_chunks(tmp_path: Path):
    from lectern.evaluation.bench import bench_ingestion
    from lectern.local.container import build_local
    from lectern.settings import LocalSettings
    from tests.fakes.embedder import HashEmbedder

    s = LocalSettings.from_env({}, data_dir=tmp_path / "d", llm="fake", auth="none", cache_enabled=False)
    lec = build_local(s, embedder=HashEmbedder())
    try:
        corpus = [{"_id": f"d{i}", "title": f"T {i}", "text": f"Sentence number {i} about boilers."} for i in range(7)]
        r = bench_ingestion(lec, corpus, 7)
        assert r["documents"] == 7 and r["chunks"] == 7 and r["rounds"] == 3
        assert [sorted(b["order"]) for b in r["by_round"]] == [["pipelined", "raw", "sequential"]] * 3
        for b in r["by_round"]:
            assert b["order"].index("raw") == b["order"].index("pipelined") + 1  # raw embeds what it wrote
        n = lec.index.db.connection().execute("SELECT count(*) FROM chunks WHERE tenant_id = 'ingest-sequential'")
        assert n.fetchone()[0] == 7
        for way, total in (("pipelined", "pipeline_s"), ("sequential", "sequential_s"), ("raw", "raw_embed_s")):
            assert abs(sum(b[f"{way}_s"] for b in r["by_round"]) - r[total]) < 0.05  # the rounds add up
    finally:
        lec.close()


def test_heaviest_imports_names_a_package_imported_deep_inside_another():
    trace = (
        "import time:       100 |        900 |       botocore.session\n"
        "import time:       100 |       1000 |     aws_xray_sdk.core\n"
        "import time:        50 |       3000 |   lectern.aws.observability\n"
        "import time:        10 |       4000 | lectern.aws.handlers.api\n"
    )
    got = {h["package"]: h["ms"] for h in heaviest_imports(trace)}
    assert got == {"aws_xray_sdk": 1.0, "botocore": 0.9}  # lectern (the total) left out
