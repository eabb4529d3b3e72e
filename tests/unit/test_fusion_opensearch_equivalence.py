"""`lectern.domain.fusion.fuse` computes what OpenSearch's search pipeline computes.

The reference below is written here from OpenSearch's documentation, not from the domain code:
  * normalization-processor, min_max + arithmetic_mean with weights
    (https://docs.opensearch.org/latest/search-plugins/search-pipelines/normalization-processor/):
    per sub-query n = (s - min) / (max - min) over that sub-query's results; the neural-search plugin's
    MinMaxScoreNormalizationTechnique gives 0.001 instead of 0 and 1.0 when max == min; the combined score is
    sum(w_i * n_i) / sum(w_i), a document absent from a sub-query having n_i = 0.
  * score-ranker-processor with rrf
    (https://docs.opensearch.org/latest/search-plugins/search-pipelines/score-ranker-processor/):
    sum over sub-queries of 1 / (rank_constant + rank), rank from 1 in each sub-query's order.
"""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from lectern.domain.fusion import FusionConfig, fuse


def opensearch_min_max_mean(subs: list[dict[str, float]], weights: list[float]) -> dict[str, float]:
    per_query = []
    for scores in subs:
        out = {}
        if scores:
            lo, hi = min(scores.values()), max(scores.values())
            for doc, s in scores.items():
                if hi == lo:
                    out[doc] = 1.0
                else:
                    x = (s - lo) / (hi - lo)
                    out[doc] = 0.001 if x == 0 else x
        per_query.append(out)
    docs = set().union(*per_query)
    return {
        d: sum(w * q.get(d, 0.0) for w, q in zip(weights, per_query, strict=True)) / sum(weights)
        for d in docs
    }


def opensearch_rrf(subs: list[dict[str, float]], rank_constant: int) -> dict[str, float]:
    out: dict[str, float] = {}
    for scores in subs:
        order = sorted(scores, key=lambda d: (-scores[d], d))
        for rank, d in enumerate(order, start=1):
            out[d] = out.get(d, 0.0) + 1.0 / (rank_constant + rank)
    return out


docs = st.sampled_from([f"c{i:02d}" for i in range(30)])
bm25 = st.dictionaries(docs, st.floats(0.0, 40.0, allow_nan=False), max_size=25)
cosine_scores = st.dictionaries(docs, st.floats(-1.0, 1.0, allow_nan=False), max_size=25)
weight = st.integers(0, 10).map(lambda i: i / 10)


def assert_same(domain: list[tuple[object, float]], reference: dict[str, float]) -> None:
    assert {str(k) for k, _ in domain} == set(reference)
    for key, score in domain:
        assert abs(score - reference[str(key)]) <= 1e-9
    # Same ranking: every pair the reference orders strictly is ordered the same way (ties may go either way).
    scores = [reference[str(k)] for k, _ in domain]
    assert all(a >= b - 1e-9 for a, b in itertools.pairwise(scores))


@settings(max_examples=300, deadline=None)
@given(bm25, cosine_scores, weight)
def test_min_max_arithmetic_mean_matches_opensearch(lex: dict, sem: dict, w: float) -> None:
    weights = (w, round(1 - w, 10))
    assert_same(
        fuse([lex, sem], FusionConfig("min_max", weights)), opensearch_min_max_mean([lex, sem], list(weights))
    )


@settings(max_examples=300, deadline=None)
@given(bm25, cosine_scores, st.integers(1, 100))
def test_rrf_matches_opensearch(lex: dict, sem: dict, k: int) -> None:
    assert_same(fuse([lex, sem], FusionConfig("rrf", rank_constant=k)), opensearch_rrf([lex, sem], k))


def test_knn_score_scale_does_not_change_min_max() -> None:
    """OpenSearch normalises (1 + cos) / 2, the domain normalises cos: min_max makes them identical."""
    lex = {"a": 3.0, "b": 1.0}
    cos = {"a": 0.2, "b": 0.9, "c": -0.4}
    os_scale = {k: (1 + v) / 2 for k, v in cos.items()}
    domain = dict(fuse([lex, cos], FusionConfig()))
    reference = opensearch_min_max_mean([lex, os_scale], [0.5, 0.5])
    assert domain.keys() == reference.keys()
    assert all(abs(domain[k] - reference[k]) <= 1e-12 for k in reference)
