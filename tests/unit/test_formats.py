"""One format table (lectern.domain.formats) serves the upload door, extraction, the CLI and the page."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lectern.domain import extraction, formats
from lectern.domain.documents import ACCEPTED_TYPES, resolve_content_type
from lectern.domain.errors import UnsupportedMediaType

FRONTEND = Path(__file__).resolve().parents[2] / "frontend"


def test_every_kind_has_a_reader_and_every_reader_a_kind() -> None:
    assert set(extraction._EXTRACTORS) == set(formats.BY_KIND)


def test_the_upload_door_accepts_exactly_what_extraction_reads() -> None:
    door_exts = {ext for exts in ACCEPTED_TYPES.values() for ext in exts}
    read_exts = {"." + ext for ext in extraction._EXTENSION_KINDS}
    assert door_exts == read_exts == set(formats.EXTENSIONS)
    assert set(ACCEPTED_TYPES) == set(extraction._MIME_KINDS) == set(formats.BY_MIME)


@pytest.mark.parametrize(
    ("name", "declared", "stored"),
    [
        ("data.csv", None, "text/plain"),  # extraction read .csv while the door refused it
        ("page.xhtml", "", "text/html"),
        ("notes.MD", "application/octet-stream", "text/markdown"),
        ("report.pdf", "application/pdf; charset=binary", "application/pdf"),
        ("anything", "text/csv", "text/csv"),
    ],
)
def test_uploads_resolve_through_the_table(name: str, declared: str | None, stored: str) -> None:
    assert resolve_content_type(name, declared) == stored


@pytest.mark.parametrize(("name", "declared"), [("slides.pptx", None), ("x.pdf", "image/gif"), ("noext", "")])
def test_anything_else_is_refused_with_the_list(name: str, declared: str | None) -> None:
    listed = r"Supported: PDF, DOCX, HTML, Markdown, plain text, PNG, JPEG, TIFF\.$"
    with pytest.raises(UnsupportedMediaType, match=listed):
        resolve_content_type(name, declared)


def test_a_csv_upload_is_extracted_as_text() -> None:
    kind = extraction.detect_kind(b"a,b\n1,2\n", "data.csv", "text/plain")
    assert kind == "text"


def test_the_pages_built_in_defaults_match_the_table() -> None:
    """The page asks GET /v1/formats once signed in; until then its defaults are a copy, held to the table."""
    html = (FRONTEND / "index.html").read_text()
    accept = re.search(r'accept="([^"]+)"', html).group(1).split(",")
    assert set(accept) == set(formats.EXTENSIONS)
    js = (FRONTEND / "app.js").read_text()
    block = re.search(r"let SUPPORTED = \{(.*?)\};", js, re.S).group(1)
    table = dict(re.findall(r"(\w+): \"([^\"]+)\"", block))
    assert {"." + ext for ext in table} == set(formats.EXTENSIONS)
    assert all(formats.BY_MIME[mime] is formats.BY_EXTENSION["." + ext] for ext, mime in table.items())
