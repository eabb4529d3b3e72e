"""Hybrid score fusion, the same maths as OpenSearch's normalization processor.

OpenSearch (neural-search plugin, `normalization-processor`, technique `min_max` + `arithmetic_mean`):
  * each sub-query is normalised on its own results only: n = (s - min) / (max - min);
    a result equal to the minimum gets 0.001 instead of 0 (MIN_SCORE) so it stays distinguishable from a
    document the sub-query did not return; when max == min every score becomes 1.0;
  * the combined score is the weighted arithmetic mean sum(w_i * n_i) / sum(w_i), where a document that a
    sub-query did not return contributes n_i = 0 for that sub-query (its weight still counts).
Reciprocal rank fusion (the `score-ranker-processor` with `rrf`, rank_constant k=60) is offered as an option.
Keeping this pure lets a unit test prove that local and OpenSearch rankings agree on the same score lists.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

MIN_SCORE = 0.001
SINGLE_RESULT_SCORE = 1.0

FusionMethod = Literal["min_max", "rrf"]


@dataclass(frozen=True)
class FusionConfig:
    method: FusionMethod = "min_max"
    weights: tuple[float, ...] = (0.5, 0.5)  # (bm25, vector), like the pipeline's combination weights
    rank_constant: int = 60

    def __post_init__(self) -> None:
        if any(w < 0 or w > 1 for w in self.weights):
            raise ValueError("fusion weights must each lie in [0, 1]")
        if abs(sum(self.weights) - 1.0) > 1e-6:
            raise ValueError("fusion weights must add up to 1.0 (as OpenSearch requires)")
        if self.rank_constant < 1:
            raise ValueError("rank_constant must be >= 1")


def min_max_normalize(scores: Mapping[Hashable, float]) -> dict[Hashable, float]:
    if not scores:
        return {}
    lo, hi = min(scores.values()), max(scores.values())
    if hi == lo:
        return dict.fromkeys(scores, SINGLE_RESULT_SCORE)
    out: dict[Hashable, float] = {}
    for key, s in scores.items():
        n = (s - lo) / (hi - lo)
        out[key] = MIN_SCORE if n == 0.0 else n
    return out


def min_max_arithmetic_mean(
    sub_results: Sequence[Mapping[Hashable, float]], weights: Sequence[float]
) -> dict[Hashable, float]:
    """Normalise each sub-query's scores and combine them by weighted arithmetic mean."""
    if len(sub_results) != len(weights):
        raise ValueError("one weight per sub-query is required")
    normalised = [min_max_normalize(r) for r in sub_results]
    total_weight = sum(weights)
    keys: dict[Hashable, None] = {}
    for r in normalised:
        keys.update(dict.fromkeys(r))
    return {
        k: sum(w * r.get(k, 0.0) for r, w in zip(normalised, weights, strict=True)) / total_weight for k in keys
    }


def reciprocal_rank_fusion(
    sub_results: Sequence[Mapping[Hashable, float]], rank_constant: int = 60
) -> dict[Hashable, float]:
    fused: dict[Hashable, float] = {}
    for r in sub_results:
        ranked = sorted(r.items(), key=lambda kv: (-kv[1], str(kv[0])))
        for rank, (key, _) in enumerate(ranked, start=1):
            fused[key] = fused.get(key, 0.0) + 1.0 / (rank_constant + rank)
    return fused


def fuse(sub_results: Sequence[Mapping[Hashable, float]], config: FusionConfig) -> list[tuple[Hashable, float]]:
    """Fused (key, score) pairs, best first; ties broken by key for determinism."""
    if config.method == "rrf":
        combined = reciprocal_rank_fusion(sub_results, config.rank_constant)
    else:
        combined = min_max_arithmetic_mean(sub_results, config.weights)
    return sorted(combined.items(), key=lambda kv: (-kv[1], str(kv[0])))
