"""Train the learned prompt-injection classifier
(lectern.adapters.local.guardrails.HashedNgramInjectionClassifier) on the DEV split only, and write
lambdas/lectern/data/injection_model.npz (weights, bias, thresholds) and injection_model.json (training data
hashes, sizes, settings and dev cross-validated metrics).

    .venv/bin/python scripts/train_injection_model.py [--shared ../shared] [--check]

Training data (nothing from the test split is read for fitting, threshold choice or feature choice):
- positives: tests/fixtures/guardrails/attacks.jsonl rows with split == "dev", every injection category
  (harmful_request is not an injection and is left out);
- negatives, questions: the benign dev questions of `lectern eval guardrails` (benign_questions.txt, docs-dev,
  SciFact claims with split == "dev"), tests/fixtures/guardrails/benign_train_questions.txt (hand-written for
  training, in no evaluation set) and single sentences of SciFact abstracts that are NOT in the evaluation's
  400-abstract sample;
- negatives, passages: the benign dev passages of the evaluation (benign_passages.txt and sampled SciFact
  abstracts with split == "dev") and further SciFact abstracts outside the evaluation's sample.

Model: logistic regression (L2, class-balanced) over hashed char 3-5-grams and word 1-2-grams, fitted by
full-batch Adam for a fixed number of steps from zero weights: deterministic, numpy only. The probability
cut-off per source (question, passage) is the lowest one whose out-of-fold (5-fold, fixed seed) false-positive
rate on that source's dev negatives is within FP_BUDGET.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "lambdas"))

from lectern.adapters.local.guardrails import (  # noqa: E402
    FEATURE_BITS,
    MODEL_PATH,
    LexicalInjectionDetector,
    hashed_features,
)
from lectern.evaluation.guardrails import (  # noqa: E402
    NOT_INJECTIONS,
    fixtures_dir,
    load_benign_passages,
    load_benign_questions,
)

SEED = 8
FOLDS = 5
STEPS = 300
LEARNING_RATE = 0.05
L2 = 1e-5
FP_BUDGET = {"question": 0.005, "passage": 0.005}
EXTRA_ABSTRACTS = 600  # SciFact abstracts outside the evaluation sample, as passages
EXTRA_SENTENCES = 800  # sentences of other such abstracts, as question-length negatives
EVAL_PASSAGE_SAMPLE = 400  # lectern.evaluation.guardrails.run_guardrails_eval's default


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").split("\n") if x.strip()]


def _lines(path: Path) -> list[str]:
    return [x.strip() for x in path.read_text().splitlines() if x.strip() and not x.startswith("#")]


def _sha(texts: list[str]) -> str:
    h = hashlib.sha256()
    for t in texts:
        h.update(t.encode())
        h.update(b"\0")
    return h.hexdigest()


def training_rows(shared: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(rows of text/label/source/set, a description with sizes and sha256 per set)."""
    sets: dict[str, list[tuple[str, int, str]]] = {}
    attacks = [
        r
        for r in _jsonl(fixtures_dir() / "attacks.jsonl")
        if r["split"] == "dev" and r["category"] not in NOT_INJECTIONS
    ]
    sets["attacks_dev"] = [(r["text"], 1, r["kind"]) for r in attacks]
    sets["benign_questions_dev"] = [
        (r["text"], 0, "question") for r in load_benign_questions(shared) if r["split"] == "dev"
    ]
    sets["benign_passages_dev"] = [
        (r["text"], 0, "passage")
        for r in load_benign_passages(shared, EVAL_PASSAGE_SAMPLE)
        if r["split"] == "dev"
    ]
    sets["benign_train_questions"] = [
        (t, 0, "question") for t in _lines(fixtures_dir() / "benign_train_questions.txt")
    ]
    # SciFact abstracts the evaluation never sees: the same seeded sample it draws, removed
    docs = _jsonl(shared / "data" / "scifact" / "corpus.jsonl")
    in_eval = {id(d) for d in random.Random(8).sample(docs, min(EVAL_PASSAGE_SAMPLE, len(docs)))}
    outside = [d for d in docs if id(d) not in in_eval]
    rng = random.Random(SEED)
    rng.shuffle(outside)
    abstracts = outside[:EXTRA_ABSTRACTS]
    sets["scifact_abstracts_outside_eval"] = [
        (f"{d.get('title', '')}\n{d['text']}".strip(), 0, "passage") for d in abstracts
    ]
    sentences = []
    for d in outside[EXTRA_ABSTRACTS:]:
        parts = [s for s in re.split(r"(?<=[.!?])\s+", d["text"]) if 30 <= len(s) <= 300]
        if parts:
            sentences.append(rng.choice(parts))
        if len(sentences) >= EXTRA_SENTENCES:
            break
    sets["scifact_sentences_outside_eval"] = [(s, 0, "question") for s in sentences]
    rows = [
        {"text": t, "label": y, "source": src, "set": name}
        for name, items in sets.items()
        for t, y, src in items
    ]
    described = {
        name: {"rows": len(items), "sha256": _sha([t for t, _, _ in items])} for name, items in sets.items()
    }
    return rows, described


# ------------------------------------------------------------------------------------------------ fitting


class Design:
    """A binary, L2-normalised sparse design matrix in CSR form."""

    def __init__(self, texts: list[str], bits: int = FEATURE_BITS) -> None:
        feats = [hashed_features(t, bits) for t in texts]
        sizes = np.array([max(1, f.size) for f in feats])
        self.indices = np.concatenate([f if f.size else np.zeros(1, np.int64) for f in feats])
        self.values = np.repeat(
            np.where(np.array([f.size for f in feats]) > 0, 1 / np.sqrt(sizes), 0.0), sizes
        )
        self.starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        self.sizes = sizes
        self.dim = 1 << bits

    def rows(self, which: np.ndarray) -> Design:
        sub = object.__new__(Design)
        spans = [np.arange(s, s + n) for s, n in zip(self.starts[which], self.sizes[which], strict=True)]
        pick = np.concatenate(spans)
        sub.indices, sub.values, sub.sizes, sub.dim = (
            self.indices[pick],
            self.values[pick],
            self.sizes[which],
            self.dim,
        )
        sub.starts = np.concatenate([[0], np.cumsum(sub.sizes)[:-1]])
        return sub

    def dot(self, w: np.ndarray) -> np.ndarray:
        return np.add.reduceat(w[self.indices] * self.values, self.starts)

    def tdot(self, g: np.ndarray) -> np.ndarray:
        return np.bincount(self.indices, weights=self.values * np.repeat(g, self.sizes), minlength=self.dim)


def fit(
    x: Design, y: np.ndarray, steps: int = STEPS, lr: float = LEARNING_RATE, l2: float = L2
) -> tuple[np.ndarray, float]:
    """Class-balanced, L2-regularised logistic regression by full-batch Adam from zero: deterministic."""
    pos = y.sum()
    sw = np.where(y == 1, 0.5 / max(pos, 1), 0.5 / max(len(y) - pos, 1))
    w = np.zeros(x.dim)
    b = 0.0
    m, v = np.zeros(x.dim + 1), np.zeros(x.dim + 1)
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    for t in range(1, steps + 1):
        z = x.dot(w) + b
        p = 1 / (1 + np.exp(-np.clip(z, -35, 35)))
        g = sw * (p - y)
        grad = np.concatenate([x.tdot(g) + l2 * w, [g.sum()]])
        m = beta1 * m + (1 - beta1) * grad
        v = beta2 * v + (1 - beta2) * grad * grad
        step = lr * (m / (1 - beta1**t)) / (np.sqrt(v / (1 - beta2**t)) + eps)
        w -= step[:-1]
        b -= float(step[-1])
    return w.astype(np.float32), float(np.float32(b))


def probabilities(x: Design, w: np.ndarray, b: float) -> np.ndarray:
    return 1 / (1 + np.exp(-(x.dot(w.astype(np.float64)) + b)))


def folds(texts: list[str], y: np.ndarray, k: int = FOLDS, seed: int = SEED) -> np.ndarray:
    """Fold number per row, fixed seed, stratified by label and grouped by the text's first 40 characters, so
    that variants of one attack template (the same passage with another injection, the same jailbreak with
    another payload) fall in the same fold and the out-of-fold scores are not flattered by near-duplicates."""
    rng = np.random.default_rng(seed)
    keys = np.array([" ".join(t.lower().split())[:40] for t in texts])
    out = np.zeros(len(y), dtype=int)
    for label in (0, 1):
        groups = sorted(set(keys[y == label]))
        order = rng.permutation(len(groups))
        fold_of = {groups[g]: i % k for i, g in enumerate(order)}
        for i in np.flatnonzero(y == label):
            out[i] = fold_of[keys[i]]
    return out


def choose_threshold(oof: np.ndarray, y: np.ndarray, lexical: np.ndarray, budget: float) -> float:
    """The middle of the cut-offs (0.01 grid) that give the best out-of-fold recall of lexical OR classifier
    while the classifier's own out-of-fold false-positive rate stays within budget."""
    grid = [round(float(t), 2) for t in np.arange(0.05, 0.951, 0.01)]
    ok = [t for t in grid if np.mean(oof[y == 0] >= t) <= budget]
    if not ok:
        return 0.95
    recall = {t: float(((oof >= t) | lexical)[y == 1].mean()) for t in ok}
    best = max(recall.values())
    top = [t for t in ok if recall[t] >= best - 1e-9]
    return top[len(top) // 2]


def train(shared: Path) -> dict[str, Any]:
    rows, described = training_rows(shared)
    texts = [r["text"] for r in rows]
    y = np.array([r["label"] for r in rows], dtype=float)
    src = np.array([r["source"] for r in rows])
    x = Design(texts)
    fold = folds(texts, y)
    oof = np.zeros(len(y))
    for k in range(FOLDS):
        tr, te = np.flatnonzero(fold != k), np.flatnonzero(fold == k)
        w, b = fit(x.rows(tr), y[tr])
        oof[te] = probabilities(x.rows(te), w, b)
    lexical = LexicalInjectionDetector()
    lex = np.array(
        [
            lexical.score(r["text"], source=r["source"]).score >= lexical.threshold("HIGH", r["source"])
            for r in rows
        ]
    )
    thresholds = {
        s: choose_threshold(oof[src == s], y[src == s], lex[src == s], FP_BUDGET[s])
        for s in ("question", "passage")
    }
    cv: dict[str, Any] = {}
    for s in ("question", "passage"):
        flagged = oof >= thresholds[s]
        pos, neg = (src == s) & (y == 1), (src == s) & (y == 0)
        cv[s] = {
            "threshold": thresholds[s],
            "positives": int(pos.sum()),
            "negatives": int(neg.sum()),
            "classifier_recall": round(float(flagged[pos].mean()), 4),
            "classifier_fp_rate": round(float(flagged[neg].mean()), 4),
            "lexical_recall": round(float(lex[pos].mean()), 4),
            "lexical_fp_rate": round(float(lex[neg].mean()), 4),
            "combined_recall": round(float((flagged | lex)[pos].mean()), 4),
            "combined_fp_rate": round(float((flagged | lex)[neg].mean()), 4),
        }
    per_set = {}
    for name in described:
        sel = np.array([r["set"] == name for r in rows])
        cut = np.array([thresholds[s] for s in src])
        per_set[name] = round(float(((oof >= cut) | lex)[sel].mean()), 4)
    weights, bias = fit(x, y)
    full = probabilities(x, weights, bias)
    return {
        "weights": weights,
        "bias": bias,
        "thresholds": thresholds,
        "report": {
            "what": "learned injection classifier, trained on the dev split only "
            "(scripts/train_injection_model.py)",
            "model": "logistic regression over hashed char 3-5-grams and word 1-2-grams "
            "(binary, L2-normalised)",
            "bits": FEATURE_BITS,
            "settings": {
                "seed": SEED,
                "folds": FOLDS,
                "steps": STEPS,
                "learning_rate": LEARNING_RATE,
                "l2": L2,
                "fp_budget": FP_BUDGET,
            },
            "training_sets": described,
            "thresholds": thresholds,
            "dev_cross_validated": cv,
            "dev_cross_validated_flag_rate_per_set": per_set,
            "dev_training_fit": {
                "recall": round(float((full >= np.array([thresholds[s] for s in src]))[y == 1].mean()), 4),
                "fp_rate": round(float((full >= np.array([thresholds[s] for s in src]))[y == 0].mean()), 4),
            },
            "weights_sha256": hashlib.sha256(weights.tobytes()).hexdigest(),
        },
    }


def save(result: dict[str, Any], path: Path = MODEL_PATH) -> None:
    meta = {"bits": FEATURE_BITS, "thresholds": result["thresholds"]}
    np.savez_compressed(
        path, weights=result["weights"], bias=np.float32(result["bias"]), meta=json.dumps(meta)
    )
    path.with_suffix(".json").write_text(json.dumps(result["report"], indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--out", type=Path, default=MODEL_PATH)
    parser.add_argument(
        "--check", action="store_true", help="retrain and compare with the shipped model, write nothing"
    )
    args = parser.parse_args()
    result = train(args.shared)
    print(json.dumps(result["report"]["dev_cross_validated"], indent=2))
    if args.check:
        shipped = json.loads(args.out.with_suffix(".json").read_text())
        same = shipped["weights_sha256"] == result["report"]["weights_sha256"]
        print("same weights as shipped" if same else "weights differ from the shipped model")
        sys.exit(0 if same else 1)
    save(result, args.out)
    print(f"wrote {args.out} and {args.out.with_suffix('.json')}")


if __name__ == "__main__":
    main()
