"""Wires the local adapters to the domain from `LocalSettings`. The one place that knows every concrete class."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from aws_lambda_powertools.event_handler import APIGatewayRestResolver

from lectern.adapters.local.file_blobs import FileBlobStore
from lectern.adapters.local.llama_supervisor import ConfigurationError, SupervisedModel
from lectern.adapters.local.sqlite_db import SqliteDatabase
from lectern.adapters.local.sqlite_documents import SqliteDocumentRepository
from lectern.adapters.local.sqlite_index import SqliteSearchIndex
from lectern.adapters.local.sqlite_keys import SqliteApiKeyStore
from lectern.adapters.local.sqlite_limits import SqliteLimitCounters
from lectern.adapters.local.sqlite_queries import SqliteQueryLog
from lectern.adapters.local.upload_signer import HmacUploadSigner, load_or_create_secret
from lectern.api.app import ApiServices, build_app
from lectern.domain.answering import AnswerConfig, Answerer
from lectern.domain.auth import ApiKeyAuthenticator, hash_key, new_key
from lectern.domain.chunking import ChunkingConfig
from lectern.domain.documents import DocumentService
from lectern.domain.extraction import ExtractionLimits
from lectern.domain.feedback import FeedbackService, TracedAnswerer
from lectern.domain.fusion import FusionConfig
from lectern.domain.ingest import IngestionPipeline
from lectern.domain.limits import BudgetedAnswerer, LimitPolicy, TenantLimits
from lectern.domain.ports import ChatModel, Embedder
from lectern.domain.prompts import load_template
from lectern.domain.retrieval import RetrievalConfig, Retriever
from lectern.domain.routing import ModelRouter, RoutingConfig
from lectern.local.uploads import register_upload_route
from lectern.local.worker import LocalIngestionWorker
from lectern.settings import LocalSettings

log = logging.getLogger(__name__)


def local_llama_model(settings: LocalSettings) -> SupervisedModel:
    """The packaged GGUF behind llama.cpp's OpenAI-compatible server: a child process started in the
    background on demand, watched and restarted by `SupervisedModel`."""
    from lectern.adapters.local.llama_server import LlamaServer, llama_available
    from lectern.adapters.local.model_files import ModelFileError, ensure_gguf
    from lectern.adapters.messages_api import MessagesApiChatModel

    def make_server() -> LlamaServer:
        if not llama_available():
            raise ConfigurationError("llama-cpp-python is not installed; run `make venv`")
        try:
            path = ensure_gguf(
                settings.model_cache_dir or settings.data_dir / "models",
                override=settings.llm_model_path,
                model=packaged_model(settings),
            )
        except (ModelFileError, OSError) as exc:
            raise ConfigurationError(str(exc)) from None
        return LlamaServer(
            model_path=path,
            log_dir=settings.data_dir / "logs",
            n_ctx=settings.llm_ctx,
            n_threads=settings.llm_threads or (os.cpu_count() or 2),
        )

    def make_client(base_url: str) -> ChatModel:
        return MessagesApiChatModel(
            base_url=base_url, model=settings.llm_model_name, timeout_s=settings.llm_timeout_s
        )

    return SupervisedModel(make_server, make_client, settings.llm_model_name)


def packaged_model(settings: LocalSettings):  # type: ignore[no-untyped-def]
    from lectern.adapters.local.model_files import DEFAULT_MODEL, PACKAGED_MODELS, ModelFileError

    if settings.llm_model_path is not None:
        return DEFAULT_MODEL  # unused: the override wins
    try:
        return PACKAGED_MODELS[settings.llm_model_name]
    except KeyError:
        raise ModelFileError(
            f"No packaged model is called {settings.llm_model_name!r} (known: {', '.join(PACKAGED_MODELS)}); "
            "set LECTERN_LLM_MODEL_PATH to use a GGUF file of your own."
        ) from None


def make_chat_model(settings: LocalSettings) -> ChatModel:
    if settings.llm == "fake":
        from lectern.adapters.local.extractive_model import ExtractiveChatModel

        return ExtractiveChatModel()
    if settings.llm == "openai":
        from lectern.adapters.messages_api import MessagesApiChatModel

        if not settings.llm_base_url:
            raise ValueError("LECTERN_LLM=openai needs LECTERN_LLM_BASE_URL")
        return MessagesApiChatModel(
            base_url=settings.llm_base_url, model=settings.llm_model_name, timeout_s=settings.llm_timeout_s
        )
    return local_llama_model(settings)


def make_strong_model(settings: LocalSettings) -> ChatModel | None:
    """The model complex questions are routed to; None when the deployment has none (the default locally)."""
    if settings.strong_llm == "fake":
        from lectern.adapters.local.extractive_model import ExtractiveChatModel

        strong = ExtractiveChatModel()
        strong.model_id = "extractive-strong-test-model"
        return strong
    if settings.strong_llm == "openai":
        from lectern.adapters.messages_api import MessagesApiChatModel

        if not settings.strong_llm_base_url:
            raise ValueError("LECTERN_STRONG_LLM=openai needs LECTERN_STRONG_LLM_BASE_URL")
        return MessagesApiChatModel(
            base_url=settings.strong_llm_base_url,
            model=settings.strong_llm_model_name,
            timeout_s=settings.llm_timeout_s,
        )
    return None


CLIENT_HEADER = "x-lectern-client"


def local_user(tenant: str, event: object) -> str:
    """Locally the caller is the tenant plus a client id the page keeps (header X-Lectern-Client), else 'local'."""
    headers = getattr(event, "headers", None) or {}
    client = next((v for k, v in headers.items() if k.lower() == CLIENT_HEADER and v), "local")
    return f"{tenant}/{str(client)[:64]}"


def with_answer_cache(
    answerer: Answerer, db: SqliteDatabase, documents: SqliteDocumentRepository, settings: LocalSettings
) -> object:
    """The Answerer behind the semantic answer cache (a table in the same SQLite database)."""
    from lectern.adapters.local.sqlite_cache import SqliteAnswerCache
    from lectern.domain.cache import CacheConfig, SemanticCache

    config = CacheConfig(
        threshold=settings.cache_threshold,
        key_terms_guard=settings.cache_key_terms_guard,
        ttl_s=settings.cache_ttl_s,
        max_entries=settings.cache_max_entries,
    )
    return SemanticCache(answerer, SqliteAnswerCache(db), documents, config=config)


def make_guard(settings: LocalSettings, embedder: Embedder | None) -> object | None:
    """The local guardrail (PII, prompt injection on questions and passages, grounding), or None when off."""
    if not settings.guardrails:
        return None
    from lectern.adapters.local.guardrails import build_local_guard
    from lectern.domain.guardrails import GuardrailPolicy

    path = settings.guardrail_policy
    policy = GuardrailPolicy.from_json(path.read_text()) if path else None
    return build_local_guard(policy, embedder=embedder, learned_injection=settings.guardrail_learned_injection)


def make_embedder() -> Embedder:
    from lectern.adapters.local.onnx_embedder import OnnxMiniLMEmbedder

    return OnnxMiniLMEmbedder()


def frontend_dir() -> Path | None:
    here = Path(__file__).resolve()
    for candidate in (here.parents[3] / "frontend", here.parents[1] / "_frontend"):
        if (candidate / "index.html").is_file():
            return candidate
    return None


@dataclass
class LocalLectern:
    settings: LocalSettings
    db: SqliteDatabase
    documents: SqliteDocumentRepository
    blobs: FileBlobStore
    index: SqliteSearchIndex
    embedder: Embedder
    model: ChatModel
    signer: HmacUploadSigner
    pipeline: IngestionPipeline
    worker: LocalIngestionWorker
    document_service: DocumentService
    retriever: Retriever
    answerer: Answerer
    extra: dict[str, object] = field(default_factory=dict)
    queries: SqliteQueryLog | None = None
    keys: SqliteApiKeyStore | None = None
    limits: TenantLimits | None = None

    def health(self) -> dict[str, str]:
        status = getattr(self.model, "status", "ok")
        return {"index": "ok", "embedder": "ok", "model": status}

    def health_details(self) -> dict[str, str]:
        """Why a component is not ok (the model server's last exit, its restarts), for /v1/health."""
        detail = getattr(self.model, "detail", "")
        return {"model": detail} if detail else {}

    def tenant_of(self, event: object) -> str:
        """`auth=none`: everything belongs to the configured tenant. `auth=api_key`: the key's tenant."""
        if self.settings.auth == "none" or self.keys is None:
            return self.settings.tenant_id
        return ApiKeyAuthenticator(self.keys).tenant_for(getattr(event, "headers", None))

    def ensure_first_key(self) -> str | None:
        """With API keys on and none created yet: create one for the configured tenant and return it (shown once;
        only its hash is kept)."""
        if self.settings.auth != "api_key" or self.keys is None or self.keys.list():
            return None
        key = new_key()
        self.keys.add(hash_key(key), self.settings.tenant_id, "created by lectern up")
        return key

    def api_services(self) -> ApiServices:
        return ApiServices(
            documents=self.document_service,
            retriever=self.retriever,
            answerer=self.answerer,
            tenant_of=self.tenant_of,
            health=self.health,
            health_details=self.health_details,
            feedback=FeedbackService(self.queries) if self.queries is not None else None,
            user_of=lambda event: local_user(self.tenant_of(event), event),
            limits=self.limits,
        )

    def make_app(self) -> APIGatewayRestResolver:
        app = build_app(self.api_services())
        register_upload_route(app, self.document_service, self.signer)
        return app

    def close(self) -> None:
        self.worker.stop()
        close = getattr(self.model, "close", None)
        if close:
            close()
        self.db.close()


def build_local(
    settings: LocalSettings, *, embedder: Embedder | None = None, model: ChatModel | None = None
) -> LocalLectern:
    data = settings.data_dir
    data.mkdir(parents=True, exist_ok=True)
    db = SqliteDatabase(data / "lectern.db")
    documents = SqliteDocumentRepository(db)
    blobs = FileBlobStore(data / "files")
    embedder = embedder or make_embedder()
    index = SqliteSearchIndex(db, embedder.dimension, embedder.model_id)
    count = getattr(embedder, "count_tokens", None)
    if count is None:
        from lectern.domain.chunking import whitespace_tokens

        count = whitespace_tokens
    limits = ExtractionLimits(max_bytes=settings.max_upload_bytes, max_pages=settings.max_pages)
    pipeline = IngestionPipeline(
        documents=documents,
        blobs=blobs,
        index=index,
        embedder=embedder,
        token_counter=count,
        chunking=ChunkingConfig(size=settings.chunk_size, overlap=settings.chunk_overlap),
        limits=limits,
    )
    worker = LocalIngestionWorker(
        pipeline, documents, blobs, workers=settings.ingest_workers, max_attempts=settings.max_attempts
    )
    signer = HmacUploadSigner(load_or_create_secret(data / "secret.key"), settings.base_url)
    document_service = DocumentService(
        documents=documents,
        blobs=blobs,
        index=index,
        trigger=worker,
        signer=signer,
        max_upload_bytes=settings.max_upload_bytes,
    )
    fusion = FusionConfig(
        method=settings.fusion, weights=(settings.bm25_weight, round(1.0 - settings.bm25_weight, 6))
    )
    retriever = Retriever(index, embedder, RetrievalConfig(candidates=settings.candidates, fusion=fusion))
    model = model or make_chat_model(settings)
    routing = RoutingConfig(
        enabled=settings.routing,
        long_context_tokens=settings.route_long_context_tokens,
        min_similarity=settings.route_min_similarity,
    )
    answerer = Answerer(
        retriever=retriever,
        model=model,
        router=ModelRouter(model, make_strong_model(settings), routing),
        template=load_template(settings.prompt_version),
        prompt_b=load_template(settings.prompt_version_b) if settings.prompt_version_b else None,
        prompt_b_share=settings.prompt_b_share,
        token_counter=count,
        config=AnswerConfig(
            top_k=settings.top_k,
            max_context_tokens=settings.max_context_tokens,
            min_similarity=settings.min_similarity,
            min_relative_score=settings.min_relative_score,
        ),
        guard=make_guard(settings, embedder),  # type: ignore[arg-type]
    )
    if settings.cache_enabled:
        answerer = with_answer_cache(answerer, db, documents, settings)  # type: ignore[assignment]
    queries = SqliteQueryLog(db)
    traced = TracedAnswerer(answerer, queries)  # a cached answer is traced as a cache hit
    limits = TenantLimits(
        SqliteLimitCounters(db),
        LimitPolicy(
            requests_per_window=settings.rate_limit_per_minute,
            window_s=60,
            daily_tokens=settings.daily_token_budget,
        ),
    )
    return LocalLectern(
        settings=settings,
        db=db,
        documents=documents,
        blobs=blobs,
        index=index,
        embedder=embedder,
        model=model,
        signer=signer,
        pipeline=pipeline,
        worker=worker,
        document_service=document_service,
        retriever=retriever,
        # outermost: the token budget (a refused question is neither traced nor cached)
        answerer=BudgetedAnswerer(traced, limits),  # type: ignore[arg-type]  # same answer/stream as an Answerer
        queries=queries,
        keys=SqliteApiKeyStore(db),
        limits=limits,
    )
