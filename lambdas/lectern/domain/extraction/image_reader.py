"""Images (PNG, JPEG, TIFF): a page per frame, read by OCR."""

from __future__ import annotations

from collections.abc import Callable

from lectern.domain.extraction.common import _LABELS, ExtractionLimits
from lectern.domain.models import ExtractedDocument


def _image_reader(kind: str) -> Callable[[bytes, ExtractionLimits], ExtractedDocument]:
    def read(data: bytes, limits: ExtractionLimits) -> ExtractedDocument:
        from lectern.domain.ocr import ocr_image

        return ExtractedDocument(ocr_image(data, _LABELS[kind], limits))

    read.__name__ = f"_extract_{kind}"
    return read
