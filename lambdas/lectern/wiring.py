"""The wiring core: the domain services built from settings and ports, the same way in both modes.

`Services` is what both containers are: `lectern.local.container.LocalLectern` and
`lectern.aws.container.AwsLectern` extend it with their adapters (the `Ports`) and nothing else, so the only
difference between running on one machine and on AWS is which adapters are passed in. Every service is built on
first use and once (a Lambda that only marks a document INDEXED never creates a search client or a model
client); a test may replace any component by name before first use (`Services.override`).

The answer pipeline (lectern.domain.pipeline) is composed here, once, outermost first:

    BudgetStage         the tenant's daily tokens: a refused question is neither generated, cached nor traced
    ports.observe()     mode-specific measurement (AWS: CloudWatch metrics, fallback reasons)
    TraceStage          every answer, cached or not, is recorded for feedback and evaluation
    QuestionGuardStage  PII masked / attacks refused before the cache sees the question (when a guard is set)
    ConversationStage   a follow-up rewritten into a standalone question from its history; the turn recorded
    SemanticCache       when the cache is on: a hit answers without retrieval or generation
    Answerer            the core: retrieval, passage guard, gate, routing, prompt, generation, grounding
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING, Any, Protocol

from lectern.domain.answering import Answerer
from lectern.domain.documents import DocumentService
from lectern.domain.pipeline import AnswerPipeline, QuestionGuardStage
from lectern.domain.ports import ChatModel, Embedder
from lectern.domain.prompts import load_template
from lectern.domain.retrieval import Retriever
from lectern.settings import CoreSettings

if TYPE_CHECKING:  # ingestion (extraction, its parsers, numpy) loads only where a pipeline is built
    from lectern.domain.ingest import IngestionPipeline


class Ports(Protocol):
    """The adapters a mode supplies (lectern.domain.ports names their interfaces)."""

    settings: CoreSettings
    documents: Any  # DocumentRepository
    blobs: Any  # BlobStore
    index: Any  # SearchIndex
    embedder: Embedder
    model: ChatModel
    strong_model: ChatModel | None  # routed questions; None: the default model answers them
    signer: Any  # UploadSigner
    trigger: Any  # IngestionTrigger
    queries: Any  # QueryLog
    conversation_store: Any  # ConversationStore
    limit_counters: Any  # LimitCounters
    answer_cache: Any  # AnswerCacheStore, read only when the cache is on
    guard: Any  # AnswerGuard | None
    reranker: Any  # Reranker | None

    @property
    def token_counter(self) -> Callable[[str], int]: ...

    def observe(self) -> list[Any]: ...  # mode-specific measurement stages (lectern.domain.pipeline)

    def on_cache_lookup(self) -> Callable[..., None] | None: ...


class Services:
    """Domain services over `self`'s ports. Subclasses supply the ports as attributes (eager or lazy)."""

    settings: CoreSettings

    def override(self, **components: Any) -> None:
        """Replace components by name before their first use (tests, benchmarks)."""
        for name, value in components.items():
            if not hasattr(type(self), name):
                raise TypeError(f"unknown component {name!r}")
            self.__dict__[name] = value  # wins over a cached_property

    @cached_property
    def pipeline(self) -> IngestionPipeline:
        from lectern.domain.ingest import IngestionPipeline

        p: Any = self
        return IngestionPipeline(
            documents=p.documents,
            blobs=p.blobs,
            index=p.index,
            embedder=p.embedder,
            token_counter=p.token_counter,
            chunking=self.settings.chunking_config(),
            limits=self.settings.extraction_limits(),
            extractor=getattr(
                p, "extractor", None
            ),  # local: extraction in a child process under a time limit
            supersede_versions=self.supersede_versions,
        )

    @cached_property
    def document_service(self) -> DocumentService:
        p: Any = self
        return DocumentService(
            documents=p.documents,
            blobs=p.blobs,
            index=p.index,
            trigger=p.trigger,
            signer=p.signer,
            max_upload_bytes=self.settings.max_upload_bytes,
            supersede_versions=self.supersede_versions,
        )

    @cached_property
    def retriever(self) -> Retriever:
        p: Any = self
        return Retriever(p.index, p.embedder, self.settings.retrieval_config(), reranker=p.reranker)

    @cached_property
    def search(self) -> Any:
        """Search results under the answers' output policy (lectern.domain.retrieval.GuardedSearch)."""
        from lectern.domain.retrieval import GuardedSearch

        p: Any = self
        return GuardedSearch(self.retriever, p.guard, enabled=self.settings.mask_search_results)

    @cached_property
    def router(self) -> Any:
        from lectern.domain.routing import ModelRouter

        p: Any = self
        s = self.settings
        return ModelRouter(p.model, p.strong_model if s.routing else None, s.routing_config())

    @cached_property
    def limits(self) -> Any:
        from lectern.domain.limits import TenantLimits

        p: Any = self
        return TenantLimits(p.limit_counters, self.settings.limit_policy())

    @cached_property
    def core_answerer(self) -> Answerer:
        """The innermost stage: retrieval, guard, routing, prompt, generation, grounding."""
        p: Any = self
        s = self.settings
        return Answerer(
            retriever=self.retriever,
            model=p.model,
            router=self.router,
            template=load_template(s.prompt_version),
            prompt_b=load_template(s.prompt_version_b) if s.prompt_version_b else None,
            prompt_b_share=s.prompt_b_share,
            token_counter=p.token_counter,
            config=s.answer_config(),
            guard=p.guard,
        )

    @cached_property
    def answerer(self) -> AnswerPipeline:
        """The answer pipeline (see the module docstring): answers and streams for the API, CLI and evaluation."""
        from lectern.domain.feedback import TraceStage
        from lectern.domain.limits import BudgetStage

        p: Any = self
        core = self.core_answerer
        stages: list[Any] = [BudgetStage(self.limits), *p.observe(), TraceStage(p.queries)]
        if p.guard is not None:
            stages.append(QuestionGuardStage(p.guard))
        stages.append(self.conversation_stage)
        if self.settings.cache_enabled:
            from lectern.domain.cache import SemanticCache

            stages.append(
                SemanticCache(
                    p.answer_cache,
                    p.documents,
                    embed=lambda text: core.retriever.embedder.embed_query(text),
                    prompt_version=lambda user_id: core.prompt_for(user_id).version,
                    config=self.settings.cache_config(),
                    on_lookup=p.on_cache_lookup(),
                )
            )
        return AnswerPipeline(core, stages)

    @cached_property
    def conversations(self) -> Any:
        """List, read and delete conversations; the stage records turns through it. None without a store."""
        from lectern.domain.conversations import ConversationService

        p: Any = self
        if p.conversation_store is None:
            return None
        return ConversationService(p.conversation_store, max_turns=self.settings.conversation_max_turns)

    @cached_property
    def conversation_stage(self) -> Any:
        from lectern.domain.conversations import ConversationStage, FollowUpRewriter

        p: Any = self
        # the cheap model rewrites; a model that only extracts sentences (the test model) cannot: the terms rule
        can = self.settings.conversation_rewrite == "model" and getattr(p.model, "can_rewrite", True)
        return ConversationStage(self.conversations, FollowUpRewriter(p.model if can else None))

    @cached_property
    def feedback(self) -> Any:
        from lectern.domain.feedback import FeedbackService

        p: Any = self
        return FeedbackService(p.queries)

    # defaults of the optional ports
    # whether a document INDEXED removes the older documents of its source path (and a FAILED one the older FAILED
    # ones). Both containers say yes (local, and AWS, where mark_indexed/mark_failed hold the Query/DeleteItem and
    # prefix-delete grants for it: docs/decisions.md, 2026-12-03); the default is for bare test containers.
    supersede_versions = False

    def observe(self) -> list[Any]:
        """Mode-specific measurement stages, between the budget and the trace (AWS: CloudWatch metrics)."""
        return []

    def on_cache_lookup(self) -> Callable[..., None] | None:
        return None
