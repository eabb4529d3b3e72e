"""Render the tables and reading-order evaluation set in tests/fixtures/tables/ (written by us; committed, run again
only to change it).

Written: tables-merged.pdf (page 1 a ruled table whose header has merged cells - "Region" spans two header rows,
"Q3" and "Q4" each span two columns - between two paragraphs; page 2 a 45-row staff directory, longer than a
chunk), two-column.pdf (a title across the page over two columns of text whose content stream is written line by
line across both columns, as producers that emit text by height do), tables.docx (a merged-header table made with
python-docx), tables.html (colspan/rowspan in <thead> and a rowspan in the body), truth.json (the cells of every
table as a grid with the header flattened, and the two-column page's lines in reading order) and devset.json
(questions whose answers sit in the tables or the right-hand column, for lectern.evaluation.answers).

Usage: PYTHONPATH=lambdas .venv/bin/python scripts/make_table_fixtures.py [OUT_DIR]
"""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

REGIONS = [
    ("North", "412", "301", "455", "320"),
    ("South", "388", "290", "401", "297"),
    ("East", "519", "344", "498", "351"),
    ("West", "276", "210", "305", "222"),
    ("Central", "350", "260", "362", "270"),
]
REGION_HEADER = ["Region", "Q3 Sales", "Q3 Costs", "Q4 Sales", "Q4 Costs"]

_FIRST = [
    "Amara",
    "Bruno",
    "Chen",
    "Dana",
    "Elif",
    "Farid",
    "Greta",
    "Hiro",
    "Ines",
    "Jonas",
    "Kofi",
    "Lena",
    "Mateo",
    "Nadia",
    "Omar",
]
_LAST = [
    "Okafor",
    "Rossi",
    "Wang",
    "Novak",
    "Yilmaz",
    "Haddad",
    "Lind",
    "Sato",
    "Costa",
    "Berg",
    "Mensah",
    "Vogel",
    "Ruiz",
    "Petrov",
    "Aziz",
]
_TEAMS = ["Finance", "Legal", "Support", "Research", "Facilities"]
STAFF = [
    (
        f"{_FIRST[i % 15]} {_LAST[(i + 4 * (i // 15)) % 15]}",
        _TEAMS[i % 5],
        f"{4100 + i * 13}",
        f"{'ABC'[i % 3]}-{200 + i * 3}",
    )
    for i in range(45)
]
STAFF_HEADER = ["Name", "Team", "Extension", "Room"]

PLANS_HEADER = ["Plan", "Response time Business hours", "Response time Out of hours", "Monthly price"]
PLANS = [
    ("Bronze", "8 hours", "next business day", "EUR 90"),
    ("Silver", "4 hours", "12 hours", "EUR 240"),
    ("Gold", "1 hour", "4 hours", "EUR 610"),
]

LAB_HEADER = ["Instrument", "Location Building", "Location Room", "Booking contact"]
LAB = [
    ("Mass spectrometer", "Hooke", "H-118", "Ruth Adeyemi"),
    ("Confocal microscope", "Hooke", "H-204", "Ruth Adeyemi"),
    ("NMR spectrometer", "Franklin", "F-009", "Tomas Kral"),
]

LEFT = [
    "Harbour Lane library opened its new reading room in May. The room seats forty people and stays open until "
    "nine in the evening on weekdays.",
    "Members can borrow up to twelve items at once. Loans last three weeks and can be renewed twice online or at "
    "the front desk.",
    "The local history collection moved to the second floor, next to the map room and the quiet study area.",
]
RIGHT = [
    "The library's makerspace lends a laser cutter and two 3D printers. Training sessions run on Saturday "
    "mornings and must be booked in advance.",
    "Fines for late returns were abolished in January. Lost items are charged at their replacement cost plus a "
    "handling fee of four euros.",
    "The reading group meets on the first Thursday of each month. In December it discusses a novel chosen by "
    "the youngest members.",
]


# -- a minimal PDF writer: Helvetica text and ruling lines, nothing else ---------------------------------------
def _esc(s: str) -> str:
    return s.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


class Pdf:
    W, H = 612, 792

    def __init__(self) -> None:
        self.pages: list[list[str]] = []

    def page(self) -> list[str]:
        self.pages.append([])
        return self.pages[-1]

    @staticmethod
    def text(ops: list[str], x: float, y: float, s: str, size: float = 10, bold: bool = False) -> None:
        ops.append(f"BT /{'F2' if bold else 'F1'} {size} Tf {x:.1f} {y:.1f} Td ({_esc(s)}) Tj ET")

    @staticmethod
    def line(ops: list[str], x0: float, y0: float, x1: float, y1: float) -> None:
        ops.append(f"0.8 w {x0:.1f} {y0:.1f} m {x1:.1f} {y1:.1f} l S")

    def bytes(self) -> bytes:
        objs: list[bytes] = []
        n = len(self.pages)
        kids = " ".join(f"{5 + 2 * i} 0 R" for i in range(n))
        objs.append(b"<< /Type /Catalog /Pages 2 0 R >>")
        objs.append(f"<< /Type /Pages /Kids [{kids}] /Count {n} >>".encode())
        objs.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
        objs.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding >>")
        for i, ops in enumerate(self.pages):
            stream = "\n".join(ops).encode("cp1252")
            objs.append(
                f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {self.W} {self.H}] /Contents {6 + 2 * i} 0 R "
                "/Resources << /Font << /F1 3 0 R /F2 4 0 R >> >> >>".encode()
            )
            objs.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
        out = bytearray(b"%PDF-1.4\n")
        offsets = []
        for k, body in enumerate(objs, 1):
            offsets.append(len(out))
            out += b"%d 0 obj\n" % k + body + b"\nendobj\n"
        xref = len(out)
        out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
        for off in offsets:
            out += b"%010d 00000 n \n" % off
        out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
        return bytes(out)


def _paragraph(ops: list[str], x: float, y: float, text: str, width: int = 95) -> float:
    for line in textwrap.wrap(text, width):
        Pdf.text(ops, x, y, line)
        y -= 13
    return y - 8


def _ruled_table(ops: list[str], top: float, xs: list[float], rows: list[list[str]], row_h: float = 18) -> float:
    """A grid with every line drawn; returns the y under the table."""
    y = top
    for row in rows:
        for j, cell in enumerate(row):
            Pdf.text(ops, xs[j] + 4, y - row_h + 5, cell)
        y -= row_h
    bottom = y
    for k in range(len(rows) + 1):
        Pdf.line(ops, xs[0], top - k * row_h, xs[-1], top - k * row_h)
    for x in xs:
        Pdf.line(ops, x, top, x, bottom)
    return bottom


def tables_pdf() -> bytes:
    pdf = Pdf()
    ops = pdf.page()
    Pdf.text(ops, 72, 730, "Regional results 2026", 16, bold=True)
    y = _paragraph(
        ops,
        72,
        705,
        "The table below gives sales and costs by region for the third and fourth quarters of 2026, in thousands "
        "of euros, as reported to the board in November.",
    )
    xs = [72.0, 172.0, 252.0, 332.0, 412.0, 492.0]
    top, h = y - 6, 18.0
    # header row 1: Region (spans both header rows), Q3 over two columns, Q4 over two columns
    Pdf.text(ops, xs[0] + 4, top - h - 4, "Region", bold=True)
    Pdf.text(ops, xs[1] + 60, top - h + 5, "Q3", bold=True)
    Pdf.text(ops, xs[3] + 60, top - h + 5, "Q4", bold=True)
    for j, label in enumerate(["Sales", "Costs", "Sales", "Costs"], 1):
        Pdf.text(ops, xs[j] + 4, top - 2 * h + 5, label, bold=True)
    yy = top - 2 * h
    for row in REGIONS:
        for j, cell in enumerate(row):
            Pdf.text(ops, xs[j] + 4, yy - h + 5, cell)
        yy -= h
    bottom = yy
    Pdf.line(ops, xs[0], top, xs[-1], top)
    Pdf.line(ops, xs[1], top - h, xs[-1], top - h)  # under Q3/Q4 only: Region spans two rows
    for k in range(2, len(REGIONS) + 3):
        Pdf.line(ops, xs[0], top - k * h, xs[-1], top - k * h)
    for j, x in enumerate(xs):
        start = top - h if j in (2, 4) else top  # no line inside the merged Q3 and Q4 cells
        Pdf.line(ops, x, start, x, bottom)
    _paragraph(
        ops,
        72,
        bottom - 24,
        "East had the highest sales in the third quarter. Figures for the fourth quarter are provisional until "
        "the audit closes in February.",
    )
    ops = pdf.page()
    Pdf.text(ops, 72, 740, "Staff directory", 16, bold=True)
    _ruled_table(ops, 720, [72.0, 212.0, 312.0, 392.0, 472.0], [STAFF_HEADER, *[list(r) for r in STAFF]], 14.5)
    return pdf.bytes()


def two_column_pdf() -> tuple[bytes, list[str]]:
    pdf = Pdf()
    ops = pdf.page()
    Pdf.text(ops, 72, 730, "Harbour Lane Library newsletter", 16, bold=True)
    left = [line for p in LEFT for line in [*textwrap.wrap(p, 44), ""]]
    right = [line for p in RIGHT for line in [*textwrap.wrap(p, 44), ""]]
    y = 700.0
    for i in range(max(len(left), len(right))):  # the stream goes across the page, line by line
        for x, col in ((72.0, left), (320.0, right)):
            if i < len(col) and col[i]:
                Pdf.text(ops, x, y, col[i])
        y -= 13
    order = ["Harbour Lane Library newsletter", *[s for s in left if s], *[s for s in right if s]]
    return pdf.bytes(), order


def tables_docx() -> bytes:
    import io

    import docx

    d = docx.Document()
    d.add_heading("Support plans", 1)
    d.add_paragraph("Response times are measured from the moment a ticket is opened.")
    t = d.add_table(rows=2 + len(PLANS), cols=4)
    t.style = "Table Grid"
    t.cell(0, 0).merge(t.cell(1, 0)).text = "Plan"
    t.cell(0, 1).merge(t.cell(0, 2)).text = "Response time"
    t.cell(1, 1).text, t.cell(1, 2).text = "Business hours", "Out of hours"
    t.cell(0, 3).merge(t.cell(1, 3)).text = "Monthly price"
    for r, row in enumerate(PLANS, 2):
        for c, value in enumerate(row):
            t.cell(r, c).text = value
    d.add_paragraph("Prices exclude VAT.")
    out = io.BytesIO()
    d.save(out)
    return out.getvalue()


def tables_html() -> str:
    rows = [
        f"<tr><td>{LAB[0][0]}</td><td rowspan=2>Hooke</td><td>{LAB[0][2]}</td><td rowspan=2>{LAB[0][3]}</td></tr>",
        f"<tr><td>{LAB[1][0]}</td><td>{LAB[1][2]}</td></tr>",
        f"<tr><td>{LAB[2][0]}</td><td>{LAB[2][1]}</td><td>{LAB[2][2]}</td><td>{LAB[2][3]}</td></tr>",
    ]
    return (
        "<!doctype html><html><head><title>Shared instruments</title></head><body><h1>Shared instruments</h1>"
        "<p>Instruments are booked through their contact at least two days ahead.</p>"
        "<table><thead><tr><th rowspan=2>Instrument</th><th colspan=2>Location</th><th rowspan=2>Booking contact"
        "</th></tr><tr><th>Building</th><th>Room</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
        "<p>Training is required before first use.</p></body></html>"
    )


QUESTIONS = [
    ("t1", "What were the Q3 costs of the East region?", ["344"], "tables-merged.pdf", "East 519 344"),
    ("t2", "What were the Q4 sales in the West region?", ["305"], "tables-merged.pdf", "West 276 210 305"),
    ("t3", "What were the Q3 sales of the Central region?", ["350"], "tables-merged.pdf", "Central 350"),
    ("t4", "What were the Q4 costs of the North region?", ["320"], "tables-merged.pdf", "North 412 301 455 320"),
    ("s1", f"Which room is {STAFF[3][0]} in?", [STAFF[3][3]], "tables-merged.pdf", f"{STAFF[3][0]}"),
    ("s2", f"What is the extension of {STAFF[40][0]}?", [STAFF[40][2]], "tables-merged.pdf", f"{STAFF[40][0]}"),
    ("s3", f"Which team is {STAFF[27][0]} in?", [STAFF[27][1]], "tables-merged.pdf", f"{STAFF[27][0]}"),
    ("d1", "What is the out-of-hours response time of the Gold plan?", ["4 hours"], "tables.docx", "Gold"),
    ("d2", "What is the monthly price of the Silver plan?", ["EUR 240"], "tables.docx", "Silver"),
    ("h1", "In which room is the NMR spectrometer?", ["F-009"], "tables.html", "NMR spectrometer"),
    ("h2", "Who is the booking contact for the confocal microscope?", ["Ruth Adeyemi"], "tables.html", "Confocal"),
    ("c1", "How much is the handling fee for lost items?", ["four euros"], "two-column.pdf", "handling fee"),
    ("c2", "When does the reading group meet?", ["first Thursday of each month"], "two-column.pdf", "reading group"),
]


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "tests/fixtures/tables"
    out.mkdir(parents=True, exist_ok=True)
    (out / "tables-merged.pdf").write_bytes(tables_pdf())
    data, order = two_column_pdf()
    (out / "two-column.pdf").write_bytes(data)
    (out / "tables.docx").write_bytes(tables_docx())
    (out / "tables.html").write_text(tables_html(), encoding="utf-8")
    truth = {
        "written_by": "us (scripts/make_table_fixtures.py)",
        "tables": {
            "tables-merged.pdf#1": [REGION_HEADER, *[list(r) for r in REGIONS]],
            "tables-merged.pdf#2": [STAFF_HEADER, *[list(r) for r in STAFF]],
            "tables.docx#1": [PLANS_HEADER, *[list(r) for r in PLANS]],
            "tables.html#1": [LAB_HEADER, *[list(r) for r in LAB]],
        },
        "reading_order": {"two-column.pdf": order},
    }
    (out / "truth.json").write_text(json.dumps(truth, indent=1) + "\n", encoding="utf-8")
    devset = {
        "name": "tables-reading-order (written by us)",
        "documents": ["tables-merged.pdf", "two-column.pdf", "tables.docx", "tables.html"],
        "questions": [{"id": i, "question": q, "answers": a, "file": f, "support": s} for i, q, a, f, s in QUESTIONS],
    }
    (out / "devset.json").write_text(json.dumps(devset, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
