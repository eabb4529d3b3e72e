"""Local settings, parsed from `LECTERN_*` environment variables into a pydantic model at start-up.

A misconfigured process fails at once with a readable message instead of misbehaving later.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, ValidationError, field_validator


class SettingsError(RuntimeError):
    pass


class LocalSettings(BaseModel):
    data_dir: Path = Field(default=Path(".lectern"), description="Everything Lectern stores lives here.")
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    public_url: str | None = Field(
        default=None, description="Base URL for upload slots (default http://host:port)."
    )
    tenant_id: str = "default"
    # 'api_key': every API call needs a key (hashed at rest; `lectern keys create`); the first `lectern up` creates
    # one for tenant_id and prints it. 'none': one user on a trusted machine, everything is tenant_id's.
    auth: Literal["api_key", "none"] = "api_key"
    rate_limit_per_minute: int = Field(default=120, ge=0, description="API requests per tenant per minute; 0 = off")
    daily_token_budget: int = Field(default=500_000, ge=0, description="generation tokens per tenant per UTC day")
    # generation: 'llama' = the packaged GGUF through llama.cpp's server; 'openai' = any OpenAI/TGI Messages API
    # server at llm_base_url; 'fake' = a deterministic extractive stand-in for tests of everything but the model.
    llm: Literal["llama", "openai", "fake"] = "llama"
    llm_base_url: str | None = None
    llm_model_path: Path | None = None
    llm_model_name: str = Field(
        default="qwen2.5-coder-1.5b-instruct-q4_k_m",
        description="A packaged model (see docs/models.md), or the name to report for LECTERN_LLM_MODEL_PATH.",
    )
    model_cache_dir: Path | None = Field(
        default=None, description="Where the assembled GGUF goes (default DATA_DIR/models)."
    )
    llm_threads: int = Field(default=0, ge=0, description="0 = all cores")
    llm_ctx: int = Field(default=4096, ge=512)
    llm_timeout_s: float = Field(default=120.0, gt=0)
    prompt_version: str = "answer-v3"
    # A/B: a share of users (stable hash of the user id) get prompt_version_b
    prompt_version_b: str | None = None
    prompt_b_share: float = Field(default=0.0, ge=0.0, le=1.0)
    # routing: complex questions go to a stronger model when one is configured ('none': the decision is still
    # recorded, the default model answers); 'openai' = a Messages API server at strong_llm_base_url
    strong_llm: Literal["none", "openai", "fake"] = "none"
    strong_llm_base_url: str | None = None
    strong_llm_model_name: str = "strong"
    routing: bool = True
    route_long_context_tokens: int = Field(default=1200, ge=0, description="0 = rule off")
    route_min_similarity: float = Field(default=0.4, le=1.0, description="negative = rule off")
    chunk_size: int = Field(default=200, ge=16, le=512)
    chunk_overlap: int = Field(default=32, ge=0)
    fusion: Literal["min_max", "rrf"] = "min_max"
    bm25_weight: float = Field(default=0.5, ge=0.0, le=1.0)
    candidates: int = Field(default=100, ge=1, le=1000)
    top_k: int = Field(default=5, ge=1, le=20)
    max_context_tokens: int = Field(default=600, ge=100)
    min_relative_score: float = Field(default=0.3, ge=0.0, le=1.0)
    min_similarity: float = Field(default=0.25, ge=-1.0, le=1.0)
    max_upload_bytes: int = Field(default=50 * 1024 * 1024, ge=1)
    max_pages: int = Field(default=2000, ge=1)
    ingest_workers: int = Field(default=1, ge=1, le=8)
    max_attempts: int = Field(default=3, ge=1)
    # guardrails (lectern.domain.guardrails): PII masking, prompt-injection checks on questions and passages,
    # grounding; the policy file is a JSON GuardrailPolicy (the same fields as the Bedrock guardrail)
    guardrails: bool = True
    guardrail_policy: Path | None = None
    guardrail_learned_injection: bool = True  # learned classifier OR lexical patterns (adapters/local/guardrails)
    # semantic answer cache (lectern.domain.cache); threshold from `lectern eval cache` with the local embedder
    cache_enabled: bool = True
    cache_threshold: float = Field(default=0.89, ge=0.0, le=1.0)
    cache_key_terms_guard: bool = True
    cache_ttl_s: int = Field(default=24 * 3600, ge=1)
    cache_max_entries: int = Field(default=1000, ge=1)

    @field_validator("chunk_overlap")
    @classmethod
    def _overlap(cls, v: int, info: object) -> int:
        size = getattr(info, "data", {}).get("chunk_size", 200)
        if v >= size // 2:
            raise ValueError("chunk_overlap must be less than half of chunk_size")
        return v

    @property
    def base_url(self) -> str:
        return self.public_url or f"http://{self.host}:{self.port}"

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: object) -> LocalSettings:
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for name in cls.model_fields:
            key = f"LECTERN_{name.upper()}"
            if key in env and env[key] != "":
                values[name] = env[key]
        values.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            lines = [f"  LECTERN_{'.'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors()]
            raise SettingsError("Invalid Lectern settings:\n" + "\n".join(lines)) from None
