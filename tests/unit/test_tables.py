"""Tables as Markdown with their header row, PDF reading order, and table chunks split by rows with the header."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from lectern.domain.chunking import ChunkingConfig, chunk_document, is_table_separator, whitespace_tokens
from lectern.domain.extraction import extract
from lectern.domain.extraction.text import LEFT, UP, _table_block
from lectern.domain.models import Block, ExtractedDocument, Page

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "tables"
SHARED = Path(os.environ.get("LECTERN_SHARED_DIR", Path(__file__).resolve().parents[2].parent / "shared")) / "data/docs"
TRUTH = json.loads((FIXTURES / "truth.json").read_text())


def tables(doc: ExtractedDocument, page: int | None = None) -> list[str]:
    return [b.text for p in doc.pages if page in (None, p.number) for b in p.blocks if b.kind == "table"]


def markdown(grid: list[list[str]]) -> str:
    lines = ["| " + " | ".join(grid[0]) + " |", "|" + " --- |" * len(grid[0])]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in grid[1:]])


def _shared(name: str) -> bytes:
    path = SHARED / name
    if not path.is_file():
        pytest.fail(f"missing real input {path}")
    return path.read_bytes()


def test_merged_header_cells_flatten_column_by_column():
    # "Region" spans two header rows, "Q3" two columns; a body cell merged down repeats its text
    block = _table_block(
        [["Region", "Q3", LEFT], [UP, "Sales", "Costs"], ["North", "412", "301"], ["South", UP, "290"]]
    )
    assert block == Block(
        "| Region | Q3 Sales | Q3 Costs |\n| --- | --- | --- |\n| North | 412 | 301 |\n| South | 412 | 290 |", "table"
    )
    # a table finder's None: a gap in row 0 continues the cell to its left, below it the cell above
    found = _table_block([["Region", "Q3", None], [None, "Sales", "Costs"], ["North", "1", "2"]])
    assert found is not None and found.text.split("\n")[0] == "| Region | Q3 Sales | Q3 Costs |"
    assert _table_block([["a | b", "c"], ["1", "2"]]).text.split("\n")[0] == "| a \\| b | c |"  # type: ignore[union-attr]


def test_pdf_ruled_tables_with_merged_header_are_markdown():
    doc = extract((FIXTURES / "tables-merged.pdf").read_bytes(), "tables-merged.pdf")
    assert tables(doc, 1) == [markdown(TRUTH["tables"]["tables-merged.pdf#1"])]
    assert tables(doc, 2) == [markdown(TRUTH["tables"]["tables-merged.pdf#2"])]
    texts = [b.text for b in doc.pages[0].blocks]
    table_at = texts.index(tables(doc, 1)[0])  # in its place between the paragraphs around it
    assert "The table below" in " ".join(texts[:table_at]) and texts[table_at + 1].startswith("East had")


def test_docx_table_with_merged_cells_is_markdown():
    doc = extract((FIXTURES / "tables.docx").read_bytes(), "tables.docx")
    assert tables(doc) == [markdown(TRUTH["tables"]["tables.docx#1"])]
    real = tables(extract(_shared("docx-tables.docx"), "docx-tables.docx"))
    assert real[0] == "| Header Col 1 | Header Col 2 |\n| --- | --- |\n| Lorem ipsum | A link example |"
    assert all(is_table_separator(t.split("\n")[1]) for t in real if "\n" in t)


def test_html_table_with_colspan_and_rowspan_is_markdown():
    doc = extract((FIXTURES / "tables.html").read_bytes(), "tables.html")
    assert tables(doc) == [markdown(TRUTH["tables"]["tables.html#1"])]


def test_markdown_table_keeps_its_header():
    got = tables(extract(_shared("simple-table.md"), "simple-table.md"))
    assert got == [
        "| Item | Price | # In stock |\n| --- | --- | --- |\n| Juicy Apples | 1.99 | 739 |\n| Bananas | 1.89 | 6 |"
    ]


def test_real_pdf_with_an_unruled_table_still_reads_its_rows():
    # the table of embedded-images-tables.pdf has no ruling lines: not tabulated, but its rows stay lines
    doc = extract(_shared("embedded-images-tables.pdf"), "embedded-images-tables.pdf")
    text = "\n".join(b.text for p in doc.pages for b in p.blocks)
    assert "Langmuir adsorption isotherm" in text
    assert "2 1.9460 0.0596" in text


def test_two_column_page_is_read_column_by_column():
    doc = extract((FIXTURES / "two-column.pdf").read_bytes(), "two-column.pdf")
    text = " ".join(" ".join(b.text.split()) for p in doc.pages for b in p.blocks)
    order = TRUTH["reading_order"]["two-column.pdf"]
    positions = [text.find(line) for line in order]
    assert -1 not in positions, [line for line, at in zip(order, positions, strict=True) if at < 0]
    assert positions == sorted(positions)


def test_real_two_column_paper_keeps_sentences_of_one_column_together():
    doc = extract(_shared("multi-column-2p.pdf"), "multi-column-2p.pdf")
    text = " ".join(" ".join(b.text.split()) for p in doc.pages for b in p.blocks)
    # left column of page 2, across several lines; content-stream order interleaved it with the right column
    assert "can we train a better dense embedding model using only pairs of questions and passages" in text


def test_a_broken_table_does_not_fail_the_document(monkeypatch):
    import pdfplumber.table

    def broken(self, *args, **kwargs):
        raise ValueError("table finder crashed")

    monkeypatch.setattr(pdfplumber.table.Table, "extract", broken)
    doc = extract((FIXTURES / "tables-merged.pdf").read_bytes(), "tables-merged.pdf")
    text = "\n".join(b.text for p in doc.pages for b in p.blocks)
    assert doc.page_count == 2 and tables(doc) == []
    assert "East 519 344 498 351" in text  # the page keeps its text layer


def _chunks(doc: ExtractedDocument, size: int = 120):
    return chunk_document(
        doc,
        tenant_id="t",
        document_id="d",
        filename="f.pdf",
        config=ChunkingConfig(size=size, overlap=16),
        count=whitespace_tokens,
    )


def test_a_table_that_fits_stays_whole_in_one_chunk():
    table = markdown(TRUTH["tables"]["tables.docx#1"])
    prose = Block("Intro sentence that comes before the table. " * 4)
    chunks = _chunks(ExtractedDocument([Page(1, [prose, Block(table, "table")])]))
    assert sum(table in c.text for c in chunks) == 1


def test_a_long_table_is_split_by_rows_with_the_header_repeated():
    grid = TRUTH["tables"]["tables-merged.pdf#2"]
    table = markdown(grid)
    chunks = _chunks(ExtractedDocument([Page(2, [Block(table, "table")])]))
    assert len(chunks) >= 3
    header = "\n".join(table.split("\n")[:2])
    rows: list[str] = []
    for c in chunks:
        assert c.text.startswith(header + "\n") and c.token_count <= 120
        rows += [line for line in c.text.split("\n")[2:] if line not in rows]
    assert rows == table.split("\n")[2:]  # every row once, whole, in order


def test_only_pages_that_may_hold_a_ruled_table_or_a_second_column_are_parsed_twice(monkeypatch):
    """pdfplumber parses a page a second time; pages whose operators draw no path and start no line right of the
    middle band are left to the text layer (page_blocks would return None for them), the others still go."""
    from lectern.domain.extraction import pdf_reader
    from tests.unit.conftest import build_pdf

    seen: list[int] = []
    real = pdf_reader._Layout.page

    def page(self, index, always=False):
        seen.append(index)
        return real(self, index, always)

    monkeypatch.setattr(pdf_reader._Layout, "page", page)
    plain = build_pdf(["A plain page of prose.\nIts second line.\nAnd a third one.", "Another plain page."])
    doc = extract(plain, "plain.pdf")
    assert seen == [] and "Its second line." in " ".join(b.text for p in doc.pages for b in p.blocks)
    for name in ("two-column.pdf", "tables-merged.pdf"):
        seen.clear()
        extract((FIXTURES / name).read_bytes(), name)
        assert seen, name  # a second column / ruling lines: read by pdfplumber
