"""Two price files exist for two purposes — cdk/pricing.json (infrastructure, read by scripts/cost_estimate.py) and
lambdas/lectern/data/model_prices.json (per-request model prices, read by lectern.domain.costing at run time, and
bundled with the Lambda). Where they name the same price they must agree, or the two cost figures would drift."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lectern.domain.costing import default_prices

ROOT = Path(__file__).resolve().parents[2]
INFRA = json.loads((ROOT / "cdk" / "pricing.json").read_text())["prices"]
MODELS = default_prices().data

SHARED = [
    ("bedrock_titan_embed_v2_per_1k_input_tokens", ("models", "amazon.titan-embed-text-v2:0", "input_per_1k_tokens")),
    ("bedrock_nova_lite_per_1k_input_tokens", ("models", "amazon.nova-lite-v1:0", "input_per_1k_tokens")),
    ("bedrock_nova_lite_per_1k_output_tokens", ("models", "amazon.nova-lite-v1:0", "output_per_1k_tokens")),
    ("bedrock_guardrail_content_per_1k_text_units", ("guardrails", "content_filters_per_1k_text_units")),
    ("sagemaker_ml_g5_xlarge_hour", ("sagemaker_instances_per_hour", "ml.g5.xlarge", "usd")),
]


@pytest.mark.parametrize(("infra_key", "path"), SHARED)
def test_shared_prices_agree(infra_key: str, path: tuple[str, ...]):
    value = MODELS
    for part in path:
        value = value[part]
    assert INFRA[infra_key]["usd"] == pytest.approx(value), f"{infra_key} differs between the two price files"


def test_both_files_carry_a_date():
    assert MODELS["as_of"] and all(p.get("as_of") for p in INFRA.values())
