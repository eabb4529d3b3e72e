"""AWS settings: the shared core (`lectern.settings.CoreSettings`) plus what only the Lambda functions read,
parsed from the function's environment at cold start.

A misconfigured function fails at its first invocation with a message naming every bad variable, instead of
misbehaving on the first real request. The variable names are the contract with the CDK stacks (cdk/).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from lectern.settings import (
    CacheMaxEntries,
    CoreSettings,
    DailyTokenBudget,
    MaxContextTokens,
    RateLimitPerMinute,
    SettingsError,
)

TITAN_DIMENSIONS = (256, 512, 1024)


class SearchSettings(CoreSettings):
    """What the search index needs: all the search-setup custom resource is given (its function lives in the
    Search stack, which knows no bucket or table). `AwsSettings` extends it, so the fields are declared once."""

    model_config = SettingsConfigDict(env_prefix="LECTERN_", extra="ignore", env_ignore_empty=True, frozen=True)

    opensearch_endpoint: str = Field(min_length=1, description="https://... of the domain or collection")
    opensearch_kind: Literal["managed", "serverless"] = "managed"
    opensearch_index: str = "lectern-chunks"
    opensearch_pipeline: str = "lectern-hybrid"
    opensearch_engine: Literal["faiss", "lucene"] = "faiss"
    embedding_dimension: int = 1024
    region: str | None = Field(default=None, description="default: the Lambda's AWS_REGION")

    @field_validator("embedding_dimension")
    @classmethod
    def _titan_dimension(cls, v: int) -> int:
        if v not in TITAN_DIMENSIONS:
            raise ValueError(f"embedding_dimension must be one of {TITAN_DIMENSIONS} (Titan Text Embeddings V2)")
        return v

    @field_validator("opensearch_endpoint")
    @classmethod
    def _https(cls, v: str) -> str:
        if not v.startswith(("https://", "http://127.0.0.1")):
            raise ValueError("opensearch_endpoint must be an https:// URL")
        return v

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> SearchSettings:
        try:
            return super().from_env(environ, **overrides)
        except SettingsError as exc:
            message = str(exc).replace("Invalid Lectern settings", "Invalid Lambda configuration", 1)
            raise SettingsError(message) from None


class AwsSettings(SearchSettings):
    documents_bucket: str = Field(min_length=3, max_length=63)
    table_name: str = Field(min_length=3, max_length=255)
    # conversation history (question and answer text): a table only the API function is granted; unset in the
    # other functions, which never build the conversation store
    conversations_table: str | None = None
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
    query_log_retention_days: int = Field(default=90, ge=1)
    user_claim: str = "sub"
    embed_batch: int = Field(default=32, ge=1, le=256)
    tenant_claim: str = "custom:tenant_id"
    cors_origins: list[str] = Field(default_factory=list, description="origins the web page is served from")
    idempotency_ttl_s: int = Field(default=3600, ge=60)
    # OCR of scanned PDF pages and images: Amazon Textract (lectern.adapters.aws.textract_ocr), results kept in S3
    ocr: Literal["tesseract", "textract", "none"] = "textract"  # tesseract is refused here (ocr_engine)
    # Defaults that differ from the local mode: Bedrock's models take more context; the limits are per tenant,
    # shared by every Lambda instance (DynamoDB counters), and API Gateway's usage plan throttles per key too;
    # the cache lives in the single table (lectern.adapters.aws.dynamo_cache), its threshold measured with the
    # local MiniLM embedder (re-run `lectern eval cache` with Titan before relying on it).
    max_context_tokens: MaxContextTokens = 1500
    rate_limit_per_minute: RateLimitPerMinute = 600
    daily_token_budget: DailyTokenBudget = 2_000_000
    cache_max_entries: CacheMaxEntries = 500

    # the sweep (handlers.sweep.mark_stuck) fails documents UPLOADING/PROCESSING for longer than this; the
    # PROCESSING limit must exceed the ingestion state machine's timeout (2 hours)
    stuck_uploading_after_minutes: int = Field(default=180, ge=10)
    stuck_processing_after_minutes: int = Field(default=180, ge=125)

    @model_validator(mode="after")
    def _guardrail_pair(self) -> AwsSettings:
        if bool(self.guardrail_id) != bool(self.guardrail_version):
            raise ValueError("set both LECTERN_GUARDRAIL_ID and LECTERN_GUARDRAIL_VERSION, or neither")
        return self

    def ocr_engine(self) -> Any:
        if self.ocr == "none":
            return None
        if self.ocr != "textract":
            raise SettingsError(f"LECTERN_OCR={self.ocr} is not available on AWS; use textract or none.")
        from lectern.adapters.aws.textract_ocr import TextractOcr

        return TextractOcr(bucket=self.documents_bucket)

    def retrieval_config(self) -> Any:
        from lectern.domain.retrieval import RetrievalConfig

        # OpenSearch Serverless: search pipelines and the hybrid query are not verified there; fuse in the domain
        engine = self.engine_fusion and self.opensearch_kind == "managed"
        return RetrievalConfig(candidates=self.candidates, fusion=self.fusion_config(), engine_fusion=engine)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> AwsSettings:
        return super().from_env(environ, **overrides)  # type: ignore[return-value]
