"""Cost of a query in USD from one price table (lectern/data/model_prices.json, with its source and date).

Cross-region inference profile ids (`us.amazon.nova-lite-v1:0`) are priced as their model. Unknown models are
priced at 0 and flagged, never guessed. A SageMaker-hosted fallback is priced per instance-hour, amortised over
the requests it served (`instance_hour_share`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

from lectern.domain.models import Usage

_PROFILE_PREFIXES = ("us.", "eu.", "apac.", "global.")


def _base_model(model_id: str) -> str:
    for prefix in _PROFILE_PREFIXES:
        if model_id.startswith(prefix):
            return model_id[len(prefix) :]
    return model_id


@dataclass(frozen=True)
class Cost:
    usd: float
    priced: bool  # False when the model is not in the table (usd is then 0)


@dataclass(frozen=True)
class PriceTable:
    data: dict[str, Any]

    @classmethod
    def load(cls, text: str | None = None) -> PriceTable:
        if text is None:
            text = resources.files("lectern.data").joinpath("model_prices.json").read_text()
        return cls(json.loads(text))

    @property
    def as_of(self) -> str:
        return str(self.data.get("as_of", "unknown"))

    def tokens(self, model_id: str, usage: Usage) -> Cost:
        prices = self.data["models"].get(_base_model(model_id))
        if prices is None:
            if model_id.startswith(("local:", "llama:", "fake:")) or "gguf" in model_id or "q4_k_m" in model_id:
                return Cost(0.0, True)
            return Cost(0.0, False)
        usd = usage.input_tokens / 1000 * prices["input_per_1k_tokens"]
        usd += usage.output_tokens / 1000 * prices["output_per_1k_tokens"]
        return Cost(round(usd, 10), True)

    def embedding(self, model_id: str, tokens: int) -> Cost:
        return self.tokens(model_id, Usage(input_tokens=tokens))

    def rerank(self, model_id: str, queries: int = 1) -> Cost:
        price = self.data.get("rerank", {}).get(_base_model(model_id.rsplit("/", 1)[-1]))
        if price is None:
            return Cost(0.0, False)
        return Cost(round(queries / 1000 * price["per_1k_queries"], 10), True)

    def instance_hour(self, instance_type: str) -> Cost:
        price = self.data.get("sagemaker_instances_per_hour", {}).get(instance_type)
        return Cost(price["usd"], True) if price else Cost(0.0, False)


@lru_cache(maxsize=1)
def default_prices() -> PriceTable:
    return PriceTable.load()
