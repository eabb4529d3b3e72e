"""Token-aware recursive chunking that keeps page numbers and the heading trail for citations.

* Pieces never cross a page boundary, so every chunk cites exactly one page.
* A table (a Markdown table block) stays whole in one piece when it fits; a longer one is split between rows,
  every piece starting with the header row and separator again.
* Paragraph-sized pieces are packed up to `size` tokens; a piece that is too long is split recursively on
  paragraph, line, sentence, clause and word boundaries, and as a last resort on a token window.
* Consecutive chunks of the same page share up to `overlap` tokens of trailing pieces.
* Chunk ids are a hash of (document id, ordinal, text): re-running ingestion of the same content yields the
  same ids, so an interrupted and repeated ingestion cannot duplicate anything.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from lectern.domain.models import Chunk, ExtractedDocument

TokenCounter = Callable[[str], int]

_SEPARATORS: tuple[str, ...] = ("\n\n", "\n", r"(?<=[.!?])\s+", r"(?<=[;:])\s+", r"(?<=,)\s+", r"\s+")


@dataclass(frozen=True)
class ChunkingConfig:
    size: int = 200
    overlap: int = 32
    min_size: int = 24  # a trailing piece smaller than this joins the previous chunk when it fits

    def __post_init__(self) -> None:
        if self.size < 16:
            raise ValueError("chunk size must be at least 16 tokens")
        if not 0 <= self.overlap < self.size // 2:
            raise ValueError("chunk overlap must be >= 0 and less than half the chunk size")


def whitespace_tokens(text: str) -> int:
    """A tokenizer-free counter (words and punctuation), used by tests and as a fallback."""
    return len(re.findall(r"\w+|[^\w\s]", text))


@dataclass(frozen=True)
class _Piece:
    text: str
    tokens: int
    page: int
    heading: str


def chunk_id(document_id: str, ordinal: int, text: str) -> str:
    digest = hashlib.sha256(f"{document_id}\x1f{ordinal}\x1f{text}".encode()).hexdigest()
    return digest[:32]


def _split_long(text: str, limit: int, count: TokenCounter, level: int = 0) -> Iterator[str]:
    if count(text) <= limit:
        yield text
        return
    if level >= len(_SEPARATORS):
        words = text.split()
        # Word-window fallback: never cut inside a word.
        step = max(1, limit // 2)
        for i in range(0, len(words), step):
            yield " ".join(words[i : i + step])
        return
    parts = [p for p in re.split(_SEPARATORS[level], text) if p.strip()]
    if len(parts) <= 1:
        yield from _split_long(text, limit, count, level + 1)
        return
    joiner = "\n" if level < 2 else " "
    buf: list[str] = []
    buf_tokens = 0
    for part in parts:
        t = count(part)
        if t > limit:
            if buf:
                yield joiner.join(buf)
                buf, buf_tokens = [], 0
            yield from _split_long(part, limit, count, level + 1)
            continue
        if buf and buf_tokens + t > limit:
            yield joiner.join(buf)
            buf, buf_tokens = [], 0
        buf.append(part)
        buf_tokens += t
    if buf:
        yield joiner.join(buf)


_TABLE_SEPARATOR_RE = re.compile(r"\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?")


def is_table_separator(line: str) -> bool:
    """A Markdown table's header separator line ("| --- | :-: |")."""
    return bool(_TABLE_SEPARATOR_RE.fullmatch(line.strip()))


def _split_table(text: str, limit: int, count: TokenCounter) -> Iterator[str]:
    """A Markdown table whole when it fits, else groups of whole rows, each under the header row and separator
    again. A single row longer than the limit (with its header) is split like prose."""
    lines = text.split("\n")
    if count(text) <= limit or len(lines) < 3 or not is_table_separator(lines[1]):
        yield from _split_long(text, limit, count)
        return
    head = "\n".join(lines[:2])
    budget = limit - count(head)
    rows: list[str] = []
    used = 0
    for row in lines[2:]:
        t = count(row)
        if rows and used + t > budget:
            yield "\n".join([head, *rows])
            rows, used = [], 0
        if t > budget:
            yield from _split_long(f"{head}\n{row}", limit, count)
            continue
        rows.append(row)
        used += t
    if rows:
        yield "\n".join([head, *rows])


def _pieces(doc: ExtractedDocument, size: int, count: TokenCounter) -> Iterator[_Piece]:
    headings: dict[int, str] = {}
    for page in doc.pages:
        for block in page.blocks:
            text = block.text.strip()
            if not text:
                continue
            if block.kind == "heading":
                level = max(1, block.level)
                headings = {lvl: h for lvl, h in headings.items() if lvl < level}
                headings[level] = text
            trail = " > ".join(headings[k] for k in sorted(headings))
            parts = _split_table(text, size, count) if block.kind == "table" else _split_long(text, size, count)
            for part in parts:
                yield _Piece(part, count(part), page.number, trail)


def chunk_document(
    doc: ExtractedDocument,
    *,
    tenant_id: str,
    document_id: str,
    filename: str,
    config: ChunkingConfig,
    count: TokenCounter,
) -> list[Chunk]:
    groups: list[list[_Piece]] = []
    current: list[_Piece] = []
    current_tokens = 0
    for piece in _pieces(doc, config.size, count):
        new_page = bool(current) and piece.page != current[0].page
        if current and (new_page or current_tokens + piece.tokens > config.size):
            groups.append(current)
            carry: list[_Piece] = []
            if not new_page and config.overlap:
                carried = 0
                for prev in reversed(current):
                    if carried + prev.tokens > config.overlap:
                        break
                    carry.insert(0, prev)
                    carried += prev.tokens
                if carried + piece.tokens > config.size:
                    carry = []
            current = carry
            current_tokens = sum(p.tokens for p in carry)
        current.append(piece)
        current_tokens += piece.tokens
    if current:
        if (
            groups
            and current_tokens < config.min_size
            and groups[-1][0].page == current[0].page
            and sum(p.tokens for p in groups[-1]) + current_tokens <= config.size
        ):
            groups[-1].extend(p for p in current if p not in groups[-1])
        else:
            groups.append(current)

    chunks: list[Chunk] = []
    for ordinal, group in enumerate(groups):
        text = "\n".join(p.text for p in group)
        chunks.append(
            Chunk(
                chunk_id=chunk_id(document_id, ordinal, text),
                tenant_id=tenant_id,
                document_id=document_id,
                filename=filename,
                page=group[0].page,
                ordinal=ordinal,
                text=text,
                heading=group[0].heading,
                token_count=sum(p.tokens for p in group),
            )
        )
    return chunks
