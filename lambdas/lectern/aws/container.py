"""The AWS adapters: the ports that `lectern.wiring.Services` builds the domain services from on AWS, the twin of
`lectern.local.container`.

Adapters are built lazily (a handler that only marks a document INDEXED never creates an OpenSearch client or
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
from lectern.domain.chunking import whitespace_tokens
from lectern.domain.errors import Unauthenticated
from lectern.wiring import Services


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


class AwsLectern(Services):
    settings: AwsSettings
    # a new version (same source path) INDEXED removes the older ones; mark_indexed/mark_failed are granted the
    # Query, DeleteItem and prefix delete this needs (cdk/stacks/service.py ACCESS)
    supersede_versions = True

    def __init__(self, settings: AwsSettings, **overrides: Any) -> None:
        self.settings = settings
        self.override(**overrides)

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
    def queries(self) -> Any:
        from lectern.adapters.aws.dynamo_queries import DynamoQueryLog

        return DynamoQueryLog(self.settings.table_name, retention_days=self.settings.query_log_retention_days)

    @cached_property
    def conversation_store(self) -> Any:
        from lectern.adapters.aws.dynamo_conversations import DynamoConversationStore

        if not self.settings.conversations_table:  # only the API function has the table
            return None
        return DynamoConversationStore(
            self.settings.conversations_table, retention_days=self.settings.conversation_retention_days
        )

    @cached_property
    def limit_counters(self) -> Any:
        from lectern.adapters.aws.dynamo_limits import DynamoLimitCounters

        return DynamoLimitCounters(self.settings.table_name)

    @cached_property
    def answer_cache(self) -> Any:
        from lectern.adapters.aws.dynamo_cache import DynamoAnswerCache

        return DynamoAnswerCache(self.settings.table_name)

    @cached_property
    def trigger(self) -> Any:
        return EventDrivenTrigger()

    @property
    def token_counter(self) -> Callable[[str], int]:
        # Titan's tokenizer is not published; whitespace words are a stable, conservative proxy for chunk sizes.
        return whitespace_tokens

    @cached_property
    def sweeper(self) -> Any:
        from datetime import timedelta

        from lectern.domain.sweep import StuckDocumentSweeper, StuckLimits

        s = self.settings
        limits = StuckLimits(
            uploading=timedelta(minutes=s.stuck_uploading_after_minutes),
            processing=timedelta(minutes=s.stuck_processing_after_minutes),
        )
        return StuckDocumentSweeper(self.documents, self.documents, limits)

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
    def feedback(self) -> Any:
        from lectern.aws.observability import feedback_metrics
        from lectern.domain.feedback import FeedbackService

        return FeedbackService(self.queries, on_feedback=feedback_metrics())

    @cached_property
    def reranker(self) -> Any:
        if not self.settings.rerank_model_arn:
            return None
        from lectern.adapters.aws.bedrock import BedrockReranker

        return BedrockReranker(self.settings.rerank_model_arn)

    # -- measurement around the answer stack (lectern.wiring composes it) ----------------------------------
    def observe(self) -> list[Any]:
        from lectern.aws.observability import MetricsStage

        return [MetricsStage(fallback_probe=self._fallback_reason)]

    def on_cache_lookup(self) -> Callable[..., None] | None:
        from lectern.aws.observability import cache_lookup_metrics

        return cache_lookup_metrics()

    def _fallback_reason(self) -> str | None:
        """Why the last answer on this thread came from the fallback (whichever tier answered), or None."""
        models = [self.model] + ([self.strong_model] if "strong_model" in self.__dict__ else [])
        reasons = [getattr(m, "last_fallback_reason", None) for m in models]
        return next((r for r in reasons if r), None)

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

    def user_of(self, event: Any, tenant: str | None = None) -> str | None:
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
            search=self.search,
            answerer=self.answerer,
            tenant_of=self.tenant_of,
            health=self.health,
            feedback=self.feedback,
            conversations=self.conversations,
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
