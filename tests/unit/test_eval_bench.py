"""Benchmark helpers: the embedding cache, import-time parsing, the synthetic index growth, the stand-in
embedder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lectern.evaluation.bench import (
    BENCH_TENANT,
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


def test_grow_index_reuses_real_vectors_then_perturbs_them():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(25, 384)).astype(np.float32)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    holder = _Holder()
    grow_index(holder, ([f"text {i}" for i in range(25)], base), 0, 100)
    vectors = np.concatenate([v for _, v in holder.index.docs.values()])
    chunks = [c for cs, _ in holder.index.docs.values() for c in cs]
    assert len(chunks) == 100 and len({c.chunk_id for c in chunks}) == 100
    np.testing.assert_allclose(vectors[:25], base)  # the real ones, unchanged
    cos = np.sum(vectors[25:] * base[np.arange(25, 100) % 25], axis=1)
    assert cos.min() > 0.9 and cos.max() < 0.99  # perturbed copies: near, not equal
