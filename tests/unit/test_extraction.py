"""Text extraction: the shared sample documents, then synthetic and hostile inputs, format by format."""

from __future__ import annotations

import io
import os
import random
import re
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import docx
import pytest
from pypdf import PdfWriter

from lectern.domain.errors import ExtractionError
from lectern.domain.extraction import (
    SUPPORTED_TYPES,
    ExtractionLimits,
    clean_text,
    decode_text,
    detect_kind,
    extract,
)
from lectern.domain.models import ExtractedDocument

DOCS = (
    Path(os.environ.get("LECTERN_SHARED_DIR", Path(__file__).resolve().parents[2].parent / "shared"))
    / "data"
    / "docs"
)
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _read(name: str) -> bytes:
    path = DOCS / name
    if not path.is_file():
        pytest.fail(f"sample document {name} not found under {DOCS}; set LECTERN_SHARED_DIR")
    return path.read_bytes()


def text_of(doc: ExtractedDocument, page: int | None = None) -> str:
    return "\n".join(b.text for p in doc.pages if page in (None, p.number) for b in p.blocks)


def blocks_of(doc: ExtractedDocument, kind: str) -> list[str]:
    return [b.text for p in doc.pages for b in p.blocks if b.kind == kind]


def fails(
    data: bytes, filename: str, match: str, content_type: str | None = None, **limits: int | float
) -> str:
    with pytest.raises(ExtractionError) as info:
        extract(data, filename, content_type, ExtractionLimits(**limits))
    message = info.value.message
    assert re.search(match, message), message
    return message


def assert_well_formed(doc: ExtractedDocument, kind: str) -> None:
    """Invariants of every successful extraction."""
    assert doc.pages, "no pages"
    if kind == "pdf":
        assert [p.number for p in doc.pages] == list(range(1, len(doc.pages) + 1))
    else:
        assert [p.number for p in doc.pages] == [1]
    for page in doc.pages:
        for block in page.blocks:
            assert block.text.strip(), block
            assert block.text == block.text.strip(), block
            assert not CONTROL.search(block.text), repr(block.text)
            assert block.kind in ("heading", "paragraph", "list", "table", "code")
            assert (block.level >= 1) == (block.kind == "heading"), block
            if block.kind in ("paragraph", "list", "heading"):
                assert "\n" not in block.text and "  " not in block.text, repr(block.text)


# -- the shared sample documents -------------------------------------------------------------------------
@dataclass(frozen=True)
class Ok:
    phrases: tuple[str, ...]  # each must be in the text (of `on_pages[i]` when given)
    pages: int
    on_pages: tuple[int, ...] = ()


@dataclass(frozen=True)
class Fails:
    reason: str  # regex


SAMPLES = {
    "DA-1p.pdf": Ok(("We arrived in the dead of night",), 1),
    # "defi- nition" across a line break is joined back
    "a1977-backus-p21.pdf": Ok(("permits one to write recursive functions without a definition",), 1),
    "book-war-and-peace-1p.txt": Ok(
        ("Well, Prince, so Genoa and Lucca are now just family estates of the Buonapartes",), 1
    ),
    "codeblock.md": Ok(("HTML Example", "<h1>Hello, World!</h1>", "Don't forget me this weekend!"), 1),
    "docx-tables.docx": Ok(
        ("| Header Col 1 | Header Col 2 |\n| --- | --- |\n| Lorem ipsum | A link example |", "Table with merged cells"),
        1,
    ),
    "embedded-images-tables.pdf": Ok(("Langmuir adsorption isotherm",), 1),
    "empty.txt": Fails(r"^The file is empty \(0 bytes\)\.$"),
    "example-10k-1p.html": Ok(("Galaxy Gaming, Inc.", "| Common stock | GLXZ | OTCQB marketplace |"), 1),
    "example-with-scripts.html": Ok(("Belarusian forces remain unlikely to attack Ukraine",), 1),
    "fake-doc-emphasized-text.docx": Ok(("I am a bold italic bold-italic text.", "I am a normal text."), 1),
    "fake-html-cp1252.html": Ok(("Die schöne Frau", "15,50 €", "L'été était très chaud", "El niño comió"), 1),
    "fake-memo.pdf": Ok(("20,000 bottles of water, 10,000 blankets, and 200 laptops",), 1),
    "fake-text-all-whitespace.txt": Fails(r"^The document contains no text\.$"),
    "fake-text-utf-16-le.txt": Ok(
        ("This is a test document to use for unit tests.", "Hamburgers are delicious"), 1
    ),
    "handbook-1p.docx": Ok(("The United States Trustee appoints and supervises standing trustees",), 1),
    "ideas-page.html": Ok(("The way to get new ideas is to notice anomalies",), 1),
    # Despite its name pypdf reads it whole: two pages of a GAO report.
    "invalid-pdf-structure-pdfminer-one-page.pdf": Ok(
        (
            "Office of the National Cyber Director",
            "not all of the desirable characteristics of national strategies",
        ),
        2,
        (1, 2),
    ),
    "layout-parser-paper-fast.pdf": Ok(
        ("LayoutParser: A Unified Toolkit for Deep", "Z. Shen et al."), 2, (1, 2)
    ),
    "list-item-example.pdf": Ok(
        (
            "Introduction to Product Development and Quality Assurance",
            "How will the product meet market needs?",
        ),
        2,
        (1, 2),
    ),
    "loremipsum-flat.pdf": Fails(r"no extractable text \(is it a scanned image\?\)"),
    "multi-column-2p.pdf": Ok(
        ("Dense Passage Retrieval for Open-Domain Question Answering", "3 Dense Passage Retriever (DPR)"),
        2,
        (1, 2),
    ),
    # The UTF-8 en dash arrives double-encoded ("â\x80\x93"); it is repaired.
    "norwich-city.txt": Ok(("Iwan Wyn Roberts (born 26 June 1968)", "1986–1990 Watford"), 1),
    "password.pdf": Fails(r"^The PDF is password-protected; remove the password and upload it again\.$"),
    # Pages 2 and 3 of this PDF carry the same text.
    "reliance.pdf": Ok(
        ("Integrated Annual Report 2021-22", "I would like the story of Reliance", "story of Reliance"),
        3,
        (1, 2, 3),
    ),
    "sample-presentation.pptx": Fails(
        r"^Unsupported file type 'pptx'\. Supported: PDF, DOCX, HTML, Markdown, plain text, PNG, JPEG, TIFF\.$"
    ),
    "simple-table.md": Ok(
        ("| Item | Price | # In stock |\n| --- | --- | --- |\n| Juicy Apples | 1.99 | 739 |\n| Bananas | 1.89 | 6 |",),
        1,
    ),
    "simple.docx": Ok(("These are a few of my favorite things:", "This is my first thought."), 1),
}


def test_every_sample_document_has_an_expectation():
    assert set(SAMPLES) == {p.name for p in DOCS.iterdir() if p.name != "README.md"}


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_sample_document(name: str):
    expected = SAMPLES[name]
    data = _read(name)
    if isinstance(expected, Fails):
        fails(data, name, expected.reason)
        return
    doc = extract(data, name)
    assert_well_formed(doc, detect_kind(data, name, None))
    assert doc.page_count == expected.pages
    for i, phrase in enumerate(expected.phrases):
        page = expected.on_pages[i] if expected.on_pages else None
        assert phrase in text_of(doc, page), (phrase, page)


def test_scripts_and_styles_never_reach_the_text():
    doc = extract(_read("example-with-scripts.html"), "example-with-scripts.html")
    text = text_of(doc)
    for leak in ("jQuery", "function (", "GoogleAnalyticsObject", "switchTo5x", "CDATA", "@import", "<!--"):
        assert leak not in text, leak
    assert doc.title == "Russian Offensive Campaign Assessment, December 13 | Institute for the Study of War"
    assert "Russian Offensive Campaign Assessment, December 13" in blocks_of(doc, "heading")


def test_sample_structure():
    simple = extract(_read("simple.docx"), "simple.docx")
    first = simple.pages[0].blocks[0]
    assert (first.kind, first.level, first.text) == ("heading", 1, "These are a few of my favorite things:")
    assert {"Parrots", "Hockey"} <= set(blocks_of(simple, "list"))  # a typed "•" and a List Bullet style
    md = extract(_read("codeblock.md"), "codeblock.md")
    assert [b.kind for b in md.pages[0].blocks] == ["heading", "code", "heading", "code", "code"]
    assert (
        md.pages[0].blocks[1].text.startswith('<!DOCTYPE html>\n<html lang="en">\n<head>\n    <meta charset')
    )
    pdf = extract(_read("list-item-example.pdf"), "list-item-example.pdf")
    assert "Design considerations" in blocks_of(pdf, "list")
    ideas = extract(_read("ideas-page.html"), "ideas-page.html")
    assert ideas.title == "How to Get New Ideas"
    assert len(ideas.pages[0].blocks) >= 4  # <br><br> separates its paragraphs
    tables = blocks_of(extract(_read("docx-tables.docx"), "docx-tables.docx"), "table")
    assert "| d | e f g&t h | i |" in tables[1]  # the table nested in a cell is kept, flattened
    layout = extract(_read("layout-parser-paper-fast.pdf"), "layout-parser-paper-fast.pdf")
    assert "ﬁ" not in text_of(layout)  # ligatures are split for search


# -- type detection --------------------------------------------------------------------------------------
def _zip(entries: dict[str, bytes | str], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression) as zf:
        for name, content in entries.items():
            zf.writestr(name, content)
    return out.getvalue()


def _docx(build) -> bytes:
    document = docx.Document()
    build(document)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


@pytest.mark.parametrize(
    ("data", "filename", "content_type", "kind"),
    [
        (b"%PDF-1.7\n...", "report.pdf", None, "pdf"),
        (b"%PDF-1.4\n...", "misnamed.txt", "text/plain", "pdf"),  # the bytes win over the name
        (b"%PDF-1.4\n...", "upload", "application/pdf", "pdf"),
        (b"junk before\n%PDF-1.4\n...", "report.pdf", None, "pdf"),
        (b"A note on the header: files start with %PDF-1.7.", "note.txt", None, "text"),
        (b"# Title\n", "notes.md", "text/plain", "markdown"),  # the extension wins over the content type
        (b"# Title\n", "NOTES.MARKDOWN", None, "markdown"),
        (b"<p>x</p>", "page.htm", None, "html"),
        (b"<p>x</p>", "upload", "text/html; charset=utf-8", "html"),
        (b"<!DOCTYPE html><p>x</p>", "upload", None, "html"),
        (b"plain", "upload", None, "text"),
        (b"a,b\n1,2\n", "table.csv", None, "text"),
        (b"plain", "readme.text", None, "text"),
        (b"plain", "script.py", "text/plain", "text"),
    ],
)
def test_detect_kind(data: bytes, filename: str, content_type: str | None, kind: str):
    assert detect_kind(data, filename, content_type) == kind
    assert kind in SUPPORTED_TYPES


def test_detect_kind_of_a_real_docx_and_office_lookalikes():
    real = _docx(lambda d: d.add_paragraph("hello"))
    assert detect_kind(real, "letter.docx", None) == "docx"
    assert detect_kind(real, "upload", None) == "docx"
    xlsx = _zip({"[Content_Types].xml": "<Types/>", "xl/workbook.xml": "<workbook/>"})
    fails(xlsx, "book.xlsx", r"^Unsupported file type 'xlsx'")
    fails(xlsx, "renamed.docx", r"^Unsupported file type 'xlsx'")
    odt = _zip({"mimetype": "application/vnd.oasis.opendocument.text", "content.xml": "<x/>"})
    fails(odt, "letter.odt", r"^Unsupported file type 'odt'")
    fails(_zip({"a.txt": "x"}), "archive.zip", r"^Unsupported file type 'zip'")


@pytest.mark.parametrize(
    ("data", "filename", "reason"),
    [
        (b"GIF89a" + bytes(64), "scan.gif", r"^Unsupported file type 'gif'"),
        (b"GIF89a" + bytes(64), "scan.pdf", r"^Unsupported file type 'gif'"),
        # images are read by OCR (tests/unit/test_ocr.py); without an engine they are refused in plain words
        (b"\x89PNG\r\n\x1a\n" + bytes(64), "scan.png", r"^Reading text from images needs OCR, which is off"),
        (b"\xff\xd8\xff\xe0" + bytes(64), "scan.pdf", r"needs OCR, which is off here; .* of the JPEG image"),
        (b"{\\rtf1\\ansi hello}", "letter.rtf", r"^Unsupported file type 'rtf'"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(64), "old.doc", r"^Unsupported file type 'doc'"),
        # a password-protected .docx is an OLE container, not a zip
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(64), "locked.docx", r"^The DOCX is password-protected"),
        (b"hello", "slides.pptx", r"^Unsupported file type 'pptx'"),
        (b"hello", "program.exe", r"^Unsupported file type 'exe'"),
        (b"hello", "x.this-is-not-an-extension", r"^Unsupported file type 'unknown'"),
        (random.Random(7).randbytes(4000), "upload", r"^Unsupported file type\. Supported: "),
        (b"", "empty.pdf", r"^The file is empty \(0 bytes\)\.$"),
        (b"just a note, not a document", "letter.docx", r"content does not match its type.*DOCX"),
        (random.Random(1).randbytes(5000), "report.pdf", r"content does not match its type.*PDF"),
        (random.Random(2).randbytes(5000), "notes.txt", r"content does not match its type.*binary"),
        (random.Random(3).randbytes(5000), "page.html", r"content does not match its type.*binary"),
        (
            b"PK\x03\x04" + bytes(100),
            "cut.docx",
            r"^The file is not a valid DOCX \(it may be truncated or corrupt\)\.$",
        ),
    ],
)
def test_refused_types(data: bytes, filename: str, reason: str):
    fails(data, filename, reason)


# -- PDF -------------------------------------------------------------------------------------------------
def test_pdf_keeps_true_page_numbers_with_an_empty_page(make_pdf):
    doc = extract(make_pdf(["Alpha page one", "", "Gamma (page) three\ncontinues here"]), "three.pdf")
    assert [p.number for p in doc.pages] == [1, 2, 3]
    assert doc.pages[1].blocks == []
    assert text_of(doc, 1) == "Alpha page one"
    assert "Gamma (page) three" in text_of(doc, 3)


def test_pdf_with_an_empty_user_password_is_read(make_pdf):
    doc = extract(make_pdf(["Readable once opened"], user_password=""), "owner-locked.pdf")
    assert text_of(doc) == "Readable once opened"


def test_pdf_with_a_user_password_is_refused(make_pdf):
    fails(make_pdf(["Secret"], user_password="hunter2"), "locked.pdf", r"^The PDF is password-protected")


def test_pdf_page_limit_is_checked_before_text_extraction():
    writer = PdfWriter()
    for _ in range(8):
        writer.add_blank_page(72, 72)
    out = io.BytesIO()
    writer.write(out)
    fails(out.getvalue(), "many.pdf", r"^The PDF has 8 pages; the limit is 5\.$", max_pages=5)
    fails(out.getvalue(), "many.pdf", r"no extractable text", max_pages=8)  # within the limit: blank pages


def test_pdf_without_pages():
    out = io.BytesIO()
    PdfWriter().write(out)
    fails(out.getvalue(), "none.pdf", r"^The PDF has no pages\.$")


def test_pdf_encryption_needing_a_missing_library(monkeypatch, make_pdf):
    import pypdf
    from pypdf.errors import DependencyError

    def needs_cryptography(self, password):
        raise DependencyError("cryptography>=3.1 is required for AES algorithm")

    monkeypatch.setattr(pypdf.PdfReader, "decrypt", needs_cryptography)
    message = fails(make_pdf(["x"], user_password=""), "aes.pdf", r"^The PDF is encrypted with a method")
    assert "cryptography" not in message


def test_truncated_pdf_is_reported_as_invalid():
    data = _read("multi-column-2p.pdf")
    fails(
        data[: len(data) * 3 // 10],
        "cut.pdf",
        r"^The file is not a valid PDF \(it may be truncated or corrupt\)\.$",
    )


def test_pdf_with_garbage_after_the_header():
    fails(b"%PDF-1.7\n" + random.Random(5).randbytes(3000), "junk.pdf", r"not a valid PDF")


def test_pdf_char_limit(make_pdf):
    fails(make_pdf(["word " * 40] * 3), "long.pdf", r"more than 100 characters", max_chars=100)


def test_one_broken_page_does_not_sink_the_document(monkeypatch, make_pdf):
    import pypdf

    real = pypdf.PageObject.extract_text

    def flaky(self, *args, **kwargs):
        if "Broken" in real(self, *args, **kwargs):
            raise ValueError("bad content stream at /tmp/secret/path")
        return real(self, *args, **kwargs)

    from lectern.domain.extraction import pdf_layout

    real_layout = pdf_layout.page_blocks

    def flaky_layout(page, **kwargs):
        if "Broken" in (page.extract_text() or ""):
            raise ValueError("bad table at /tmp/secret/path")
        return real_layout(page, **kwargs)

    monkeypatch.setattr(pypdf.PageObject, "extract_text", flaky)
    doc = extract(make_pdf(["Good page", "Broken page"]), "two.pdf")
    assert text_of(doc, 2) == "Broken page"  # the layout reader still reads a page pypdf cannot
    monkeypatch.setattr(pdf_layout, "page_blocks", flaky_layout)
    doc = extract(make_pdf(["Good page", "Broken page"]), "two.pdf")
    assert [p.number for p in doc.pages] == [1, 2]
    assert text_of(doc, 1) == "Good page" and doc.pages[1].blocks == []
    message = fails(make_pdf(["Broken", "Broken too"]), "bad.pdf", r"^The PDF file could not be read")
    assert "/tmp" not in message and "ValueError" not in message


# -- DOCX ------------------------------------------------------------------------------------------------
def test_docx_blocks_follow_document_order_with_tables_interleaved():
    def build(d):
        d.core_properties.title = "Quarterly report"
        d.add_heading("Results", level=1)
        d.add_paragraph("Revenue   grew\tstrongly.")
        table = d.add_table(rows=2, cols=2)
        for r, row in enumerate([("Region", "Sales"), ("North", "12")]):
            for c, value in enumerate(row):
                table.cell(r, c).text = value
        d.add_heading("Outlook", level=2)
        d.add_paragraph("First point", style="List Bullet")
        d.add_paragraph("Second point", style="List Number")
        d.add_paragraph("")

    doc = extract(_docx(build), "report.docx")
    assert_well_formed(doc, "docx")
    got = [(b.kind, b.level, b.text) for b in doc.pages[0].blocks]
    assert got == [
        ("heading", 1, "Results"),
        ("paragraph", 0, "Revenue grew strongly."),
        ("table", 0, "| Region | Sales |\n| --- | --- |\n| North | 12 |"),
        ("heading", 2, "Outlook"),
        ("list", 0, "First point"),
        ("list", 0, "Second point"),
    ]
    assert doc.title == "Quarterly report"


def test_docx_title_style_and_tracked_insertions():
    def build(d):
        d.add_paragraph("The Title", style="Title")
        p = d.add_paragraph("Kept ")
        ins = p._p.makeelement(docx.oxml.ns.qn("w:ins"), {})
        run = d.add_paragraph("inserted text").runs[0]._r
        ins.append(run)  # moves the run into <w:ins> inside the first paragraph
        p._p.append(ins)

    doc = extract(_docx(build), "t.docx")
    assert doc.pages[0].blocks[0].kind == "heading" and doc.title == "The Title"
    assert "Kept inserted text" in text_of(doc)


def test_docx_zip_bomb_is_refused_before_it_is_opened():
    bomb = _zip({"[Content_Types].xml": "<Types/>", "word/document.xml": b" " * (3 * 1024 * 1024)})
    assert len(bomb) < 10_000
    fails(
        bomb,
        "bomb.docx",
        r"^The DOCX expands to 3\.0 MB when unpacked; the limit is 1\.0 MB\.$",
        max_uncompressed_bytes=1024 * 1024,
    )
    fails(bomb, "bomb.docx", r"possible zip bomb")  # within the size limit, but compressed ~1000:1


def test_docx_with_broken_xml_is_reported_without_internals():
    broken = _docx(lambda d: d.add_paragraph("x"))
    with zipfile.ZipFile(io.BytesIO(broken)) as zf:
        entries = {n: zf.read(n) for n in zf.namelist()}
    entries["word/document.xml"] = b"<w:document><unclosed"
    message = fails(_zip(entries), "broken.docx", r"^The DOCX file could not be read")
    assert "XMLSyntaxError" not in message and "line" not in message


def test_docx_with_a_damaged_member_is_invalid():
    good = _docx(lambda d: d.add_paragraph("some text " * 50))
    with zipfile.ZipFile(io.BytesIO(good)) as zf:
        info = zf.getinfo("word/document.xml")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    damaged = bytearray(good)
    damaged[start + 10 : start + 30] = bytes(20)  # the deflated data, not the directory
    fails(
        bytes(damaged), "damaged.docx", r"^The file is not a valid DOCX \(it may be truncated or corrupt\)\.$"
    )


def test_docx_without_text():
    fails(_docx(lambda d: d.add_paragraph("   ")), "blank.docx", r"^The document contains no text\.$")


# -- HTML ------------------------------------------------------------------------------------------------
def _html(body: str, head: str = "") -> bytes:
    return f"<!DOCTYPE html><html><head>{head}</head><body>{body}</body></html>".encode()


def test_html_structure_and_boilerplate_removal():
    page = _html(
        """<header><a>Home</a> <a>About</a></header><nav>Menu item</nav>
        <main><article><header><h1>Article   title</h1></header>
        <div>Loose text in a div <b>with bold</b> and <a href="#">a link</a>.</div>
        <p>A paragraph<br>continued after a break.</p><p>Second<br><br>split by two breaks.</p>
        <ul><li>One</li><li>Two <em>items</em></li></ul>
        <pre>def f(x):\n    return x</pre>
        <blockquote>Quoted words.</blockquote>
        <table><tr><th>Name</th><th>Qty</th></tr><tr><td>Apple</td><td>3</td></tr></table>
        <div hidden>hidden text</div><span style="display: none">invisible</span>
        <form><input value="x"><label>Form label</label></form>
        <template><p>template text</p></template><noscript>Enable JS</noscript>
        <svg><text>svg text</text></svg><iframe>frame text</iframe><aside>Related links</aside>
        </article></main><footer>Copyright</footer><script>var leak = 1;</script><style>p{}</style>""",
        head="<title> Page  title </title><style>body{}</style>",
    )
    doc = extract(page, "page.html")
    assert_well_formed(doc, "html")
    got = [(b.kind, b.text) for b in doc.pages[0].blocks]
    assert got == [
        ("heading", "Article title"),
        ("paragraph", "Loose text in a div with bold and a link."),
        ("paragraph", "A paragraph continued after a break."),
        ("paragraph", "Second"),
        ("paragraph", "split by two breaks."),
        ("list", "One"),
        ("list", "Two items"),
        ("code", "def f(x):\n    return x"),
        ("paragraph", "Quoted words."),
        ("table", "| Name | Qty |\n| --- | --- |\n| Apple | 3 |"),
    ]
    assert doc.title == "Page title"


def test_html_layout_tables_are_walked_not_tabulated():
    page = _html(
        "<table><tr><td><table><tr><td>Nav</td><td>Links</td></tr></table></td>"
        "<td><h2>Essay</h2>Body text of the essay.</td></tr></table>"
        "<table><tr><td>Single column layout text.</td></tr></table>"
    )
    doc = extract(page, "layout.html")
    assert ("heading", "Essay") in [(b.kind, b.text) for b in doc.pages[0].blocks]
    assert "Body text of the essay." in blocks_of(doc, "paragraph")
    assert "Single column layout text." in blocks_of(doc, "paragraph")
    assert blocks_of(doc, "table") == ["Nav | Links"]


def test_html_charset_from_meta_and_bom():
    body = "<p>Привет, как дела? Это тестовый документ.</p>"
    declared = f'<html><head><meta charset="windows-1251"></head><body>{body}</body></html>'.encode("cp1251")
    assert "Привет, как дела?" in text_of(extract(declared, "ru.html"))
    bom = b"\xef\xbb\xbf" + _html("<p>Grüße</p>")
    assert text_of(extract(bom, "bom.html")) == "Grüße"
    utf16 = "\ufeff<html><body><p>Ωmega</p></body></html>".encode("utf-16-le")
    assert text_of(extract(utf16, "u16.html")) == "Ωmega"
    latin = b'<meta http-equiv="Content-Type" content="text/html; charset=iso-8859-1"><p>Price: 5 \x80</p>'
    assert text_of(extract(latin, "l.html")) == "Price: 5 €"  # iso-8859-1 is read as windows-1252


def test_deeply_nested_html_is_read_in_linear_time():
    n = 100_000
    page = f"<html><body><h1>Deep</h1>{'<div>' * n}deep text here{'</div>' * n}<p>after</p></body></html>"
    start = time.perf_counter()
    doc = extract(page.encode(), "deep.html")
    assert time.perf_counter() - start < 5.0
    assert "deep text here" in text_of(doc) and "after" in text_of(doc)


def test_html_too_costly_to_parse_is_stripped_instead(monkeypatch):
    from lectern.domain.extraction import html_reader

    monkeypatch.setattr(html_reader, "MAX_HTML_PARSE_COST", 1000)
    page = "".join(f"<div><div><h2>Part {i}</h2><p>Text &amp; more {i}</p></div></div>" for i in range(300))
    doc = extract(page.encode(), "wide.html")
    assert blocks_of(doc, "heading") == []  # structure is lost, text is not
    assert "Part 299" in blocks_of(doc, "paragraph") and "Text & more 299" in blocks_of(doc, "paragraph")


def test_moderately_nested_html_keeps_its_structure():
    n = 500
    page = f"<html><body>{'<div>' * n}<h2>Deep heading</h2>deep text{'</div>' * n}</body></html>"
    doc = extract(page.encode(), "nested.html")
    assert [(b.kind, b.text) for b in doc.pages[0].blocks] == [
        ("heading", "Deep heading"),
        ("paragraph", "deep text"),
    ]


def test_deeply_nested_html_with_scripts_and_unclosed_elements():
    page = "<div>" * 5000 + "<script>var x = '<div>';</script>visible<style>p{}" + "<!-- never closed"
    doc = extract(page.encode(), "nested.html")
    assert text_of(doc) == "visible"


def test_html_without_text():
    fails(_html("<script>only()</script><div>  </div>"), "blank.html", r"^The document contains no text\.$")


# -- Markdown --------------------------------------------------------------------------------------------
def test_markdown_constructs():
    md = """---
title: front matter is skipped
---
# Main   title #

Intro with a [link](https://example.com), an ![image alt](i.png), **bold** and `code`.
Second line of the same paragraph.

Setext heading
--------------

* star item
- dash item
  continued on the next line
1. numbered item

> quoted text

~~~python
def f():
    return 1
~~~

| Name | Value |
|:-----|------:|
| a \\| b | 1 |

***
Under a rule
===
```
unterminated fence
"""
    doc = extract(md.encode(), "doc.md")
    assert_well_formed(doc, "markdown")
    got = [(b.kind, b.level, b.text) for b in doc.pages[0].blocks]
    assert got == [
        ("heading", 1, "Main title"),
        (
            "paragraph",
            0,
            "Intro with a link, an image alt, bold and code. Second line of the same paragraph.",
        ),
        ("heading", 2, "Setext heading"),
        ("list", 0, "star item"),
        ("list", 0, "dash item continued on the next line"),
        ("list", 0, "1. numbered item"),
        ("paragraph", 0, "quoted text"),
        ("code", 0, "def f():\n    return 1"),
        ("table", 0, "| Name | Value |\n| --- | --- |\n| a \\| b | 1 |"),
        ("heading", 1, "Under a rule"),
        ("code", 0, "unterminated fence"),
    ]
    assert doc.title == "Main title"


# -- plain text and decoding -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ("Grüße aus Köln".encode("utf-8-sig"), "Grüße aus Köln"),
        ("Grüße aus Köln".encode("utf-16"), "Grüße aus Köln"),  # BOM, native order
        (b"\xfe\xff" + "Grüße aus Köln".encode("utf-16-be"), "Grüße aus Köln"),
        (b"\xff\xfe\x00\x00" + "Grüße aus Köln 𝄞".encode("utf-32-le"), "Grüße aus Köln 𝄞"),
        (b"\x00\x00\xfe\xff" + "Grüße aus Köln 𝄞".encode("utf-32-be"), "Grüße aus Köln 𝄞"),
        (
            "Noch eine Zeile ohne BOM, länger als acht Bytes".encode("utf-16-le"),
            "Noch eine Zeile ohne BOM, länger als acht Bytes",
        ),
        (
            "Le café crème coûte 3,50 €. Très « bien » — déjà vu.".encode("cp1252"),
            "Le café crème coûte 3,50 €. Très « bien » — déjà vu.",
        ),
        ("café €".encode("cp1252"), "café €"),  # too short for a detector
        (
            "Привет, как дела? Это тестовый документ для проверки кодировки.".encode("cp1251"),
            "Привет, как дела? Это тестовый документ для проверки кодировки.",
        ),
    ],
)
def test_text_decoding(data: bytes, expected: str):
    assert decode_text(data) == expected
    assert text_of(extract(data, "note.txt")) == expected


def test_control_characters_are_stripped():
    data = b"Hello\x00 wor\x07ld\x1b[31m red\x7f\r\nnext line\x0c\x0cnew page\xe2\x80\x8b!"
    doc = extract(data, "ctrl.txt")
    assert_well_formed(doc, "text")
    assert text_of(doc) == "Hello world[31m red next line\nnew page!"
    assert clean_text("a\u2028b\r\nc\rd") == "a\nb\nc\nd"


def test_text_paragraphs_and_lists():
    wrapped = (
        "A hard-wrapped paragraph of prose that goes on for quite a while and\n"
        "reaches the typical width of the lines in this file before it wraps\n"
        "onto a third line that ends the paragraph.\n"
        "A second paragraph begins without a blank line before it and runs on\n"
        "until it is done.\n"
        "\n"
        "- first item\n"
        "- second item\n"
    )
    doc = extract(wrapped.encode(), "notes.txt")
    kinds = [(b.kind, b.text[:24]) for b in doc.pages[0].blocks]
    assert kinds == [
        ("paragraph", "A hard-wrapped paragraph"),
        ("paragraph", "A second paragraph begin"),
        ("list", "first item"),
        ("list", "second item"),
    ]


def test_whitespace_only_and_size_limits():
    fails(b" \n\t\r\n\xc2\xa0\n", "blank.txt", r"^The document contains no text\.$")
    fails(b"a" * 2000, "big.txt", r"^The file is 2,000 bytes; the limit is 1,000 bytes\.$", max_bytes=1000)
    fails(
        b"x" * (3 * 1024 * 1024),
        "big.txt",
        r"^The file is 3\.0 MB; the limit is 2\.0 MB\.$",
        max_bytes=2 * 1024 * 1024,
    )
    fails(b"word " * 1000, "long.txt", r"more than 100 characters", max_chars=100)


# -- robustness ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name", ["fake-memo.pdf", "simple.docx", "ideas-page.html", "codeblock.md", "norwich-city.txt"]
)
def test_corrupted_files_raise_only_extraction_errors(name: str):
    """Flipped bytes and truncations of real files: either a document or an ExtractionError, nothing else."""
    original = _read(name)
    rng = random.Random(name)
    for _ in range(15):
        data = bytearray(original)
        for _ in range(rng.randint(1, 40)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        data = bytes(data[: rng.randint(1, len(data))] if rng.random() < 0.3 else data)
        try:
            doc = extract(data, name)
        except ExtractionError as exc:
            assert exc.message and "Traceback" not in exc.message and "/" not in exc.message
        else:
            assert_well_formed(doc, detect_kind(data, name, None))
