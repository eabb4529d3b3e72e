"""Document text extraction: the bytes of an upload -> ExtractedDocument (pages of typed blocks).

* The type is decided from the bytes first (magic numbers), then from the extension and the declared content
  type; a file whose bytes contradict its name is refused rather than guessed at.
* PDFs keep their real 1-based page numbers (a page without text stays, with no blocks); flowing formats
  (DOCX, HTML, Markdown, plain text) are one page, number 1. PDF pages without a usable text layer, and images
  (PNG, JPEG, TIFF: a page per frame), are read by OCR when `limits.ocr` holds an engine (`lectern.domain.ocr`).
* Every failure is an `ExtractionError` whose message is shown to the user as is: it says what is wrong and
  what to do, and never carries a path, a stack trace or a parser's own exception text (those go to the log).
* Hostile inputs are bounded: size, page and character limits, zip-bomb checks before a DOCX is opened, and
  HTML nested too deeply for the parser to stay linear is read by a linear tag stripper instead.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from lectern.domain.errors import ExtractionError
from lectern.domain.extraction.common import (
    _LABELS,
    DEFAULT_LIMITS,
    MSG_NO_IMAGE_TEXT,
    MSG_NO_OCR_TEXT,
    MSG_NO_PDF_TEXT,
    MSG_NO_TEXT,
    MSG_UNREADABLE,
    ExtractionLimits,
    _check_chars,
    _human_size,
)
from lectern.domain.extraction.detect import _IMAGE_KINDS, detect_kind
from lectern.domain.extraction.docx_reader import _extract_docx
from lectern.domain.extraction.html_reader import _extract_html
from lectern.domain.extraction.image_reader import _image_reader
from lectern.domain.extraction.markdown_reader import _extract_markdown
from lectern.domain.extraction.pdf_reader import _extract_pdf
from lectern.domain.extraction.text import _extract_text
from lectern.domain.models import ExtractedDocument

log = logging.getLogger(__name__)


_EXTRACTORS: dict[str, Callable[[bytes, ExtractionLimits], ExtractedDocument]] = {
    "pdf": _extract_pdf,
    "docx": _extract_docx,
    "html": _extract_html,
    "markdown": _extract_markdown,
    "text": _extract_text,
    **{kind: _image_reader(kind) for kind in _IMAGE_KINDS},
}


def _finish(doc: ExtractedDocument, kind: str, limits: ExtractionLimits) -> ExtractedDocument:
    chars = doc.char_count
    if not any(b.text.strip() for p in doc.pages for b in p.blocks):
        if kind in _IMAGE_KINDS:
            raise ExtractionError(MSG_NO_IMAGE_TEXT)
        if kind == "pdf":
            raise ExtractionError(MSG_NO_OCR_TEXT if limits.ocr is not None else MSG_NO_PDF_TEXT)
        raise ExtractionError(MSG_NO_TEXT)
    _check_chars(chars, limits)
    return doc


def extract(
    data: bytes, filename: str, content_type: str | None = None, limits: ExtractionLimits = DEFAULT_LIMITS
) -> ExtractedDocument:
    """Extract the text of an upload as pages of blocks. Raises ExtractionError, and only that, on failure."""
    if len(data) > limits.max_bytes:
        raise ExtractionError(
            f"The file is {_human_size(len(data))}; the limit is {_human_size(limits.max_bytes)}."
        )
    kind = detect_kind(data, filename, content_type)
    try:
        doc = _EXTRACTORS[kind](data, limits)
    except ExtractionError:
        raise
    except Exception as exc:  # a parser's own error: logged in full, reported to the user in plain words
        log.warning("extraction of a %s failed: %s", kind, type(exc).__name__, exc_info=True)
        raise ExtractionError(MSG_UNREADABLE.format(label=_LABELS[kind])) from exc
    return _layout(data, _finish(doc, kind, limits), kind, limits)


def _layout(data: bytes, doc: ExtractedDocument, kind: str, limits: ExtractionLimits) -> ExtractedDocument:
    """Page images and PDF text-layer word boxes (lectern.domain.page_images); never fails the document."""
    if limits.max_page_images <= 0 or (kind != "pdf" and kind not in _IMAGE_KINDS):
        return doc
    from lectern.domain.page_images import image_layout, pdf_layout

    try:
        return pdf_layout(data, doc, limits) if kind == "pdf" else image_layout(data, doc, limits)
    except Exception:
        log.warning("page layout of a %s failed; its text stands without page images", kind, exc_info=True)
        return doc


# The package's names, as callers and tests import them (the readers live in the modules named after them).
from lectern.domain.extraction.common import SUPPORTED_TYPES  # noqa: E402
from lectern.domain.extraction.detect import _EXTENSION_KINDS, _MIME_KINDS  # noqa: E402
from lectern.domain.extraction.docx_reader import qn  # noqa: E402
from lectern.domain.extraction.text import clean_text, decode_text  # noqa: E402

__all__ = [
    "DEFAULT_LIMITS",
    "SUPPORTED_TYPES",
    "_EXTENSION_KINDS",
    "_EXTRACTORS",
    "_MIME_KINDS",
    "ExtractionLimits",
    "clean_text",
    "decode_text",
    "detect_kind",
    "extract",
    "qn",
]
