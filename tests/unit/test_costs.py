"""Cost report and routing pricing from traces (figures checked by hand against the price table)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from lectern.domain.costing import PriceTable
from lectern.domain.feedback import QueryTrace
from lectern.evaluation.costs import (
    SECONDS_PER_MONTH,
    RoutedQuestion,
    cost_report,
    estimated_output_tokens,
    price_routing,
    projection,
    tier_of,
)

PRICES = PriceTable.load(
    '{"as_of": "2026-11-29", "models": {'
    '"amazon.nova-lite-v1:0": {"input_per_1k_tokens": 0.00006, "output_per_1k_tokens": 0.00024},'
    '"amazon.nova-pro-v1:0": {"input_per_1k_tokens": 0.0008, "output_per_1k_tokens": 0.0032}}}'
)
LITE = 1000 / 1000 * 0.00006 + 100 / 1000 * 0.00024  # 1000 in, 100 out
PRO = 1000 / 1000 * 0.0008 + 100 / 1000 * 0.0032


def t(
    qid,
    day="2026-11-29",
    tenant="acme",
    route="cheap: default",
    cache=False,
    rating=None,
    version="answer-v3",
    model="us.amazon.nova-lite-v1:0",
    tokens=(1000, 100),
    cost=LITE,
    latency=100,
):
    return QueryTrace(
        tenant,
        qid,
        f"{day}T10:00:00.000000Z",
        version,
        model,
        route,
        tokens[0],
        tokens[1],
        cost,
        latency,
        cache_hit=cache,
        rating=rating,
    )


def test_tier_of_routes():
    assert [
        tier_of(r)
        for r in ("strong: comparison", "cheap: default", "none: retrieval gate", "default: one model", "")
    ] == ["strong", "cheap", "none", "cheap", "cheap"]


def test_report_groups_by_day_model_tenant_version_and_feedback():
    traces = [
        t("a", rating="up"),
        t(
            "b",
            day="2026-11-30",
            tenant="beta",
            route="strong: comparison",
            model="us.amazon.nova-pro-v1:0",
            cost=PRO,
            rating="down",
            version="answer-v2",
            latency=300,
        ),
        t("c", cache=True, tokens=(0, 0), cost=0.0, rating="up", latency=20),
    ]
    r = cost_report(traces, since="2026-11-29", until="2026-12-01", rate_qps=None, prices=PRICES)
    assert r["totals"]["queries"] == 3 and r["totals"]["cost_usd"] == pytest.approx(LITE + PRO)
    assert r["per_day"]["2026-11-29"]["queries"] == 2 and r["per_day"]["2026-11-30"][
        "cost_usd"
    ] == pytest.approx(PRO)
    assert set(r["per_tenant"]) == {"acme", "beta"} and r["per_tenant"]["acme"]["cache_hits"] == 1
    assert r["per_model"]["us.amazon.nova-pro-v1:0"]["routed_strong"] == 1
    v3 = r["per_prompt_version"]["answer-v3"]
    assert (v3["feedback_up"], v3["feedback_down"], v3["feedback_up_rate"]) == (2, 0, 1.0)
    assert r["per_prompt_version"]["answer-v2"]["feedback_up_rate"] == 0.0
    assert r["per_prompt_version"]["answer-v2"]["latency_ms_p50"] == 300
    assert "projection" not in r and any("prices" in a for a in r["assumptions"])


def test_projection_with_and_without_cache_and_routing():
    traces = [
        t("a"),
        t("b", route="strong: multi-part", model="us.amazon.nova-pro-v1:0", cost=PRO),
        t("c", cache=True, tokens=(0, 0), cost=0.0),
        t("d", route="none: retrieval gate", tokens=(0, 0)),
    ]
    p = projection(traces, 1.0, PRICES)
    n = SECONDS_PER_MONTH
    per = p["per_query_usd"]
    assert per["with_cache_and_routing"] == pytest.approx((LITE + PRO) / 4)
    assert per["without_cache"] == pytest.approx((LITE + PRO) / 2 * 3 / 4)  # the hit priced as a mean call
    assert per["without_routing_always_strong"] == pytest.approx(2 * PRO / 4)
    assert per["without_cache_or_routing"] == pytest.approx(PRO * 3 / 4)
    assert p["monthly_usd"]["with_cache_and_routing"] == pytest.approx(round((LITE + PRO) / 4 * n, 2))
    assert (p["cache_hit_rate"], p["routed_strong_share"], p["retrieval_gate_share"]) == (0.25, 0.25, 0.25)
    # local traces (priced 0) are re-priced at the AWS tiers
    local = [t("x", model="qwen2.5-coder-1.5b-instruct-q4_k_m", cost=0.0)]
    assert projection(local, 2.0, PRICES)["per_query_usd"]["with_cache_and_routing"] == pytest.approx(LITE)


def test_routing_pricing_against_always_strong_and_always_cheap():
    rows = [
        RoutedQuestion("1", "q", "cheap: default", 1000, 100, 500),
        RoutedQuestion("2", "q", "strong: comparison", 1000, 100, 500),
        RoutedQuestion("3", "q", "none: retrieval gate", 0, 0, 0),
    ]
    s = price_routing(rows, PRICES)
    assert s["cost_usd"]["with_routing"] == pytest.approx(LITE + PRO)
    assert s["cost_usd"]["always_strong"] == pytest.approx(2 * PRO)
    assert s["cost_usd"]["always_cheap"] == pytest.approx(2 * LITE)
    assert s["saved_vs_always_strong"] == pytest.approx(round(1 - (LITE + PRO) / (2 * PRO), 4))
    assert (s["routed_strong"], s["routed_cheap"], s["retrieval_gate"]) == (1, 1, 1)


def test_output_token_estimate_counts_parts():
    assert estimated_output_tokens("When was it built?") == 60
    assert estimated_output_tokens("When was it built? Who built it?") == 120
    assert estimated_output_tokens("Compare A with B.") == 120


def test_cost_report_command_reads_local_traces(tmp_path):
    from lectern.adapters.local.sqlite_db import SqliteDatabase
    from lectern.adapters.local.sqlite_queries import SqliteQueryLog
    from lectern.cli import app

    db = SqliteDatabase(tmp_path / "lectern.db")
    log = SqliteQueryLog(db)
    log.record(t("a", rating="up"))
    log.record(t("b", tenant="beta", route="strong: comparison", model="us.amazon.nova-pro-v1:0", cost=PRO))
    log.record(t("old", day="2026-10-01"))
    db.close()
    out = tmp_path / "report.json"
    res = CliRunner().invoke(
        app,
        [
            "cost",
            "report",
            "--data-dir",
            str(tmp_path),
            "--since",
            "2026-11-01",
            "--until",
            "2026-12-01",
            "--rate",
            "0.5",
            "--out",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "projection at 0.5 queries/s" in res.output and "assumptions" in res.output
    import json

    report = json.loads(out.read_text())
    assert report["totals"]["queries"] == 2 and set(report["per_tenant"]) == {"acme", "beta"}
    assert report["projection"]["queries_per_month"] == 0.5 * SECONDS_PER_MONTH
