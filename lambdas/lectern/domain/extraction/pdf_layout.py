"""A PDF page's text in reading order, with its ruled tables as Markdown tables (pdfplumber, on pdfminer.six).

Words are grouped into line segments (a wide horizontal gap ends a segment, so two columns never share a line);
a vertical gutter that no segment crosses splits the page into columns; segments crossing it (a title, a
full-width table) cut the page into bands, and each band is read left column first. Tables are found by their
ruling lines (pdfplumber's "lines" strategy: text-aligned guesses tabulate ordinary prose) and take the place of
their words. A page with neither keeps the text layer's own order. Any failure on a page leaves that page to the
plain text layer (pypdf): a broken table never fails the document.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from lectern.domain.extraction.text import _lines_to_blocks, _table_block
from lectern.domain.models import Block

log = logging.getLogger(__name__)

_GAP = 1.2  # a horizontal gap wider than this many times the font size ends a line segment (a column gutter)
_MIN_COLUMN_LINES = 3


@dataclass
class _Seg:
    x0: float
    x1: float
    top: float
    bottom: float
    size: float
    text: str = ""
    table: Block | None = None


def _segments(words: list[dict[str, Any]]) -> list[_Seg]:
    rows: list[list[dict[str, Any]]] = []
    span, tallest = (0.0, 0.0), 0.0
    upright = [w for w in words if w.get("upright", True)]
    for w in sorted(upright, key=lambda w: (float(w["top"]), float(w["x0"]))):
        top, bottom = float(w["top"]), float(w["bottom"])
        height = bottom - top
        overlap = min(span[1], bottom) - max(span[0], top)
        union = max(span[1], bottom) - min(span[0], top)
        # sub- and superscripts join their line; a line never grows to swallow the next one
        if rows and overlap > 0.4 * min(height, span[1] - span[0]) and union <= 1.6 * max(tallest, height):
            rows[-1].append(w)
            span, tallest = (min(span[0], top), max(span[1], bottom)), max(tallest, height)
        else:
            rows.append([w])
            span, tallest = (top, bottom), height
    rows += [[w] for w in words if not w.get("upright", True)]  # rotated text (margin stamps): a line per word
    segs: list[_Seg] = []
    for row in rows:
        row.sort(key=lambda w: float(w["x0"]))
        size = sorted(float(w["bottom"]) - float(w["top"]) for w in row)[len(row) // 2]
        current: list[dict[str, Any]] = []
        for w in row:
            if current and float(w["x0"]) - float(current[-1]["x1"]) > _GAP * max(1.0, size):
                segs.append(_seg(current))
                current = []
            current.append(w)
        if current:
            segs.append(_seg(current))
    return segs


def _seg(words: list[dict[str, Any]]) -> _Seg:
    top = min(float(w["top"]) for w in words)
    bottom = max(float(w["bottom"]) for w in words)
    return _Seg(
        float(words[0]["x0"]),
        float(words[-1]["x1"]),
        top,
        bottom,
        bottom - top,
        " ".join(str(w["text"]) for w in words),
    )


def _gutter(segs: list[_Seg], width: float) -> float | None:
    """The x of a vertical gap between two columns, or None for a single-column page."""
    text = [s for s in segs if s.table is None]
    if len(text) < 2 * _MIN_COLUMN_LINES:
        return None
    best: tuple[int, float] | None = None
    x = width * 0.3
    while x <= width * 0.7:
        crossing = sum(1 for s in text if s.x0 < x < s.x1)
        if best is None or crossing < best[0]:
            best = (crossing, x)
        x += 2.0
    if best is None or best[0] > 0.15 * len(text):
        return None
    gx = best[1]
    left = [s for s in text if s.x1 <= gx]
    right = [s for s in text if s.x0 >= gx]
    if len(left) < _MIN_COLUMN_LINES or len(right) < _MIN_COLUMN_LINES:
        return None
    # columns of prose, not the short cells of a table without ruling lines (read row by row)
    for side in (left, right):
        widths = sorted(s.x1 - s.x0 for s in side)
        if widths[len(widths) // 2] < 0.25 * width:
            return None
    # the columns must stand side by side, not one above the other
    overlap = min(max(s.bottom for s in left), max(s.bottom for s in right)) - max(
        min(s.top for s in left), min(s.top for s in right)
    )
    return gx if overlap > 0 else None


def _reading_order(segs: list[_Seg], width: float) -> list[_Seg]:
    segs = sorted(segs, key=lambda s: (s.top, s.x0))
    gx = _gutter(segs, width)
    if gx is None:
        return segs
    out: list[_Seg] = []
    left: list[_Seg] = []
    right: list[_Seg] = []
    for s in segs:
        if s.x0 < gx < s.x1:  # spans both columns: ends the band above it
            out += left + right + [s]
            left, right = [], []
        elif s.x1 <= gx:
            left.append(s)
        else:
            right.append(s)
    return out + left + right


def _runs(segs: list[_Seg]) -> Iterator[Block]:
    """Segments -> blocks: text lines through the paragraph builder (a vertical gap ends a paragraph), tables as
    they are."""
    lines: list[str] = []
    prev: _Seg | None = None
    for s in segs:
        if s.table is not None:
            yield from _lines_to_blocks("\n".join(lines), dehyphenate=True)
            lines, prev = [], None
            yield s.table
            continue
        gap = prev is not None and s.top - prev.bottom > 0.9 * max(prev.size, s.size)
        if prev is not None and (gap or s.top < prev.top - 1 or abs(s.size - prev.size) > 1.5):
            lines.append("")  # a paragraph gap, a change of type size, the jump to the next column
        lines.append(s.text)
        prev = s
    yield from _lines_to_blocks("\n".join(lines), dehyphenate=True)


def _inside(word: dict[str, Any], boxes: list[tuple[float, float, float, float]]) -> bool:
    cx = (float(word["x0"]) + float(word["x1"])) / 2
    cy = (float(word["top"]) + float(word["bottom"])) / 2
    return any(x0 <= cx <= x1 and top <= cy <= bottom for x0, top, x1, bottom in boxes)


def _is_data_table(rows: list[list[str | None]]) -> bool:
    """Rows of several short cells; boxes drawn around prose (a ruled layout, a framed page) are read as text."""
    cells = [c.strip() for row in rows for c in row if c and c.strip()]
    columns = max((sum(1 for c in row if c and c.strip()) for row in rows), default=0)
    if len(rows) < 2 or columns < 2 or not cells:
        return False
    return max(len(c) for c in cells) <= 300 and sum(len(c) for c in cells) / len(cells) <= 80


def page_blocks(page: Any, *, always: bool = False) -> list[Block] | None:
    """One pdfplumber page -> blocks in reading order, tables as Markdown tables; None for a page with neither a
    table nor two columns (its content-stream order, pypdf's, reads designed pages better), unless `always`."""
    tables = []
    for t in page.find_tables():
        rows = t.extract()
        if _is_data_table(rows):
            block = _table_block(rows)
            if block is not None and "\n" in block.text:
                tables.append((t.bbox, block))
    boxes = [bbox for bbox, _ in tables]
    words = [w for w in page.extract_words(x_tolerance=1.5, use_text_flow=False) if not _inside(w, boxes)]
    segs = _segments(words)
    for (x0, top, x1, bottom), block in tables:
        segs.append(_Seg(float(x0), float(x1), float(top), float(bottom), float(bottom) - float(top), table=block))
    if not tables and not always and _gutter(sorted(segs, key=lambda s: (s.top, s.x0)), float(page.width)) is None:
        return None
    return list(_runs(_reading_order(segs, float(page.width))))
