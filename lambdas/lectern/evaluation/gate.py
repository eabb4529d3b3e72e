"""The release gate: evaluate a baseline and a candidate configuration, compare them with the reviewed thresholds
in `eval/gate.toml`, write a report (JSON + Markdown), and say whether the candidate may be promoted.

A configuration is a TOML file: `name`, an optional `prompt_file` (a prompt template not in the package, for
trying one out), a `[settings]` table of LocalSettings fields (prompt_version, top_k, bm25_weight, cache_threshold,
guardrail_learned_injection, llm ...) and an optional `[deploy]` table (generation_model_id) that promotion
writes into a CDK environment. Its digest is the SHA-256 of its canonical content plus the text of the prompt it
uses, so a promotion can require a passing report for exactly that candidate.

Suites (each runs once per distinct set of the settings it reads; a candidate that changes only the prompt
reuses the baseline's retrieval, guardrails and cache results, marked `shared`):
- retrieval: NDCG@10, Recall@100, MRR@10 per query on a bounded BEIR subset (SciFact), one search mode;
- answers: the dev question set through the whole pipeline with the configured model (`llm = "fake"`, the
  extractive test model, by default; llama or a Messages API model when the config says so), F1, containment,
  citation precision, abstention; cost per query = the recorded token usage priced as the deployed model;
- guardrails: attack success rate (1 - block rate on the held-out attacks) and benign block rate;
- cache: paraphrase hit rate and near-miss false-hit rate at the config's threshold and key-terms guard.

Confidence intervals: percentile bootstrap of the candidate-minus-baseline delta, paired per item (question,
query, pair) when both sides scored the same items. The verdict compares the point estimates with the
tolerances (the tolerance is the reviewed budget; the interval shows how much the sample can be trusted).
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
import tomllib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from lectern.evaluation.tracking import EvalStore, code_version, now_iso, sha256_file, sha256_files

Items = dict[str, float]  # item id -> score (a question, a query, a pair)


class GateError(Exception):
    """A configuration or thresholds file that cannot be used (the message says which and why)."""


# -- configurations ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GateConfig:
    name: str
    path: Path
    settings: dict[str, Any]
    deploy: dict[str, Any] = field(default_factory=dict)
    prompt_file: Path | None = None

    def prompt_text(self) -> str:
        if self.prompt_file is not None:
            return self.prompt_file.read_text(encoding="utf-8")
        from importlib import resources

        version = self.settings.get("prompt_version") or _default("prompt_version")
        return resources.files("lectern.prompts").joinpath(f"{version}.txt").read_text(encoding="utf-8")

    def canonical(self) -> dict[str, Any]:
        return {
            "settings": dict(sorted(self.settings.items())),
            "deploy": dict(sorted(self.deploy.items())),
            "prompt_sha256": hashlib.sha256(self.prompt_text().encode()).hexdigest(),
        }

    @property
    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.canonical(), sort_keys=True).encode()).hexdigest()

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": str(self.path),
            "digest": self.digest,
            "settings": self.settings,
            "deploy": self.deploy,
            "prompt_file": str(self.prompt_file) if self.prompt_file else None,
        }


def _default(name: str) -> Any:
    from lectern.settings import LocalSettings

    return LocalSettings.model_fields[name].default


DEPLOY_FIELDS = {"generation_model_id", "strong_model_id"}


def load_config(path: Path) -> GateConfig:
    from lectern.settings import LocalSettings

    data = _read_toml(path, "configuration")
    unknown_top = set(data) - {"name", "prompt_file", "settings", "deploy"}
    if unknown_top:
        raise GateError(f"{path}: unknown key(s) {', '.join(sorted(unknown_top))}")
    settings = dict(data.get("settings", {}))
    bad = sorted(set(settings) - set(LocalSettings.model_fields) | ({"data_dir"} & set(settings)))
    if bad:
        raise GateError(f"{path}: not a setting the gate can vary: {', '.join(bad)}")
    deploy = dict(data.get("deploy", {}))
    if set(deploy) - DEPLOY_FIELDS:
        raise GateError(f"{path}: [deploy] takes only {', '.join(sorted(DEPLOY_FIELDS))}")
    prompt_file = None
    if "prompt_file" in data:
        prompt_file = (path.parent / data["prompt_file"]).resolve()
        if not prompt_file.is_file():
            raise GateError(f"{path}: prompt_file {prompt_file} does not exist")
    config = GateConfig(str(data.get("name", path.stem)), path, settings, deploy, prompt_file)
    _validate(config)
    return config


def _read_toml(path: Path, what: str) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise GateError(f"no {what} {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise GateError(f"{path} is not valid TOML: {exc}") from None


def _validate(config: GateConfig) -> None:
    """The settings build and the prompt file parses, or GateError naming the file and each bad value."""
    path, prompt_file = config.path, config.prompt_file
    try:
        with tempfile.TemporaryDirectory() as tmp:
            config_settings(config, Path(tmp))
        if prompt_file is not None:
            from lectern.domain.prompts import parse_template

            parse_template(config.name, config.prompt_text())
    except ValidationError as exc:  # one line per bad setting, named as in the file
        bad_values = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise GateError(f"{path}: {bad_values}") from None
    except ValueError as exc:  # a prompt template that does not parse
        raise GateError(f"{path}: {exc}") from None


def config_settings(config: GateConfig, data_dir: Path) -> Any:
    from lectern.settings import LocalSettings

    return LocalSettings(**{**config.settings, "data_dir": data_dir})


# -- thresholds ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    metric: str  # "suite.metric"
    better: str  # "higher" | "lower"
    tolerance: float

    @property
    def suite(self) -> str:
        return self.metric.split(".", 1)[0]


@dataclass(frozen=True)
class Thresholds:
    path: Path
    root: Path
    sha256: str
    suites: dict[str, dict[str, Any]]
    rules: list[Rule]
    cost_per_query_usd: float
    price_as: str
    bootstrap_samples: int
    confidence: float
    seed: int

    def resolve(self, value: str) -> Path:
        p = Path(value).expanduser()
        return p if p.is_absolute() else (self.root / p)


SUITES = ("retrieval", "answers", "guardrails", "cache")


def load_thresholds(path: Path) -> Thresholds:
    data = _read_toml(path, "thresholds file")
    suites = data.get("suites", {})
    if not set(suites) <= set(SUITES):
        raise GateError(f"{path}: unknown suite(s) {', '.join(sorted(set(suites) - set(SUITES)))}")
    rules = []
    for metric, rule in data.get("metrics", {}).items():
        if rule.get("better") not in ("higher", "lower") or float(rule.get("tolerance", -1)) < 0:
            raise GateError(f"{path}: metric {metric} needs better = higher|lower and tolerance >= 0")
        if metric.split(".", 1)[0] not in suites:
            raise GateError(f"{path}: metric {metric} names a suite that is not configured")
        rules.append(Rule(metric, rule["better"], float(rule["tolerance"])))
    budget = data.get("budget", {})
    boot = data.get("bootstrap", {})
    return Thresholds(
        path=path,
        root=path.resolve().parent.parent,  # eval/gate.toml -> the repository
        sha256=sha256_file(path),
        suites=suites,
        rules=rules,
        cost_per_query_usd=float(budget.get("cost_per_query_usd", float("inf"))),
        price_as=str(budget.get("price_as", "amazon.nova-lite-v1:0")),
        bootstrap_samples=int(boot.get("samples", 2000)),
        confidence=float(boot.get("confidence", 0.95)),
        seed=int(boot.get("seed", 20)),
    )


# -- suites --------------------------------------------------------------------------------------------------


@dataclass
class SuiteResult:
    suite: str
    metrics: dict[str, float | None]
    items: dict[str, Items]  # metric -> per-item scores (for the bootstrap)
    data: dict[str, str]  # what was read -> sha256
    seconds: float
    samples: int
    detail: dict[str, Any] = field(default_factory=dict)
    shared: bool = False


# settings each suite reads: equal values -> the baseline's result is reused for the candidate
SUITE_INPUTS = {
    "retrieval": ("chunk_size", "chunk_overlap", "bm25_weight", "candidates", "fusion"),
    "guardrails": ("guardrails", "guardrail_policy", "guardrail_learned_injection"),
    "cache": ("cache_threshold", "cache_key_terms_guard"),
}


def _mean(values: Items) -> float | None:
    return round(float(np.mean(list(values.values()))), 4) if values else None


def run_retrieval(spec: dict[str, Any], th: Thresholds, settings: Any) -> SuiteResult:
    import pytrec_eval

    from lectern.evaluation.retrieval import build_index, collect_candidates, load_beir, mode_runs, open_eval_lectern

    dataset = th.resolve(spec["dataset"])
    split = spec.get("split", "test")
    mode = spec.get("mode", "hybrid")
    started = time.perf_counter()
    data = load_beir(dataset, split, max_queries=spec.get("max_queries"), max_docs=spec.get("max_docs"))
    cache = spec.get("embedding_cache")
    lectern = open_eval_lectern(settings, th.resolve(cache) if cache else None)
    try:
        build_index(lectern, data.corpus, None)
        cands = collect_candidates(lectern, data.queries)
        run = mode_runs(cands, lectern.retriever.config.fusion, settings.candidates, [mode])[mode]
    finally:
        lectern.close()
    run = {q: r for q, r in run.items() if q in data.qrels and r}
    top10 = {q: dict(sorted(d.items(), key=lambda kv: -kv[1])[:10]) for q, d in run.items()}
    full = pytrec_eval.RelevanceEvaluator(data.qrels, {"ndcg_cut.10", "recall.100"}).evaluate(run)
    mrr = pytrec_eval.RelevanceEvaluator(data.qrels, {"recip_rank"}).evaluate(top10)
    items = {  # a judged query with no results scores 0, as in `lectern eval retrieval`
        "ndcg_at_10": {q: full.get(q, {}).get("ndcg_cut_10", 0.0) for q in data.qrels},
        "recall_at_100": {q: full.get(q, {}).get("recall_100", 0.0) for q in data.qrels},
        "mrr_at_10": {q: mrr.get(q, {}).get("recip_rank", 0.0) for q in data.qrels},
    }
    files = [dataset / "corpus.jsonl", dataset / "queries.jsonl", dataset / "qrels" / f"{split}.tsv"]
    return SuiteResult(
        "retrieval",
        {k: _mean(v) for k, v in items.items()},
        items,
        {f"retrieval:{dataset.name}": sha256_files(files)},
        round(time.perf_counter() - started, 1),
        len(data.qrels),
        {"mode": mode, "documents": len(data.corpus), "queries": len(data.qrels), "split": split},
    )


class _UsageRecorder:
    """Stands in for the pipeline's answerer: passes every event on and keeps each final answer's usage."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.usage: list[tuple[int, int]] = []

    def stream(self, *args: Any, **kwargs: Any) -> Any:
        for event in self.inner.stream(*args, **kwargs):
            if event.kind == "done" and event.answer is not None:
                u = event.answer.usage
                self.usage.append((u.input_tokens, u.output_tokens))
            yield event

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def run_answers(spec: dict[str, Any], th: Thresholds, settings: Any, config: GateConfig) -> SuiteResult:
    from lectern.domain.costing import PriceTable
    from lectern.domain.models import Usage
    from lectern.domain.prompts import PromptSplit, parse_template
    from lectern.evaluation.answers import evaluate_question, ingest_documents, load_devset
    from lectern.local.container import build_local

    dataset, docs = th.resolve(spec["dataset"]), th.resolve(spec["docs"])
    dev = load_devset(dataset)
    missing = [n for n in dev.documents if not (docs / n).is_file()]
    if missing:
        raise GateError(f"answers suite: not in {docs}: {', '.join(missing)}")
    started = time.perf_counter()
    settings = settings.model_copy(update={"cache_enabled": False})  # score the pipeline, not the cache
    lectern = build_local(settings)
    if config.prompt_file is not None:  # a template under trial, not (yet) in the package
        template = parse_template(config.prompt_file.stem, config.prompt_text())
        core = lectern.core_answerer
        core.template, core.prompts = template, PromptSplit(template)
    try:
        ingest_documents(lectern, docs, dev.documents)
        warm = getattr(lectern.model, "warm", None)
        if warm:
            warm()
        recorder = _UsageRecorder(lectern.answerer)
        lectern.__dict__["answerer"] = recorder  # evaluate_question reads lectern.answerer
        questions = dev.questions[: spec.get("max_questions") or None]
        results = [evaluate_question(lectern, q, settings.top_k) for q in questions]
        model_id = getattr(lectern.model, "model_id", settings.llm)
    finally:
        lectern.close()
    prices = PriceTable.load()
    costs = {
        q.id: prices.tokens(th.price_as, Usage(i, o)).usd for q, (i, o) in zip(questions, recorder.usage, strict=True)
    }
    ans = [r for r in results if r.answerable]
    una = [r for r in results if not r.answerable]
    items: dict[str, Items] = {
        "token_f1": {r.id: r.f1 or 0.0 for r in ans},
        "answer_contains_gold": {r.id: r.contains or 0.0 for r in ans},
        "citation_precision": {
            r.id: r.citation_precision for r in ans if not r.abstained and r.citation_precision is not None
        },
        "abstention_on_unanswerable": {r.id: float(r.abstained) for r in una},
        "false_abstention_on_answerable": {r.id: float(r.abstained) for r in ans},
        "cost_per_query_usd": costs,
    }
    metrics = {k: _mean(v) for k, v in items.items()}
    metrics["cost_per_query_usd"] = round(float(np.mean(list(costs.values()))), 8) if costs else None
    return SuiteResult(
        "answers",
        metrics,
        items,
        {
            f"answers:{dataset.name}": sha256_file(dataset),
            "answers:documents": sha256_files([docs / n for n in dev.documents]),
        },
        round(time.perf_counter() - started, 1),
        len(results),
        {
            "model": f"{settings.llm}:{model_id}",
            "prompt": config.prompt_file.name if config.prompt_file else settings.prompt_version,
            "questions": len(results),
            "cost_basis": f"recorded usage priced as {th.price_as} (lectern/data/model_prices.json)",
        },
    )


def run_guardrails(spec: dict[str, Any], th: Thresholds, settings: Any) -> SuiteResult:
    from lectern.adapters.local.guardrails import build_local_guard
    from lectern.domain.guardrails import GuardrailPolicy
    from lectern.evaluation.guardrails import fixtures_dir, run_guardrails_eval

    started = time.perf_counter()
    if not settings.guardrails:  # guardrails off: every attack reaches the model
        raise GateError("guardrails suite: the configuration turns guardrails off (guardrails = false)")
    policy = None
    if settings.guardrail_policy:
        policy = GuardrailPolicy.from_json(Path(settings.guardrail_policy).read_text())
    shared = th.resolve(spec["shared"]) if spec.get("shared") else None
    guard = build_local_guard(policy, learned_injection=settings.guardrail_learned_injection)
    report = run_guardrails_eval(guard, shared=shared, passage_sample=int(spec.get("passage_sample", 400)))
    split = spec.get("split", "test")
    inj = report["attacks"][split]["injections"]
    benign = report["benign"][split]["questions"]
    # per-item outcomes rebuilt from the counts (the mean is the statistic, so the bootstrap is the same)
    attack_items = {f"a{i}": float(i >= inj["blocked"]) for i in range(inj["total"])}
    benign_items = {f"b{i}": float(i < benign["blocked"]) for i in range(benign["total"])}
    fixtures = fixtures_dir()
    return SuiteResult(
        "guardrails",
        {"attack_success_rate": _mean(attack_items), "benign_block_rate": _mean(benign_items)},
        {"attack_success_rate": attack_items, "benign_block_rate": benign_items},
        {"guardrails:attacks": sha256_file(fixtures / "attacks.jsonl")},
        round(time.perf_counter() - started, 1),
        inj["total"] + benign["total"],
        {"split": split, "unpaired": True, "per_category": report["attacks"][split]["per_category"]},
    )


def run_cache(spec: dict[str, Any], th: Thresholds, settings: Any, sims_cache: dict[str, Any]) -> SuiteResult:
    from lectern.evaluation.cache_eval import evaluate, load_pairs, pair_similarities

    pairs_path = th.resolve(spec.get("pairs", "tests/fixtures/cache/pairs.jsonl"))
    started = time.perf_counter()
    pairs = load_pairs(pairs_path)
    if "sims" not in sims_cache:  # the embedder is not a gate setting: one embedding pass for both sides
        from lectern.adapters.local.onnx_embedder import OnnxMiniLMEmbedder

        sims_cache["sims"] = pair_similarities(pairs, OnnxMiniLMEmbedder())
    row, hits = evaluate(pairs, sims_cache["sims"], settings.cache_threshold, settings.cache_key_terms_guard)
    para = {f"p{i}": float(h) for i, (h, p) in enumerate(zip(hits, pairs, strict=True)) if p.label == "paraphrase"}
    near = {f"p{i}": float(h) for i, (h, p) in enumerate(zip(hits, pairs, strict=True)) if p.label == "near_miss"}
    return SuiteResult(
        "cache",
        {"paraphrase_hit_rate": row.paraphrase_hit_rate, "false_hit_rate": row.false_hit_rate},
        {"paraphrase_hit_rate": para, "false_hit_rate": near},
        {"cache:pairs": sha256_file(pairs_path)},
        round(time.perf_counter() - started, 1),
        len(pairs),
        {"threshold": settings.cache_threshold, "guard": settings.cache_key_terms_guard},
    )


# -- comparison ----------------------------------------------------------------------------------------------


def bootstrap_delta(
    base: Items, cand: Items, *, samples: int, confidence: float, seed: int
) -> tuple[list[float] | None, bool]:
    """Percentile interval of mean(candidate) - mean(baseline): paired over the shared items when both sides
    scored the same items, else each side resampled on its own. None with fewer than 2 items a side."""
    if len(base) < 2 or len(cand) < 2:
        return None, False
    rng = np.random.default_rng(seed)
    alpha = (1 - confidence) / 2
    paired = set(base) == set(cand)
    if paired:
        ids = sorted(base)
        diff = np.array([cand[i] - base[i] for i in ids])
        idx = rng.integers(0, len(diff), size=(samples, len(diff)))
        stats = diff[idx].mean(axis=1)
    else:
        b, c = np.array(list(base.values())), np.array(list(cand.values()))
        stats = c[rng.integers(0, len(c), size=(samples, len(c)))].mean(axis=1) - b[
            rng.integers(0, len(b), size=(samples, len(b)))
        ].mean(axis=1)
    lo, hi = np.quantile(stats, [alpha, 1 - alpha])
    return [round(float(lo), 4), round(float(hi), 4)], paired


@dataclass
class MetricRow:
    metric: str
    better: str
    tolerance: float
    baseline: float | None
    candidate: float | None
    delta: float | None
    ci: list[float] | None
    paired: bool
    n: int
    passed: bool
    reason: str


def compare(rule: Rule, base: SuiteResult, cand: SuiteResult, th: Thresholds) -> MetricRow:
    name = rule.metric.split(".", 1)[1]
    b, c = base.metrics.get(name), cand.metrics.get(name)
    if name not in base.metrics:
        raise GateError(f"{th.path}: suite {rule.suite} has no metric {name} ({', '.join(base.metrics)})")
    ci, paired = bootstrap_delta(
        base.items.get(name, {}),
        cand.items.get(name, {}),
        samples=th.bootstrap_samples,
        confidence=th.confidence,
        seed=th.seed,
    )
    if b is None or c is None:
        passed = b is None  # a metric the baseline had and the candidate lost is a loss
        return MetricRow(
            rule.metric,
            rule.better,
            rule.tolerance,
            b,
            c,
            None,
            None,
            False,
            0,
            passed,
            "not measured on the baseline" if b is None else "the candidate did not measure it",
        )
    delta = round(c - b, 6)
    worse_by = -delta if rule.better == "higher" else delta
    passed = worse_by <= rule.tolerance + 1e-12
    reason = "" if passed else f"worse by {worse_by:.4f} (tolerance {rule.tolerance})"
    n = len(cand.items.get(name, {}))
    return MetricRow(rule.metric, rule.better, rule.tolerance, b, c, delta, ci, paired, n, passed, reason)


@dataclass
class GateReport:
    passed: bool
    failures: list[str]
    baseline: dict[str, Any]
    candidate: dict[str, Any]
    thresholds: dict[str, Any]
    metrics: list[MetricRow]
    budget: dict[str, Any]
    suites: dict[str, dict[str, Any]]
    data: dict[str, str]
    code: dict[str, Any]
    machine: dict[str, Any]
    created_at: str
    command: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    def markdown(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        lines = [
            f"# Evaluation gate: {verdict}",
            "",
            f"- baseline: `{self.baseline['name']}` ({self.baseline['path']}, digest `{self.baseline['digest'][:12]}`)",
            f"- candidate: `{self.candidate['name']}` ({self.candidate['path']}, "
            f"digest `{self.candidate['digest'][:12]}`)",
            f"- thresholds: {self.thresholds['path']} (sha256 `{self.thresholds['sha256'][:12]}`)",
            f"- code: `{self.code.get('git')}`{' (uncommitted changes)' if self.code.get('dirty') else ''}; "
            f"created {self.created_at}; load {self.machine.get('loadavg')}",
            "",
            "| metric | better | tolerance | baseline | candidate | delta | 95% CI of delta | n | verdict |",
            "|---|---|---|---|---|---|---|---|---|",
        ]

        def f(v: float | None) -> str:
            return "n/a" if v is None else f"{v:.4f}" if abs(v) >= 1e-3 or v == 0 else f"{v:.2e}"

        for m in self.metrics:
            ci = "n/a" if m.ci is None else f"[{f(m.ci[0])}, {f(m.ci[1])}]{' paired' if m.paired else ''}"
            verdict_m = "ok" if m.passed else f"**FAIL**: {m.reason}"
            lines.append(
                f"| {m.metric} | {m.better} | {m.tolerance} | {f(m.baseline)} | {f(m.candidate)} | {f(m.delta)} "
                f"| {ci} | {m.n} | {verdict_m} |"
            )
        b = self.budget
        lines += [
            "",
            f"Cost per query (candidate, {b['basis']}): {f(b['candidate'])} USD, budget {b['budget']} USD: "
            f"{'ok' if b['passed'] else '**over budget**'}.",
            "",
            "| suite | baseline s | candidate s | samples | candidate reused baseline result |",
            "|---|---|---|---|---|",
        ]
        for name, s in self.suites.items():
            lines.append(f"| {name} | {s['baseline_s']} | {s['candidate_s']} | {s['samples']} | {s['shared']} |")
        if self.failures:
            lines += ["", "Failures:", *[f"- {x}" for x in self.failures]]
        return "\n".join(lines) + "\n"


def _run_one(suite: str, th: Thresholds, settings: Any, config: GateConfig, sims: dict[str, Any]) -> SuiteResult:
    spec = th.suites[suite]
    if suite == "retrieval":
        return run_retrieval(spec, th, settings)
    if suite == "answers":
        return run_answers(spec, th, settings, config)
    if suite == "guardrails":
        return run_guardrails(spec, th, settings)
    return run_cache(spec, th, settings, sims)


def _run_suites(
    baseline: GateConfig, candidate: GateConfig, th: Thresholds, suites: list[str], log: Callable[[str], None]
) -> dict[str, dict[str, SuiteResult]]:
    """Each suite for the baseline, then for the candidate (reusing the baseline's result when every setting the
    suite reads is the same)."""
    results: dict[str, dict[str, SuiteResult]] = {"baseline": {}, "candidate": {}}
    sims_cache: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="lectern-gate-") as tmp:
        for suite in suites:
            for role, config in (("baseline", baseline), ("candidate", candidate)):
                data_dir = Path(tmp) / role / suite
                settings = config_settings(config, data_dir)
                keys = SUITE_INPUTS.get(suite)
                if role == "candidate" and keys is not None:
                    base_settings = config_settings(baseline, data_dir)
                    if all(getattr(settings, k) == getattr(base_settings, k) for k in keys):
                        shared = results["baseline"][suite]
                        results[role][suite] = SuiteResult(**{**asdict(shared), "shared": True, "seconds": 0.0})
                        log(f"{suite}: candidate reads the same settings as the baseline, result reused")
                        continue
                log(f"{suite}: {role} ({config.name}) ...")
                r = _run_one(suite, th, settings, config, sims_cache)
                results[role][suite] = r
                log(f"{suite}: {role} {r.metrics} ({r.seconds} s)")
    return results


def run_gate(
    baseline: GateConfig,
    candidate: GateConfig,
    th: Thresholds,
    *,
    only: list[str] | None = None,
    store: EvalStore | None = None,
    log: Callable[[str], None] = lambda _m: None,
) -> GateReport:
    import os

    from lectern.evaluation.machine import command_line

    suites = [s for s in SUITES if s in th.suites and (not only or s in only)]
    results = _run_suites(baseline, candidate, th, suites, log)
    rows = [
        compare(rule, results["baseline"][rule.suite], results["candidate"][rule.suite], th)
        for rule in th.rules
        if rule.suite in suites
    ]
    failures = [f"{r.metric}: {r.reason}" for r in rows if not r.passed]
    cost = results["candidate"].get("answers")
    cost_value = cost.metrics.get("cost_per_query_usd") if cost else None
    budget_ok = cost_value is None or cost_value <= th.cost_per_query_usd
    if not budget_ok:
        failures.append(f"cost per query {cost_value} USD over the budget of {th.cost_per_query_usd} USD")
    if not suites:
        failures.append("no suite ran")
    data: dict[str, str] = {}
    for role_results in results.values():
        for r in role_results.values():
            data.update(r.data)
    code = code_version(Path(__file__).resolve().parent)  # the code under evaluation, wherever the files are
    report = GateReport(
        passed=not failures,
        failures=failures,
        baseline=baseline.describe(),
        candidate=candidate.describe(),
        thresholds={"path": str(th.path), "sha256": th.sha256},
        metrics=rows,
        budget={
            "candidate": cost_value,
            "baseline": results["baseline"]["answers"].metrics.get("cost_per_query_usd") if cost else None,
            "budget": th.cost_per_query_usd,
            "basis": f"priced as {th.price_as}",
            "passed": budget_ok,
        },
        suites={
            s: {
                "baseline_s": results["baseline"][s].seconds,
                "candidate_s": results["candidate"][s].seconds,
                "samples": results["candidate"][s].samples,
                "shared": results["candidate"][s].shared,
                "baseline_detail": results["baseline"][s].detail,
                "candidate_detail": results["candidate"][s].detail,
            }
            for s in suites
        },
        data=data,
        code=code,
        machine={
            "loadavg": " ".join(Path("/proc/loadavg").read_text().split()[:3])
            if os.path.exists("/proc/loadavg")
            else None,
            "cpus": os.cpu_count(),
        },
        created_at=now_iso(),
        command=command_line(),
    )
    if store is not None:
        gate_id = hashlib.sha256(report.to_json().encode()).hexdigest()[:16]
        for role, config in (("baseline", baseline), ("candidate", candidate)):
            store.append(
                "eval-run",
                {
                    "role": role,
                    "gate_id": gate_id,
                    "config": config.describe(),
                    "code": code,
                    "data": {k: v for r in results[role].values() for k, v in r.data.items()},
                    "metrics": {f"{r.suite}.{k}": v for r in results[role].values() for k, v in r.metrics.items()},
                },
            )
        store.append(
            "gate",
            {
                "gate_id": gate_id,
                "passed": report.passed,
                "failures": failures,
                "baseline_digest": baseline.digest,
                "candidate_digest": candidate.digest,
                "thresholds_sha256": th.sha256,
            },
        )
    return report


# -- promotion -----------------------------------------------------------------------------------------------


def check_promotion(report_path: Path, candidate: GateConfig, th: Thresholds) -> dict[str, Any]:
    """The report if it passed for exactly this candidate under the thresholds file as it is now; else
    GateError saying why (no report, a failing one, another candidate, thresholds changed since)."""
    try:
        report = json.loads(report_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise GateError(f"no gate report {report_path}: run `lectern eval gate` for this candidate first") from None
    except json.JSONDecodeError:
        raise GateError(f"{report_path} is not a gate report (not JSON)") from None
    if not isinstance(report, dict) or "candidate" not in report or "passed" not in report:
        raise GateError(f"{report_path} is not a gate report")
    if report["candidate"].get("digest") != candidate.digest:
        raise GateError(
            f"{report_path} is for candidate {report['candidate'].get('digest', '?')[:12]}, not "
            f"{candidate.digest[:12]} ({candidate.path}): the configuration changed since the gate ran"
        )
    if not report["passed"]:
        raise GateError(f"{report_path}: the candidate failed the gate ({'; '.join(report.get('failures', []))})")
    if report.get("thresholds", {}).get("sha256") != th.sha256:
        raise GateError(f"{report_path} was judged under another version of {th.path}: run the gate again")
    return report
