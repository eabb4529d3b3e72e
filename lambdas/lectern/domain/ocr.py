"""OCR for pages without a usable text layer: scanned PDF pages and images (PNG, JPEG, TIFF).

The engine is a port (`OcrEngine`): it turns one page image (PNG bytes) into words with their boxes. The local
adapter is Tesseract (`lectern.adapters.local.tesseract_ocr`); a deployment without an engine (`limits.ocr` is
None) reads text layers only. This module decides which pages need OCR, renders them within the pixel limit,
and turns the engine's words into blocks, keeping the page number (and the words' boxes on the `Page`).

Every failure is an `ExtractionError` with a message for the user (the page, and what to do); limits are
checked before any page is rendered or recognised.
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from lectern.domain.errors import ExtractionError
from lectern.domain.models import Block, Page, Word

if TYPE_CHECKING:
    from PIL import Image

    from lectern.domain.extraction import ExtractionLimits

log = logging.getLogger(__name__)

# A text layer is usable when it has this many non-space characters, mostly letters and digits, in a few
# words; less (a page number, a stray header over a scan, glyphs without a Unicode map) and the page is OCRed.
MIN_TEXT_CHARS = 20
MIN_WORDS = 3
MIN_GOOD_SHARE = 0.6
_WORD_RE = re.compile(r"[^\W\d_]{2,}")
_GOOD_PUNCT = frozenset(".,;:!?'\"()[]{}-–—/%&@#€$£+*=<>_")
BLANK_RANGE = 24  # a rendered page whose darkest and lightest pixels differ less than this is blank


class OcrFailure(Exception):
    """Raised by an engine: `reason` is shown to the user (no paths, no stack traces)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class OcrWord:
    text: str
    left: int
    top: int
    width: int
    height: int
    confidence: float
    line: tuple[int, int, int]  # (block, paragraph, line) as the engine numbered them


class OcrEngine(Protocol):
    """Picklable: it travels to the extraction child process inside `ExtractionLimits`."""

    name: str

    def recognize(self, png: bytes) -> list[OcrWord]:
        """The words of one page image, in reading order. Raises OcrFailure (timeout, crash, not installed)."""
        ...


class DocumentOcrEngine(OcrEngine, Protocol):
    """An engine that reads a whole stored document at once (Textract's asynchronous text detection) and so must
    know which document it works on: `for_document` binds it, `recognize_document` returns the words of the
    given page numbers on a `UNIT` x `UNIT` page (`ocr_pdf_pages` prefers it over rendering page by page)."""

    def for_document(self, tenant_id: str, document_id: str) -> DocumentOcrEngine: ...

    def recognize_document(self, pages: list[int]) -> dict[int, list[OcrWord]]: ...


DOCUMENT_UNIT = 10_000  # the page size, in "pixels", of the words a DocumentOcrEngine returns


def bind_to_document(limits: ExtractionLimits, tenant_id: str, document_id: str) -> ExtractionLimits:
    """`limits` with its engine bound to the document, for engines that keep per-document state (others as is)."""
    from dataclasses import replace

    bind = getattr(limits.ocr, "for_document", None)
    return replace(limits, ocr=bind(tenant_id, document_id)) if bind is not None else limits


def page_needs_ocr(text: str) -> bool:
    """Whether a PDF page's text layer is missing or unusable (so the page is read from its image instead)."""
    chars = "".join(text.split())
    if len(chars) < MIN_TEXT_CHARS or len(_WORD_RE.findall(text)) < MIN_WORDS:
        return True
    good = sum(1 for c in chars if c.isalnum() or c in _GOOD_PUNCT)
    return good / len(chars) < MIN_GOOD_SHARE


def _alnum(text: str) -> int:
    return sum(1 for c in text if c.isalnum())


def words_to_blocks(words: list[OcrWord]) -> list[Block]:
    """Paragraph blocks, one per engine paragraph, lines joined by spaces (hyphenated line ends rejoined)."""
    blocks: list[Block] = []
    current: tuple[int, int] | None = None
    lines: list[list[str]] = []

    def flush() -> None:
        parts: list[str] = []
        for line in lines:
            text = " ".join(line)
            if parts and parts[-1].endswith("-") and text[:1].islower():
                parts[-1] = parts[-1][:-1] + text
            else:
                parts.append(text)
        text = " ".join(" ".join(parts).split())
        if text:
            blocks.append(Block(text))

    last_line: tuple[int, int, int] | None = None
    for word in words:
        para = word.line[:2]
        if para != current:
            flush()
            current, lines, last_line = para, [], None
        if word.line != last_line:
            lines.append([])
            last_line = word.line
        lines[-1].append(word.text)
    flush()
    return blocks


def _to_page(number: int, words: list[OcrWord], size: tuple[int, int]) -> Page:
    w, h = size
    boxes = tuple(Word(x.text, x.left / w, x.top / h, (x.left + x.width) / w, (x.top + x.height) / h) for x in words)
    return Page(number, words_to_blocks(words), words=boxes, ocr=True)


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "PNG", compress_level=1)
    return buf.getvalue()


def _is_blank(image: Image.Image) -> bool:
    extrema: Any = image.getextrema()  # (low, high) for a one-band image
    return int(extrema[1]) - int(extrema[0]) < BLANK_RANGE


def recognize_image(engine: OcrEngine, image: Image.Image, number: int) -> Page:
    """OCR one page image (any mode) into a Page; a blank image is an empty page, no engine call."""
    gray = image.convert("L")
    if _is_blank(gray):
        return Page(number, [], ocr=True)
    try:
        words = engine.recognize(_png(gray))
    except OcrFailure as exc:
        raise ExtractionError(f"OCR of page {number} failed: {exc.reason}") from exc
    return _to_page(number, words, gray.size)


def check_ocr_pages(count: int, limits: ExtractionLimits, label: str) -> None:
    if count > limits.max_ocr_pages:
        raise ExtractionError(
            f"The {label} has {count:,} pages without a text layer; OCR reads at most {limits.max_ocr_pages:,} "
            "per document (LECTERN_MAX_OCR_PAGES). Split it, or run OCR on it before uploading."
        )


# -- PDF pages ------------------------------------------------------------------------------------------------
def ocr_pdf_pages(data: bytes, pages: list[Page], limits: ExtractionLimits) -> list[Page]:
    """`pages` (from the text layer) with every page whose text is unusable read by OCR instead.

    The OCR result replaces the text layer only when it holds more letters and digits (a short title page
    keeps its own text). Nothing is rendered before the page count is checked against the limit.
    """
    engine = limits.ocr
    todo = [i for i, p in enumerate(pages) if page_needs_ocr(" ".join(b.text for b in p.blocks))]
    if engine is None or not todo:
        return pages
    check_ocr_pages(len(todo), limits, "PDF")
    whole = getattr(engine, "recognize_document", None)
    if whole is not None:  # the engine reads the stored document itself (Textract): nothing is rendered here
        try:
            found = whole([pages[i].number for i in todo])
        except OcrFailure as exc:
            raise ExtractionError(f"OCR of the PDF failed: {exc.reason}") from exc
        out = list(pages)
        for i in todo:
            ocr = _to_page(pages[i].number, found.get(pages[i].number, []), (DOCUMENT_UNIT, DOCUMENT_UNIT))
            if _alnum(" ".join(b.text for b in ocr.blocks)) > _alnum(" ".join(b.text for b in pages[i].blocks)):
                out[i] = ocr
        return out
    import pypdfium2

    try:
        pdf = pypdfium2.PdfDocument(data)
    except Exception as exc:  # pdfium refuses what pypdf read: the text layer stands
        log.info("pdfium could not open the pdf: %s: %s", type(exc).__name__, exc)
        return pages
    out = list(pages)
    try:
        for i in todo:
            image = _render(pdf, i, limits)
            ocr = recognize_image(engine, image, pages[i].number)
            old = " ".join(b.text for b in pages[i].blocks)
            if _alnum(" ".join(b.text for b in ocr.blocks)) > _alnum(old):
                out[i] = ocr
    finally:
        pdf.close()
    return out


def _render(pdf: object, index: int, limits: ExtractionLimits) -> Image.Image:
    """The page at `limits.ocr_dpi`, or smaller so that it stays within `limits.max_image_pixels`."""
    page = pdf[index]  # type: ignore[index]
    try:
        width_pt, height_pt = page.get_size()
        scale = limits.ocr_dpi / 72
        pixels = width_pt * scale * height_pt * scale
        if pixels > limits.max_image_pixels:
            scale *= (limits.max_image_pixels / pixels) ** 0.5 * 0.995  # pdfium rounds sizes up
        bitmap = page.render(scale=scale, grayscale=True)
        image: Image.Image = bitmap.to_pil()
        return image
    finally:
        page.close()


# -- Images ---------------------------------------------------------------------------------------------------
def _frames(image: Image.Image) -> Iterator[Image.Image]:
    count = getattr(image, "n_frames", 1)
    for index in range(count):
        image.seek(index)
        yield image


def ocr_image(data: bytes, label: str, limits: ExtractionLimits) -> list[Page]:
    """The pages of a PNG, JPEG or (multi-page) TIFF, read by OCR. Sizes and page counts are checked from the
    headers before any pixel is decoded."""
    from PIL import Image, UnidentifiedImageError

    engine = limits.ocr
    if engine is None:
        raise ExtractionError(
            f"Reading text from images needs OCR, which is off here; upload a PDF or text file "
            f"instead of the {label} image."
        )
    Image.MAX_IMAGE_PIXELS = None  # our own limit below, with our own message
    try:
        image = Image.open(io.BytesIO(data))
        count = getattr(image, "n_frames", 1)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ExtractionError(f"The file is not a valid {label} image (it may be truncated or corrupt).") from exc
    if count > limits.max_pages:
        raise ExtractionError(f"The {label} image has {count:,} pages; the limit is {limits.max_pages:,}.")
    check_ocr_pages(count, limits, f"{label} image")
    pages = []
    for number, frame in enumerate(_frames(image), 1):
        w, h = frame.size
        if w * h > limits.max_image_pixels:
            raise ExtractionError(
                f"Page {number} of the {label} image is {w:,} × {h:,} pixels; the limit is "
                f"{limits.max_image_pixels:,} pixels (LECTERN_MAX_IMAGE_PIXELS). Scale it down and upload it again."
            )
        try:
            frame.load()
        except (OSError, SyntaxError, ValueError) as exc:
            raise ExtractionError(f"The file is not a valid {label} image (it may be truncated or corrupt).") from exc
        pages.append(recognize_image(engine, frame, number))
    return pages
