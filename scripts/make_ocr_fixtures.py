"""Render the OCR evaluation set in tests/fixtures/ocr/ (committed; run again only to change it).

Known text is drawn with Pillow, rotated by a slight skew, speckled with noise and thresholded to one bit per pixel,
as a fax-quality office scan looks. Written: notice.png (the scan as an image), notice.pdf (the same scan as an
image-only PDF) and mixed.pdf (page 1 a real text layer, page 2 a scan), with truth.json holding the text of each
page. Usage: .venv/bin/python scripts/make_ocr_fixtures.py [OUT_DIR]
"""

from __future__ import annotations

import io
import json
import random
import sys
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

DPI = 150
NOTICE = [
    "NOTICE OF WATER SUPPLY INTERRUPTION",
    "",
    "The water supply to Harbour Street will be",
    "interrupted on Tuesday 14 March from 09:00",
    "to 15:30 while the main valve is replaced.",
    "Residents should store drinking water the",
    "evening before. The contractor on site is",
    "Brennan Pipeworks, reference job 4471-B.",
    "Questions go to the parish office at 0161",
    "555 0192 or water@harbour-parish.example.",
]
SCANNED_PAGE_2 = [
    "APPENDIX B: FIRE DRILL SCHEDULE",
    "",
    "The spring fire drill for the east wing takes",
    "place on Friday 7 April at 11:15. Assembly",
    "point C is the staff car park behind the",
    "library. Wardens wear orange vests and the",
    "roll call is taken by Dana Okafor.",
]
TEXT_PAGE_1 = [
    "Facilities Handbook",
    "Chapter 4 covers safety procedures for the east wing.",
    "Visitors sign in at the front desk and wear a badge at all times.",
]


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    for path in ("/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf", "DejaVuSerif.ttf"):
        try:
            return ImageFont.truetype(path, size)
        except OSError:
            continue
    return ImageFont.load_default(size)


def scan(lines: list[str], *, seed: int, skew_deg: float, noise: float) -> Image.Image:
    """A one-bit 'scan' of the lines: 11pt serif text at 150 dpi, rotated, speckled."""
    width, height = int(6.5 * DPI), int((0.9 + 0.32 * len(lines)) * DPI)
    page = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(page)
    font = _font(int(11 / 72 * DPI * 1.35))
    y = int(0.4 * DPI)
    for line in lines:
        draw.text((int(0.45 * DPI), y), line, fill=0, font=font)
        y += int(0.32 * DPI)
    page = page.rotate(skew_deg, resample=Image.Resampling.BICUBIC, fillcolor=255, expand=False)
    rng = random.Random(seed)
    px = page.load()
    assert px is not None
    for _ in range(int(width * height * noise)):
        x, yy = rng.randrange(width), rng.randrange(height)
        px[x, yy] = 0 if rng.random() < 0.5 else 255
    return page.point(lambda v: 255 if v > 150 else 0).convert("1")


def text_pdf(lines: list[str]) -> bytes:
    """A one-page US Letter PDF with a real text layer (Helvetica), written by hand."""
    ops = ["BT", "/F1 12 Tf", "72 720 Td", "16 TL"]
    for line in lines:
        ops.append("(" + line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") + ") Tj T*")
    ops.append("ET")
    content = "\n".join(ops).encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 4 0 R >> >> "
        b"/Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
    ]
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objects, 1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % i + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for off in offsets:
        out.write(b"%010d 00000 n \n" % off)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref))
    return out.getvalue()


def image_pdf(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "PDF", resolution=DPI)
    return buf.getvalue()


def main(out: Path) -> None:
    import pypdf

    out.mkdir(parents=True, exist_ok=True)
    notice = scan(NOTICE, seed=1, skew_deg=1.2, noise=0.004)
    notice.save(out / "notice.png", optimize=True)
    (out / "notice.pdf").write_bytes(image_pdf(notice))
    writer = pypdf.PdfWriter()
    writer.append(pypdf.PdfReader(io.BytesIO(text_pdf(TEXT_PAGE_1))))
    writer.append(pypdf.PdfReader(io.BytesIO(image_pdf(scan(SCANNED_PAGE_2, seed=2, skew_deg=-0.8, noise=0.004)))))
    buf = io.BytesIO()
    writer.write(buf)
    (out / "mixed.pdf").write_bytes(buf.getvalue())
    truth = {
        "notice.png": {"1": "\n".join(x for x in NOTICE if x)},
        "notice.pdf": {"1": "\n".join(x for x in NOTICE if x)},
        "mixed.pdf": {"1": "\n".join(TEXT_PAGE_1), "2": "\n".join(x for x in SCANNED_PAGE_2 if x)},
    }
    (out / "truth.json").write_text(json.dumps(truth, indent=2) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / "tests/fixtures/ocr")
