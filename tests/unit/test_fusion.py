"""Fusion maths against hand-computed cases, and agreement with OpenSearch's documented normalization."""

import pytest

from lectern.domain.fusion import (
    MIN_SCORE,
    FusionConfig,
    fuse,
    min_max_arithmetic_mean,
    min_max_normalize,
    reciprocal_rank_fusion,
)


def test_min_max_by_hand():
    # BM25 scores 10, 6, 2 -> (10-2)/8 = 1.0, (6-2)/8 = 0.5, and the minimum gets OpenSearch's 0.001 floor.
    assert min_max_normalize({"a": 10.0, "b": 6.0, "c": 2.0}) == {"a": 1.0, "b": 0.5, "c": MIN_SCORE}


def test_min_max_single_and_equal_scores_become_one():
    assert min_max_normalize({"a": 3.2}) == {"a": 1.0}
    assert min_max_normalize({"a": 0.4, "b": 0.4}) == {"a": 1.0, "b": 1.0}
    assert min_max_normalize({}) == {}


def test_weighted_arithmetic_mean_by_hand():
    bm25 = {"a": 10.0, "b": 6.0, "c": 2.0}  # -> a 1.0, b 0.5, c 0.001
    knn = {"b": 0.9, "d": 0.7, "a": 0.5}  # -> b 1.0, d 0.5, a 0.001
    fused = min_max_arithmetic_mean([bm25, knn], [0.3, 0.7])
    assert fused["a"] == pytest.approx(0.3 * 1.0 + 0.7 * 0.001)
    assert fused["b"] == pytest.approx(0.3 * 0.5 + 0.7 * 1.0)
    # A document a sub-query did not return contributes 0 for it, and that sub-query's weight still counts.
    assert fused["c"] == pytest.approx(0.3 * 0.001)
    assert fused["d"] == pytest.approx(0.7 * 0.5)
    ranking = [k for k, _ in fuse([bm25, knn], FusionConfig(weights=(0.3, 0.7)))]
    assert ranking == ["b", "d", "a", "c"]


def test_equal_weights_match_opensearch_default_mean():
    fused = min_max_arithmetic_mean([{"x": 1.0, "y": 0.0}, {"y": 2.0, "x": 1.0}], [0.5, 0.5])
    assert fused == pytest.approx({"x": (1.0 + 0.001) / 2, "y": (0.001 + 1.0) / 2})


def test_rrf_by_hand():
    fused = reciprocal_rank_fusion([{"a": 9, "b": 5}, {"b": 0.8, "c": 0.1}], rank_constant=60)
    assert fused["a"] == pytest.approx(1 / 61)
    assert fused["b"] == pytest.approx(1 / 62 + 1 / 61)
    assert fused["c"] == pytest.approx(1 / 62)
    assert [k for k, _ in fuse([{"a": 9, "b": 5}, {"b": 0.8, "c": 0.1}], FusionConfig(method="rrf"))] == [
        "b",
        "a",
        "c",
    ]


def test_ties_are_broken_deterministically():
    assert [k for k, _ in fuse([{"b": 1.0, "a": 1.0}], FusionConfig(weights=(1.0,)))] == ["a", "b"]


@pytest.mark.parametrize("weights", [(0.6, 0.6), (1.2, -0.2), (0.2, 0.2)])
def test_invalid_weights_are_rejected(weights):
    with pytest.raises(ValueError, match="weights"):
        FusionConfig(weights=weights)


def test_weight_count_must_match_sub_queries():
    with pytest.raises(ValueError):
        min_max_arithmetic_mean([{"a": 1.0}], [0.5, 0.5])
