"""scripts/cost_estimate.py: its resource counts match the synthesized templates, and its totals come from
cdk/pricing.json (every price carries an https source and a date)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from cdk.config import load_config, load_pricing

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "cost_estimate.py"


@pytest.fixture(scope="module")
def ce():
    spec = importlib.util.spec_from_file_location("cost_estimate", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["cost_estimate"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_counts_match_the_templates(ce, dev) -> None:
    raw = dev.raw("Service")["Resources"].values()
    (acl,) = [r for r in raw if r["Type"] == "AWS::WAFv2::WebACL"]
    assert len(acl["Properties"]["Rules"]) == ce.RESOURCE_COUNTS["waf_rules"]
    assert sum(r["Type"] == "AWS::CloudWatch::Dashboard" for r in raw) == ce.RESOURCE_COUNTS["dashboards"]
    metrics = 0
    for r in raw:
        if r["Type"] == "AWS::CloudWatch::Alarm":
            p = r["Properties"]
            metrics += sum("MetricStat" in m for m in p["Metrics"]) if "Metrics" in p else 1
    assert metrics == ce.RESOURCE_COUNTS["alarm_metrics"]


def test_paused_is_storage_only_and_running_adds_the_search_domain(ce) -> None:
    config, pricing = load_config("dev"), load_pricing()
    run = ce.running(config, pricing, documents_gb=10, table_gb=1)
    pause = ce.paused(config, pricing, documents_gb=10, table_gb=1)
    assert ce.total(pause) == round(10 * 0.023 + 1 * (0.25 + 0.20), 2)
    domain = next(line for line in run if "t3.small.search" in line.item)
    assert domain.usd == pytest.approx(730 * pricing.usd("opensearch_t3_small_search_hour"))
    assert ce.total(run) > 30 > ce.total(pause)
    prod = ce.running(load_config("prod"), pricing, 10, 1)
    assert any("Serverless minimum 2 OCU" in line.item for line in prod)  # standby replicas on in prod


def test_every_price_has_a_source_and_date_and_the_estimate_reads_them(ce, tmp_path, monkeypatch) -> None:
    pricing = load_pricing()
    assert all(p.source.startswith("https://aws.amazon.com/") for p in pricing.prices.values())
    doubled = pricing.model_copy(
        update={"prices": {k: v.model_copy(update={"usd": v.usd * 2}) for k, v in pricing.prices.items()}}
    )
    config = load_config("dev")
    assert ce.total(ce.running(config, doubled, 1, 0.1)) == pytest.approx(
        2 * ce.total(ce.running(config, pricing, 1, 0.1)), abs=0.02
    )
