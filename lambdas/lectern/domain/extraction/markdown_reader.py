"""Markdown: headings, lists, code and tables as blocks."""

from __future__ import annotations

import re

from lectern.domain.extraction.common import ExtractionLimits
from lectern.domain.extraction.text import _block, _code_block, _decode_declared_text, _table_block, clean_text
from lectern.domain.models import Block, BlockKind, ExtractedDocument, Page

_MD_FENCE_RE = re.compile(r"^ {0,3}(`{3,}|~{3,})")


_MD_ATX_RE = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")


_MD_SETEXT_RE = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")


_MD_RULE_RE = re.compile(r"^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$")


_MD_LIST_RE = re.compile(r"^[ \t]*(?:([-*+])|(\d{1,9}[.)]))[ \t]+(.*)$")


_MD_QUOTE_RE = re.compile(r"^ {0,3}>[ \t]?")


_MD_TABLE_SEP_RE = re.compile(r"^[ \t]*\|?[ \t]*:?-+:?[ \t]*(\|[ \t]*:?-+:?[ \t]*)*\|?[ \t]*$")


# Every pattern stops at the next delimiter it could start over from, so a line full of unclosed openers
# ("**x **x ...", "[a](" * n) is read in linear time (the earlier `.+?` / `[^)]*` forms were quadratic: 80 KB
# of "**x " took 17 s).
_MD_INLINE = (
    (re.compile(r"!\[([^\[\]]*)\]\([^()\[\]]*\)"), r"\1"),  # image -> alt text
    (re.compile(r"\[([^\[\]]+)\]\([^()\[\]]*\)"), r"\1"),  # link -> its text
    (re.compile(r"(\*\*|__)(?=\S)((?:(?!\1).)+?)(?<=\S)\1"), r"\2"),  # strong
    (re.compile(r"`([^`]+)`"), r"\1"),  # inline code
)


def _md_inline(text: str) -> str:
    for pattern, repl in _MD_INLINE:
        text = pattern.sub(repl, text)
    return text


def _md_cells(line: str) -> list[str]:
    line = line.strip()
    line = line[1:] if line.startswith("|") else line
    line = line[:-1] if line.endswith("|") and not line.endswith("\\|") else line
    return [_md_inline(c.replace("\\|", "|")) for c in re.split(r"(?<!\\)\|", line)]


class _Markdown:
    """A line-based Markdown reader: ATX and setext headings, fenced code, lists, pipe tables, paragraphs."""

    def __init__(self, text: str) -> None:
        self.lines = clean_text(text).split("\n")
        self.i = 0
        self.blocks: list[Block] = []
        self.para: list[str] = []
        self.kind: BlockKind = "paragraph"

    def parse(self) -> list[Block]:
        self._skip_front_matter()
        while self.i < len(self.lines):
            line = self.lines[self.i]
            self.i += 1
            self._line(line)
        self.flush()
        return self.blocks

    def flush(self) -> None:
        block = _block(_md_inline(" ".join(self.para)), self.kind)
        if block is not None:
            self.blocks.append(block)
        self.para, self.kind = [], "paragraph"

    def _add(self, block: Block | None) -> None:
        self.flush()
        if block is not None:
            self.blocks.append(block)

    def _skip_front_matter(self) -> None:
        if self.lines and self.lines[0].strip() == "---":
            for j in range(1, min(len(self.lines), 100)):
                if self.lines[j].strip() in ("---", "..."):
                    self.i = j + 1
                    return

    def _line(self, line: str) -> None:
        if not line.strip():
            self.flush()
        elif fence := _MD_FENCE_RE.match(line):
            self._add(_code_block(self._fenced(fence.group(1))))
        elif heading := _MD_ATX_RE.match(line):
            self._add(_block(_md_inline(heading.group(2) or ""), "heading", len(heading.group(1))))
        elif self._setext(line):
            pass
        elif _MD_RULE_RE.match(line):
            self.flush()
        elif "|" in line and self.i < len(self.lines) and _MD_TABLE_SEP_RE.match(self.lines[self.i]):
            self._add(self._table(line))
        elif item := _MD_LIST_RE.match(line):
            self.flush()
            self.kind = "list"  # an ordered item keeps its number, a bullet loses its marker
            self.para.append(f"{item.group(2) or ''} {item.group(3)}")
        else:
            self.para.append(_MD_QUOTE_RE.sub("", line))

    def _setext(self, line: str) -> bool:
        """A '===' or '---' underline turns the paragraph above it into a heading."""
        underline = _MD_SETEXT_RE.match(line)
        if not (underline and self.para and self.kind == "paragraph"):
            return False
        text, self.para = " ".join(self.para), []
        self._add(_block(_md_inline(text), "heading", 1 if underline.group(1)[0] == "=" else 2))
        return True

    def _fenced(self, fence: str) -> str:
        body = []
        while self.i < len(self.lines):
            line = self.lines[self.i]
            self.i += 1
            closing = _MD_FENCE_RE.match(line)
            if closing and self._closes(fence, closing.group(1), line):
                break
            body.append(line)
        return "\n".join(body)

    @staticmethod
    def _closes(fence: str, candidate: str, line: str) -> bool:
        same = candidate[0] == fence[0] and len(candidate) >= len(fence)
        return same and not line.strip()[len(candidate) :].strip()

    def _table(self, header: str) -> Block | None:
        rows = [_md_cells(header)]
        self.i += 1  # the separator line
        while self.i < len(self.lines) and "|" in self.lines[self.i] and self.lines[self.i].strip():
            rows.append(_md_cells(self.lines[self.i]))
            self.i += 1
        return _table_block(rows)


def _extract_markdown(data: bytes, limits: ExtractionLimits) -> ExtractedDocument:
    blocks = _Markdown(_decode_declared_text(data, "Markdown")).parse()
    title = next((b.text for b in blocks if b.kind == "heading" and b.level == 1), None)
    return ExtractedDocument([Page(1, blocks)], title)
