"""HTML: the readable content, headings, lists and tables; pathological nesting read linearly."""

from __future__ import annotations

import html as html_lib
import logging
import re
from collections.abc import Iterable

from selectolax.lexbor import LexborHTMLParser, LexborNode

from lectern.domain.extraction.common import ExtractionLimits, _tags
from lectern.domain.extraction.text import (
    LEFT,
    UP,
    Cell,
    _block,
    _code_block,
    _decode_declared_text,
    _keep,
    _squash,
    _table_block,
    clean_text,
)
from lectern.domain.models import Block, ExtractedDocument, Page

log = logging.getLogger(__name__)


_HTML_SKIP = _tags(
    "script style noscript template nav header footer aside form svg iframe object embed canvas select "
    "button head title math audio video ix:header"
)


_HTML_KEEP_IN_ARTICLE = frozenset({"header", "footer"})  # an article's own header holds its title


_HTML_HEADINGS = {f"h{i}": i for i in range(1, 7)}


_HTML_BLOCKS = _tags(
    "address article blockquote body caption center dd details dialog dir div dl dt fieldset figcaption "
    "figure hgroup hr html legend li main menu ol p section summary table tbody td tfoot th thead tr ul"
)


_HTML_VOID = _tags("area base br col embed hr img input link meta param source track wbr")


_HTML_OPTIONAL_END = _tags(
    "p li dt dd tr td th tbody thead tfoot option optgroup colgroup caption rb rt rp html head body"
)


_META_CHARSET_RE = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.IGNORECASE)


_WS_RE = re.compile(r"\s+")


_PARAGRAPH_BREAK_RE = re.compile(r"\n\s*\n")


_TAG_RE = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9:-]*)")


MAX_HTML_DEPTH = 1000


MAX_HTML_PARSE_COST = 100_000_000  # sum of element depths: the HTML parser's work grows with it


def _html_charset(data: bytes) -> str | None:
    match = _META_CHARSET_RE.search(data[:4096])
    if not match:
        return None
    name = match.group(1).decode("ascii").lower()
    if name in ("iso-8859-1", "latin1", "latin-1", "us-ascii", "ascii"):
        return "cp1252"  # as browsers do (WHATWG encoding standard)
    return None if name.startswith(("utf-16", "utf-32")) else name


def _html_is_pathological(text: str) -> bool:
    """Whether the parser would be slow: its work per element grows with nesting depth (100k nested divs take
    about a minute). Estimated from the tags alone, in linear time."""
    depth = max_depth = cost = 0
    for closing, name in _TAG_RE.findall(text):
        name = name.lower()
        if name in _HTML_VOID or name in _HTML_OPTIONAL_END:
            continue
        if closing:
            depth = max(0, depth - 1)
        else:
            depth += 1
            cost += depth
            max_depth = max(max_depth, depth)
    return max_depth > MAX_HTML_DEPTH or cost > MAX_HTML_PARSE_COST


class _HtmlWalker:
    """Walks an HTML tree in document order without recursion, turning it into blocks.

    Text of inline elements is gathered until a block element starts or ends. Headings, <pre> and data tables
    become one block each; layout tables (nested, or a single column) are walked like any other element.
    """

    def __init__(self) -> None:
        self.blocks: list[Block] = []
        self.buffer: list[str] = []
        self.list_depth = 0
        self.article_depth = 0

    def run(self, root: LexborNode) -> list[Block]:
        """The blocks of the children of `root`."""
        children = list(root.iter(include_text=True))
        stack: list[tuple[LexborNode, bool]] = [(c, False) for c in reversed(children)]
        while stack:
            node, leaving = stack.pop()
            if leaving:
                self._leave(node.tag or "")
            elif self._enter(node):
                stack.append((node, True))
                children = list(node.iter(include_text=True))
                stack.extend((child, False) for child in reversed(children))
        self.flush()
        return self.blocks

    def flush(self) -> None:
        for part in _PARAGRAPH_BREAK_RE.split("".join(self.buffer)):
            block = _block(part, "list" if self.list_depth else "paragraph")
            if block is not None:
                self.blocks.append(block)
        self.buffer = []

    def _add(self, block: Block | None) -> None:
        self.flush()
        if block is not None:
            self.blocks.append(block)

    def _skipped(self, node: LexborNode, tag: str) -> bool:
        if tag.startswith("-"):  # comments, doctype
            return True
        if tag in _HTML_SKIP and not (tag in _HTML_KEEP_IN_ARTICLE and self.article_depth):
            return True
        attrs = node.attributes
        style = (attrs.get("style") or "").replace(" ", "").lower()
        return "hidden" in attrs or "display:none" in style

    def _enter(self, node: LexborNode) -> bool:
        """Handle an element's start; True when its children are to be walked."""
        tag = node.tag or ""
        if tag == "-text":
            self.buffer.append(_WS_RE.sub(" ", node.text_content or ""))
            return False
        if self._skipped(node, tag):
            return False
        if tag == "br":  # one line break joins lines, two or more end a paragraph
            self.buffer.append("\n")
            return False
        if tag in _HTML_HEADINGS:
            self._add(_block(_inner_text(node), "heading", _HTML_HEADINGS[tag]))
            return False
        if tag == "pre":
            self._add(_code_block(node.text(deep=True)))
            return False
        if tag == "table" and _is_data_table(node):
            self._add(_html_table(node))
            return False
        if tag in _HTML_BLOCKS:
            self.flush()
        self.list_depth += tag == "li"
        self.article_depth += tag in ("article", "main")
        return True

    def _leave(self, tag: str) -> None:
        if tag in _HTML_BLOCKS:
            self.flush()
        self.list_depth -= tag == "li"
        self.article_depth -= tag in ("article", "main")


def _inner_text(node: LexborNode) -> str:
    return " ".join(b.text for b in _HtmlWalker().run(node))


def _table_rows(table: LexborNode) -> list[list[LexborNode]]:
    return [[c for c in tr.iter() if c.tag in ("td", "th")] for tr in table.css("tr")]


def _is_data_table(table: LexborNode) -> bool:
    """A table of data (rows of several short cells), as opposed to one used for page layout."""
    if len(table.css("table")) > 1:  # css() includes the table itself
        return False
    rows = _table_rows(table)
    if not rows or max(len(r) for r in rows) < 2:
        return False
    return all(len(c.text(deep=True)) <= 500 for r in rows for c in r)


def _span(node: LexborNode, name: str) -> int:
    try:
        return max(1, min(64, int((node.attributes.get(name) or "1").strip())))
    except ValueError:
        return 1


def _html_table(table: LexborNode) -> Block | None:
    """Cells placed on the table's grid: colspan fills the columns to the right with LEFT, rowspan the rows
    below with UP. The header is the rows of <thead>, else the leading rows made only of <th>."""
    grid: list[list[Cell]] = []
    pending: dict[tuple[int, int], Cell] = {}  # positions covered by a rowspan from above
    heads, in_head = 0, True
    for i, tr in enumerate(table.css("tr")):
        cells = [c for c in tr.iter() if c.tag in ("td", "th")]
        head_row = bool(cells) and (
            (tr.parent is not None and tr.parent.tag == "thead") or all(c.tag == "th" for c in cells)
        )
        if in_head and head_row:
            heads += 1
        else:
            in_head = False
        row: list[Cell] = []
        for cell in cells:
            while (i, len(row)) in pending:
                row.append(pending.pop((i, len(row))))
            col = len(row)
            colspan, rowspan = _span(cell, "colspan"), min(_span(cell, "rowspan"), 1000)
            row.append(_inner_text(cell))
            row.extend([LEFT] * (colspan - 1))
            for k in range(1, rowspan):
                for c in range(col, col + colspan):
                    pending[(i + k, c)] = UP
        while (i, len(row)) in pending:
            row.append(pending.pop((i, len(row))))
        grid.append(row)
    return _table_block(grid, header_rows=heads or None)


def _strip_elements(text: str, names: Iterable[str]) -> str:
    """Remove <name>...</name> elements and comments in linear time (an unclosed one removes the rest)."""
    lower = text.lower()
    out, pos = [], 0
    opening = re.compile(rf"<({'|'.join(map(re.escape, names))})\b|<!--")
    while (m := opening.search(lower, pos)) is not None:
        out.append(text[pos : m.start()])
        end_marker = "-->" if m.group(0) == "<!--" else f"</{m.group(1)}"
        end = lower.find(end_marker, m.end())
        if end < 0:
            return "".join(out)
        pos = lower.find(">", end)
        pos = len(text) if pos < 0 else pos + 1
    out.append(text[pos:])
    return "".join(out)


def _html_fallback_blocks(text: str) -> list[Block]:
    """Tag stripping for HTML too deeply nested to parse quickly: paragraphs only, no structure."""
    text = _strip_elements(text, ("script", "style", "noscript", "template", "svg", "head"))
    block_tags = "|".join(sorted(_HTML_BLOCKS | set(_HTML_HEADINGS) | {"br", "pre"}))
    # `[^<>]*`, not `[^>]*`: a tag never spans another '<', and "<div<div<div..." stays linear.
    text = re.sub(rf"</?(?:{block_tags})\b[^<>]*>", "\n\n", text, flags=re.IGNORECASE)
    text = html_lib.unescape(re.sub(r"<[^<>]*>", "", text))
    return _keep(_block(part) for part in _PARAGRAPH_BREAK_RE.split(clean_text(text)))


def _extract_html(data: bytes, limits: ExtractionLimits) -> ExtractedDocument:
    text = _decode_declared_text(data, "HTML", _html_charset(data))
    if _html_is_pathological(text):
        log.info("html nested too deeply for the parser; stripping tags instead")
        return ExtractedDocument([Page(1, _html_fallback_blocks(text))])
    tree = LexborHTMLParser(text)
    title_node = tree.css_first("title")
    title = _squash(title_node.text()) if title_node is not None else ""
    root = tree.body or tree.root
    blocks = _HtmlWalker().run(root) if root is not None else []
    return ExtractedDocument([Page(1, blocks)], title or None)
