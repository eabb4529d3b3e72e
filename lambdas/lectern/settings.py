"""Lectern's settings: one core of the fields both modes share, with one set of validators, extended by the local
model here and the AWS model in `lectern.aws.settings`.

Every setting is a `LECTERN_<NAME>` environment variable (pydantic-settings; an empty value counts as unset).
A misconfigured process fails at once with a message naming every bad variable instead of misbehaving later.
A new setting is one field: on `CoreSettings` when both modes read it, on `LocalSettings` or `AwsSettings` when
only one does. Where the modes' defaults differ on purpose (a small CPU model wants less context; a Lambda fleet
takes more requests), the constraint is declared once (the `Annotated` types below) and each mode states its
default.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import Field, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict


class SettingsError(RuntimeError):
    pass


S = TypeVar("S", bound="CoreSettings")

# The environment one `from_env(environ)` call reads; None = os.environ.
_ENVIRON: ContextVar[Mapping[str, str] | None] = ContextVar("lectern_settings_environ", default=None)


class _Environment(EnvSettingsSource):
    """`LECTERN_*` variables from the mapping given to `from_env`, or from os.environ."""

    def _load_env_vars(self) -> Mapping[str, str | None]:
        environ = _ENVIRON.get()
        if environ is None:
            return super()._load_env_vars()
        return {
            (k if self.case_sensitive else k.lower()): (None if v == self.env_parse_none_str else v)
            for k, v in environ.items()
            if not (self.env_ignore_empty and v == "")
        }


@contextmanager
def _reading(environ: Mapping[str, str] | None) -> Iterator[None]:
    token = _ENVIRON.set(environ)
    try:
        yield
    finally:
        _ENVIRON.reset(token)


# Constraints of the settings whose default differs between the modes: declared once, defaulted per mode.
MaxContextTokens = Annotated[int, Field(ge=100, description="passage tokens put into a prompt")]
RateLimitPerMinute = Annotated[int, Field(ge=0, description="API requests per tenant per minute; 0 = off")]
DailyTokenBudget = Annotated[int, Field(ge=0, description="generation tokens per tenant per UTC day")]
CacheMaxEntries = Annotated[int, Field(ge=1, le=5000, description="semantic cache entries per tenant")]


class CoreSettings(BaseSettings):
    """What answering, retrieval, ingestion limits, routing, prompts and the cache read, in both modes."""

    model_config = SettingsConfigDict(env_prefix="LECTERN_", extra="ignore", env_ignore_empty=True)

    # prompts and A/B: a share of users (stable hash of the user id) get prompt_version_b
    prompt_version: str = "answer-v4"  # spotlighting (docs/decisions.md 2026-12-03); answer-v3 before
    prompt_version_b: str | None = None
    prompt_b_share: float = Field(default=0.0, ge=0.0, le=1.0)
    # routing: complex questions go to the strong model when one is configured (the decision is always recorded)
    routing: bool = Field(default=True, description="route complex questions to the strong model")
    route_long_context_tokens: int = Field(default=1200, ge=0, description="0 = rule off")
    route_min_similarity: float = Field(default=0.4, le=1.0, description="negative = rule off")
    # ingestion limits and chunking
    max_upload_bytes: int = Field(default=50 * 1024 * 1024, ge=1)
    max_pages: int = Field(default=2000, ge=1)
    max_ocr_pages: int = Field(default=100, ge=0, description="pages read by OCR per document")
    max_image_pixels: int = Field(default=40_000_000, ge=1, description="pixels of an image page read by OCR")
    # the OCR engine: each mode has one (local: tesseract, AWS: textract) and its default; none = text layers only
    ocr: Literal["tesseract", "textract", "none"] = "none"
    max_page_images: int = Field(
        default=300, ge=0, description="pages per document rendered as images for the passage view (0 = none)"
    )
    chunk_size: int = Field(default=200, ge=16, le=512, description="tokens per chunk")
    chunk_overlap: int = Field(default=32, ge=0, description="tokens shared by neighbouring chunks")
    # retrieval and the "I don't know" gate
    bm25_weight: float = Field(default=0.5, ge=0.0, le=1.0)
    candidates: int = Field(default=100, ge=1, le=1000)
    top_k: int = Field(default=5, ge=1, le=20)
    max_context_tokens: MaxContextTokens = 600
    min_similarity: float = Field(default=0.25, ge=-1.0, le=1.0)
    min_relative_score: float = Field(default=0.3, ge=0.0, le=1.0)
    # conversations (lectern.domain.conversations): follow-ups rewritten by the model, or by the terms rule only
    conversation_rewrite: Literal["model", "terms"] = "model"
    conversation_retention_days: int = Field(default=30, ge=1, description="after the last turn")
    conversation_max_turns: int = Field(default=50, ge=1, le=200)
    # per-tenant limits
    rate_limit_per_minute: RateLimitPerMinute = 120
    daily_token_budget: DailyTokenBudget = 500_000
    # semantic answer cache (lectern.domain.cache); threshold from `lectern eval cache` with the local embedder
    cache_enabled: bool = True
    cache_threshold: float = Field(default=0.89, ge=0.0, le=1.0)
    cache_key_terms_guard: bool = True
    cache_ttl_s: int = Field(default=24 * 3600, ge=60)
    cache_max_entries: CacheMaxEntries = 1000
    # one output policy for stored text: search results get the answers' PII masking and passage checks
    mask_search_results: bool = Field(
        default=True, description="apply the guardrail's PII masking and passage checks to /v1/search results"
    )

    @field_validator("chunk_overlap")
    @classmethod
    def _overlap(cls, v: int, info: ValidationInfo) -> int:
        size = info.data.get("chunk_size")
        if size is not None and v >= size // 2:
            raise ValueError(f"chunk_overlap must be less than half of chunk_size ({size})")
        return v

    # -- the domain's configuration objects, built from these fields in one place (imports are lazy: a Lambda's
    # settings must not pull in extraction libraries) ------------------------------------------------------
    def chunking_config(self) -> Any:
        from lectern.domain.chunking import ChunkingConfig

        return ChunkingConfig(size=self.chunk_size, overlap=self.chunk_overlap)

    def extraction_limits(self) -> Any:
        from lectern.domain.extraction import ExtractionLimits

        return ExtractionLimits(
            max_bytes=self.max_upload_bytes,
            max_pages=self.max_pages,
            max_ocr_pages=self.max_ocr_pages,
            max_image_pixels=self.max_image_pixels,
            max_page_images=self.max_page_images,
            ocr=self.ocr_engine(),
        )

    def ocr_engine(self) -> Any:
        """The OCR engine for pages without a text layer and images; None (the core's default) = text only."""
        return None

    def fusion_config(self, method: str = "min_max") -> Any:
        from lectern.domain.fusion import FusionConfig

        return FusionConfig(method=method, weights=(self.bm25_weight, round(1.0 - self.bm25_weight, 6)))  # type: ignore[arg-type]

    def retrieval_config(self) -> Any:
        from lectern.domain.retrieval import RetrievalConfig

        return RetrievalConfig(candidates=self.candidates, fusion=self.fusion_config())

    def routing_config(self) -> Any:
        from lectern.domain.routing import RoutingConfig

        return RoutingConfig(
            enabled=self.routing,
            long_context_tokens=self.route_long_context_tokens,
            min_similarity=self.route_min_similarity,
        )

    def answer_config(self) -> Any:
        from lectern.domain.answering import AnswerConfig

        return AnswerConfig(
            top_k=self.top_k,
            max_context_tokens=self.max_context_tokens,
            min_similarity=self.min_similarity,
            min_relative_score=self.min_relative_score,
        )

    def cache_config(self) -> Any:
        from lectern.domain.cache import CacheConfig

        return CacheConfig(
            threshold=self.cache_threshold,
            key_terms_guard=self.cache_key_terms_guard,
            ttl_s=self.cache_ttl_s,
            max_entries=self.cache_max_entries,
        )

    def limit_policy(self) -> Any:
        from lectern.domain.limits import LimitPolicy

        return LimitPolicy(
            requests_per_window=self.rate_limit_per_minute, window_s=60, daily_tokens=self.daily_token_budget
        )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # keyword arguments first, then the environment; no .env files or secret directories
        return init_settings, _Environment(settings_cls)

    @classmethod
    def from_env(cls: type[S], environ: Mapping[str, str] | None = None, **overrides: Any) -> S:
        """Settings from `environ` (default os.environ), with `overrides` (None = not given) taking precedence."""
        given = {k: v for k, v in overrides.items() if v is not None}
        unknown = sorted(set(given) - set(cls.model_fields))
        if unknown:
            raise SettingsError(f"Invalid Lectern settings:\n  unknown setting(s): {', '.join(unknown)}")
        try:
            with _reading(environ):
                return cls(**given)
        except ValidationError as exc:
            raise SettingsError(describe(exc)) from None


def describe(exc: ValidationError) -> str:
    """Every bad variable on its own line: `  LECTERN_CHUNK_OVERLAP: chunk_overlap must be less than ...`."""
    lines = []
    for err in exc.errors():
        loc = "_".join(str(p) for p in err["loc"])
        name = f"LECTERN_{loc.upper()}" if loc else "LECTERN_*"
        lines.append(f"  {name}: {err['msg'].removeprefix('Value error, ')}")
    return "Invalid Lectern settings:\n" + "\n".join(lines)


class LocalSettings(CoreSettings):
    """`lectern up` and the CLI on one machine."""

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
    # the strong model for routed questions: 'none' = the default model answers; 'openai' = a Messages API server
    strong_llm: Literal["none", "openai", "fake"] = "none"
    strong_llm_base_url: str | None = None
    strong_llm_model_name: str = "strong"
    fusion: Literal["min_max", "rrf"] = "min_max"
    # ingestion threads of `lectern up`'s worker and of `lectern ingest/sync` (default: one per core but one)
    ingest_workers: int = Field(default_factory=lambda: max(1, min(8, (os.cpu_count() or 2) - 1)), ge=1, le=8)
    max_attempts: int = Field(default=3, ge=1)
    # ingestion that never strands a document (lectern.local.worker): an upload slot unused for this long ends
    # FAILED (the worker's sweep); extraction runs in a child process killed at the time limit (0 = in-process,
    # no limit), the document then FAILED with the reason
    upload_slot_ttl_s: int = Field(
        default=3600, ge=60, description="seconds an unused upload slot stays open"
    )
    ingest_time_limit_s: float = Field(default=300.0, ge=0, description="seconds per document's extraction")
    # guardrails (lectern.domain.guardrails): PII masking, prompt-injection checks on questions and passages,
    # grounding; the policy file is a JSON GuardrailPolicy (the same fields as the Bedrock guardrail)
    guardrails: bool = True
    guardrail_policy: Path | None = None
    guardrail_learned_injection: bool = (
        True  # learned classifier OR lexical patterns (adapters/local/guardrails)
    )
    # OCR of scanned PDF pages and images (lectern.domain.ocr): Debian's tesseract, installed by `make venv`
    ocr: Literal["tesseract", "textract", "none"] = "tesseract"  # textract is refused here (ocr_engine)
    ocr_languages: str = Field(default="eng", pattern=r"^[a-z_]+(\+[a-z_]+)*$", description="e.g. eng+deu")
    ocr_page_timeout_s: float = Field(default=60.0, gt=0, description="seconds OCR may take on one page")

    @property
    def base_url(self) -> str:
        return self.public_url or f"http://{self.host}:{self.port}"

    def retrieval_config(self) -> Any:
        from lectern.domain.retrieval import RetrievalConfig

        return RetrievalConfig(candidates=self.candidates, fusion=self.fusion_config(self.fusion))

    def ocr_engine(self) -> Any:
        if self.ocr == "none":
            return None
        if self.ocr != "tesseract":
            raise SettingsError(f"LECTERN_OCR={self.ocr} is an AWS engine; locally use tesseract or none.")
        from lectern.adapters.local.tesseract_ocr import TesseractOcr

        return TesseractOcr(languages=self.ocr_languages, page_timeout_s=self.ocr_page_timeout_s)
