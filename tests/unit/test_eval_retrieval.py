"""The retrieval evaluation: BEIR parsing, document runs, pytrec_eval figures by hand, and agreement with the
Retriever's own hybrid ranking (the offline fusion used for tuning must rank as the product does)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lectern.domain.fusion import FusionConfig
from lectern.domain.retrieval import RetrievalConfig, Retriever
from lectern.evaluation.retrieval import (
    EVAL_TENANT,
    FusionChoice,
    QueryCandidates,
    collect_candidates,
    corpus_document,
    document_run,
    evaluate,
    hybrid_ranking,
    load_beir,
    read_qrels,
    sweep,
)
from tests.fakes.embedder import HashEmbedder


def _beir(tmp_path: Path) -> Path:
    (tmp_path / "qrels").mkdir()
    corpus = [{"_id": f"d{i}", "title": f"T{i}", "text": f"text {i}"} for i in range(6)]
    (tmp_path / "corpus.jsonl").write_text("\n".join(json.dumps(d) for d in corpus) + "\n")
    queries = [{"_id": "q1", "text": "one"}, {"_id": "q2", "text": "two"}, {"_id": "q9", "text": "unjudged"}]
    (tmp_path / "queries.jsonl").write_text("\n".join(json.dumps(q) for q in queries))
    (tmp_path / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\nq1\td5\t1\nq2\td1\t1\nq2\td2\t1\n"
    )
    return tmp_path


def test_read_qrels_skips_the_header(tmp_path: Path):
    assert read_qrels(_beir(tmp_path) / "qrels" / "test.tsv") == {"q1": {"d5": 1}, "q2": {"d1": 1, "d2": 1}}


def test_load_beir_keeps_judged_queries_and_judged_documents(tmp_path: Path):
    data = load_beir(_beir(tmp_path), "test", max_docs=2)
    assert list(data.queries) == ["q1", "q2"]  # q9 has no judgement in this split
    assert [d["_id"] for d in data.corpus] == ["d0", "d1", "d2", "d5"]  # first 2 plus every judged one


def test_load_beir_names_the_missing_file(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match=r"qrels/train\.tsv"):
        load_beir(_beir(tmp_path), "train")


def test_title_becomes_a_heading_block():
    doc = corpus_document({"_id": "x", "title": "A title", "text": "Body."})
    assert [(b.kind, b.text) for b in doc.pages[0].blocks] == [("heading", "A title"), ("paragraph", "Body.")]


def test_document_run_ranks_documents_by_their_best_chunk():
    ranked = [("c1", "dA", 9.0), ("c2", "dB", 8.0), ("c3", "dA", 7.0), ("c4", "dC", 1.0)]
    run = document_run(ranked, depth=2)
    assert list(run) == ["dA", "dB"]
    assert run["dA"] > run["dB"]


def test_evaluate_by_hand():
    qrels = {"q1": {"d1": 1}, "q2": {"d2": 1}}
    # q1: relevant at rank 1 -> NDCG 1, RR 1. q2: relevant at rank 2 -> NDCG 1/log2(3), RR 0.5.
    run = {"q1": {"d1": 2.0, "x": 1.0}, "q2": {"y": 2.0, "d2": 1.0}}
    m = evaluate(qrels, run)
    assert m["ndcg_at_10"] == pytest.approx((1 + 1 / np.log2(3)) / 2)
    assert m["mrr_at_10"] == pytest.approx(0.75)
    assert m["recall_at_100"] == pytest.approx(1.0)


def test_a_query_without_results_counts_as_zero():
    m = evaluate({"q1": {"d1": 1}, "q2": {"d2": 1}}, {"q1": {"d1": 1.0}, "q2": {}})
    assert m["ndcg_at_10"] == pytest.approx(0.5)


WORDS = [
    "alpha",
    "beta",
    "gamma",
    "delta",
    "cells",
    "protein",
    "binding",
    "mouse",
    "tumour",
    "growth",
    "factor",
    "signal",
    "gene",
    "drug",
    "dose",
]


def _corpus() -> list[dict[str, str]]:
    """Forty distinct documents of seeded random words: few exact score ties, as with real text."""
    rng = np.random.default_rng(3)
    return [
        {
            "_id": f"d{i}",
            "title": f"Topic {i}",
            "text": " ".join(rng.choice(WORDS, size=int(rng.integers(8, 60)))),
        }
        for i in range(40)
    ]


@pytest.fixture
def small_lectern(tmp_path: Path):
    from lectern.evaluation.retrieval import build_index
    from lectern.local.container import build_local
    from lectern.settings import LocalSettings

    lectern = build_local(LocalSettings(data_dir=tmp_path / "data", llm="fake"), embedder=HashEmbedder())
    corpus = _corpus()
    build_index(lectern, corpus, None)
    yield lectern
    lectern.close()


@pytest.mark.parametrize(
    "fusion", [FusionConfig(), FusionConfig(weights=(0.7, 0.3)), FusionConfig(method="rrf", rank_constant=10)]
)
def test_offline_hybrid_ranks_exactly_like_the_retriever(small_lectern, fusion: FusionConfig):
    queries = {"q1": "alpha delta cells", "q2": "tumour growth factor", "q3": "mouse gene dose binding"}
    cands = collect_candidates(small_lectern, queries, depth=60)
    retriever = Retriever(
        small_lectern.index, small_lectern.embedder, RetrievalConfig(candidates=20, fusion=fusion)
    )
    for qid, text in queries.items():
        product = [h.chunk.chunk_id for h in retriever.search(EVAL_TENANT, text, top_k=10, mode="hybrid")]
        offline = [cid for cid, _, _ in hybrid_ranking(cands[qid], fusion, 20)[:10]]
        assert offline == product


def test_build_index_is_reused_while_nothing_changed(small_lectern):
    from lectern.evaluation.retrieval import build_index

    corpus = _corpus()
    _, reused = build_index(small_lectern, corpus, None)
    assert reused
    _, reused = build_index(small_lectern, corpus[:10], None)  # another corpus: rebuilt, extra documents gone
    assert not reused
    docs = small_lectern.index.db.connection().execute(
        "SELECT COUNT(DISTINCT document_id) FROM chunks WHERE tenant_id = ?", (EVAL_TENANT,)
    )
    assert docs.fetchone()[0] == 10


def test_sweep_scores_every_choice_and_weight_one_is_pure_bm25():
    cands = {
        "q1": QueryCandidates(
            lexical=[("c1", "d1", 5.0), ("c2", "d2", 1.0)], semantic=[("c2", "d2", 0.9), ("c1", "d1", 0.1)]
        ),
    }
    qrels = {"q1": {"d1": 1}}
    grid = [FusionChoice("min_max", 1.0, 10), FusionChoice("min_max", 0.0, 10), FusionChoice("rrf", 0.5, 10)]
    rows = sweep(cands, qrels, grid)
    assert len(rows) == 3
    assert rows[0]["mrr_at_10"] == 1.0  # bm25 alone puts d1 first
    assert rows[1]["mrr_at_10"] == 0.5  # vector alone puts d2 first
