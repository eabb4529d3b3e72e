"""The small interfaces the domain needs. Local and AWS adapters implement the same ones.

Every method takes the tenant explicitly: there is no call that reads or writes across tenants.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from lectern.domain.conversations import Conversation, Turn
from lectern.domain.feedback import QueryTrace, Rating
from lectern.domain.models import (
    ChatMessage,
    Chunk,
    Document,
    DocumentStatus,
    Generation,
    ScoredChunk,
    SearchFilters,
)

if TYPE_CHECKING:  # annotations only: a process that never embeds (an API Lambda's health route) loads no numpy
    import numpy as np


class BlobStore(Protocol):
    """Original uploaded files. Writes are atomic: a reader sees the whole file or none."""

    def put(self, key: str, data: bytes) -> None: ...
    def get(self, key: str) -> bytes: ...
    def delete(self, key: str) -> None: ...
    def exists(self, key: str) -> bool: ...


# The fields `DocumentRepository.update` may change besides the status (both repositories refuse the rest).
UPDATABLE_DOCUMENT_FIELDS = frozenset(
    {"error", "pages", "chunks", "sha256", "size_bytes", "content_type", "filename", "source_path", "timings"}
)


class DocumentRepository(Protocol):
    """Document metadata and status."""

    def create(self, doc: Document) -> None: ...
    def get(self, tenant_id: str, document_id: str) -> Document | None: ...
    def list(self, tenant_id: str) -> list[Document]: ...
    def find_by_source(self, tenant_id: str, source_path: str) -> builtins.list[Document]:
        """Every document of the tenant with this `source_path`, oldest first."""
        ...

    def update(
        self,
        tenant_id: str,
        document_id: str,
        *,
        status: DocumentStatus,
        allowed_from: Sequence[DocumentStatus],
        **fields: object,
    ) -> Document:
        """Move a document to `status` only if it is currently in one of `allowed_from`.

        Raises Conflict otherwise (a late or repeated event cannot move a document backwards), NotFound
        if it does not exist.
        """
        ...

    def delete(self, tenant_id: str, document_id: str) -> None: ...


class SearchIndex(Protocol):
    """Chunks with their BM25 text and vectors."""

    def replace_document(
        self, tenant_id: str, document_id: str, chunks: Sequence[Chunk], vectors: np.ndarray
    ) -> None:
        """Atomically replace every chunk of the document by `chunks` (idempotent for the same input)."""
        ...

    def delete_document(self, tenant_id: str, document_id: str) -> int: ...
    def bm25(
        self, tenant_id: str, query: str, k: int, filters: SearchFilters | None = None
    ) -> builtins.list[ScoredChunk]: ...
    def knn(
        self, tenant_id: str, vector: np.ndarray, k: int, filters: SearchFilters | None = None
    ) -> builtins.list[ScoredChunk]: ...
    def count(self, tenant_id: str, document_id: str | None = None) -> int: ...


@runtime_checkable
class NativeHybridIndex(Protocol):
    """A `SearchIndex` that fuses BM25 and k-NN itself (OpenSearch's hybrid query + search pipeline)."""

    def hybrid(
        self,
        tenant_id: str,
        query: str,
        vector: np.ndarray,
        k: int,
        filters: SearchFilters | None = None,
        candidates: int = 100,
    ) -> tuple[list[ScoredChunk], float, bool]:
        """(fused hits best first, at most k; best k-NN cosine similarity or -1; whether BM25 matched)."""
        ...


class Embedder(Protocol):
    model_id: str
    dimension: int

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised float32 matrix, one row per text."""
        ...

    def embed_query(self, text: str) -> np.ndarray: ...


class Tokenizer(Protocol):
    def count(self, text: str) -> int: ...


class ChatModel(Protocol):
    """A chat model speaking the OpenAI/TGI Messages API (or Bedrock Converse behind an adapter)."""

    model_id: str

    def generate(
        self, messages: Sequence[ChatMessage], *, max_tokens: int, temperature: float
    ) -> Generation: ...

    def stream(
        self, messages: Sequence[ChatMessage], *, max_tokens: int, temperature: float
    ) -> Iterator[str | Generation]:
        """Yield text deltas (str) as they come, then exactly one final Generation."""
        ...


class IngestionTrigger(Protocol):
    """Starts ingestion of an uploaded document (a local durable queue, or S3 -> EventBridge -> Step
    Functions)."""

    def start(self, tenant_id: str, document_id: str) -> None: ...


class QueryLog(Protocol):
    """Query traces (one per answer: model, route, tokens, cost, latency, cache hit) and the feedback on them.

    Times are ISO-8601 UTC strings (`lectern.domain.clock.utc_now_iso`), so they sort as text.
    """

    def record(self, trace: QueryTrace) -> None: ...
    def get(self, tenant_id: str, query_id: str) -> QueryTrace | None: ...
    def add_feedback(
        self, tenant_id: str, query_id: str, rating: Rating, comment: str | None, at: str
    ) -> QueryTrace:
        """Attach (or replace) the feedback on a trace of this tenant; NotFound when there is none."""
        ...

    def traces(self, tenant_id: str, since: str, until: str) -> builtins.list[QueryTrace]:
        """This tenant's traces with since <= created_at < until, oldest first."""
        ...


class ConversationStore(Protocol):
    """Conversations and their turns, per tenant and owner (a user's hash). Every call names both: another
    tenant's or owner's conversation reads as absent. Conversations expire `retention_days` after their last
    turn (an expired one reads as absent before the store deletes it)."""

    def create(self, conversation: Conversation, first_turn: Turn) -> None: ...
    def get(self, tenant_id: str, owner: str, conversation_id: str) -> Conversation | None: ...
    def list(self, tenant_id: str, owner: str) -> builtins.list[Conversation]:
        """The owner's conversations, most recently updated first, without their turns (turn_count set)."""
        ...

    def append(self, tenant_id: str, owner: str, conversation_id: str, turn: Turn, *, max_turns: int) -> None:
        """Add a turn; NotFound when the conversation does not exist (or expired), Conflict at max_turns."""
        ...

    def delete(self, tenant_id: str, owner: str, conversation_id: str) -> bool:
        """Remove it and its turns; False when there was none."""
        ...
