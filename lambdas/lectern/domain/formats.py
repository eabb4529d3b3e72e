"""The file formats Lectern reads, declared once.

Every place that needs to know what a file is asks this table: the upload door (which MIME types and extensions
are accepted), extraction (which reader a kind goes to, and the label in its messages), the CLI's ingest and
sync (which files in a folder are documents) and the page (the file picker's `accept` and its hint, through
`GET /v1/formats`). A new format is one `Format(...)` line here plus its reader in `lectern.domain.extraction`
(a test checks that every kind has a reader and every reader a kind).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Format:
    kind: str  # the extractor's name for it
    label: str  # what users read in messages ("PDF", "Markdown")
    extensions: tuple[str, ...]  # with the dot, lower case, the usual one first
    mime_types: tuple[str, ...]  # the canonical one first (what an upload without a type is stored as)
    description: str  # the page's hint and the "Supported: ..." lists ("Word (.docx)", "plain text")

    @property
    def mime_type(self) -> str:
        return self.mime_types[0]


FORMATS: tuple[Format, ...] = (
    Format("pdf", "PDF", (".pdf",), ("application/pdf",), "PDF"),
    Format(
        "docx",
        "DOCX",
        (".docx",),
        ("application/vnd.openxmlformats-officedocument.wordprocessingml.document",),
        "DOCX",
    ),
    Format("html", "HTML", (".html", ".htm", ".xhtml"), ("text/html", "application/xhtml+xml"), "HTML"),
    Format("markdown", "Markdown", (".md", ".markdown"), ("text/markdown", "text/x-markdown"), "Markdown"),
    Format("text", "text", (".txt", ".text", ".csv"), ("text/plain", "text/csv"), "plain text"),
    # images are read by OCR (lectern.domain.ocr), a page per frame
    Format("png", "PNG", (".png",), ("image/png",), "PNG"),
    Format("jpeg", "JPEG", (".jpg", ".jpeg"), ("image/jpeg",), "JPEG"),
    Format("tiff", "TIFF", (".tif", ".tiff"), ("image/tiff",), "TIFF"),
)

BY_KIND: dict[str, Format] = {f.kind: f for f in FORMATS}
BY_EXTENSION: dict[str, Format] = {ext: f for f in FORMATS for ext in f.extensions}
BY_MIME: dict[str, Format] = {mime: f for f in FORMATS for mime in f.mime_types}
EXTENSIONS: frozenset[str] = frozenset(BY_EXTENSION)
SUPPORTED_LIST = ", ".join(f.description for f in FORMATS)  # "PDF, DOCX, HTML, Markdown, plain text"


def extension_of(filename: str) -> str:
    """'.md' for 'Notes.MD'; '' when the name has no extension."""
    name = filename.replace("\\", "/").rsplit("/", 1)[-1]
    return "." + name.rsplit(".", 1)[-1].lower() if "." in name.strip(".") else ""


def by_filename(filename: str) -> Format | None:
    return BY_EXTENSION.get(extension_of(filename))


def by_mime(content_type: str | None) -> Format | None:
    return BY_MIME.get((content_type or "").split(";")[0].strip().lower())


def describe() -> list[dict[str, object]]:
    """The table as the API serves it (GET /v1/formats) for the page's file picker."""
    return [
        {
            "kind": f.kind,
            "label": f.label,
            "extensions": list(f.extensions),
            "mime_types": list(f.mime_types),
            "description": f.description,
        }
        for f in FORMATS
    ]
