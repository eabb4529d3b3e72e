"""How often the semantic cache reuses an answer it should, and how often one it should not.

The pairs file (tests/fixtures/cache/pairs.jsonl) holds questions `a` (cached) and `b` (asked later),
labelled `paraphrase` (same meaning: a hit is right) or `near_miss` (same words, different entity / number /
negation / direction: a hit would be a wrong answer). For every threshold, with and without the key-terms
guard, the evaluation applies the cache's own rule (`lectern.domain.cache.decide`: exact tier, then cosine ≥
threshold and agreeing key terms) and reports the paraphrase hit rate, the near-miss false-hit rate and the
precision of hits.

The default threshold: among thresholds whose false-hit rate (guard on) is within `MAX_FALSE_HIT_RATE`, take
the best paraphrase hit rate H, then the *strictest* threshold still hitting at least H - `HIT_RATE_SLACK`: a
few points of hit rate buy margin against near misses this set does not contain. The figures depend on the
embedder, so a deployment with another one (Titan on AWS) must re-run this with it before trusting the
default. The pairs and the guard's word lists were written by the same hand: treat the guard's measured effect
as optimistic.
"""

from __future__ import annotations

import json
import platform
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from rich.table import Table

from lectern.domain.cache import decide
from lectern.domain.ports import Embedder

MAX_FALSE_HIT_RATE = 0.03
HIT_RATE_SLACK = 0.05
THRESHOLDS = tuple(round(0.80 + 0.01 * i, 2) for i in range(20))  # 0.80 .. 0.99


@dataclass(frozen=True)
class Pair:
    a: str
    b: str
    label: str  # "paraphrase" | "near_miss"
    kind: str
    topic: str = ""


def load_pairs(path: Path) -> list[Pair]:
    pairs = []
    for n, line in enumerate(Path(path).read_text().splitlines(), start=1):
        if not line.strip():
            continue
        row = json.loads(line)
        if row["label"] not in ("paraphrase", "near_miss"):
            raise ValueError(f"{path}:{n}: label must be paraphrase or near_miss")
        pairs.append(Pair(row["a"], row["b"], row["label"], row.get("kind", ""), row.get("topic", "")))
    return pairs


def pair_similarities(pairs: list[Pair], embedder: Embedder) -> np.ndarray:
    a = embedder.embed_documents([p.a for p in pairs])
    b = embedder.embed_documents([p.b for p in pairs])
    return np.sum(np.asarray(a, dtype=np.float32) * np.asarray(b, dtype=np.float32), axis=1)


@dataclass
class ThresholdRow:
    threshold: float
    guard: bool
    paraphrase_hit_rate: float
    false_hit_rate: float
    precision: float
    false_hits_by_kind: dict[str, int]


@dataclass
class CacheEvalReport:
    embedder: str
    pairs_file: str
    paraphrases: int
    near_misses: int
    max_false_hit_rate: float
    default_threshold: float
    default_guard: bool
    at_default: ThresholdRow
    at_default_without_guard: ThresholdRow
    false_hits_at_default: list[dict[str, object]]
    missed_paraphrases_at_default: list[dict[str, object]]
    rows: list[ThresholdRow]
    similarity_quantiles: dict[str, dict[str, float]]
    machine: dict[str, str] = field(default_factory=dict)
    created: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    def table(self) -> Table:
        t = Table(title=f"Semantic cache: {self.paraphrases} paraphrase / {self.near_misses} near-miss pairs")
        for col in ("threshold", "guard", "paraphrase hit rate", "false-hit rate", "precision"):
            t.add_column(col, justify="right")
        for r in self.rows:
            mark = " *" if r.threshold == self.default_threshold and r.guard == self.default_guard else ""
            t.add_row(
                f"{r.threshold:.2f}{mark}",
                "on" if r.guard else "off",
                f"{r.paraphrase_hit_rate:.3f}",
                f"{r.false_hit_rate:.3f}",
                f"{r.precision:.3f}",
            )
        return t


def evaluate(
    pairs: list[Pair], sims: np.ndarray, threshold: float, guard: bool
) -> tuple[ThresholdRow, list[bool]]:
    hits = [
        decide(p.a, p.b, float(s), threshold=threshold, guard=guard) for p, s in zip(pairs, sims, strict=True)
    ]
    para = [h for h, p in zip(hits, pairs, strict=True) if p.label == "paraphrase"]
    near = [h for h, p in zip(hits, pairs, strict=True) if p.label == "near_miss"]
    true_hits, false_hits = sum(para), sum(near)
    by_kind = Counter(p.kind for h, p in zip(hits, pairs, strict=True) if h and p.label == "near_miss")
    row = ThresholdRow(
        threshold=threshold,
        guard=guard,
        paraphrase_hit_rate=round(true_hits / max(1, len(para)), 4),
        false_hit_rate=round(false_hits / max(1, len(near)), 4),
        precision=round(true_hits / max(1, true_hits + false_hits), 4),
        false_hits_by_kind=dict(sorted(by_kind.items())),
    )
    return row, hits


def choose_threshold(
    rows: list[ThresholdRow], max_false_hit_rate: float, guard: bool = True, slack: float = HIT_RATE_SLACK
) -> ThresholdRow:
    """The strictest threshold within `slack` of the best hit rate inside the false-hit budget (the strictest
    threshold of all when none is inside the budget)."""
    candidates = sorted((r for r in rows if r.guard == guard), key=lambda r: r.threshold)
    within = [r for r in candidates if r.false_hit_rate <= max_false_hit_rate]
    if not within:
        return candidates[-1]
    best = max(r.paraphrase_hit_rate for r in within)
    return max((r for r in within if r.paraphrase_hit_rate >= best - slack - 1e-9), key=lambda r: r.threshold)


def run_cache_eval(
    pairs_path: Path,
    embedder: Embedder | None = None,
    *,
    thresholds: tuple[float, ...] = THRESHOLDS,
    max_false_hit_rate: float = MAX_FALSE_HIT_RATE,
) -> CacheEvalReport:
    if embedder is None:
        from lectern.adapters.local.onnx_embedder import OnnxMiniLMEmbedder

        embedder = OnnxMiniLMEmbedder()
    pairs = load_pairs(pairs_path)
    sims = pair_similarities(pairs, embedder)
    rows = [evaluate(pairs, sims, t, g)[0] for g in (True, False) for t in thresholds]
    best = choose_threshold(rows, max_false_hit_rate)
    without = next(r for r in rows if r.threshold == best.threshold and not r.guard)
    _, hits = evaluate(pairs, sims, best.threshold, True)

    def show(p: Pair, s: float) -> dict[str, object]:
        return {"a": p.a, "b": p.b, "kind": p.kind, "similarity": round(float(s), 4)}

    quantiles = {}
    for label in ("paraphrase", "near_miss"):
        s = np.array([x for x, p in zip(sims, pairs, strict=True) if p.label == label])
        quantiles[label] = {
            q: round(float(np.quantile(s, v)), 4) for q, v in (("p10", 0.1), ("p50", 0.5), ("p90", 0.9))
        }
    return CacheEvalReport(
        embedder=embedder.model_id,
        pairs_file=str(pairs_path),
        paraphrases=sum(p.label == "paraphrase" for p in pairs),
        near_misses=sum(p.label == "near_miss" for p in pairs),
        max_false_hit_rate=max_false_hit_rate,
        default_threshold=best.threshold,
        default_guard=True,
        at_default=best,
        at_default_without_guard=without,
        false_hits_at_default=[
            show(p, s) for p, s, h in zip(pairs, sims, hits, strict=True) if h and p.label == "near_miss"
        ],
        missed_paraphrases_at_default=[
            show(p, s) for p, s, h in zip(pairs, sims, hits, strict=True) if not h and p.label == "paraphrase"
        ],
        rows=rows,
        similarity_quantiles=quantiles,
        machine={"python": platform.python_version(), "platform": platform.platform()},
        created=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
