"""OCR (lectern.domain.ocr + the Tesseract adapter): which pages need it, the reader on the evaluation set in
tests/fixtures/ocr, limits checked before any work, and an engine that crashes, hangs or is missing."""

from __future__ import annotations

import io
import json
import os
import stat
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
from PIL import Image

from lectern.adapters.local.tesseract_ocr import TesseractOcr, parse_tsv
from lectern.domain.errors import ExtractionError
from lectern.domain.extraction import ExtractionLimits, detect_kind, extract
from lectern.domain.ocr import OcrFailure, OcrWord, page_needs_ocr, words_to_blocks
from lectern.evaluation.ocr import cer
from tests.unit.conftest import build_pdf

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ocr"
TRUTH: dict[str, dict[str, str]] = json.loads((FIXTURES / "truth.json").read_text())
# Measured here (docs/results/ocr.json): 0.000-0.002 at 200 dpi; 0.03 leaves margin for other Tesseract builds
# without letting a broken page (0.07 at 300 dpi, ~1.0 for a page not read at all) through.
MAX_CER = 0.03
OCR = ExtractionLimits(ocr=TesseractOcr())


def _fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def _text(page) -> str:
    return " ".join(b.text for b in page.blocks)


@dataclass
class SpyEngine:
    """Records the page images it is given and returns one fixed word per page."""

    name: str = "spy"
    calls: list[tuple[int, int]] = field(default_factory=list)

    def recognize(self, png: bytes) -> list[OcrWord]:
        self.calls.append(Image.open(io.BytesIO(png)).size)
        return [OcrWord("spied", 10, 10, 50, 20, 90.0, (1, 1, 1))]


@dataclass
class FailingEngine:
    reason: str
    name: str = "failing"

    def recognize(self, png: bytes) -> list[OcrWord]:
        raise OcrFailure(self.reason)


# -- which pages need OCR ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "needs"),
    [
        ("", True),
        ("   \n ", True),
        ("12", True),  # a page number over a scan
        ("Page 3 of 12 - Scan", True),  # too short
        ("\ufffd\ufffd\ufffd \ue001\ue002\ue003 \ufffd\ufffd" * 5, True),  # glyphs without a Unicode map
        ("@@ ## $$ %% ^^ && ** ~~ || <> " * 3, True),  # symbols, no words
        ("The water supply to Harbour Street will be interrupted on Tuesday.", False),
        ("Chapter 4 covers safety procedures for the east wing.", False),
    ],
)
def test_page_needs_ocr(text: str, needs: bool) -> None:
    assert page_needs_ocr(text) is needs


def test_a_mixed_pdf_is_read_page_by_page_only_the_scanned_page_by_ocr() -> None:
    spy = SpyEngine()
    doc = extract(_fixture("mixed.pdf"), "mixed.pdf", None, ExtractionLimits(ocr=spy))
    assert [(p.number, p.ocr) for p in doc.pages] == [(1, False), (2, True)]
    assert len(spy.calls) == 1
    assert _text(doc.pages[0]).startswith("Facilities Handbook Chapter 4")
    assert _text(doc.pages[1]) == "spied"


def test_text_pages_and_blank_pages_never_reach_the_engine() -> None:
    spy = SpyEngine()
    data = build_pdf(
        ["A page with a real text layer, long enough to be usable.", "", "Another page of real text here."]
    )
    doc = extract(data, "t.pdf", None, ExtractionLimits(ocr=spy))
    assert spy.calls == []  # page 2 has no text but renders blank: nothing to read
    assert [p.number for p in doc.pages] == [1, 2, 3]


def test_without_an_engine_a_scan_fails_as_before() -> None:
    with pytest.raises(ExtractionError, match=r"no extractable text \(is it a scanned image\?\)"):
        extract(_fixture("notice.pdf"), "notice.pdf", None, ExtractionLimits())
    with pytest.raises(ExtractionError, match="needs OCR, which is off here"):
        extract(_fixture("notice.png"), "notice.png", None, ExtractionLimits())


# -- the reader on the evaluation set (the real engine) -------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "page"), [("notice.png", "1"), ("notice.pdf", "1"), ("mixed.pdf", "1"), ("mixed.pdf", "2")]
)
def test_ocr_reads_the_evaluation_set_under_the_measured_error_rate(name: str, page: str) -> None:
    doc = extract(_fixture(name), name, None, OCR)
    got = {str(p.number): p for p in doc.pages}[page]
    assert cer(TRUTH[name][page], _text(got)) <= MAX_CER, _text(got)
    if got.ocr:  # word boxes, as fractions of the page, inside it and in reading order
        assert len(got.words) >= 20
        assert all(0 <= w.x0 < w.x1 <= 1 and 0 <= w.y0 < w.y1 <= 1 for w in got.words)
        assert got.words[0].text == TRUTH[name][page].split()[0]


def _as(fmt: str, frames: int = 1) -> bytes:
    image = Image.open(FIXTURES / "notice.png")
    buf = io.BytesIO()
    if fmt == "TIFF":
        image.save(buf, "TIFF", compression="group4", save_all=True, append_images=[image] * (frames - 1))
    else:
        image.convert("L").save(buf, fmt, quality=85)
    return buf.getvalue()


@pytest.mark.parametrize(("fmt", "name", "kind"), [("JPEG", "scan.jpg", "jpeg"), ("TIFF", "scan.tiff", "tiff")])
def test_jpeg_and_tiff_are_read_by_ocr(fmt: str, name: str, kind: str) -> None:
    data = _as(fmt)
    assert detect_kind(data, name, None) == kind
    doc = extract(data, name, None, OCR)
    assert cer(TRUTH["notice.png"]["1"], _text(doc.pages[0])) <= MAX_CER


def test_a_multi_page_tiff_is_a_page_per_frame() -> None:
    spy = SpyEngine()
    doc = extract(_as("TIFF", frames=3), "fax.tif", "image/tiff", ExtractionLimits(ocr=spy))
    assert [(p.number, p.ocr) for p in doc.pages] == [(1, True), (2, True), (3, True)]
    assert len(spy.calls) == 3


def test_an_image_named_as_something_else_is_refused_or_read_by_its_bytes() -> None:
    with pytest.raises(ExtractionError, match="named or declared as PNG but is not one"):
        extract(b"just some text, not a picture", "photo.png", None, OCR)
    assert detect_kind(_fixture("notice.png"), "scan.jpg", "image/jpeg") == "png"  # the bytes decide
    with pytest.raises(ExtractionError, match="not a valid PNG image"):
        extract(_fixture("notice.png")[:200], "cut.png", None, ExtractionLimits(ocr=SpyEngine()))


def test_words_to_blocks_joins_lines_and_hyphenation_per_paragraph() -> None:
    words = [
        OcrWord("Water", 0, 0, 1, 1, 90, (1, 1, 1)),
        OcrWord("main-", 0, 0, 1, 1, 90, (1, 1, 1)),
        OcrWord("tenance", 0, 0, 1, 1, 90, (1, 1, 2)),
        OcrWord("today.", 0, 0, 1, 1, 90, (1, 1, 2)),
        OcrWord("Next", 0, 0, 1, 1, 90, (1, 2, 1)),
    ]
    assert [b.text for b in words_to_blocks(words)] == ["Water maintenance today.", "Next"]


def test_parse_tsv_keeps_words_and_drops_speckles() -> None:
    header = "level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth\theight\tconf\ttext"
    rows = [
        "1\t1\t0\t0\t0\t0\t0\t0\t900\t600\t-1\t",
        "5\t1\t1\t1\t1\t1\t40\t50\t80\t20\t96.5\tNOTICE",
        "5\t1\t1\t1\t1\t2\t130\t50\t10\t10\t3.0\t~",
        '5\t1\t1\t1\t1\t3\t150\t50\t60\t20\t91.0\t"quoted',
    ]
    words = parse_tsv("\n".join([header, *rows]))
    assert [(w.text, w.left, w.line) for w in words] == [("NOTICE", 40, (1, 1, 1)), ('"quoted', 150, (1, 1, 1))]


# -- limits, before any work ----------------------------------------------------------------------------------
def test_too_many_scanned_pages_fail_before_any_page_is_rendered() -> None:
    spy = SpyEngine()
    limits = ExtractionLimits(ocr=spy, max_ocr_pages=1)
    data = _as("TIFF", frames=2)
    with pytest.raises(ExtractionError, match=r"2 pages without a text layer; OCR reads at most 1 .*MAX_OCR_PAGES"):
        extract(data, "fax.tiff", None, limits)
    pdf = _fixture("notice.pdf")
    with pytest.raises(ExtractionError, match="OCR reads at most 0"):
        extract(pdf, "notice.pdf", None, replace(limits, max_ocr_pages=0))
    assert spy.calls == []


def test_an_image_over_the_pixel_limit_is_refused_before_it_is_decoded() -> None:
    spy = SpyEngine()
    huge = io.BytesIO()
    Image.new("1", (20_000, 12_000), 1).save(huge, "PNG")  # 240 Mpx, a few KB on disk
    with pytest.raises(ExtractionError, match=r"20,000 × 12,000 pixels; the limit is 40,000,000 pixels"):
        extract(huge.getvalue(), "poster.png", None, ExtractionLimits(ocr=spy))
    assert spy.calls == []


def test_a_pdf_page_over_the_pixel_limit_is_rendered_smaller() -> None:
    spy = SpyEngine()
    extract(_fixture("notice.pdf"), "notice.pdf", None, ExtractionLimits(ocr=spy, max_image_pixels=200_000))
    ((w, h),) = spy.calls
    assert w * h <= 200_000 and w > 300


# -- an engine that fails -------------------------------------------------------------------------------------
def _stub(tmp_path: Path, body: str) -> str:
    path = tmp_path / "tesseract"
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


@pytest.mark.parametrize(
    ("body", "timeout", "message"),
    [
        ("kill -SEGV $$", 30.0, r"^OCR of page [12] failed: the OCR engine crashed \(SIGSEGV\); the page image may be"),
        (
            "sleep 30",
            0.5,
            r"^OCR of page [12] failed: the OCR engine took longer than 0.5 s on the page and was stopped",
        ),
        ("echo 'Failed loading language eng' >&2; exit 1", 30.0, r"language data 'eng' is not installed; install"),
        ("echo boom >&2; exit 3", 30.0, r"^OCR of page [12] failed: the OCR engine failed \(exit code 3\)\.$"),
    ],
)
def test_a_crashing_or_hanging_engine_fails_the_document_with_the_reason(
    tmp_path: Path, body: str, timeout: float, message: str
) -> None:
    engine = TesseractOcr(binary=_stub(tmp_path, body), page_timeout_s=timeout)
    for name, page in (("notice.png", 1), ("notice.pdf", 1), ("mixed.pdf", 2)):
        with pytest.raises(ExtractionError, match=message) as err:
            extract(_fixture(name), name, None, ExtractionLimits(ocr=engine))
        assert err.value.message.startswith(f"OCR of page {page} failed: ")
        assert str(tmp_path) not in err.value.message


def test_a_missing_engine_says_how_to_install_it(tmp_path: Path) -> None:
    engine = TesseractOcr(binary=str(tmp_path / "no-such-tesseract"))
    with pytest.raises(ExtractionError, match=r"OCR program \(.*\) is not installed; install it with `make venv`"):
        extract(_fixture("notice.png"), "notice.png", None, ExtractionLimits(ocr=engine))


def test_an_engine_failure_on_page_two_names_page_two() -> None:
    with pytest.raises(ExtractionError, match=r"^OCR of page 2 failed: out of paper$"):
        extract(_fixture("mixed.pdf"), "mixed.pdf", None, ExtractionLimits(ocr=FailingEngine("out of paper")))


def test_the_real_engine_is_installed() -> None:
    """`make venv` installs it (ocr-deps); without it every scan ends FAILED."""
    assert TesseractOcr().recognize(_as("PNG")) != []
    assert os.access(TesseractOcr().binary, os.X_OK) or any(
        os.access(Path(d) / "tesseract", os.X_OK) for d in os.environ.get("PATH", "").split(os.pathsep)
    )
