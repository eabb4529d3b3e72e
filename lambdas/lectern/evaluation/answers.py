"""Answer evaluation: question / gold answer / gold passage triples, plus questions the documents cannot
answer.

The documents go through the normal ingestion pipeline (extraction, chunking, embedding, indexing) and every
question through the normal `Answerer`, with whichever chat model the settings select (the local llama model,
or LECTERN_LLM=fake for a quick run of everything but the model). Measured per question:

* retrieval hit@k: a passage of the gold file that contains the support span (or, when the span was cut by a
  chunk boundary, at least `SUPPORT_RECALL` of its words) is among the top k retrieved; and its reciprocal
  rank;
* answer correctness against any of the gold answers, SQuAD-normalised: exact match, token F1, and containment
  (the gold answer appears in the answer: the fair measure for a generative model that answers in a sentence);
* citations, over the answered answerable questions: precision = cited passages that contain the support span /
  cited passages; recall = supporting passages cited / supporting passages the model was given (its context;
  undefined when none was); support-span hit = of the cited supporting passages, those whose marked sentence
  (`support_start`/`support_end`) holds at least half the support span's content words;
* abstention: unanswerable questions should get the "I don't know" answer, answerable ones should not;
* optional LLM-as-judge faithfulness (1-5, is every claim supported by the cited passages) when a judge
  model is
  configured through an OpenAI-compatible endpoint.
"""

from __future__ import annotations

import json
import re
import string
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from lectern.domain.citations import terms
from lectern.domain.documents import resolve_content_type
from lectern.domain.models import Answer, ChatMessage, DocumentStatus
from lectern.evaluation.machine import command_line, loadavg, machine_info, now_iso, peak_rss_mib
from lectern.settings import LocalSettings

SUPPORT_RECALL = 0.7


# -- normalisation and scores (SQuAD's) --------------------------------------------------------------------
def normalize_answer(text: str) -> str:
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation) | {"’", "‘", "“", "”"})
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def exact_match(prediction: str, golds: Sequence[str]) -> float:
    p = normalize_answer(prediction)
    return float(any(p == normalize_answer(g) for g in golds))


def token_f1(prediction: str, golds: Sequence[str]) -> float:
    best = 0.0
    p = normalize_answer(prediction).split()
    for g in golds:
        gt = normalize_answer(g).split()
        common = Counter(p) & Counter(gt)
        same = sum(common.values())
        if not p or not gt or same == 0:
            continue
        precision, recall = same / len(p), same / len(gt)
        best = max(best, 2 * precision * recall / (precision + recall))
    return best


def contains_answer(prediction: str, golds: Sequence[str]) -> float:
    p = f" {normalize_answer(prediction)} "
    return float(any(f" {normalize_answer(g)} " in p for g in golds if normalize_answer(g)))


_CITATION_MARK = re.compile(r"\s*\[\d{1,2}\]")


def strip_citations(text: str) -> str:
    return _CITATION_MARK.sub("", text).strip()


def supports(chunk_text: str, support: str) -> bool:
    """Does a passage contain the support span (or most of its words, when a chunk boundary cut it)?"""
    c, s = normalize_answer(chunk_text), normalize_answer(support)
    if not s:
        return False
    if s in c:
        return True
    words = s.split()
    present = set(c.split())
    return sum(w in present for w in words) / len(words) >= SUPPORT_RECALL


# -- data set ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DevQuestion:
    id: str
    question: str
    answers: tuple[str, ...] = ()
    file: str = ""
    support: str = ""
    answerable: bool = True
    split: str = ""  # calibration: "dev" tunes the grounding check, "report" reports it (by source document)


@dataclass(frozen=True)
class DevSet:
    name: str
    documents: tuple[str, ...]
    questions: tuple[DevQuestion, ...]


def load_devset(path: Path) -> DevSet:
    raw = json.loads(path.read_text(encoding="utf-8"))
    questions = []
    for q in raw["questions"]:
        answerable = bool(q.get("answerable", True))
        if answerable and not (q.get("answers") and q.get("file") and q.get("support")):
            raise ValueError(f"{path}: answerable question {q.get('id')} needs answers, file and support")
        questions.append(
            DevQuestion(
                id=q["id"],
                question=q["question"],
                answers=tuple(q.get("answers", ())),
                file=q.get("file", ""),
                support=q.get("support", ""),
                answerable=answerable,
                split=q.get("split", ""),
            )
        )
    return DevSet(raw.get("name", path.stem), tuple(raw["documents"]), tuple(questions))


# -- judge -------------------------------------------------------------------------------------------------
JUDGE_PROMPT = """You grade whether an answer is faithful to its sources.
Sources:
{sources}

Question: {question}
Answer: {answer}

Is every claim in the answer supported by the sources? Reply with one digit from 1 (unsupported) to 5 (fully
supported), and nothing else."""


def judge_faithfulness(judge: Any, question: str, answer: str, sources: Sequence[str]) -> float | None:
    text = JUDGE_PROMPT.format(
        sources="\n\n".join(f"[{i}] {s}" for i, s in enumerate(sources, 1)), question=question, answer=answer
    )
    reply = judge.generate([ChatMessage("user", text)], max_tokens=4, temperature=0.0).text
    m = re.search(r"[1-5]", reply)
    return float(m.group(0)) if m else None


# -- run ---------------------------------------------------------------------------------------------------
@dataclass
class QuestionResult:
    id: str
    answerable: bool
    answer: str
    abstained: bool
    hit_at_k: float | None = None
    reciprocal_rank: float | None = None
    exact_match: float | None = None
    f1: float | None = None
    contains: float | None = None
    citation_precision: float | None = None
    citation_recall: float | None = None
    support_span_hit: float | None = None
    citations: int = 0
    judge: float | None = None
    ttft_ms: float = 0.0
    total_ms: float = 0.0


@dataclass
class AnswersReport:
    dataset: str
    model: str
    top_k: int
    summary: dict[str, float | None]
    questions: list[QuestionResult]
    settings: dict[str, object]
    ingestion: dict[str, object] = field(default_factory=dict)
    machine: dict[str, object] = field(default_factory=dict)
    peak_rss_mib: float = 0.0
    command: str = ""
    created_at: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    def table(self) -> Table:
        t = Table("metric", "value", title=f"{self.dataset} answers ({self.model})")
        for k, v in self.summary.items():
            t.add_row(k, "n/a" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v))
        return t


def _mean(values: Sequence[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return round(sum(vals) / len(vals), 4) if vals else None


def summarize(results: Sequence[QuestionResult]) -> dict[str, float | None]:
    ans = [r for r in results if r.answerable]
    una = [r for r in results if not r.answerable]
    answered = [r for r in ans if not r.abstained]
    return {
        "answerable": float(len(ans)),
        "unanswerable": float(len(una)),
        "retrieval_hit_at_k": _mean([r.hit_at_k for r in ans]),
        "retrieval_mrr": _mean([r.reciprocal_rank for r in ans]),
        "exact_match": _mean([r.exact_match for r in ans]),
        "token_f1": _mean([r.f1 for r in ans]),
        "answer_contains_gold": _mean([r.contains for r in ans]),
        "citation_precision": _mean([r.citation_precision for r in answered]),
        "citation_recall": _mean([r.citation_recall for r in answered]),
        "support_span_hit": _mean([r.support_span_hit for r in answered]),
        "abstention_on_unanswerable": _mean([float(r.abstained) for r in una]),
        "false_abstention_on_answerable": _mean([float(r.abstained) for r in ans]),
        "judge_faithfulness": _mean([r.judge for r in answered]),
        "ttft_ms_p50": _median([r.ttft_ms for r in results]),
        "total_ms_p50": _median([r.total_ms for r in results]),
    }


def _median(values: Sequence[float]) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return round(s[len(s) // 2], 1)


class _Inline:
    def start(self, tenant_id: str, document_id: str) -> None:
        return None


def ingest_documents(lectern: Any, docs_dir: Path, names: Sequence[str]) -> dict[str, object]:
    """Every document through the normal pipeline (upload, extraction, chunking, embedding, indexing)."""
    tenant = lectern.settings.tenant_id
    lectern.document_service.trigger = _Inline()  # run the pipeline here, not on the background worker
    started = time.perf_counter()
    chunks = 0
    failed: list[str] = []
    for name in names:
        data = (docs_dir / name).read_bytes()
        svc = lectern.document_service
        doc, _ = svc.create_upload(tenant, name, resolve_content_type(name, None), len(data))
        svc.receive_upload(tenant, doc.document_id, data)
        done = lectern.pipeline.run(tenant, doc.document_id)
        if done.status is not DocumentStatus.INDEXED:
            failed.append(f"{name}: {done.error}")
        chunks += done.chunks or 0
    return {
        "documents": len(names),
        "chunks": chunks,
        "failed": failed,
        "seconds": round(time.perf_counter() - started, 1),
    }


def evaluate_question(lectern: Any, q: DevQuestion, k: int, judge: Any = None) -> QuestionResult:
    tenant = lectern.settings.tenant_id
    result = QuestionResult(q.id, q.answerable, "", False)
    if q.answerable:
        hits = lectern.retriever.search(tenant, q.question, top_k=k)
        ranks = [i for i, h in enumerate(hits, 1) if h.chunk.filename == q.file and supports(h.chunk.text, q.support)]
        result.hit_at_k = float(bool(ranks))
        result.reciprocal_rank = 1.0 / ranks[0] if ranks else 0.0
    started = time.perf_counter()
    answer = None
    for event in lectern.answerer.stream(tenant, q.question, top_k=k):
        if event.kind == "token" and not result.ttft_ms:
            result.ttft_ms = round((time.perf_counter() - started) * 1000, 1)
        if event.kind == "done":
            answer = event.answer
    result.total_ms = round((time.perf_counter() - started) * 1000, 1)
    assert answer is not None
    result.answer, result.abstained, result.citations = answer.answer, answer.abstained, len(answer.citations)
    if not q.answerable or answer.abstained:
        if q.answerable:
            result.exact_match = result.f1 = result.contains = 0.0
        return result
    text = strip_citations(answer.answer)
    result.exact_match = exact_match(text, q.answers)
    result.f1 = token_f1(text, q.answers)
    result.contains = contains_answer(text, q.answers)
    result.citation_precision, result.citation_recall, result.support_span_hit = citation_scores(answer, q)
    by_id = {p.chunk.chunk_id: p.chunk for p in answer.retrieved}
    cited = [by_id[c.chunk_id] for c in answer.citations if c.chunk_id in by_id]
    if judge is not None:
        result.judge = judge_faithfulness(judge, q.question, text, [c.text for c in cited])
    return result


def citation_scores(answer: Answer, q: DevQuestion) -> tuple[float | None, float | None, float | None]:
    """(precision, recall, support-span hit) of an answer's citations against the question's gold support."""

    def supporting(filename: str, text: str) -> bool:
        return filename == q.file and supports(text, q.support)

    cited = answer.citations
    good = [c for c in cited if supporting(c.filename, c.text)]
    precision = len(good) / len(cited) if cited else None
    given = {p.chunk.chunk_id for p in answer.retrieved if supporting(p.chunk.filename, p.chunk.text)}
    recall = len(given & {c.chunk_id for c in good}) / len(given) if given else None
    gold = terms(q.support)
    hits = [len(gold & terms(c.text[c.support_start : c.support_end])) >= 0.5 * len(gold) for c in good if gold]
    span_hit = sum(hits) / len(hits) if hits else None
    return precision, recall, span_hit


def run_answers_eval(
    settings: LocalSettings,
    dataset: Path,
    docs_dir: Path,
    *,
    top_k: int | None = None,
    judge: Any = None,
    max_questions: int | None = None,
    console: Console | None = None,
    draft_cache: Path | None = None,
) -> AnswersReport:
    from lectern.local.container import build_local

    dev = load_devset(dataset)
    missing = [n for n in dev.documents if not (docs_dir / n).is_file()]
    if missing:
        raise FileNotFoundError(f"not in {docs_dir}: {', '.join(missing)}")
    machine = machine_info()
    # every question must reach retrieval and the model: a cache hit would score the cache, not the pipeline
    settings = settings.model_copy(update={"cache_enabled": False})
    lectern = build_local(settings)
    k = top_k or settings.top_k
    recorder = None
    if draft_cache is not None:  # drafts per prompt: a rerun (or a threshold sweep) does not regenerate
        from lectern.evaluation.draft_cache import RecordingChatModel

        recorder = RecordingChatModel(lectern.model, draft_cache)
        lectern.model = recorder  # an attribute set at construction, read when the answerer is built
    try:
        ingestion = ingest_documents(lectern, docs_dir, dev.documents)
        warm = getattr(lectern.model, "warm", None)
        if warm and (recorder is None or len(recorder) < len(dev.questions)):
            warm()
        results = []
        for i, q in enumerate(dev.questions[: max_questions or None], 1):
            r = evaluate_question(lectern, q, k, judge)
            results.append(r)
            if console:
                console.print(f"[dim]{i:>3} {q.id:<8} {r.total_ms:>8.0f} ms  {r.answer[:90]!r}[/dim]")
        model_id = getattr(lectern.model, "model_id", settings.llm)
        if recorder is not None:
            ingestion["drafts_from_cache"] = recorder.hits
            ingestion["drafts_generated"] = recorder.misses
    finally:
        lectern.close()
    machine["loadavg_at_end"] = loadavg()
    return AnswersReport(
        dataset=dev.name,
        model=f"{settings.llm}:{model_id}",
        top_k=k,
        summary=summarize(results),
        questions=results,
        settings={
            "chunk_size": settings.chunk_size,
            "chunk_overlap": settings.chunk_overlap,
            "fusion": settings.fusion,
            "bm25_weight": settings.bm25_weight,
            "candidates": settings.candidates,
            "max_context_tokens": settings.max_context_tokens,
            "prompt_version": settings.prompt_version,
            "judge": judge.model_id if judge is not None else None,
        },
        ingestion=ingestion,
        machine=machine,
        peak_rss_mib=peak_rss_mib(),
        command=command_line(),
        created_at=now_iso(),
    )
