"""DOCX: zip-bomb checks before it is opened, paragraphs, headings, tables."""

from __future__ import annotations

import io
import re
import zipfile
import zlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

from lectern.domain.errors import ExtractionError
from lectern.domain.extraction.common import MSG_INVALID, ExtractionLimits, _human_size
from lectern.domain.extraction.text import _BULLET_RE, LEFT, UP, Cell, _block, _keep, _squash, _table_block
from lectern.domain.models import Block, ExtractedDocument, Page

if TYPE_CHECKING:  # loaded on the first PDF/DOCX: the API never pays for them
    from docx.document import Document as DocxDocument
    from docx.oxml.text.paragraph import CT_P
    from lxml import etree

_W_NS = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"  # python-docx's nsmap["w"]


def qn(tag: str) -> str:
    """Clark notation of a `w:` tag, as python-docx's `docx.oxml.ns.qn` (without importing python-docx)."""
    prefix, _, local = tag.partition(":")
    assert prefix == "w", tag
    return f"{{{_W_NS}}}{local}"


_W_P, _W_TBL, _W_TR, _W_TC = qn("w:p"), qn("w:tbl"), qn("w:tr"), qn("w:tc")


_W_TCPR, _W_TRPR, _W_GRIDSPAN, _W_VMERGE = qn("w:tcPr"), qn("w:trPr"), qn("w:gridSpan"), qn("w:vMerge")


_W_TBLHEADER, _W_VAL = qn("w:tblHeader"), qn("w:val")


_W_T, _W_TAB, _W_BR, _W_CR = qn("w:t"), qn("w:tab"), qn("w:br"), qn("w:cr")


_W_SDT, _W_SDT_CONTENT, _W_CUSTOM_XML = qn("w:sdt"), qn("w:sdtContent"), qn("w:customXml")


_MC_FALLBACK = "{http://schemas.openxmlformats.org/markup-compatibility/2006}Fallback"


_HEADING_STYLE_RE = re.compile(r"^heading\s*([1-9])$", re.IGNORECASE)


def _check_zip(data: bytes, limits: ExtractionLimits) -> None:
    """Refuse a zip bomb before anything is inflated (zipfile stops a member at its declared size)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            total = sum(info.file_size for info in zf.infolist())
    except Exception as exc:
        raise ExtractionError(MSG_INVALID.format(label="DOCX")) from exc
    if total > limits.max_uncompressed_bytes:
        raise ExtractionError(
            f"The DOCX expands to {_human_size(total)} when unpacked; the limit is "
            f"{_human_size(limits.max_uncompressed_bytes)}."
        )
    if total / max(1, len(data)) > limits.max_compression_ratio:
        raise ExtractionError(
            "The DOCX is compressed far more than real documents are (a possible zip bomb), so it was not "
            "opened."
        )


def _inside(node: etree._Element, stop: etree._Element, tags: tuple[str, ...]) -> bool:
    """Whether `node` has an ancestor with one of `tags` below `stop`."""
    for ancestor in node.iterancestors():
        if ancestor is stop:
            return False
        if ancestor.tag in tags:
            return True
    return False


def _docx_text(p: etree._Element) -> str:
    """A paragraph's text, including hyperlinks, tracked insertions and fields, excluding deleted text and the
    fallback copies of text boxes (which Word stores twice)."""
    parts: list[str] = []
    for node in p.iter(_W_T, _W_TAB, _W_BR, _W_CR, _W_P):
        if node is p or _inside(node, p, (_MC_FALLBACK,)):
            continue
        if node.tag == _W_T:
            parts.append(node.text or "")
        else:
            parts.append("\n" if node.tag in (_W_BR, _W_P) else "\t")
    return "".join(parts)


def _docx_style(p: CT_P, styles: dict[str, str]) -> str:
    style_id = p.pPr.style if p.pPr is not None else None
    return styles.get(style_id or "", "")


def _docx_paragraph(p: CT_P, styles: dict[str, str]) -> Block | None:
    text = _docx_text(p)
    style = _docx_style(p, styles)
    heading = _HEADING_STYLE_RE.match(style)
    if heading:
        return _block(text, "heading", int(heading.group(1)))
    if style.lower() == "title":
        return _block(text, "heading", 1)
    numbered = p.pPr is not None and p.pPr.numPr is not None
    bullet = _BULLET_RE.match(text.strip())
    if bullet:  # a bullet typed by hand
        return _block(text.strip()[bullet.end() :], "list")
    if numbered or style.lower().startswith("list"):
        return _block(text, "list")
    return _block(text)


def _docx_cell_text(tc: etree._Element) -> str:
    paragraphs = [p for p in tc.iter(_W_P) if not _inside(p, tc, (_W_P,))]
    return " ".join(_docx_text(p) for p in paragraphs)


def _docx_cells(tr: etree._Element) -> list[Cell]:
    """A row's cells on the table grid: a cell spanning n grid columns (gridSpan) is followed by n-1 LEFT, a
    vertically merged continuation (vMerge without "restart") is UP."""
    cells: list[Cell] = []
    for tc in tr.iterchildren(_W_TC):
        props = tc.find(_W_TCPR)
        span_el = props.find(_W_GRIDSPAN) if props is not None else None
        vmerge = props.find(_W_VMERGE) if props is not None else None
        try:
            span = max(1, min(64, int(span_el.get(_W_VAL, "1")))) if span_el is not None else 1
        except ValueError:
            span = 1
        if vmerge is not None and vmerge.get(_W_VAL, "continue") != "restart":
            cells.append(UP)
        else:
            cells.append(_docx_cell_text(tc))
        cells.extend([LEFT] * (span - 1))
    return cells


def _docx_table(tbl: etree._Element) -> Block | None:
    rows = list(tbl.iterchildren(_W_TR))
    # rows marked "repeat as header row" are the header; else the first (and the row under a merged header cell)
    marked = 0
    for tr in rows:
        props = tr.find(_W_TRPR)
        if props is None or props.find(_W_TBLHEADER) is None:
            break
        marked += 1
    return _table_block([_docx_cells(tr) for tr in rows], header_rows=marked or None)


def _docx_body(body: etree._Element) -> Iterator[etree._Element]:
    """Paragraphs and tables of the body in document order, looking inside content controls."""
    stack = list(reversed(body))
    while stack:
        el = stack.pop()
        if el.tag in (_W_P, _W_TBL):
            yield el
        elif el.tag in (_W_SDT, _W_SDT_CONTENT, _W_CUSTOM_XML):
            stack.extend(reversed(el))


def _docx_title(document: DocxDocument) -> str | None:
    # Reading core_properties of a package without them invents a part titled "Word Document": look first.
    from docx.opc.constants import RELATIONSHIP_TYPE

    rels = document.part.package.rels.values()
    if not any(r.reltype == RELATIONSHIP_TYPE.CORE_PROPERTIES for r in rels):
        return None
    return _squash(document.core_properties.title or "") or None


def _extract_docx(data: bytes, limits: ExtractionLimits) -> ExtractedDocument:
    _check_zip(data, limits)
    import docx

    try:
        document = docx.Document(io.BytesIO(data))
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:  # a member's data is damaged
        raise ExtractionError(MSG_INVALID.format(label="DOCX")) from exc
    styles = {s.style_id: s.name or "" for s in document.styles}
    blocks: list[Block | None] = []
    for el in _docx_body(document.element.body):
        blocks.append(_docx_paragraph(el, styles) if el.tag == _W_P else _docx_table(el))
    kept = _keep(blocks)
    title = _docx_title(document)
    if title is None:
        title = next((b.text for b in kept if b.kind == "heading" and b.level == 1), None)
    return ExtractedDocument([Page(1, kept)], title)
