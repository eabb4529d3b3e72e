#!/usr/bin/env python
"""Monthly cost of a Lectern environment in each state (running idle, paused), from cdk/pricing.json.

    .venv/bin/python scripts/cost_estimate.py --env dev --documents-gb 5 [--queries 10000] [--markdown]

Only resources with a fixed monthly price are in the two states; per-request services (Lambda, API Gateway,
Step Functions, SQS, Bedrock) are priced per 1,000 queries from token assumptions given on the command line.
`RESOURCE_COUNTS` must match the synthesized templates (tests/infra/test_cost_estimate.py checks it).
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")  # cdk.config imports aws_cdk

from cdk.config import LecternConfig, Pricing, load_config, load_pricing

RESOURCE_COUNTS = {
    "waf_web_acls": 1,
    "waf_rules": 3,  # rate-based + two AWS managed rule groups
    "dashboards": 1,
    # 5xx rate (2), p95 (1), ingestion failures (1), DLQ (1), upload DLQ (1), daily cost (2), model unavailable
    # (1), documents stuck (1), and the release alarms: guardrail intervention rate (2), thumbs-down rate (2), cost
    # per query anomaly (1 metric; AWS bills an anomaly-detection alarm as 3 metrics, so this undercounts by 2)
    "alarm_metrics": 15,
}


@dataclass(frozen=True)
class Line:
    item: str
    usd: float
    price: str


def running(config: LecternConfig, pricing: Pricing, documents_gb: float, table_gb: float) -> list[Line]:
    h = pricing.hours_per_month
    s = config.search
    lines: list[Line] = []
    if s.kind == "managed":
        if s.instance_type != "t3.small.search":
            raise SystemExit(f"no price for {s.instance_type} in cdk/pricing.json")
        lines.append(
            Line(
                f"OpenSearch {s.instance_count} x {s.instance_type}",
                s.instance_count * h * pricing.usd("opensearch_t3_small_search_hour"),
                "opensearch_t3_small_search_hour",
            )
        )
        lines.append(
            Line(
                f"OpenSearch {s.volume_gb} GB gp3 per node",
                s.instance_count * s.volume_gb * pricing.usd("opensearch_gp3_gb_month"),
                "opensearch_gp3_gb_month",
            )
        )
    else:
        ocus = 2.0 if s.standby_replicas else 1.0
        lines.append(
            Line(
                f"OpenSearch Serverless minimum {ocus:g} OCU",
                ocus * h * pricing.usd("opensearch_serverless_ocu_hour"),
                "opensearch_serverless_ocu_hour",
            )
        )
    c = RESOURCE_COUNTS
    lines += [
        Line("WAF web ACL", c["waf_web_acls"] * pricing.usd("waf_web_acl_month"), "waf_web_acl_month"),
        Line(
            f"WAF rules ({c['waf_rules']})", c["waf_rules"] * pricing.usd("waf_rule_month"), "waf_rule_month"
        ),
        Line(
            "CloudWatch dashboard",
            c["dashboards"] * pricing.usd("cloudwatch_dashboard_month"),
            "cloudwatch_dashboard_month",
        ),
        Line(
            f"CloudWatch alarms ({c['alarm_metrics']} alarm metrics)",
            c["alarm_metrics"] * pricing.usd("cloudwatch_alarm_metric_month"),
            "cloudwatch_alarm_metric_month",
        ),
    ]
    if config.fallback.enabled and config.fallback.model and not config.fallback.model.scale_to_zero:
        lines.append(
            Line(
                "SageMaker fallback (1 instance, always on)",
                h * pricing.usd("sagemaker_ml_g5_xlarge_hour"),
                "sagemaker_ml_g5_xlarge_hour",
            )
        )
    return lines + paused(config, pricing, documents_gb, table_gb)


def paused(config: LecternConfig, pricing: Pricing, documents_gb: float, table_gb: float) -> list[Line]:
    return [
        Line(
            f"S3 Standard, {documents_gb:g} GB of documents + embeddings",
            documents_gb * pricing.usd("s3_standard_gb_month"),
            "s3_standard_gb_month",
        ),
        Line(
            f"DynamoDB storage + PITR, {table_gb:g} GB",
            table_gb * (pricing.usd("dynamodb_storage_gb_month") + pricing.usd("dynamodb_pitr_gb_month")),
            "dynamodb_storage_gb_month + dynamodb_pitr_gb_month",
        ),
    ]


def per_thousand_queries(pricing: Pricing, input_tokens: int, output_tokens: int) -> float:
    """Variable cost of 1,000 answered queries: Nova Lite tokens, guardrail text units, API and Lambda."""
    tokens = input_tokens / 1000 * pricing.usd(
        "bedrock_nova_lite_per_1k_input_tokens"
    ) + output_tokens / 1000 * (pricing.usd("bedrock_nova_lite_per_1k_output_tokens"))
    guardrail = (
        2 * pricing.usd("bedrock_guardrail_content_per_1k_text_units") / 1000
    )  # question + answer, 1 unit each
    api = pricing.usd("api_gateway_rest_per_million") / 1e6 + pricing.usd("waf_per_million_requests") / 1e6
    lam = 1.769 * 3.0 * pricing.usd("lambda_arm_gb_second") + pricing.usd("lambda_per_million_requests") / 1e6
    return 1000 * (tokens + guardrail + api + lam)


def total(lines: list[Line]) -> float:
    return round(sum(line.usd for line in lines), 2)


def markdown(config: LecternConfig, pricing: Pricing, documents_gb: float, table_gb: float, q: float) -> str:
    out = [
        f"Environment `{config.env_name}` ({config.search.kind} search), {pricing.region}, prices as of "
        f"{min(p.as_of for p in pricing.prices.values())}:",
        "",
        "| state | item | USD/month |",
        "|---|---|---:|",
    ]
    for state, lines in (
        ("running", running(config, pricing, documents_gb, table_gb)),
        ("paused", paused(config, pricing, documents_gb, table_gb)),
    ):
        out += [f"| {state} | {line.item} | {line.usd:.2f} |" for line in lines]
        out.append(f"| **{state}** | **total** | **{total(lines):.2f}** |")
    out += ["", f"Per 1,000 queries (variable, on top of running): {q:.2f} USD."]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="dev")
    parser.add_argument("--documents-gb", type=float, default=1.0)
    parser.add_argument("--table-gb", type=float, default=0.1)
    parser.add_argument("--input-tokens", type=int, default=2000, help="prompt tokens per query")
    parser.add_argument("--output-tokens", type=int, default=300, help="answer tokens per query")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args(argv)
    config, pricing = load_config(args.env), load_pricing()
    q = per_thousand_queries(pricing, args.input_tokens, args.output_tokens)
    if args.markdown:
        print(markdown(config, pricing, args.documents_gb, args.table_gb, q))
        return 0
    run = running(config, pricing, args.documents_gb, args.table_gb)
    pause = paused(config, pricing, args.documents_gb, args.table_gb)
    print(
        f"running: {total(run):.2f} USD/month   paused: {total(pause):.2f} USD/month   "
        f"per 1,000 queries: {q:.2f} USD"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
