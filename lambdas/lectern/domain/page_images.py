"""Page images for the passage view and the word boxes of PDF text layers, made once at ingest.

Each page of a PDF (pypdfium2) or an image (Pillow) becomes a grayscale PNG at `PAGE_IMAGE_DPI`, carried on
the `ExtractedDocument` and stored next to the original (`documents.page_image_key`); the API serves it and the
passage view draws the cited words' boxes over it (decision 2026-12-03: images rendered at ingest, not PDF.js).
Text-layer PDF pages get their words' boxes from pdfium's character boxes here, in the same pass, so a citation of
any PDF page can be highlighted, not only OCR pages (whose words come from the OCR engine).

Bounded like the rest of extraction: at most `limits.max_page_images` pages are rendered (the rest keep their
text, without an image), each within `limits.max_image_pixels`, and all of it runs inside the extraction's time
limit. A page pdfium cannot render is left without an image; it never fails the document.
"""

from __future__ import annotations

import io
import logging
from typing import TYPE_CHECKING, Any

from lectern.domain.models import ExtractedDocument, Page, Word

if TYPE_CHECKING:
    from PIL import Image

    from lectern.domain.extraction import ExtractionLimits

log = logging.getLogger(__name__)

PAGE_IMAGE_DPI = 100  # a letter page is 850 x 1100 pixels: legible on screen, ~60-150 KB as 8-bit gray PNG


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.convert("L").save(buf, "PNG", optimize=False, compress_level=6)
    return buf.getvalue()


def _fit(width: float, height: float, dpi: int, max_pixels: int) -> float:
    scale = dpi / 72
    pixels = width * scale * height * scale
    if pixels > max_pixels:
        scale *= (max_pixels / pixels) ** 0.5 * 0.995
    return scale


def _pdf_words(page: Any) -> tuple[Word, ...]:
    """The words of a PDF page's text layer with their boxes (fractions of the crop box, origin top left)."""
    if page.get_rotation() % 360:
        return ()  # the boxes would have to be rotated with the rendering; such pages keep their text only
    left, bottom, right, top = page.get_cropbox()
    width, height = right - left, top - bottom
    if width <= 0 or height <= 0:
        return ()
    textpage = page.get_textpage()
    try:
        n = textpage.count_chars()
        text = textpage.get_text_range(0, n) if n else ""
        if len(text) != n:  # surrogate pairs or generated characters: read one at a time
            text = "".join(textpage.get_text_range(i, 1) or " " for i in range(n))
        words: list[Word] = []
        current: list[str] = []
        box: list[float] = []

        def flush() -> None:
            if current and box:
                x0, y0, x1, y1 = box
                words.append(
                    Word(
                        "".join(current),
                        (x0 - left) / width,
                        (top - y1) / height,
                        (x1 - left) / width,
                        (top - y0) / height,
                    )
                )
            current.clear()
            box.clear()

        for i, ch in enumerate(text):
            if ch.isspace() or ch == "\x00":
                flush()
                continue
            cl, cb, cr, ct = textpage.get_charbox(i)
            if box:
                box[:] = [min(box[0], cl), min(box[1], cb), max(box[2], cr), max(box[3], ct)]
            else:
                box[:] = [cl, cb, cr, ct]
            current.append(ch)
        flush()
        return tuple(words)
    finally:
        textpage.close()


def pdf_layout(data: bytes, doc: ExtractedDocument, limits: ExtractionLimits) -> ExtractedDocument:
    """`doc` (a PDF's pages) with page images and, for text-layer pages, their words' boxes."""
    import pypdfium2

    try:
        pdf = pypdfium2.PdfDocument(data)
    except Exception as exc:  # pdfium refuses what pypdf read: the text stands, without layout
        log.info("pdfium could not open the pdf for layout: %s: %s", type(exc).__name__, exc)
        return doc
    pages: list[Page] = []
    images: dict[int, bytes] = {}
    try:
        for page in doc.pages:
            index = page.number - 1
            if index >= len(pdf):
                pages.append(page)
                continue
            pdf_page = pdf[index]
            try:
                if not page.words and not page.ocr and page.blocks:
                    page = Page(page.number, page.blocks, words=_pdf_words(pdf_page), ocr=False)
                if len(images) < limits.max_page_images:
                    width, height = pdf_page.get_size()
                    scale = _fit(width, height, PAGE_IMAGE_DPI, limits.max_image_pixels)
                    images[page.number] = _png(pdf_page.render(scale=scale, grayscale=True).to_pil())
            except Exception as exc:  # one page's layout must not sink the document
                log.info("layout of pdf page %d failed: %s: %s", page.number, type(exc).__name__, exc)
            finally:
                pdf_page.close()
            pages.append(page)
    finally:
        pdf.close()
    return ExtractedDocument(pages, doc.title, page_images=images)


def image_layout(data: bytes, doc: ExtractedDocument, limits: ExtractionLimits) -> ExtractedDocument:
    """`doc` (an image's pages, one per frame) with each frame, scaled to `PAGE_IMAGE_DPI`-like size, as PNG."""
    from PIL import Image

    images: dict[int, bytes] = {}
    try:
        image = Image.open(io.BytesIO(data))
        for number in range(1, min(getattr(image, "n_frames", 1), limits.max_page_images) + 1):
            image.seek(number - 1)
            frame = image.convert("L")
            longest = max(frame.size)
            if longest > 1400:  # an on-screen page: the boxes are fractions, so any size lines up
                frame.thumbnail((1400, 1400))
            images[number] = _png(frame)
    except Exception as exc:  # the OCR step read it already; an image we cannot redraw only loses the view
        log.info("page image of an image failed: %s: %s", type(exc).__name__, exc)
    return ExtractedDocument(doc.pages, doc.title, page_images=images)
