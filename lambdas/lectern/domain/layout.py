"""Layout metadata for citations: which boxes on its page a chunk's words occupy.

Chunking (domain.chunking) knows pages and text only; this module maps a chunk's characters back to the word
boxes of its page (`Page.words`: Tesseract's TSV for OCR pages, the PDF's character boxes for text layers) after
the fact, so the chunker stays as it is. The chunk's words and the page's words are compared as normalised
tokens (letters and digits, lower case) and aligned with difflib's longest-matching-blocks: the chunk's text may
differ from the page's words (de-hyphenation, a Markdown table's pipes, a text layer read in another order), and a
word that finds no partner simply has no box. Each matched word becomes a `WordBox`: its offsets in the chunk's
text and its box as fractions of the page.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from difflib import SequenceMatcher

from lectern.domain.models import Chunk, ExtractedDocument, Word, WordBox

_TOKEN_RE = re.compile(r"\S+")
_NON_WORD = re.compile(r"[\W_]+")
MIN_MATCH = 1  # a matching block of this many words is trusted (the longest blocks are matched first)


def _norm(text: str) -> str:
    return _NON_WORD.sub("", text).casefold()


def _round(v: float) -> float:
    return round(min(1.0, max(0.0, v)), 4)


def align(text: str, words: Sequence[Word]) -> tuple[WordBox, ...]:
    """The boxes of the words of `text` found, in order, among `words` (a page's words)."""
    if not text or not words:
        return ()
    spans: list[tuple[int, int]] = []
    tokens: list[str] = []
    for m in _TOKEN_RE.finditer(text):
        t = _norm(m.group())
        if t:
            spans.append((m.start(), m.end()))
            tokens.append(t)
    page_tokens = [_norm(w.text) for w in words]
    matcher = SequenceMatcher(None, tokens, page_tokens, autojunk=False)
    out: list[WordBox] = []
    for i, j, size in matcher.get_matching_blocks():
        if size < MIN_MATCH:
            continue
        for k in range(size):
            w = words[j + k]
            start, end = spans[i + k]
            out.append((start, end, _round(w.x0), _round(w.y0), _round(w.x1), _round(w.y1)))
    return tuple(out)


def attach_boxes(chunks: Sequence[Chunk], doc: ExtractedDocument) -> list[Chunk]:
    """`chunks` with their word boxes, for the chunks of pages that have words (others are returned as they are)."""
    pages = {p.number: p for p in doc.pages}
    out = []
    for c in chunks:
        page = pages.get(c.page)
        out.append(replace(c, boxes=align(c.text, page.words)) if page is not None and page.words else c)
    return out


def boxes_in_span(boxes: Sequence[WordBox], start: int, end: int) -> list[WordBox]:
    """The boxes of the words that overlap the characters [start, end) of the chunk's text (all when empty)."""
    if start >= end:
        return list(boxes)
    return [b for b in boxes if b[0] < end and b[1] > start]


def encode_boxes(boxes: Sequence[WordBox]) -> str:
    """A compact text form for storage ("" when none): words separated by ';', fields by ','."""
    return ";".join(",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in b) for b in boxes)


def decode_boxes(value: str | None) -> tuple[WordBox, ...]:
    """`encode_boxes` read back; a damaged value gives no boxes rather than an error (the text still stands)."""
    if not value:
        return ()
    out: list[WordBox] = []
    try:
        for part in value.split(";"):
            s, e, x0, y0, x1, y1 = part.split(",")
            out.append((int(s), int(e), float(x0), float(y0), float(x1), float(y1)))
    except ValueError:
        return ()
    return tuple(out)
