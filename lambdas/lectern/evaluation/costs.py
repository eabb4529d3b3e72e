"""Cost figures from query traces, and the routing evaluation.

`cost_report` summarises a period of traces per day, model, tenant, prompt version and route tier, and
projects a monthly bill at a query rate under four policies (as observed; without the cache; without routing,
i.e. always the strong model; with neither). Projections re-price the traced token counts at the AWS tier
prices (cheap = Nova Lite, strong = Nova Pro by default) so a local trace (priced 0: local models have no
per-token price) still gives a meaningful AWS projection; the assumptions travel with the report.

`routing_eval` runs `Answerer.plan` (retrieval, context, gate, route: everything but generation) over a
question set and prices each question three ways: as routed, always strong, always cheap.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lectern.domain.costing import PriceTable
from lectern.domain.feedback import QueryTrace
from lectern.domain.models import Usage
from lectern.domain.routing import is_comparison, question_parts

CHEAP_MODEL = "us.amazon.nova-lite-v1:0"
STRONG_MODEL = "us.amazon.nova-pro-v1:0"
SECONDS_PER_MONTH = 30 * 86400


def tier_of(route: str) -> str:
    """'strong', 'cheap' or 'none' (the retrieval gate answered: no model called) from a recorded route."""
    head = route.split(":", 1)[0].strip()
    return head if head in ("strong", "cheap", "none") else "cheap"


def _median(values: Sequence[float]) -> float | None:
    s = sorted(values)
    return float(s[len(s) // 2]) if s else None


def _group(traces: Sequence[QueryTrace]) -> dict[str, Any]:
    up = sum(t.rating == "up" for t in traces)
    down = sum(t.rating == "down" for t in traces)
    n = len(traces)
    return {
        "queries": n,
        "input_tokens": sum(t.input_tokens for t in traces),
        "output_tokens": sum(t.output_tokens for t in traces),
        "mean_input_tokens": round(sum(t.input_tokens for t in traces) / n, 1) if n else None,
        "mean_output_tokens": round(sum(t.output_tokens for t in traces) / n, 1) if n else None,
        "cost_usd": round(sum(t.cost_usd for t in traces), 8),
        "cache_hits": sum(t.cache_hit for t in traces),
        "routed_strong": sum(tier_of(t.route) == "strong" for t in traces),
        "latency_ms_p50": _median([t.latency_ms for t in traces]),
        "feedback_up": up,
        "feedback_down": down,
        "feedback_up_rate": round(up / (up + down), 3) if up + down else None,
    }


def _by(traces: Iterable[QueryTrace], key: Callable[[QueryTrace], str]) -> dict[str, dict[str, Any]]:
    groups: dict[str, list[QueryTrace]] = defaultdict(list)
    for t in traces:
        groups[key(t)].append(t)
    return {k: _group(v) for k, v in sorted(groups.items())}


def _price(prices: PriceTable, model: str, input_tokens: int, output_tokens: int) -> float:
    return prices.tokens(model, Usage(input_tokens, output_tokens)).usd


def projection(
    traces: Sequence[QueryTrace],
    rate_qps: float,
    prices: PriceTable,
    *,
    cheap_model: str = CHEAP_MODEL,
    strong_model: str = STRONG_MODEL,
) -> dict[str, Any]:
    """Monthly cost at `rate_qps` under four policies, from the mean per-query cost of the traced queries."""
    monthly = rate_qps * SECONDS_PER_MONTH
    calls = [t for t in traces if tier_of(t.route) != "none"]  # the retrieval gate never calls a model
    n = len(traces)
    if not n:
        return {"queries_per_month": monthly, "note": "no traces in the period"}
    misses = [t for t in calls if not t.cache_hit]

    def per_query(items: Sequence[QueryTrace], routed: bool) -> float:
        total = 0.0
        for t in items:
            model = strong_model if (not routed or tier_of(t.route) == "strong") else cheap_model
            total += _price(prices, model, t.input_tokens, t.output_tokens)
        return total

    # Cache hits carry no tokens of their own: "without cache" prices them as an average model call.
    hits = sum(t.cache_hit for t in traces)
    mean_miss_routed = per_query(misses, True) / len(misses) if misses else 0.0
    mean_miss_strong = per_query(misses, False) / len(misses) if misses else 0.0
    observed_routed = per_query(misses, True) / n
    observed_strong = per_query(misses, False) / n
    gate_share = (n - len(calls)) / n
    scenarios = {
        "with_cache_and_routing": observed_routed,
        "without_cache": mean_miss_routed * (len(misses) + hits) / n,
        "without_routing_always_strong": observed_strong,
        "without_cache_or_routing": mean_miss_strong * (len(misses) + hits) / n,
        "always_cheap_with_cache": sum(
            _price(prices, cheap_model, t.input_tokens, t.output_tokens) for t in misses
        )
        / n,
    }
    return {
        "rate_qps": rate_qps,
        "queries_per_month": monthly,
        "cache_hit_rate": round(hits / n, 4),
        "routed_strong_share": round(sum(tier_of(t.route) == "strong" for t in calls) / n, 4),
        "retrieval_gate_share": round(gate_share, 4),
        "per_query_usd": {k: round(v, 8) for k, v in scenarios.items()},
        "monthly_usd": {k: round(v * monthly, 2) for k, v in scenarios.items()},
    }


def assumptions(cheap_model: str, strong_model: str, prices: PriceTable) -> list[str]:
    return [
        f"prices: lectern/data/model_prices.json as of {prices.as_of} (on-demand, us-east-1)",
        f"projections re-price traced token counts at {cheap_model} for cheap-routed and {strong_model} for "
        "strong-routed queries ('cost_usd' columns are what was recorded: 0 for local models)",
        "token counts are those the serving model reported; locally that is the local model's tokenizer, "
        "not Nova's, so AWS figures are an estimate",
        "queries answered by the retrieval gate cost nothing in every scenario; a cache hit costs nothing, "
        "and 'without cache' prices each hit as the mean cost of the period's model calls",
        "only generation is priced: embeddings, reranking, guardrails, Lambda, API Gateway, OpenSearch and "
        "DynamoDB are not (see cdk/pricing.json and `make cost` for those)",
        "the mix of questions (routing share, hit rate, token counts) is assumed to stay as in the period; "
        f"a month is {SECONDS_PER_MONTH // 86400} days at a constant rate",
    ]


def cost_report(
    traces: Sequence[QueryTrace],
    *,
    since: str,
    until: str,
    rate_qps: float | None,
    prices: PriceTable,
    cheap_model: str = CHEAP_MODEL,
    strong_model: str = STRONG_MODEL,
) -> dict[str, Any]:
    report: dict[str, Any] = {
        "since": since,
        "until": until,
        "totals": _group(traces),
        "per_day": _by(traces, lambda t: t.created_at[:10]),
        "per_model": _by(traces, lambda t: t.model),
        "per_tenant": _by(traces, lambda t: t.tenant_id),
        "per_prompt_version": _by(traces, lambda t: t.prompt_version),
        "per_route_tier": _by(traces, lambda t: tier_of(t.route)),
        "per_route": _by(traces, lambda t: t.route),
        "assumptions": assumptions(cheap_model, strong_model, prices),
    }
    if rate_qps is not None:
        report["projection"] = projection(
            traces, rate_qps, prices, cheap_model=cheap_model, strong_model=strong_model
        )
    return report


# -- routing evaluation ------------------------------------------------------------------------------------
OUTPUT_TOKENS_PER_PART = 60


def estimated_output_tokens(question: str) -> int:
    """Output tokens assumed for an answer: 60 per part asked (a cited sentence), two parts for a comparison.

    The same for every model, so the comparison between policies depends only on routing and prices."""
    parts = max(question_parts(question), 2 if is_comparison(question) else 1)
    return OUTPUT_TOKENS_PER_PART * parts


@dataclass(frozen=True)
class RoutedQuestion:
    id: str
    question: str
    route: str
    input_tokens: int
    output_tokens: int
    context_tokens: int


def price_routing(
    rows: Sequence[RoutedQuestion],
    prices: PriceTable,
    *,
    cheap_model: str = CHEAP_MODEL,
    strong_model: str = STRONG_MODEL,
) -> dict[str, Any]:
    """Cost of the question set as routed, always strong and always cheap (gate answers cost 0 in all)."""

    def total(pick: Callable[[RoutedQuestion], str | None]) -> float:
        return sum(
            _price(prices, m, r.input_tokens, r.output_tokens) for r in rows if (m := pick(r)) is not None
        )

    def routed(r: RoutedQuestion) -> str | None:
        tier = tier_of(r.route)
        return None if tier == "none" else strong_model if tier == "strong" else cheap_model

    def always(model: str) -> Callable[[RoutedQuestion], str | None]:
        return lambda r: None if tier_of(r.route) == "none" else model

    with_routing = total(routed)
    strong = total(always(strong_model))
    cheap = total(always(cheap_model))
    tiers = [tier_of(r.route) for r in rows]
    reasons: dict[str, int] = defaultdict(int)
    for r in rows:
        reasons[r.route.split("(")[0].strip()] += 1
    return {
        "questions": len(rows),
        "routed_strong": tiers.count("strong"),
        "routed_cheap": tiers.count("cheap"),
        "retrieval_gate": tiers.count("none"),
        "routes": dict(sorted(reasons.items())),
        "cost_usd": {
            "with_routing": round(with_routing, 8),
            "always_strong": round(strong, 8),
            "always_cheap": round(cheap, 8),
        },
        "saved_vs_always_strong": round(1 - with_routing / strong, 4) if strong else None,
        "extra_vs_always_cheap": round(with_routing / cheap - 1, 4) if cheap else None,
        "per_1k_queries_usd": {
            "with_routing": round(with_routing / len(rows) * 1000, 4) if rows else None,
            "always_strong": round(strong / len(rows) * 1000, 4) if rows else None,
            "always_cheap": round(cheap / len(rows) * 1000, 4) if rows else None,
        },
    }


def load_questions(paths: Sequence[Path]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for p in paths:
        raw = json.loads(p.read_text(encoding="utf-8"))
        out += [(q["id"], q["question"]) for q in raw["questions"]]
    return out


def documents_of(paths: Sequence[Path]) -> list[str]:
    names: list[str] = []
    for p in paths:
        for n in json.loads(p.read_text(encoding="utf-8"))["documents"]:
            if n not in names:
                names.append(n)
    return names


def routing_eval(
    lectern: Any,
    questions: Sequence[tuple[str, str]],
    prices: PriceTable,
    count_tokens: Callable[[str], int],
    *,
    cheap_model: str = CHEAP_MODEL,
    strong_model: str = STRONG_MODEL,
) -> tuple[list[RoutedQuestion], dict[str, Any]]:
    """Plan each question with the service's own Answerer (no generation) and price the decisions."""
    tenant = lectern.settings.tenant_id
    answerer = lectern.answerer.core  # the pipeline's core plans; no stage runs (nothing is cached or traced)
    rows: list[RoutedQuestion] = []
    for qid, question in questions:
        plan = answerer.plan(tenant, question)
        input_tokens = sum(count_tokens(m.content) for m in plan.messages)
        output_tokens = 0 if plan.gated else estimated_output_tokens(question)
        rows.append(
            RoutedQuestion(qid, question, plan.route, input_tokens, output_tokens, plan.context_tokens)
        )
    return rows, price_routing(rows, prices, cheap_model=cheap_model, strong_model=strong_model)
