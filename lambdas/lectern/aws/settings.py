"""AWS settings, parsed from the Lambda environment at cold start.

A misconfigured function fails at its first invocation with a message naming every bad variable, instead of
misbehaving on the first real request. The variable names are the contract with the CDK stacks (cdk/).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from lectern.settings import SettingsError

TITAN_DIMENSIONS = (256, 512, 1024)


class SearchSettings(BaseSettings):
    """What the search index needs: all the search-setup custom resource is given (its function lives in the
    Search stack, which knows no bucket or table)."""

    model_config = SettingsConfigDict(env_prefix="LECTERN_", extra="ignore", frozen=True)

    opensearch_endpoint: str = Field(min_length=1, description="https://... of the domain or collection")
    opensearch_kind: Literal["managed", "serverless"] = "managed"
    opensearch_index: str = "lectern-chunks"
    opensearch_pipeline: str = "lectern-hybrid"
    opensearch_engine: Literal["faiss", "lucene"] = "faiss"
    embedding_dimension: int = 1024
    bm25_weight: float = Field(default=0.5, ge=0.0, le=1.0)
    region: str | None = Field(default=None, description="default: the Lambda's AWS_REGION")

    @model_validator(mode="after")
    def _check_search(self) -> SearchSettings:
        if self.embedding_dimension not in TITAN_DIMENSIONS:
            raise ValueError(
                f"embedding_dimension must be one of {TITAN_DIMENSIONS} (Titan Text Embeddings V2)"
            )
        if not self.opensearch_endpoint.startswith("https://") and not self.opensearch_endpoint.startswith(
            "http://127.0.0.1"
        ):
            raise ValueError("opensearch_endpoint must be an https:// URL")
        return self

    @classmethod
    def from_env(cls):
        try:
            return cls()  # type: ignore[call-arg]  # values come from the environment
        except ValidationError as exc:
            problems = "; ".join(
                f"LECTERN_{'_'.join(str(p) for p in err['loc']).upper() or '?'}: {err['msg']}"
                for err in exc.errors()
            )
            raise SettingsError(f"Invalid Lambda configuration: {problems}") from None


class AwsSettings(SearchSettings):
    documents_bucket: str = Field(min_length=3, max_length=63)
    table_name: str = Field(min_length=3, max_length=255)
    engine_fusion: bool = Field(
        default=True, description="fuse in OpenSearch's search pipeline (True) or in the domain (False)"
    )
    embedding_model_id: str = "amazon.titan-embed-text-v2:0"
    generation_model_id: str = "us.amazon.nova-lite-v1:0"
    strong_model_id: str = "us.amazon.nova-pro-v1:0"
    guardrail_id: str | None = None
    guardrail_version: str | None = None
    fallback_endpoint_name: str | None = None
    fallback_inference_component: str | None = None
    rerank_model_arn: str | None = None
    prompt_version: str = "answer-v3"
    prompt_version_b: str | None = None
    prompt_b_share: float = Field(default=0.0, ge=0.0, le=1.0)
    routing: bool = Field(default=True, description="route complex questions to strong_model_id")
    route_long_context_tokens: int = Field(default=1200, ge=0, description="0 = rule off")
    route_min_similarity: float = Field(default=0.4, le=1.0, description="negative = rule off")
    query_log_retention_days: int = Field(default=90, ge=1)
    user_claim: str = "sub"
    max_upload_bytes: int = Field(default=50 * 1024 * 1024, ge=1)
    max_pages: int = Field(default=2000, ge=1)
    chunk_size: int = Field(default=200, ge=16, le=512)
    chunk_overlap: int = Field(default=32, ge=0)
    embed_batch: int = Field(default=32, ge=1, le=256)
    candidates: int = Field(default=100, ge=1, le=1000)
    top_k: int = Field(default=5, ge=1, le=20)
    max_context_tokens: int = Field(default=1500, ge=100)
    min_similarity: float = Field(default=0.25, ge=-1.0, le=1.0)
    min_relative_score: float = Field(default=0.3, ge=0.0, le=1.0)
    tenant_claim: str = "custom:tenant_id"
    cors_origins: list[str] = Field(default_factory=list, description="origins the web page is served from")
    # per tenant, shared by every Lambda instance (DynamoDB counters); API Gateway's usage plan throttles per key too
    rate_limit_per_minute: int = Field(default=600, ge=0)
    daily_token_budget: int = Field(default=2_000_000, ge=0)
    idempotency_ttl_s: int = Field(default=3600, ge=60)
    # semantic answer cache in the single table (lectern.adapters.aws.dynamo_cache). The threshold was measured
    # with the local MiniLM embedder; re-run `lectern eval cache` with Titan before relying on it.
    cache_enabled: bool = True
    cache_threshold: float = Field(default=0.89, ge=0.0, le=1.0)
    cache_key_terms_guard: bool = True
    cache_ttl_s: int = Field(default=24 * 3600, ge=60)
    cache_max_entries: int = Field(default=500, ge=1, le=5000)

    @model_validator(mode="after")
    def _check(self) -> AwsSettings:
        if self.chunk_overlap >= self.chunk_size:
            raise ValueError("chunk_overlap must be smaller than chunk_size")
        if bool(self.guardrail_id) != bool(self.guardrail_version):
            raise ValueError("set both LECTERN_GUARDRAIL_ID and LECTERN_GUARDRAIL_VERSION, or neither")
        return self
