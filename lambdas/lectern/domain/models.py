"""Plain data of the domain. No I/O, no cloud SDKs."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Literal

BlockKind = Literal["heading", "paragraph", "list", "table", "code"]
# Why an answer was withheld: the retrieval gate found nothing close enough, the model found no answer in the
# passages, or the grounding check found the drafted answer unsupported by the passages it cited.
Withheld = Literal["no_relevant_passages", "no_answer_in_passages", "not_supported"]


class DocumentStatus(enum.StrEnum):
    UPLOADING = "UPLOADING"
    PROCESSING = "PROCESSING"
    INDEXED = "INDEXED"
    FAILED = "FAILED"


@dataclass(frozen=True)
class Block:
    """One structural unit of extracted text. Headings carry their level (1 = top)."""

    text: str
    kind: BlockKind = "paragraph"
    level: int = 0


@dataclass(frozen=True)
class Word:
    """A word read by OCR and its box on the page, as fractions of the page's width and height (0..1)."""

    text: str
    x0: float
    y0: float
    x1: float
    y1: float


# A word of a chunk's text and its box on the chunk's page: (start, end, x0, y0, x1, y1), the word's offsets in
# the chunk's text (code points) and its box as fractions of the page's width and height, origin top left.
WordBox = tuple[int, int, float, float, float, float]


@dataclass(frozen=True)
class Page:
    """A page of a paginated source (PDF, image), or the whole document as page 1 for flowing formats.

    `ocr`: the text was read from the page's image. `words`: the page's words with their boxes, from OCR or (PDF
    text layers) from the PDF's character boxes; empty for flowing formats."""

    number: int
    blocks: list[Block]
    words: tuple[Word, ...] = ()
    ocr: bool = False


@dataclass(frozen=True)
class ExtractedDocument:
    pages: list[Page]
    title: str | None = None
    # page number -> PNG of the page, rendered at ingest for the passage view (lectern.domain.page_images)
    page_images: dict[int, bytes] = field(default_factory=dict)

    @property
    def page_count(self) -> int:
        return len(self.pages)

    @property
    def char_count(self) -> int:
        return sum(len(b.text) for p in self.pages for b in p.blocks)


@dataclass(frozen=True)
class Document:
    tenant_id: str
    document_id: str
    filename: str
    content_type: str
    size_bytes: int
    status: DocumentStatus
    created_at: str
    updated_at: str
    error: str | None = None
    pages: int | None = None
    chunks: int | None = None
    sha256: str | None = None
    # identity: one document per source path and tenant (an absolute file path for the CLI, the client's path or
    # the filename for API uploads); a new version replaces the old one once it is indexed (domain.documents)
    source_path: str | None = None
    # milliseconds per ingestion stage (validate, extract, chunk, embed, index), set when ingestion ends
    timings: dict[str, int] | None = None


@dataclass(frozen=True)
class Chunk:
    chunk_id: str
    tenant_id: str
    document_id: str
    filename: str
    page: int
    ordinal: int
    text: str
    heading: str = ""
    token_count: int = 0
    boxes: tuple[WordBox, ...] = ()  # where the words of `text` sit on `page` (lectern.domain.layout)

    @property
    def search_text(self) -> str:
        """What is indexed and embedded: the heading trail gives the passage its context."""
        return f"{self.heading}\n{self.text}" if self.heading else self.text


@dataclass(frozen=True)
class SearchFilters:
    document_ids: tuple[str, ...] = ()
    filenames: tuple[str, ...] = ()


@dataclass(frozen=True)
class ScoredChunk:
    chunk: Chunk
    score: float


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0


@dataclass(frozen=True)
class ChatMessage:
    role: Literal["system", "user", "assistant"]
    content: str


@dataclass(frozen=True)
class Generation:
    text: str
    model: str
    usage: Usage
    finish_reason: str = "stop"


@dataclass(frozen=True)
class Citation:
    n: int
    document_id: str
    filename: str
    page: int
    snippet: str
    score: float
    chunk_id: str
    text: str = ""  # the whole passage, as the model saw it (PII masked)
    support_start: int = 0  # the sentence of `text` that best supports the citing answer sentence:
    support_end: int = 0  # offsets in code points; 0, 0 when none shares a word with it
    boxes: tuple[WordBox, ...] = ()  # the passage's words on its page (offsets into `text`), for the page view


@dataclass(frozen=True)
class Answer:
    answer: str
    citations: list[Citation]
    model: str
    usage: Usage
    latency_ms: int
    prompt_version: str
    abstained: bool = False
    retrieved: list[ScoredChunk] = field(default_factory=list)
    query_id: str = ""
    cost_usd: float = 0.0  # priced from lectern/data/model_prices.json
    cache_hit: bool = False
    route: str = ""  # which model was chosen and why (routing), e.g. "cheap: default" / "strong: comparison"
    withheld: Withheld | None = None  # why there is no answer (set whenever abstained)
    withheld_reason: str = ""  # the same, in a sentence for people
    best_passages: list[Citation] = field(default_factory=list)  # when withheld: the closest passages
    conversation_id: str = ""  # the conversation this answer is a turn of (lectern.domain.conversations)
    standalone_question: str = ""  # what was searched: the follow-up rewritten from the history
    rewrite: Literal["none", "model", "terms"] = "none"  # how it was rewritten
