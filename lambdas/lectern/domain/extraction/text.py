"""Text shared by every format: cleaning, decoding bytes, lines into paragraphs, blocks; the plain-text reader."""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterable

import charset_normalizer
from charset_normalizer.md import mess_ratio

from lectern.domain.errors import ExtractionError
from lectern.domain.extraction.common import MSG_BINARY_AS_TEXT, ExtractionLimits
from lectern.domain.models import Block, BlockKind, ExtractedDocument, Page

# C0/C1 controls except tab and newline, DEL, zero-width and BOM characters, soft hyphens.
_CONTROL_RE = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x9f\u00ad\u200b\u200e\u200f\u2060\ufeff\ufffe]")


_LINEBREAK_RE = re.compile("\r\n?|[\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")


# UTF-8 read as Latin-1 leaves C1 controls behind ("â\x80\x93" for "–"); such runs are decoded back.
_MOJIBAKE_RE = re.compile(
    "[\u00c2-\u00df][\u0080-\u00bf]|[\u00e0-\u00ef][\u0080-\u00bf]{2}|[\u00f0-\u00f4][\u0080-\u00bf]{3}"
)


_C1_RE = re.compile("[\u0080-\u009f]")


_LIGATURES = str.maketrans({"ﬀ": "ff", "ﬁ": "fi", "ﬂ": "fl", "ﬃ": "ffi", "ﬄ": "ffl", "ﬅ": "st", "ﬆ": "st"})


def _repair_mojibake(match: re.Match[str]) -> str:
    run = match.group(0)
    if not _C1_RE.search(run):
        return run
    try:
        return run.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return run


def clean_text(text: str) -> str:
    """Line breaks made \\n, C1 mojibake repaired, controls and NULs dropped, ligatures split."""
    text = _LINEBREAK_RE.sub("\n", text)
    if _C1_RE.search(text):
        text = _MOJIBAKE_RE.sub(_repair_mojibake, text)
    return _CONTROL_RE.sub("", text).translate(_LIGATURES)


def _squash(text: str) -> str:
    """One line, single spaces."""
    return " ".join(clean_text(text).split())


def _block(text: str, kind: BlockKind = "paragraph", level: int = 0) -> Block | None:
    text = _squash(text)
    return Block(text, kind, level) if text else None


def _code_block(text: str) -> Block | None:
    lines = [line.rstrip() for line in clean_text(text).expandtabs(4).split("\n")]
    body = "\n".join(lines).strip("\n")
    return Block(body, "code") if body.strip() else None


class _Span:
    """A grid position covered by a merged cell: LEFT continues the cell to its left (colspan, gridSpan), UP the
    cell above (rowspan, vMerge)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


LEFT, UP = _Span("LEFT"), _Span("UP")


Cell = str | _Span | None


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|")


def _resolve(grid: list[list[Cell]]) -> list[list[str]]:
    """Merged positions take the text of the cell they continue; None (unknown) counts as UP below row 0, else
    LEFT (a table finder's merged cell has no text of its own)."""
    out: list[list[str]] = []
    for i, row in enumerate(grid):
        resolved: list[str] = []
        for j, cell in enumerate(row):
            if cell is None:
                above = out[i - 1][j] if i and j < len(out[i - 1]) else ""
                cell = UP if above and grid[i - 1][j] is not None else LEFT
            if cell is LEFT:
                resolved.append(resolved[j - 1] if j else "")
            elif cell is UP:
                resolved.append(out[i - 1][j] if i and j < len(out[i - 1]) else "")
            else:
                resolved.append(_squash(str(cell)))
        out.append(resolved)
    return out


def _header_rows(grid: list[list[Cell]]) -> int:
    """The first row is the header; a header row with a cell spanning columns is followed by the row naming the
    columns under it (at most three header rows)."""
    n = 1
    while n < min(3, len(grid) - 1):
        prev = grid[n - 1]
        spans = any(c is LEFT or (c is None and j and prev[j - 1] is not None) for j, c in enumerate(prev))
        if not spans:
            break
        n += 1
    return n


def _table_block(rows: Iterable[Iterable[Cell]], header_rows: int | None = None) -> Block | None:
    """A Markdown table: the header row (several header rows flattened column by column, "Q3" over "Sales" is
    "Q3 Sales"), the separator, one line per row. Merged cells repeat their text in every position they cover;
    rows and columns empty everywhere (layout spacers) are dropped. One row alone is a line of cells."""
    raw = [list(row) for row in rows]
    raw = [row for row in raw if any(isinstance(c, str) and c.strip() for c in row)]
    if not raw:
        return None
    width = max(len(row) for row in raw)
    raw = [row + [""] * (width - len(row)) for row in raw]
    heads = header_rows if header_rows is not None else _header_rows(raw)
    heads = max(1, min(heads, len(raw)))
    grid = _resolve(raw)
    used = [j for j in range(width) if any(row[j] for row in grid)]
    grid = [[row[j] for j in used] for row in grid]
    if len(grid) == 1:
        return Block(" | ".join(c for c in grid[0]).strip(" |"), "table")
    header = []
    for j in range(len(used)):
        parts: list[str] = []
        for row in grid[:heads]:
            if row[j] and (not parts or parts[-1] != row[j]):
                parts.append(row[j])
        header.append(" ".join(parts))
    body = grid[heads:]
    lines = ["| " + " | ".join(_md_cell(c) for c in header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in body]
    return Block("\n".join(lines), "table")


def _keep(blocks: Iterable[Block | None]) -> list[Block]:
    return [b for b in blocks if b is not None]


_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),  # before UTF-16 LE: its BOM starts with the same two bytes
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


_SNIFF_BYTES = 64 * 1024


_BINARY_BYTES = re.compile(b"[\x00-\x08\x0e-\x1a\x1c-\x1f]")


def _bom_encoding(data: bytes) -> tuple[str, int] | None:
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return encoding, len(bom)
    return None


def _utf16_without_bom(data: bytes) -> str | None:
    """UTF-16 text without a BOM shows as NULs in every other byte (for Latin-script text)."""
    sample = data[:4096]
    if len(sample) < 8:
        return None
    even, odd = sample[0::2], sample[1::2]
    if odd.count(0) > 0.4 * len(odd) and even.count(0) < 0.05 * len(even):
        return "utf-16-le"
    if even.count(0) > 0.4 * len(even) and odd.count(0) < 0.05 * len(odd):
        return "utf-16-be"
    return None


def _looks_binary(data: bytes) -> bool:
    """Control bytes that text does not use, in numbers (a stray one or two do not make a file binary)."""
    sample = data[:8192]
    count = len(_BINARY_BYTES.findall(sample))
    return count >= 8 and count > 0.05 * len(sample)


def _guess_legacy_encoding(data: bytes) -> str:
    """cp1252 when it reads as sensible text, else charset-normalizer's guess.

    A few bytes are too little for any detector (charset-normalizer calls "café €" UTF-16), and on Western
    text it often prefers cp1250 or cp1257, which turn è into č: cp1252 is the likelier legacy encoding."""
    try:
        as_cp1252 = data[:_SNIFF_BYTES].decode("cp1252")
    except UnicodeDecodeError:  # bytes that cp1252 leaves undefined
        as_cp1252 = None
    if as_cp1252 is not None and (len(data) < 32 or mess_ratio(as_cp1252, 1.0) < 0.3):
        return "cp1252"
    best = charset_normalizer.from_bytes(data[:_SNIFF_BYTES]).best()
    return best.encoding if best is not None else "cp1252"


def decode_text(data: bytes, declared: str | None = None) -> str:
    """Bytes -> str: BOM, strict UTF-8, a declared charset, UTF-16 recognised by its NULs, then a guess."""
    bom = _bom_encoding(data)
    if bom:
        return data[bom[1] :].decode(bom[0], errors="replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    for encoding in (declared, _utf16_without_bom(data)):
        if encoding:
            try:
                return data.decode(encoding, errors="replace")
            except LookupError:
                continue
    return data.decode(_guess_legacy_encoding(data), errors="replace")


def _decode_declared_text(data: bytes, label: str, declared: str | None = None) -> str:
    if _bom_encoding(data) is None and _utf16_without_bom(data) is None and _looks_binary(data):
        raise ExtractionError(MSG_BINARY_AS_TEXT.format(label=label))
    return decode_text(data, declared)


_BULLET_RE = re.compile(r"^(?:[•●▪■◦○‣⁃∙·]\s*|[-*–]\s+)")


_HYPHEN_END_RE = re.compile(r"[^\W\d_]-$")


def _typical_width(lines: list[str]) -> int:
    lengths = sorted(len(s) for s in lines if s)
    return lengths[(len(lengths) * 3) // 4] if len(lengths) >= 5 else 0


class _Paragraphs:
    """Groups lines into paragraph and list blocks.

    A blank line or a bullet starts a new block. In hard-wrapped text (typical line 40-200 characters) a line
    clearly shorter than the typical one ends its paragraph; text whose lines are longer than that is one
    paragraph per line.
    """

    def __init__(self, width: int, dehyphenate: bool) -> None:
        self.width = width
        self.dehyphenate = dehyphenate
        self.blocks: list[Block] = []
        self.parts: list[str] = []
        self.kind: BlockKind = "paragraph"

    def flush(self) -> None:
        block = _block(" ".join(self.parts), self.kind)
        if block is not None:
            self.blocks.append(block)
        self.parts, self.kind = [], "paragraph"

    def add(self, line: str) -> None:
        line = line.strip()
        if not line:
            self.flush()
            return
        bullet = _BULLET_RE.match(line)
        if bullet:
            self.flush()
            self.kind = "list"
            line = line[bullet.end() :]
            if not line:
                return
        self._append(line)
        if self.width > 200 or (self.width >= 40 and len(line) < 0.7 * self.width):
            self.flush()

    def _append(self, line: str) -> None:
        if self.dehyphenate and self.parts and _HYPHEN_END_RE.search(self.parts[-1]) and line[0].islower():
            self.parts[-1] = self.parts[-1][:-1] + line
        else:
            self.parts.append(line)


def _lines_to_blocks(text: str, *, dehyphenate: bool) -> list[Block]:
    lines = clean_text(text).split("\n")
    builder = _Paragraphs(_typical_width([s.strip() for s in lines]), dehyphenate)
    for line in lines:
        builder.add(line)
    builder.flush()
    return builder.blocks


def _extract_text(data: bytes, limits: ExtractionLimits) -> ExtractedDocument:
    text = _decode_declared_text(data, "plain text")
    return ExtractedDocument([Page(1, _lines_to_blocks(text, dehyphenate=False))])
