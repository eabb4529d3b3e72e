"""Multi-turn evaluation: follow-up questions answered inside their conversation (rewritten from the history)
against the same follow-ups asked alone (no rewriting) and against the standalone question a perfect rewrite
would give (the dev question the follow-up stands for: an upper bound).

The set (tests/fixtures/answers/docs-followups.json, written by us) opens each conversation with a dev-set
question and continues with follow-ups that name the dev question they stand for (`ref`), which gives each its
gold answers, file and support span. Every turn goes through the normal answer pipeline (cache off): the first
turn starts a conversation, each follow-up is asked with its conversation_id. Measured per follow-up and mode:
retrieval hit@k of the question that mode searched (a passage of the gold file holding the support), the gold
answer contained in the answer, abstention (answerable ones should not abstain, unanswerable ones should).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from lectern.evaluation.answers import DevQuestion, contains_answer, ingest_documents, load_devset, strip_citations
from lectern.evaluation.answers import supports as passage_supports
from lectern.evaluation.machine import command_line, loadavg, machine_info, now_iso, peak_rss_mib
from lectern.settings import LocalSettings

MODES = ("conversation", "alone", "oracle")  # rewritten from the history / asked alone / the gold standalone
EVAL_USER = "eval-followups"


@dataclass(frozen=True)
class FollowUp:
    conversation: str
    question: str
    ref: DevQuestion


@dataclass(frozen=True)
class Conversation:
    id: str
    first: DevQuestion
    follow_ups: tuple[FollowUp, ...]


def load_followups(path: Path) -> tuple[str, tuple[str, ...], tuple[Conversation, ...]]:
    """(name, documents, conversations); the set's description is read by `describe`."""
    raw = json.loads(path.read_text(encoding="utf-8"))
    dev = load_devset(path.parent / raw["questions_from"])
    by_id = {q.id: q for q in dev.questions}
    convs = []
    for c in raw["conversations"]:
        fups = tuple(FollowUp(c["id"], f["question"], by_id[f["ref"]]) for f in c["follow_ups"])
        convs.append(Conversation(c["id"], by_id[c["first"]], fups))
    return raw.get("name", path.stem), dev.documents, tuple(convs)


@dataclass
class ModeResult:
    searched: str
    answer: str
    abstained: bool
    hit_at_k: float | None = None
    contains: float | None = None
    ms: float = 0.0


@dataclass
class FollowUpResult:
    conversation: str
    question: str
    ref: str
    answerable: bool
    rewrite: str
    modes: dict[str, ModeResult] = field(default_factory=dict)


def _hit(lectern: Any, question: str, q: DevQuestion, k: int) -> float:
    hits = lectern.retriever.search(lectern.settings.tenant_id, question, top_k=k)
    return float(any(h.chunk.filename == q.file and passage_supports(h.chunk.text, q.support) for h in hits))


def _ask(lectern: Any, question: str, q: DevQuestion, k: int, conversation_id: str | None = None) -> ModeResult:
    started = time.perf_counter()
    a = lectern.answerer.answer(
        lectern.settings.tenant_id, question, top_k=k, user_id=EVAL_USER, conversation_id=conversation_id
    )
    ms = round((time.perf_counter() - started) * 1000, 1)
    searched = a.standalone_question or question
    r = ModeResult(searched, a.answer, a.abstained, ms=ms)
    if q.answerable:
        r.hit_at_k = _hit(lectern, searched, q, k)
        r.contains = 0.0 if a.abstained else contains_answer(strip_citations(a.answer), q.answers)
    return r


def _mean(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return round(sum(vals) / len(vals), 4) if vals else None


def summarize(results: list[FollowUpResult]) -> dict[str, float | None]:
    ans = [r for r in results if r.answerable]
    una = [r for r in results if not r.answerable]
    out: dict[str, float | None] = {
        "follow_ups": float(len(results)),
        "answerable": float(len(ans)),
        "unanswerable": float(len(una)),
        "rewritten_by_model": float(sum(r.rewrite == "model" for r in results)),
        "rewritten_by_terms": float(sum(r.rewrite == "terms" for r in results)),
    }
    for mode in MODES:
        out[f"{mode}_retrieval_hit_at_k"] = _mean([r.modes[mode].hit_at_k for r in ans])
        out[f"{mode}_answer_contains_gold"] = _mean([r.modes[mode].contains for r in ans])
        out[f"{mode}_false_abstention"] = _mean([float(r.modes[mode].abstained) for r in ans])
        out[f"{mode}_abstention_on_unanswerable"] = _mean([float(r.modes[mode].abstained) for r in una])
    return out


@dataclass
class FollowUpsReport:
    dataset: str
    model: str
    top_k: int
    summary: dict[str, float | None]
    follow_ups: list[FollowUpResult]
    description: str = ""  # the set's own description: who wrote it, over which documents
    ingestion: dict[str, object] = field(default_factory=dict)
    machine: dict[str, object] = field(default_factory=dict)
    peak_rss_mib: float = 0.0
    command: str = ""
    created_at: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, ensure_ascii=False)

    def table(self) -> Table:
        t = Table("metric", *MODES, title=f"{self.dataset} follow-ups ({self.model})")
        for metric in ("retrieval_hit_at_k", "answer_contains_gold", "false_abstention", "abstention_on_unanswerable"):
            cells = [self.summary.get(f"{m}_{metric}") for m in MODES]
            t.add_row(metric, *("n/a" if c is None else f"{c:.3f}" for c in cells))
        return t


def run_followups_eval(
    settings: LocalSettings,
    dataset: Path,
    docs_dir: Path,
    *,
    top_k: int | None = None,
    max_conversations: int | None = None,
    console: Console | None = None,
) -> FollowUpsReport:
    from lectern.local.container import build_local

    name, documents, conversations = load_followups(dataset)
    missing = [n for n in documents if not (docs_dir / n).is_file()]
    if missing:
        raise FileNotFoundError(f"not in {docs_dir}: {', '.join(missing)}")
    machine = machine_info()
    settings = settings.model_copy(update={"cache_enabled": False})  # score the pipeline, not the cache
    lectern = build_local(settings)
    k = top_k or settings.top_k
    results: list[FollowUpResult] = []
    try:
        ingestion = ingest_documents(lectern, docs_dir, documents)
        warm = getattr(lectern.model, "warm", None)
        if warm:
            warm()
        tenant = lectern.settings.tenant_id
        for conv in conversations[: max_conversations or None]:
            first = lectern.answerer.answer(tenant, conv.first.question, top_k=k, user_id=EVAL_USER, remember=True)
            cid = first.conversation_id
            for f in conv.follow_ups:
                r = FollowUpResult(conv.id, f.question, f.ref.id, f.ref.answerable, "none")
                r.modes["conversation"] = _ask(lectern, f.question, f.ref, k, conversation_id=cid)
                r.rewrite = lectern.conversations.get(tenant, EVAL_USER, cid).turns[-1].rewrite
                r.modes["alone"] = _ask(lectern, f.question, f.ref, k)
                r.modes["oracle"] = _ask(lectern, f.ref.question, f.ref, k)
                results.append(r)
                if console:
                    c = r.modes["conversation"]
                    console.print(f"[dim]{conv.id:<7} {r.rewrite:<5} {c.ms:>7.0f} ms {c.searched[:70]!r}[/dim]")
        model_id = getattr(lectern.model, "model_id", settings.llm)
    finally:
        lectern.close()
    machine["loadavg_at_end"] = loadavg()
    return FollowUpsReport(
        dataset=name,
        model=f"{settings.llm}:{model_id}",
        top_k=k,
        summary=summarize(results),
        follow_ups=results,
        description=json.loads(dataset.read_text(encoding="utf-8")).get("description", ""),
        ingestion=ingestion,
        machine=machine,
        peak_rss_mib=peak_rss_mib(),
        command=command_line(),
        created_at=now_iso(),
    )
