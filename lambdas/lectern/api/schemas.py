"""Request and response models of the REST API (the contract the local server and API Gateway share)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from lectern.domain.conversations import Conversation, Turn
from lectern.domain.models import Answer, Citation, Document, ScoredChunk, SearchFilters


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Filters(_In):
    document_ids: list[str] = Field(default_factory=list, max_length=100)
    filenames: list[str] = Field(default_factory=list, max_length=100)

    def to_domain(self) -> SearchFilters:
        return SearchFilters(tuple(self.document_ids), tuple(self.filenames))


class CreateDocumentRequest(_In):
    filename: str = Field(min_length=1, max_length=1024)
    content_type: str = Field(default="", max_length=255)
    size_bytes: int = Field(ge=1, description="Exact size of the file to upload, in bytes.")
    source_path: str | None = Field(
        default=None,
        max_length=1024,
        description="The document's identity within the tenant (e.g. its path in a repository); default: the "
        "filename. One document per source path: see on_duplicate.",
    )
    sha256: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{64}$",
        description="The file's SHA-256 (hex), optional: with on_duplicate=reject, content already indexed under "
        "another name is a duplicate too.",
    )
    on_duplicate: Literal["replace", "keep_both", "reject"] = Field(
        default="replace",
        description="When the tenant already has an INDEXED or PROCESSING document of this source path: "
        "'replace' (the new version replaces it once indexed; if the new one fails, the old stays), 'keep_both' "
        "(the new document gets its own source path, 'name (2)'), or 'reject' (409 duplicate_document).",
    )


class UploadOut(BaseModel):
    url: str
    fields: dict[str, str]


class CreateDocumentResponse(BaseModel):
    document_id: str
    upload: UploadOut
    source_path: str = Field(
        description="The identity the document got (differs from the request's on keep_both)"
    )
    replaces: list[str] = Field(
        default_factory=list,
        description="Documents of the same source path this upload will replace once it is indexed "
        "(on_duplicate=replace); a client can warn with it.",
    )


class DocumentOut(BaseModel):
    document_id: str
    filename: str
    content_type: str
    size_bytes: int
    status: Literal["UPLOADING", "PROCESSING", "INDEXED", "FAILED"]
    error: str | None
    pages: int | None
    chunks: int | None
    created_at: str
    updated_at: str
    source_path: str | None = Field(default=None, description="The document's identity within the tenant")
    sha256: str | None = Field(default=None, description="SHA-256 of the uploaded file (hex), once received")
    timings: dict[str, int] | None = Field(
        default=None,
        description="Milliseconds per ingestion stage (validate, extract, chunk, embed, index), once ingestion "
        "ended (INDEXED, or FAILED: the stages it reached)",
    )

    @classmethod
    def of(cls, d: Document) -> DocumentOut:
        return cls(
            document_id=d.document_id,
            filename=d.filename,
            content_type=d.content_type,
            size_bytes=d.size_bytes,
            status=d.status.value,
            error=d.error,
            pages=d.pages,
            chunks=d.chunks,
            created_at=d.created_at,
            updated_at=d.updated_at,
            source_path=d.source_path,
            sha256=d.sha256,
            timings=d.timings,
        )


class DocumentList(BaseModel):
    documents: list[DocumentOut]


class QueryRequest(_In):
    question: str = Field(min_length=1, max_length=2000)
    top_k: int | None = Field(default=None, ge=1, le=20)
    filters: Filters | None = None
    conversation_id: str | None = Field(
        default=None,
        max_length=200,
        description="Ask a follow-up in this conversation (its history resolves 'it', 'the second one'...); "
        "omitted: a new conversation starts and its id comes back. Unknown (or not yours): 404.",
    )


class CitationOut(BaseModel):
    n: int = Field(description="The number the answer text cites it by ([n]); 1..n in the order first cited")
    document_id: str
    filename: str
    page: int
    snippet: str = Field(description="The start of the passage on one line (for lists)")
    score: float
    chunk_id: str
    text: str = Field(default="", description="The whole passage, line breaks and table rows kept (PII masked)")
    support_start: int = Field(
        default=0,
        ge=0,
        description="Start of the sentence of `text` that best supports the citing answer "
        "sentence, in Unicode code points (support_start == support_end: none found)",
    )
    support_end: int = Field(default=0, ge=0, description="End (exclusive) of that sentence, in code points")
    boxes: list[tuple[int, int, float, float, float, float]] = Field(
        default_factory=list,
        description="The passage's words on its page: [start, end, x0, y0, x1, y1] each, the word's offsets in "
        "`text` and its box as fractions of the page image (origin top left); empty when the page has no layout "
        "(flowing formats). The page image: GET /v1/documents/{document_id}/pages/{page}/image",
    )

    @classmethod
    def of(cls, c: Citation) -> CitationOut:
        return cls(**c.__dict__)


class UsageOut(BaseModel):
    input_tokens: int
    output_tokens: int


class QueryResponse(BaseModel):
    query_id: str
    answer: str
    citations: list[CitationOut]
    model: str
    usage: UsageOut
    latency_ms: int
    prompt_version: str
    abstained: bool
    cost_usd: float = Field(
        description="Generation cost in USD at lectern/data/model_prices.json (0 for local)"
    )
    cache_hit: bool = False
    route: str = Field(default="", description="Which model tier answered and why, e.g. 'strong: comparison'")
    withheld: Literal["no_relevant_passages", "no_answer_in_passages", "not_supported"] | None = Field(
        default=None,
        description="Set when abstained: no passage close enough, the passages lack the answer, or the drafted "
        "answer was not supported by the passages it cited (streamed tokens were provisional and are withdrawn)",
    )
    withheld_reason: str | None = Field(default=None, description="Why the answer was withheld, in a sentence")
    best_passages: list[CitationOut] = Field(
        default_factory=list,
        description="When withheld: the closest passages, the sentence nearest the question "
        "marked by support_start/support_end",
    )
    conversation_id: str | None = Field(
        default=None, description="The conversation this answer is a turn of: send it with the next follow-up"
    )
    standalone_question: str | None = Field(
        default=None, description="What was searched: the question as rewritten from the conversation's history"
    )
    rewrite: Literal["none", "model", "terms"] = Field(
        default="none",
        description="How the follow-up was rewritten: not at all, by the model, or by appending the previous "
        "question's key terms (a follow-up that leans on context, with a model that cannot rewrite)",
    )

    @classmethod
    def of(cls, a: Answer) -> QueryResponse:
        return cls(
            query_id=a.query_id,
            answer=a.answer,
            citations=[CitationOut.of(c) for c in a.citations],
            model=a.model,
            usage=UsageOut(input_tokens=a.usage.input_tokens, output_tokens=a.usage.output_tokens),
            latency_ms=a.latency_ms,
            prompt_version=a.prompt_version,
            abstained=a.abstained,
            cost_usd=a.cost_usd,
            cache_hit=a.cache_hit,
            route=a.route,
            withheld=a.withheld,
            withheld_reason=a.withheld_reason or None,
            best_passages=[CitationOut.of(c) for c in a.best_passages],
            conversation_id=a.conversation_id or None,
            standalone_question=a.standalone_question or None,
            rewrite=a.rewrite,
        )


class ConversationSummary(BaseModel):
    conversation_id: str
    title: str = Field(description="The first question, shortened")
    created_at: str
    updated_at: str
    turns: int

    @classmethod
    def of(cls, c: Conversation) -> ConversationSummary:
        return cls(
            conversation_id=c.conversation_id,
            title=c.title,
            created_at=c.created_at,
            updated_at=c.updated_at,
            turns=c.turn_count,
        )


class ConversationList(BaseModel):
    conversations: list[ConversationSummary]


class TurnOut(BaseModel):
    question: str = Field(description="As asked (personal data masked)")
    standalone_question: str = Field(description="What was searched")
    rewrite: Literal["none", "model", "terms"]
    answer: str
    query_id: str
    at: str
    abstained: bool
    cited: list[str] = Field(description="Files of the cited passages, in citation order")

    @classmethod
    def of(cls, t: Turn) -> TurnOut:
        return cls(
            question=t.question,
            standalone_question=t.standalone_question,
            rewrite=t.rewrite,
            answer=t.answer,
            query_id=t.query_id,
            at=t.at,
            abstained=t.abstained,
            cited=list(t.cited),
        )


class ConversationOut(ConversationSummary):
    history: list[TurnOut]

    @classmethod
    def of(cls, c: Conversation) -> ConversationOut:
        base = ConversationSummary.of(c).model_dump()
        return cls(**base, history=[TurnOut.of(t) for t in c.turns])


class FeedbackRequest(_In):
    query_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    rating: Literal["up", "down"]
    comment: str | None = Field(default=None, max_length=2000)


class FeedbackResponse(BaseModel):
    query_id: str
    rating: Literal["up", "down"]
    comment: str | None
    recorded_at: str


class SearchRequest(_In):
    query: str = Field(min_length=1, max_length=2000)
    top_k: int = Field(default=10, ge=1, le=100)
    mode: Literal["hybrid", "bm25", "vector"] = "hybrid"
    filters: Filters | None = None


class SearchResult(BaseModel):
    chunk_id: str
    document_id: str
    filename: str
    page: int
    text: str
    score: float

    @classmethod
    def of(cls, h: ScoredChunk) -> SearchResult:
        c = h.chunk
        return cls(
            chunk_id=c.chunk_id,
            document_id=c.document_id,
            filename=c.filename,
            page=c.page,
            text=c.text,
            score=round(h.score, 6),
        )


class SearchResponse(BaseModel):
    results: list[SearchResult]


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    version: str
    components: dict[str, str] = Field(
        description="component -> ok | starting | idle | restarting | failed | down | stopped"
    )
    details: dict[str, str] = Field(
        default_factory=dict, description="component -> why it is not ok (absent when it is)"
    )


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorBody


class FormatOut(BaseModel):
    kind: str
    label: str
    extensions: list[str] = Field(description="with the dot, the usual one first")
    mime_types: list[str] = Field(description="the canonical one first")
    description: str


class FormatList(BaseModel):
    formats: list[FormatOut]
