from __future__ import annotations

import json

import pytest

from lectern.domain.costing import PriceTable, default_prices
from lectern.domain.models import Usage


def test_the_shipped_table_has_a_date_and_a_source_for_every_model():
    table = default_prices()
    assert table.as_of >= "2026-01-01"
    for model_id, prices in table.data["models"].items():
        assert prices["source"].startswith("https://aws.amazon.com/"), model_id
        assert prices["input_per_1k_tokens"] >= 0


def test_nova_lite_cost_from_tokens_and_inference_profiles_priced_as_their_model():
    table = PriceTable.load(
        json.dumps({"models": {"amazon.nova-lite-v1:0": {"input_per_1k_tokens": 0.06, "output_per_1k_tokens": 0.24}}})
    )
    cost = table.tokens("us.amazon.nova-lite-v1:0", Usage(input_tokens=2000, output_tokens=500))
    assert cost.priced
    assert cost.usd == pytest.approx(2 * 0.06 + 0.5 * 0.24)


def test_unknown_models_are_flagged_not_guessed():
    cost = default_prices().tokens("anthropic.some-model", Usage(1000, 1000))
    assert (cost.usd, cost.priced) == (0.0, False)


def test_local_models_cost_nothing_and_are_priced():
    cost = default_prices().tokens("qwen2.5-coder-1.5b-instruct-q4_k_m", Usage(1000, 1000))
    assert (cost.usd, cost.priced) == (0.0, True)


def test_embedding_rerank_and_instance_prices():
    table = default_prices()
    assert table.embedding("amazon.titan-embed-text-v2:0", 1_000_000).usd == pytest.approx(0.02)
    rerank = "arn:aws:bedrock:us-west-2::foundation-model/amazon.rerank-v1:0"
    assert table.rerank(rerank, 1000).usd == pytest.approx(1.0)
    assert table.instance_hour("ml.g5.xlarge").usd > 1.0
    assert not table.instance_hour("ml.p5.48xlarge").priced
