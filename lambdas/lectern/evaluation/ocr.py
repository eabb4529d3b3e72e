"""OCR quality and speed on the evaluation set in tests/fixtures/ocr (scripts/make_ocr_fixtures.py renders it).

Character error rate: the Levenshtein distance between the known text and what extraction returns for the
page, over the known text's length, both with whitespace collapsed to single spaces (line breaks are layout,
not characters). Speed: pages read by OCR per second, through `extract` (rendering included), one at a time.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from lectern.domain.extraction import ExtractionLimits, extract


def _norm(text: str) -> str:
    return " ".join(text.split())


def levenshtein(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def cer(reference: str, hypothesis: str) -> float:
    ref, hyp = _norm(reference), _norm(hypothesis)
    return levenshtein(ref, hyp) / max(1, len(ref))


def page_texts(data: bytes, filename: str, limits: ExtractionLimits) -> dict[int, tuple[str, bool]]:
    """{page number: (text, read by OCR)} as extraction returns them."""
    doc = extract(data, filename, None, limits)
    return {p.number: (" ".join(b.text for b in p.blocks), p.ocr) for p in doc.pages}


def evaluate(fixtures: Path, limits: ExtractionLimits, repeats: int = 3) -> dict[str, Any]:
    truth: dict[str, dict[str, str]] = json.loads((fixtures / "truth.json").read_text())
    files: dict[str, Any] = {}
    ocr_pages = 0
    ocr_seconds = 0.0
    errors = chars = 0
    for name, pages in truth.items():
        data = (fixtures / name).read_bytes()
        page_texts(data, name, limits)  # warm-up: the engine's language data is read once per process
        start = time.perf_counter()
        for _ in range(repeats):
            got = page_texts(data, name, limits)
        elapsed = (time.perf_counter() - start) / repeats
        per_page = {}
        for number, text in pages.items():
            hyp, by_ocr = got.get(int(number), ("", False))
            per_page[number] = {"cer": round(cer(text, hyp), 4), "ocr": by_ocr}
            if by_ocr:
                errors += levenshtein(_norm(text), _norm(hyp))
                chars += len(_norm(text))
        n_ocr = sum(1 for v in per_page.values() if v["ocr"])
        ocr_pages += n_ocr
        ocr_seconds += elapsed
        files[name] = {"pages": per_page, "seconds": round(elapsed, 3), "ocr_pages": n_ocr}
    return {
        "cer_ocr_pages": round(errors / max(1, chars), 4),
        "ocr_pages_per_second": round(ocr_pages / ocr_seconds, 3) if ocr_seconds else None,
        "files": files,
        "load_average_1m_5m_15m": [round(x, 2) for x in os.getloadavg()],
        "cpu_count": os.cpu_count(),
        "dpi": limits.ocr_dpi,
        "engine": getattr(limits.ocr, "name", None),
    }
