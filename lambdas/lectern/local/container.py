"""The local adapters: the ports that `lectern.wiring.Services` builds the domain services from on one machine,
the twin of `lectern.aws.container`. The one place that knows every concrete local class."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver

from lectern.adapters.local.file_blobs import FileBlobStore
from lectern.adapters.local.llama_supervisor import ConfigurationError, SupervisedModel
from lectern.adapters.local.sqlite_conversations import SqliteConversationStore
from lectern.adapters.local.sqlite_db import SqliteDatabase
from lectern.adapters.local.sqlite_documents import SqliteDocumentRepository
from lectern.adapters.local.sqlite_index import SqliteSearchIndex
from lectern.adapters.local.sqlite_keys import SqliteApiKeyStore
from lectern.adapters.local.sqlite_limits import SqliteLimitCounters
from lectern.adapters.local.sqlite_queries import SqliteQueryLog
from lectern.adapters.local.upload_signer import HmacUploadSigner, load_or_create_secret
from lectern.api.app import ApiServices, build_app
from lectern.domain.auth import ApiKeyAuthenticator, hash_key, new_key
from lectern.domain.ports import ChatModel, Embedder
from lectern.local.uploads import register_upload_route
from lectern.local.worker import LocalIngestionWorker
from lectern.settings import LocalSettings
from lectern.wiring import Services

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


def packaged_model(settings: LocalSettings):
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


def make_guard(settings: LocalSettings, embedder: Embedder | None) -> object | None:
    """The local guardrail (PII, prompt injection on questions and passages, grounding), or None when off."""
    if not settings.guardrails:
        return None
    from lectern.adapters.local.guardrails import build_local_guard
    from lectern.domain.guardrails import GuardrailPolicy

    path = settings.guardrail_policy
    policy = GuardrailPolicy.from_json(path.read_text()) if path else None
    return build_local_guard(
        policy, embedder=embedder, learned_injection=settings.guardrail_learned_injection
    )


def make_embedder() -> Embedder:
    from lectern.adapters.local.onnx_embedder import OnnxMiniLMEmbedder

    return OnnxMiniLMEmbedder()


def frontend_dir() -> Path | None:
    here = Path(__file__).resolve()
    for candidate in (here.parents[3] / "frontend", here.parents[1] / "_frontend"):
        if (candidate / "index.html").is_file():
            return candidate
    return None


class LocalLectern(Services):
    """The local adapters (SQLite, files, ONNX embedder, llama.cpp), from which `Services` builds the domain."""

    settings: LocalSettings

    def __init__(
        self,
        settings: LocalSettings,
        db: SqliteDatabase,
        embedder: Embedder,
        model: ChatModel | None = None,
        **overrides: Any,
    ) -> None:
        self.settings = settings
        self.db = db
        self.documents = SqliteDocumentRepository(db)
        self.blobs = FileBlobStore(settings.data_dir / "files")
        self.embedder = embedder
        self.index = SqliteSearchIndex(db, embedder.dimension, embedder.model_id)
        self.signer = HmacUploadSigner(
            load_or_create_secret(settings.data_dir / "secret.key"), settings.base_url
        )
        self.queries = SqliteQueryLog(db)
        self.conversation_store = SqliteConversationStore(db, retention_days=settings.conversation_retention_days)
        self.keys = SqliteApiKeyStore(db)
        self.limit_counters = SqliteLimitCounters(db)
        self.model = model or make_chat_model(settings)
        self.extra: dict[str, object] = {}
        self.override(**overrides)

    # -- the remaining ports -------------------------------------------------------------------------------
    @property
    def token_counter(self) -> Callable[[str], int]:
        count = getattr(self.embedder, "count_tokens", None)
        if count is None:
            from lectern.domain.chunking import whitespace_tokens

            return whitespace_tokens
        return count

    @cached_property
    def strong_model(self) -> ChatModel | None:
        return make_strong_model(self.settings)

    @cached_property
    def guard(self) -> Any:
        return make_guard(self.settings, self.embedder)

    @cached_property
    def answer_cache(self) -> Any:
        from lectern.adapters.local.sqlite_cache import SqliteAnswerCache

        return SqliteAnswerCache(self.db)

    @cached_property
    def extractor(self) -> Any:
        """Extraction in a child process killed at `ingest_time_limit_s` (None: in-process, no limit)."""
        if not self.settings.ingest_time_limit_s:
            return None
        from lectern.adapters.local.child_extractor import ChildProcessExtractor

        return ChildProcessExtractor(
            self.settings.ingest_time_limit_s, log_path=self.settings.data_dir / "logs" / "extract.log"
        )

    @cached_property
    def worker(self) -> LocalIngestionWorker:
        s = self.settings
        return LocalIngestionWorker(
            self.pipeline,
            self.documents,
            self.blobs,
            workers=s.ingest_workers,
            max_attempts=s.max_attempts,
            upload_slot_ttl_s=s.upload_slot_ttl_s,
            purge_orphans=self.purge_orphans,
        )

    @property
    def trigger(self) -> LocalIngestionWorker:
        return self.worker

    reranker = None
    supersede_versions = True

    def purge_orphans(self) -> int:
        """Remove chunks whose document row is gone (a kill -9 between a delete's two writes). Returns how many
        documents' chunks were removed."""
        rows = (
            self.db.connection()
            .execute(
                "SELECT DISTINCT c.tenant_id, c.document_id FROM chunks c WHERE NOT EXISTS (SELECT 1 FROM"
                " documents d WHERE d.tenant_id = c.tenant_id AND d.document_id = c.document_id)"
            )
            .fetchall()
        )
        for tenant_id, document_id in rows:
            self.index.delete_document(tenant_id, document_id)
        return len(rows)

    # -- API -----------------------------------------------------------------------------------------------
    def health(self) -> dict[str, str]:
        status = getattr(self.model, "status", "ok")
        return {"index": "ok", "embedder": "ok", "model": status}

    def health_details(self) -> dict[str, str]:
        """Why a component is not ok (the model server's last exit, its restarts), for /v1/health."""
        detail = getattr(self.model, "detail", "")
        return {"model": detail} if detail else {}

    def tenant_of(self, event: object) -> str:
        """`auth=none`: everything belongs to the configured tenant. `auth=api_key`: the key's tenant."""
        if self.settings.auth == "none":
            return self.settings.tenant_id
        return ApiKeyAuthenticator(self.keys).tenant_for(getattr(event, "headers", None))

    def ensure_first_key(self) -> str | None:
        """With API keys on and none created yet: create one for the configured tenant and return it (shown once;
        only its hash is kept)."""
        if self.settings.auth != "api_key" or self.keys.list():
            return None
        key = new_key()
        self.keys.add(hash_key(key), self.settings.tenant_id, "created by lectern up")
        return key

    def api_services(self) -> ApiServices:
        return ApiServices(
            documents=self.document_service,
            retriever=self.retriever,
            search=self.search,
            answerer=self.answerer,
            tenant_of=self.tenant_of,
            health=self.health,
            health_details=self.health_details,
            feedback=self.feedback,
            conversations=self.conversations,
            user_of=lambda event, tenant: local_user(tenant, event),
            limits=self.limits,
        )

    def make_app(self) -> APIGatewayRestResolver:
        app = build_app(self.api_services())
        register_upload_route(app, self.document_service, self.signer)
        return app

    def close(self) -> None:
        if "worker" in self.__dict__:
            self.worker.stop()
        close_extractor = getattr(self.__dict__.get("extractor"), "close", None)
        if close_extractor is not None:
            close_extractor()
        close = getattr(self.model, "close", None)
        if close:
            close()
        self.db.close()


def build_local(
    settings: LocalSettings, *, embedder: Embedder | None = None, model: ChatModel | None = None
) -> LocalLectern:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = SqliteDatabase(settings.data_dir / "lectern.db")
    return LocalLectern(settings, db, embedder or make_embedder(), model)
