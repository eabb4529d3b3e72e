"""Calibrating the grounding check on stored drafts: tune on the `dev` split, report on the `report` split.

The answers evaluation with `--draft-cache` stores the model's draft for each prompt. Here every question goes
through the normal pipeline up to the prompt (`Answerer.plan`: guard on the question and the passages,
retrieval, the gate, the context), its draft is read back from the cache (never generated: a question without a
stored draft is counted as `not_drafted`), and the withhold decision of the service
(`lectern.domain.answering.withheld_because` over the guard's `check_answer`) is replayed for each candidate
setting of the grounding check. A setting is chosen on the dev questions (the lowest false abstention among those
abstaining on at least `target_abstention` of the unanswerable ones; ties: the strictest) and then measured once on
the report questions, which share no document with the dev ones (the split is by source document).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lectern.domain.answering import checked_answer, clean_answer, withheld_because
from lectern.evaluation.answers import DevQuestion, ingest_documents, load_devset
from lectern.evaluation.draft_cache import prompt_key
from lectern.evaluation.machine import command_line, loadavg, machine_info, now_iso
from lectern.settings import LocalSettings


@dataclass(frozen=True)
class GroundingSetting:
    threshold: float  # the policy's grounding_threshold: the supported fraction an answer needs
    min_overlap: float  # a sentence is supported when this share of its content words are in the cited passages
    min_similarity: float  # ... or when it is this close (cosine) to one of their sentences


@dataclass
class Replayed:
    """One question, ready to replay: its draft (None when gated or not drafted) and the passages it was given."""

    id: str
    split: str
    answerable: bool
    question: str
    gated: bool
    draft: str | None
    passages: list[Any] = field(default_factory=list)


class _MemoEmbedder:
    """The embedder with a memo per text: a sweep embeds the same doubtful sentences once."""

    def __init__(self, embedder: Any) -> None:
        self.embedder = embedder
        self.model_id = getattr(embedder, "model_id", "")
        self._memo: dict[str, np.ndarray] = {}

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in self._memo]
        if missing:
            for t, v in zip(missing, self.embedder.embed_documents(missing), strict=True):
                self._memo[t] = np.asarray(v)
        return np.stack([self._memo[t] for t in texts])

    def embed_query(self, text: str) -> np.ndarray:
        return np.asarray(self.embedder.embed_query(text))


def decide(guard: Any, item: Replayed, setting: GroundingSetting, embedder: Any) -> bool:
    """Would the service withhold this answer under `setting`? (the gate abstains before any draft)"""
    from lectern.adapters.local.guardrails.grounding import OverlapGroundingChecker

    if item.gated:
        return True
    assert item.draft is not None
    guard.grounding = OverlapGroundingChecker(
        embedder, min_overlap=setting.min_overlap, min_similarity=setting.min_similarity
    )
    guard.policy = dataclasses.replace(guard.policy, grounding_threshold=setting.threshold)
    checked = checked_answer(guard, "calibration", item.draft, item.passages, item.question)
    return withheld_because(item.draft, checked, len(item.passages)) is not None


def rates(withheld: Sequence[tuple[Replayed, bool]]) -> dict[str, float | int | None]:
    ans = [w for q, w in withheld if q.answerable]
    una = [w for q, w in withheld if not q.answerable]
    return {
        "answerable": len(ans),
        "unanswerable": len(una),
        "abstention_on_unanswerable": round(sum(una) / len(una), 4) if una else None,
        "false_abstention_on_answerable": round(sum(ans) / len(ans), 4) if ans else None,
    }


def choose(scores: dict[GroundingSetting, dict[str, Any]], target_abstention: float) -> GroundingSetting:
    """The setting with the lowest false abstention among those meeting the abstention target (failing that, the
    highest abstention); ties go to the strictest (highest threshold, overlap, similarity)."""

    def strict(s: GroundingSetting) -> tuple[float, float, float]:
        return (s.threshold, s.min_overlap, s.min_similarity)

    meeting = [s for s, r in scores.items() if (r["abstention_on_unanswerable"] or 0) >= target_abstention]
    if meeting:
        return min(
            meeting, key=lambda s: (scores[s]["false_abstention_on_answerable"] or 0, tuple(-x for x in strict(s)))
        )
    return max(scores, key=lambda s: (scores[s]["abstention_on_unanswerable"] or 0, strict(s)))


def prepare(lectern: Any, questions: Sequence[DevQuestion], drafts: dict[str, str], k: int) -> list[Replayed]:
    tenant = lectern.settings.tenant_id
    core = lectern.core_answerer
    model_id = lectern.model.model_id
    out = []
    for q in questions:
        plan = core.plan(tenant, q.question, top_k=k)
        item = Replayed(q.id, q.split, q.answerable, plan.question, plan.gated, None, list(plan.passages))
        if not plan.gated:
            text = drafts.get(prompt_key(model_id, plan.messages))
            item.draft = clean_answer(text) if text is not None else None
        out.append(item)
    return out


def run_calibration(
    settings: LocalSettings,
    dataset: Path,
    docs_dir: Path,
    draft_cache: Path,
    *,
    grid: Sequence[GroundingSetting],
    target_abstention: float = 0.95,
    top_k: int | None = None,
) -> dict[str, Any]:
    from lectern.local.container import build_local

    dev = load_devset(dataset)
    drafts = {}
    for line in draft_cache.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            drafts[row["key"]] = row["text"]
    machine = machine_info()
    lectern = build_local(settings.model_copy(update={"cache_enabled": False}))
    k = top_k or settings.top_k
    try:
        ingestion = ingest_documents(lectern, docs_dir, dev.documents)
        items = prepare(lectern, dev.questions, drafts, k)
        guard = lectern.guard
        if guard is None:
            raise ValueError("the grounding check is part of the guardrails: LECTERN_GUARDRAILS is off")
        embedder = _MemoEmbedder(lectern.embedder)
        usable = [i for i in items if i.gated or i.draft is not None]
        by_split = {s: [i for i in usable if i.split == s] for s in ("dev", "report")}
        sweep: dict[GroundingSetting, dict[str, Any]] = {}
        for setting in grid:
            sweep[setting] = rates([(i, decide(guard, i, setting, embedder)) for i in by_split["dev"]])
        chosen = choose(sweep, target_abstention)
        report_decisions = [(i, decide(guard, i, chosen, embedder)) for i in by_split["report"]]
        dev_decisions = [(i, decide(guard, i, chosen, embedder)) for i in by_split["dev"]]
        current = GroundingSetting(0.5, 0.6, 0.6)
        baseline = {
            s: rates([(i, decide(guard, i, current, embedder)) for i in by_split[s]]) for s in ("dev", "report")
        }
    finally:
        lectern.close()
    machine["loadavg_at_end"] = loadavg()

    def detail(decisions: Sequence[tuple[Replayed, bool]]) -> list[dict[str, Any]]:
        return [
            {"id": i.id, "answerable": i.answerable, "gated": i.gated, "withheld": w, "draft": i.draft}
            for i, w in decisions
        ]

    return {
        "dataset": dev.name,
        "draft_cache": str(draft_cache),
        "questions": len(items),
        "not_drafted": [i.id for i in items if not i.gated and i.draft is None],
        "target_abstention": target_abstention,
        "chosen": dataclasses.asdict(chosen),
        "dev": rates(dev_decisions),
        "report": rates(report_decisions),
        "previous_setting": {"setting": dataclasses.asdict(current), **baseline},
        "sweep_on_dev": [{**dataclasses.asdict(s), **r} for s, r in sweep.items()],
        "dev_questions": detail(dev_decisions),
        "report_questions": detail(report_decisions),
        "ingestion": ingestion,
        "machine": machine,
        "command": command_line(),
        "created_at": now_iso(),
    }


def default_grid() -> list[GroundingSetting]:
    return [
        GroundingSetting(t, o, s)
        for t, o, s in itertools.product((0.3, 0.5, 0.7, 0.99), (0.4, 0.5, 0.6, 0.7), (0.5, 0.6, 0.7, 0.8))
    ]
