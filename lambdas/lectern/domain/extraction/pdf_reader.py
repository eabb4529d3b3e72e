"""PDF: pages with their real numbers, the text layer, OCR of pages without a usable one."""

from __future__ import annotations

import io
import logging
from typing import TYPE_CHECKING, Any

from lectern.domain.errors import ExtractionError
from lectern.domain.extraction.common import (
    MSG_INVALID,
    MSG_PDF_CIPHER,
    MSG_PDF_LOCKED,
    MSG_UNREADABLE,
    ExtractionLimits,
    _check_chars,
)
from lectern.domain.extraction.text import _lines_to_blocks, _squash
from lectern.domain.models import Block, ExtractedDocument, Page

if TYPE_CHECKING:  # loaded on the first PDF/DOCX: the API never pays for them
    import pypdf

log = logging.getLogger(__name__)


def _open_pdf(data: bytes) -> pypdf.PdfReader:
    import pypdf
    from pypdf.errors import DependencyError

    try:
        reader = pypdf.PdfReader(io.BytesIO(data), strict=False)
    except Exception as exc:
        log.info("pdf open failed: %s: %s", type(exc).__name__, exc)
        raise ExtractionError(MSG_INVALID.format(label="PDF")) from exc
    if reader.is_encrypted:
        try:
            decrypted = reader.decrypt("")
        except DependencyError as exc:  # AES without the `cryptography` package
            raise ExtractionError(MSG_PDF_CIPHER) from exc
        except Exception as exc:
            log.info("pdf decrypt failed: %s: %s", type(exc).__name__, exc)
            raise ExtractionError(MSG_PDF_LOCKED) from exc
        if decrypted == pypdf.PasswordType.NOT_DECRYPTED:
            raise ExtractionError(MSG_PDF_LOCKED)
    return reader


def _pdf_page_count(reader: pypdf.PdfReader, limits: ExtractionLimits) -> int:
    def over(n: int) -> ExtractionError:
        return ExtractionError(f"The PDF has {n:,} pages; the limit is {limits.max_pages:,}.")

    try:  # the declared count first: cheap, and refuses a huge page tree before it is walked
        declared = reader.trailer["/Root"]["/Pages"]["/Count"]  # type: ignore[index]
    except Exception:
        declared = None
    if isinstance(declared, int) and declared > limits.max_pages:
        raise over(declared)
    try:
        count = len(reader.pages)
    except Exception as exc:
        log.info("pdf page tree unreadable: %s: %s", type(exc).__name__, exc)
        raise ExtractionError(MSG_INVALID.format(label="PDF")) from exc
    if count > limits.max_pages:
        raise over(count)
    if count == 0:
        raise ExtractionError("The PDF has no pages.")
    return count


def _pdf_title(reader: pypdf.PdfReader) -> str | None:
    try:
        title = reader.metadata.title if reader.metadata else None
    except Exception:
        return None
    return (_squash(title) or None) if isinstance(title, str) else None


def _letters(blocks: list[Block]) -> int:
    return sum(ch.isalnum() for b in blocks for ch in b.text)


class _Layout:
    """Pages read by pdfplumber in reading order with their tables (lectern.domain.extraction.pdf_layout); None
    for a page it cannot read (or when the PDF does not open in it), which then keeps its plain text layer."""

    def __init__(self, data: bytes) -> None:
        self.pdf: Any = None
        try:
            import pdfplumber

            self.pdf = pdfplumber.open(io.BytesIO(data))
        except Exception as exc:  # not installed, or a PDF pdfminer cannot parse: the text layer only
            log.info("pdf layout unavailable: %s: %s", type(exc).__name__, exc)

    def page(self, index: int, always: bool = False) -> list[Block] | None:
        if self.pdf is None:
            return None
        from lectern.domain.extraction.pdf_layout import page_blocks

        try:
            page = self.pdf.pages[index]
            try:
                return page_blocks(page, always=always)
            finally:
                page.close()
        except Exception as exc:  # a broken table or page keeps the plain text layer
            log.info("pdf page %d layout failed: %s: %s", index + 1, type(exc).__name__, exc)
            return None

    def close(self) -> None:
        if self.pdf is not None:
            try:
                self.pdf.close()
            except Exception as exc:
                log.info("pdf layout close failed: %s", type(exc).__name__)


_PATH_OPERATORS = frozenset({b"re", b"l", b"c", b"v", b"y"})  # what pdfplumber's table edges are made of
_SHOW_OPERATORS = frozenset({b"Tj", b"TJ", b"'", b'"'})
_RIGHT_START = 0.28  # a second column starts right of 0.3 of the width (pdf_layout._gutter), with a margin
_MIN_RIGHT_STARTS = 3  # pdf_layout._MIN_COLUMN_LINES


class _LayoutHints:
    """What the text layer's operators tell about a page, seen while pypdf reads it: does it draw paths (a ruled
    table is drawn lines or rectangles) and do several lines start right of the middle band (a second column)?
    Pages with neither gain nothing from pdfplumber: `page_blocks` would return None for them."""

    def __init__(self) -> None:
        self.draws = False
        self.uncertain = False
        self.right_starts = 0
        self._last_y: float | None = None
        self._left = 0.0
        self._width = 0.0

    def page(self, page: Any) -> None:
        box = page.mediabox
        self._left, self._width = float(box.left), float(box.width)
        if int(page.get("/Rotate", 0) or 0) % 360 or self._width <= 0:
            self.uncertain = True  # rotated pages: the operators' coordinates are not the reading frame

    def operator(self, op: bytes, args: Any, cm: Any, tm: Any) -> None:
        if op in _PATH_OPERATORS:
            self.draws = True
        elif op in _SHOW_OPERATORS and not self.uncertain:
            if abs(cm[1]) > 1e-6 or abs(cm[2]) > 1e-6 or abs(tm[1]) > 1e-6 or abs(tm[2]) > 1e-6:
                self.uncertain = True  # rotated or skewed text: leave the decision to pdfplumber
                return
            x = tm[4] * cm[0] + cm[4]
            y = tm[5] * cm[3] + cm[5]
            new_line = self._last_y is None or abs(y - self._last_y) > 1.0  # the first run of a new line
            if new_line and (x - self._left) >= _RIGHT_START * self._width:
                self.right_starts += 1
            self._last_y = y

    def worth_a_layout(self) -> bool:
        return self.draws or self.uncertain or self.right_starts >= _MIN_RIGHT_STARTS


def _page_text(page: Any, hints: _LayoutHints) -> str:
    """The page's text layer (pypdf), noting the layout hints on the way (no second parse)."""
    try:
        hints.page(page)
    except Exception:  # a page without a usable media box: let pdfplumber judge it
        hints.uncertain = True

    def visit(op: bytes, args: Any, cm: Any, tm: Any) -> None:
        try:
            hints.operator(op, args, cm, tm)
        except Exception:  # odd operands: never the reason a page's text is lost
            hints.uncertain = True

    return page.extract_text(visitor_operand_before=visit) or ""


def _extract_pdf(data: bytes, limits: ExtractionLimits) -> ExtractedDocument:
    """The text layer page by page; the pages where it is missing or unusable are then read by OCR."""
    reader = _open_pdf(data)
    count = _pdf_page_count(reader, limits)
    pages: list[Page] = []
    failed = chars = 0
    layout = _Layout(data)
    for index in range(count):
        broken, hints = False, _LayoutHints()
        try:
            text = _page_text(reader.pages[index], hints)
        except Exception as exc:  # one broken page must not sink the document
            log.info("pdf page %d unreadable: %s: %s", index + 1, type(exc).__name__, exc)
            broken, text = True, ""
        blocks = _lines_to_blocks(text, dehyphenate=True)
        # reading order and tables; None where it fails or has nothing to add (the text layer stays). pdfplumber
        # parses the page a second time, so only pages that may hold a ruled table or a second column go to it
        laid_out = layout.page(index, always=broken) if broken or hints.worth_a_layout() else None
        if laid_out is not None and _letters(laid_out) >= 0.9 * _letters(blocks):
            blocks = laid_out
        elif broken:
            failed += 1
        chars += sum(len(b.text) for b in blocks)
        _check_chars(chars, limits)
        pages.append(Page(index + 1, blocks))
    if failed == count and limits.ocr is None:
        raise ExtractionError(MSG_UNREADABLE.format(label="PDF"))
    layout.close()
    from lectern.domain.ocr import ocr_pdf_pages

    return ExtractedDocument(ocr_pdf_pages(data, pages, limits), _pdf_title(reader))
