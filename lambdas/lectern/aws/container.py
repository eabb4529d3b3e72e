"""Wires the AWS adapters to the domain from `AwsSettings`: the AWS twin of `lectern.local.container`.

Components are built lazily (a handler that only marks a document INDEXED never creates an OpenSearch client or
a Bedrock client) and once per cold start. Tests pass `overrides` to swap one component (a fake server is
usually reached through the endpoint variables instead, leaving the production wiring untouched).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import cached_property
from typing import Any

from lectern.api.app import ApiServices
from lectern.aws.settings import AwsSettings, SearchSettings
from lectern.domain.answering import AnswerConfig, Answerer
from lectern.domain.chunking import ChunkingConfig, whitespace_tokens
from lectern.domain.documents import DocumentService
from lectern.domain.errors import Unauthenticated
from lectern.domain.extraction import ExtractionLimits
from lectern.domain.feedback import FeedbackService, TracedAnswerer
from lectern.domain.fusion import FusionConfig
from lectern.domain.ingest import IngestionPipeline
from lectern.domain.prompts import load_template
from lectern.domain.retrieval import RetrievalConfig, Retriever


def search_index(s: SearchSettings) -> Any:
    """The OpenSearch index the settings name (SigV4-signed: `es` for a domain, `aoss` for a collection)."""
    from lectern.adapters.aws import clients
    from lectern.adapters.aws.opensearch_index import OpenSearchIndex

    return OpenSearchIndex.from_settings(
        s.opensearch_endpoint,
        s.region or clients.session().region_name,
        kind=s.opensearch_kind,
        index_name=s.opensearch_index,
        pipeline_name=s.opensearch_pipeline,
        dimension=s.embedding_dimension,
        engine=s.opensearch_engine,
        bm25_weight=s.bm25_weight,
    )


class EventDrivenTrigger:
    """On AWS ingestion starts from the S3 upload itself (S3 -> EventBridge -> Step Functions): nothing to do."""

    def start(self, tenant_id: str, document_id: str) -> None:
        return None


class AwsLectern:
    def __init__(self, settings: AwsSettings, **overrides: Any) -> None:
        self.settings = settings
        for name, value in overrides.items():
            if name not in type(self).__dict__:
                raise TypeError(f"unknown component {name!r}")
            self.__dict__[name] = value  # wins over the cached_property

    # -- adapters ------------------------------------------------------------------------------------------
    @cached_property
    def documents(self) -> Any:
        from lectern.adapters.aws.dynamo_documents import DynamoDocumentRepository

        return DynamoDocumentRepository(self.settings.table_name)

    @cached_property
    def blobs(self) -> Any:
        from lectern.adapters.aws.s3_blobs import S3BlobStore

        class DocumentBlobStore(S3BlobStore):
            """Deleting a document's original also deletes what ingestion derived from it (extracted text, chunks,
            vectors, manifest): everything under `{tenant}/{doc}/`. On the versioned bucket these become delete
            markers; the lifecycle rule expires the old versions."""

            def delete(self, key: str) -> None:
                if key.endswith("/original"):
                    self.delete_prefix(key[: -len("original")])
                else:
                    super().delete(key)

        return DocumentBlobStore(self.settings.documents_bucket)

    @cached_property
    def vectors(self) -> Any:
        from lectern.adapters.aws.s3_vectors import S3VectorStore

        return S3VectorStore(self.settings.documents_bucket)

    @cached_property
    def signer(self) -> Any:
        from lectern.adapters.aws.s3_uploads import S3PresignedPostSigner

        return S3PresignedPostSigner(self.settings.documents_bucket)

    @cached_property
    def index(self) -> Any:
        return search_index(self.settings)

    @cached_property
    def embedder(self) -> Any:
        from lectern.adapters.aws.bedrock import TitanEmbedder

        return TitanEmbedder(self.settings.embedding_model_id, dimension=self.settings.embedding_dimension)

    @cached_property
    def primary_model(self) -> Any:
        from lectern.adapters.aws.bedrock import BedrockConverseModel

        s = self.settings
        return BedrockConverseModel(
            s.generation_model_id, guardrail_id=s.guardrail_id, guardrail_version=s.guardrail_version
        )

    @cached_property
    def fallback_model(self) -> Any:
        if not self.settings.fallback_endpoint_name:
            return None
        from lectern.adapters.aws.sagemaker_chat import SageMakerMessagesModel

        return SageMakerMessagesModel(
            self.settings.fallback_endpoint_name,
            inference_component=self.settings.fallback_inference_component,
        )

    @cached_property
    def model(self) -> Any:
        from lectern.adapters.aws.fallback import FallbackChatModel

        return FallbackChatModel(self.primary_model, self.fallback_model)

    @cached_property
    def strong_model(self) -> Any:
        """Nova Pro (strong_model_id) for routed questions, with the same guardrail and SageMaker fallback."""
        from lectern.adapters.aws.bedrock import BedrockConverseModel
        from lectern.adapters.aws.fallback import FallbackChatModel

        s = self.settings
        primary = BedrockConverseModel(
            s.strong_model_id, guardrail_id=s.guardrail_id, guardrail_version=s.guardrail_version
        )
        return FallbackChatModel(primary, self.fallback_model)

    @cached_property
    def router(self) -> Any:
        from lectern.domain.routing import ModelRouter, RoutingConfig

        s = self.settings
        config = RoutingConfig(
            enabled=s.routing,
            long_context_tokens=s.route_long_context_tokens,
            min_similarity=s.route_min_similarity,
        )
        return ModelRouter(self.model, self.strong_model if s.routing else None, config)

    @cached_property
    def queries(self) -> Any:
        from lectern.adapters.aws.dynamo_queries import DynamoQueryLog

        return DynamoQueryLog(self.settings.table_name, retention_days=self.settings.query_log_retention_days)

    # -- domain services -----------------------------------------------------------------------------------
    @property
    def token_counter(self) -> Callable[[str], int]:
        # Titan's tokenizer is not published; whitespace words are a stable, conservative proxy for chunk sizes.
        return whitespace_tokens

    @cached_property
    def pipeline(self) -> IngestionPipeline:
        s = self.settings
        return IngestionPipeline(
            documents=self.documents,
            blobs=self.blobs,
            index=self.index,
            embedder=self.embedder,
            token_counter=self.token_counter,
            chunking=ChunkingConfig(size=s.chunk_size, overlap=s.chunk_overlap),
            limits=ExtractionLimits(max_bytes=s.max_upload_bytes, max_pages=s.max_pages),
        )

    @cached_property
    def document_service(self) -> DocumentService:
        return DocumentService(
            documents=self.documents,
            blobs=self.blobs,
            index=self.index,
            trigger=EventDrivenTrigger(),
            signer=self.signer,
            max_upload_bytes=self.settings.max_upload_bytes,
        )

    @cached_property
    def retriever(self) -> Retriever:
        s = self.settings
        fusion = FusionConfig(method="min_max", weights=(s.bm25_weight, round(1.0 - s.bm25_weight, 6)))
        # OpenSearch Serverless: search pipelines and the hybrid query are not verified there, so fuse in the domain
        engine = s.engine_fusion and s.opensearch_kind == "managed"
        config = RetrievalConfig(candidates=s.candidates, fusion=fusion, engine_fusion=engine)
        return Retriever(self.index, self.embedder, config, reranker=self.reranker)

    @cached_property
    def guard(self) -> Any:
        """With a guardrail configured: ApplyGuardrail on the question before retrieval and on each retrieved
        passage (a poisoned passage is dropped instead of blocking the question), and the grounding check
        (lectern.adapters.aws.bedrock_guard says why). Without one: no guard."""
        s = self.settings
        if not s.guardrail_id or not s.guardrail_version:
            return None
        from lectern.adapters.aws.bedrock import BedrockGuardrail
        from lectern.adapters.aws.bedrock_guard import BedrockAnswerGuard

        return BedrockAnswerGuard(BedrockGuardrail(s.guardrail_id, s.guardrail_version))

    @cached_property
    def reranker(self) -> Any:
        if not self.settings.rerank_model_arn:
            return None
        from lectern.adapters.aws.bedrock import BedrockReranker

        return BedrockReranker(self.settings.rerank_model_arn)

    @cached_property
    def answerer(self) -> Any:
        from lectern.aws.observability import MeteredAnswerer

        s = self.settings
        inner = Answerer(
            retriever=self.retriever,
            model=self.model,
            router=self.router,
            template=load_template(s.prompt_version),
            prompt_b=load_template(s.prompt_version_b) if s.prompt_version_b else None,
            prompt_b_share=s.prompt_b_share,
            token_counter=self.token_counter,
            config=AnswerConfig(
                top_k=s.top_k,
                max_context_tokens=s.max_context_tokens,
                min_similarity=s.min_similarity,
                min_relative_score=s.min_relative_score,
            ),
            guard=self.guard,
        )
        inner = self._with_cache(inner)  # type: ignore[assignment]
        from lectern.domain.limits import BudgetedAnswerer

        metered = MeteredAnswerer(TracedAnswerer(inner, self.queries), fallback_probe=self._fallback_reason)
        return BudgetedAnswerer(metered, self.limits)  # a refused question costs nothing and is not traced

    @cached_property
    def limits(self) -> Any:
        from lectern.adapters.aws.dynamo_limits import DynamoLimitCounters
        from lectern.domain.limits import LimitPolicy, TenantLimits

        s = self.settings
        policy = LimitPolicy(
            requests_per_window=s.rate_limit_per_minute, window_s=60, daily_tokens=s.daily_token_budget
        )
        return TenantLimits(DynamoLimitCounters(s.table_name), policy)

    def _fallback_reason(self) -> str | None:
        """Why the last answer on this thread came from the fallback (whichever tier answered), or None."""
        models = [self.model] + ([self.strong_model] if "strong_model" in self.__dict__ else [])
        reasons = [getattr(m, "last_fallback_reason", None) for m in models]
        return next((r for r in reasons if r), None)

    def _with_cache(self, inner: Answerer) -> Any:
        """The Answerer behind the semantic answer cache (DynamoDB single table), with CacheHits/CacheMisses."""
        s = self.settings
        if not s.cache_enabled:
            return inner
        from lectern.adapters.aws.dynamo_cache import DynamoAnswerCache
        from lectern.aws.observability import cache_lookup_metrics
        from lectern.domain.cache import CacheConfig, SemanticCache

        config = CacheConfig(
            threshold=s.cache_threshold,
            key_terms_guard=s.cache_key_terms_guard,
            ttl_s=s.cache_ttl_s,
            max_entries=s.cache_max_entries,
        )
        store = DynamoAnswerCache(s.table_name)
        return SemanticCache(inner, store, self.documents, config=config, on_lookup=cache_lookup_metrics())

    # -- API -----------------------------------------------------------------------------------------------
    def tenant_of(self, event: Any) -> str:
        """The tenant comes from the Cognito claim, never from the request."""
        claims = (
            ((event.request_context.authorizer or {}).get("claims") or {}) if event.request_context else {}
        )
        tenant = claims.get(self.settings.tenant_claim)
        if not tenant:
            raise Unauthenticated("This request carries no tenant; sign in again.")
        return str(tenant)

    def user_of(self, event: Any) -> str | None:
        """The caller within the tenant (Cognito `sub`): the prompt A/B bucket. None without the claim."""
        claims = (
            ((event.request_context.authorizer or {}).get("claims") or {}) if event.request_context else {}
        )
        user = claims.get(self.settings.user_claim)
        return str(user) if user else None

    def health(self) -> dict[str, str]:
        return {"index": "configured", "embedder": self.settings.embedding_model_id, "model": "configured"}

    def api_services(self) -> ApiServices:
        return ApiServices(
            documents=self.document_service,
            retriever=self.retriever,
            answerer=self.answerer,
            tenant_of=self.tenant_of,
            health=self.health,
            feedback=FeedbackService(self.queries),
            user_of=self.user_of,
            limits=self.limits,
            cors_origins=tuple(self.settings.cors_origins),
        )


_lock = threading.Lock()
_current: AwsLectern | None = None


def current() -> AwsLectern:
    """The process-wide container, built on first use from the environment (once per cold start)."""
    global _current
    with _lock:
        if _current is None:
            _current = AwsLectern(AwsSettings.from_env())
        return _current


def install(lectern: AwsLectern | None) -> None:
    """Replace (or forget, with None) the process-wide container: tests, and a handler re-reading settings."""
    global _current
    with _lock:
        _current = lectern
