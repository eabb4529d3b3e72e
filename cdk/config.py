"""Per-environment settings of the CDK app, validated by pydantic when the app synthesizes.

`load_config("dev")` reads `cdk/config/dev.json`; a typo, a missing field or an out-of-range value stops the
synth with a readable error before anything reaches CloudFormation.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cdk.constructs.fallback_model import FallbackModelConfig

CONFIG_DIR = Path(__file__).resolve().parent / "config"
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_TAG = re.compile(r"^[\w .:/=+\-@]{1,128}$")


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SearchConfig(_Model):
    kind: Literal["managed", "serverless"] = "managed"
    engine_version: str = Field(default="2.19", pattern=r"^\d+\.\d+$")
    instance_type: str = Field(default="t3.small.search", pattern=r"^[a-z0-9]+\.[a-z0-9]+\.search$")
    instance_count: int = Field(default=1, ge=1, le=10)
    volume_gb: int = Field(default=10, ge=10, le=1000)
    standby_replicas: bool = False  # serverless only: off halves the minimum OCUs (dev)
    index_name: str = Field(default="lectern-chunks", pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    pipeline_name: str = Field(default="lectern-hybrid", pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")


class ModelsConfig(_Model):
    embedding_model_id: str = "amazon.titan-embed-text-v2:0"
    embedding_dimension: Literal[256, 512, 1024] = 1024
    # Cross-region inference profiles (us.*): IAM allows the profile and the model in each of its regions.
    generation_model_id: str = "us.amazon.nova-lite-v1:0"
    strong_model_id: str = "us.amazon.nova-pro-v1:0"
    # the served prompt template (lambdas/lectern/prompts); changed by `lectern promote` after the gate passes
    prompt_version: str = Field(default="answer-v3", pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    inference_profile_regions: list[str] = Field(
        default_factory=lambda: ["us-east-1", "us-east-2", "us-west-2"]
    )
    rerank_model_arn: str | None = Field(
        default=None, pattern=r"^arn:aws[a-z-]*:bedrock:[a-z0-9-]+::foundation-model/.+$"
    )
    grounding_threshold: float = Field(default=0.75, ge=0, le=0.99)
    relevance_threshold: float = Field(default=0.5, ge=0, le=0.99)


class FallbackConfig(_Model):
    enabled: bool = False  # off: a dev deploy pays nothing for GPUs
    model: FallbackModelConfig | None = None

    @model_validator(mode="after")
    def _model_when_enabled(self) -> FallbackConfig:
        if self.enabled and self.model is None:
            raise ValueError("fallback.enabled needs fallback.model (at least model_s3_uri)")
        return self


class ApiConfig(_Model):
    throttle_rate_limit: float = Field(default=20, gt=0, description="Steady requests per second per stage")
    throttle_burst_limit: int = Field(default=40, ge=1)
    machine_rate_limit: float = Field(default=5, gt=0, description="Per API key (machine clients)")
    machine_burst_limit: int = Field(default=10, ge=1)
    machine_quota_per_day: int = Field(default=10_000, ge=1)
    waf_rate_limit_per_5min: int = Field(default=1000, ge=100, le=2_000_000_000)
    api_reserved_concurrency: int | None = Field(default=None, ge=1)
    cors_allow_origins: list[str] = Field(default_factory=lambda: ["*"])


class IngestionConfig(_Model):
    embed_max_concurrency: int = Field(default=4, ge=1, le=40)
    reindex_max_concurrency: int = Field(default=2, ge=1, le=40)
    # Reserved concurrency of the embedding function: a ceiling on parallel Titan calls (Bedrock's quota).
    embed_reserved_concurrency: int = Field(default=8, ge=1)
    max_upload_bytes: int = Field(default=50 * 1024 * 1024, ge=1024, le=5 * 1024**3)
    # The sweep fails documents UPLOADING/PROCESSING for longer than this (more than the ingestion state
    # machine's 2-hour timeout, so a running ingestion is never failed), every sweep_every_minutes.
    stuck_after_minutes: int = Field(default=180, ge=125, le=7 * 24 * 60)
    sweep_every_minutes: int = Field(default=15, ge=1, le=24 * 60)


class AlarmsConfig(_Model):
    email: str | None = None
    api_5xx_rate_percent: float = Field(default=1.0, gt=0, le=100)
    api_p95_latency_ms: int = Field(default=8000, ge=100)
    ingestion_failures_per_hour: int = Field(default=1, ge=1)
    daily_cost_budget_usd: float = Field(default=5.0, gt=0)
    model_unavailable_per_5min: int = Field(default=3, ge=1)
    # release alarms (cdk/constructs/release.py): they also roll a canary back
    guardrail_intervention_rate_percent: float = Field(default=20.0, gt=0, le=100)
    thumbs_down_rate_percent: float = Field(default=30.0, gt=0, le=100)
    # the cost-per-query anomaly alarm: the width of the expected band in standard deviations
    cost_anomaly_band_stddevs: float = Field(default=3.0, gt=0, le=10)

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value is not None and not _EMAIL.match(value):
            raise ValueError("alarms.email must be an email address")
        return value


class ReleaseConfig(_Model):
    """CodeDeploy canary of the API function: canary_percent of the traffic for canary_minutes, then all."""

    canary_percent: int = Field(default=10, ge=1, le=99)
    canary_minutes: int = Field(default=5, ge=1, le=2880)


class LecternConfig(_Model):
    env_name: Literal["dev", "prod"]
    account: str | None = Field(default=None, pattern=r"^\d{12}$")
    region: str = Field(default="us-east-1", pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")
    prefix: str = Field(default="Lectern", pattern=r"^[A-Za-z][A-Za-z0-9]{0,20}$")
    tags: dict[str, str] = Field(default_factory=dict)
    log_retention_days: Literal[7, 14, 30, 60, 90, 180, 365] = 30
    search: SearchConfig = SearchConfig()
    models: ModelsConfig = ModelsConfig()
    fallback: FallbackConfig = FallbackConfig()
    api: ApiConfig = ApiConfig()
    ingestion: IngestionConfig = IngestionConfig()
    alarms: AlarmsConfig = AlarmsConfig()
    release: ReleaseConfig = ReleaseConfig()

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: dict[str, str]) -> dict[str, str]:
        for k, v in value.items():
            if not (_TAG.match(k) and _TAG.match(v)) or k.lower().startswith("aws:"):
                raise ValueError(f"invalid cost-allocation tag {k!r}={v!r}")
        return value

    def stack_name(self, part: str) -> str:
        return f"{self.prefix}-{self.env_name}-{part}"

    @property
    def retained(self) -> bool:
        """Storage survives `cdk destroy` in every environment (pause keeps documents and embeddings)."""
        return True


def load_config(env_name: str, directory: Path = CONFIG_DIR) -> LecternConfig:
    path = directory / f"{env_name}.json"
    if not path.is_file():
        known = sorted(p.stem for p in directory.glob("*.json"))
        raise FileNotFoundError(f"no config {path}; known environments: {', '.join(known)}")
    data = json.loads(path.read_text())
    data.setdefault("env_name", env_name)
    return LecternConfig.model_validate(data)


# -- published prices (cdk/pricing.json) ---------------------------------------------------------------------

PRICING_JSON = Path(__file__).resolve().parent / "pricing.json"


class Price(_Model):
    usd: float = Field(ge=0)
    unit: str
    source: str = Field(pattern=r"^https://")
    as_of: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}$")
    note: str = ""


class Pricing(_Model):
    region: str
    hours_per_month: float = 730
    caveat: str = ""
    prices: dict[str, Price]

    def usd(self, name: str) -> float:
        return self.prices[name].usd

    def embedding_usd_per_token(self) -> float:
        return self.usd("bedrock_titan_embed_v2_per_1k_input_tokens") / 1000


def load_pricing(path: Path = PRICING_JSON) -> Pricing:
    return Pricing.model_validate(json.loads(path.read_text()))
