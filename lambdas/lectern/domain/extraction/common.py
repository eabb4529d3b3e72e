"""Extraction limits, the messages users read, and small helpers every reader shares."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from lectern.domain.errors import ExtractionError
from lectern.domain.formats import FORMATS, SUPPORTED_LIST

if TYPE_CHECKING:
    from lectern.domain.ocr import OcrEngine


@dataclass(frozen=True)
class ExtractionLimits:
    max_bytes: int = 50 * 1024 * 1024
    max_pages: int = 2000
    max_chars: int = 5_000_000  # total extracted text
    max_uncompressed_bytes: int = 200 * 1024 * 1024  # for DOCX (zip) bomb protection
    max_compression_ratio: float = 200.0
    # OCR (lectern.domain.ocr): pages without a usable text layer and images; None = no engine, text layers only
    max_ocr_pages: int = 100  # pages read by OCR per document (about 1-2 s each on one core)
    max_image_pixels: int = 40_000_000  # an image page larger is refused; a PDF page is rendered smaller
    ocr_dpi: int = 200  # measured on the scans in tests/fixtures/ocr: 300 dpi read worse (docs/decisions.md)
    ocr: OcrEngine | None = None
    # page images for the passage view, rendered at ingest (lectern.domain.page_images); 0 = none
    max_page_images: int = 300


DEFAULT_LIMITS = ExtractionLimits()


SUPPORTED_TYPES: dict[str, str] = {f.kind: f.mime_type for f in FORMATS}  # kind -> canonical MIME type


_LABELS = {f.kind: f.label for f in FORMATS}


_SUPPORTED_LIST = SUPPORTED_LIST


MSG_EMPTY_FILE = "The file is empty (0 bytes)."


MSG_NO_TEXT = "The document contains no text."


MSG_NO_PDF_TEXT = "The document contains no extractable text (is it a scanned image?)."


MSG_NO_OCR_TEXT = "No text was found in the document, by its text layer or by OCR of its pages (are they blank?)."


MSG_NO_IMAGE_TEXT = "OCR found no text in the image (is it blank, or a photo without writing?)."


MSG_PDF_LOCKED = "The PDF is password-protected; remove the password and upload it again."


MSG_PDF_CIPHER = (
    "The PDF is encrypted with a method that cannot be read here; save an unencrypted copy and upload it "
    "again."
)


MSG_DOCX_LOCKED = "The DOCX is password-protected; remove the password and upload it again."


MSG_INVALID = "The file is not a valid {label} (it may be truncated or corrupt)."


MSG_UNREADABLE = "The {label} file could not be read (it may be corrupt or use unsupported features)."


MSG_MISMATCH = (
    "The file's content does not match its type: it is named or declared as {label} but is not one."
)


MSG_BINARY_AS_TEXT = (
    "The file's content does not match its type: it is named or declared as {label} but is binary."
)


def _unsupported(kind: str | None) -> ExtractionError:
    if kind:
        return ExtractionError(f"Unsupported file type '{kind}'. Supported: {_SUPPORTED_LIST}.")
    return ExtractionError(f"Unsupported file type. Supported: {_SUPPORTED_LIST}.")


def _human_size(n: int) -> str:
    if n >= 1024**3:
        return f"{n / 1024**3:.1f} GB"
    if n >= 1024 * 1024:
        return f"{n / (1024 * 1024):.1f} MB"
    if n >= 10 * 1024:
        return f"{n / 1024:.0f} KB"
    return f"{n:,} bytes"


def _tags(names: str) -> frozenset[str]:
    return frozenset(names.split())


def _check_chars(chars: int, limits: ExtractionLimits) -> None:
    if chars > limits.max_chars:
        raise ExtractionError(
            f"The document has more than {limits.max_chars:,} characters of text, the limit; split it into "
            "smaller documents."
        )
