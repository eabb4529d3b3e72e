"""An upload's kind from its bytes first, then its name and declared type (`detect_kind`)."""

from __future__ import annotations

import io
import re
import zipfile

from lectern.domain.errors import ExtractionError
from lectern.domain.extraction.common import (
    _LABELS,
    MSG_DOCX_LOCKED,
    MSG_EMPTY_FILE,
    MSG_INVALID,
    MSG_MISMATCH,
    _unsupported,
)
from lectern.domain.extraction.text import _looks_binary
from lectern.domain.formats import BY_EXTENSION, BY_MIME

_EXTENSION_KINDS = {ext.lstrip("."): f.kind for ext, f in BY_EXTENSION.items()}


_MIME_KINDS = {mime: f.kind for mime, f in BY_MIME.items()}


# Formats recognised by their first bytes that we do not read: named in the error so the user knows why.
_FOREIGN_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"GIF8", "gif"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
    (b"{\\rtf", "rtf"),
    (b"\x1f\x8b", "gzip"),
    (b"7z\xbc\xaf\x27\x1c", "7z"),
    (b"Rar!", "rar"),
    (b"%!PS", "postscript"),
)


_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


_ODF_KINDS = {
    "application/vnd.oasis.opendocument.text": "odt",
    "application/vnd.oasis.opendocument.spreadsheet": "ods",
    "application/vnd.oasis.opendocument.presentation": "odp",
    "application/epub+zip": "epub",
}


_SAFE_EXT_RE = re.compile(r"^[a-z0-9]{1,10}$")


def _extension(filename: str) -> str:
    name = filename.replace("\\", "/").rsplit("/", 1)[-1]
    if "." not in name.strip("."):
        return ""
    ext = name.rsplit(".", 1)[-1].strip().lower()
    return ext if _SAFE_EXT_RE.match(ext) else "unknown"


def _declared_kind(filename: str, content_type: str | None) -> tuple[str | None, str]:
    """(kind the name or declared type claims, the extension). The extension wins over the content type."""
    ext = _extension(filename)
    if ext in _EXTENSION_KINDS:
        return _EXTENSION_KINDS[ext], ext
    mime = (content_type or "").split(";", 1)[0].strip().lower()
    if mime in _MIME_KINDS:
        return _MIME_KINDS[mime], ext
    if mime.startswith("text/") and not ext:
        return "text", ext
    return None, ext


def _zip_kind(data: bytes) -> str | None:
    """What a zip holds: 'docx', another format's name ('pptx', 'odt', 'zip'...), None if broken."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            names = set(zf.namelist())
            if "word/document.xml" in names:
                return "docx"
            if any(n.startswith("ppt/") for n in names):
                return "pptx"
            if any(n.startswith("xl/") for n in names):
                return "xlsx"
            if "mimetype" in names and zf.getinfo("mimetype").file_size < 200:
                return _ODF_KINDS.get(zf.read("mimetype").decode("ascii", "replace").strip(), "zip")
            return "zip"
    except Exception:  # a broken zip is reported by the caller, whatever zipfile raised
        return None


def _sniff_binary(data: bytes, declared: str | None) -> str | None:
    """The format the first bytes prove, if any: 'pdf', 'docx', or the name of a format we do not read."""
    pdf_at = data.find(b"%PDF-", 0, 1024)  # readers accept junk before the header
    if pdf_at == 0 or (pdf_at > 0 and declared not in ("html", "markdown", "text")):
        return "pdf"
    if data.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return _zip_kind(data) or "broken-zip"
    if data.startswith(_OLE_MAGIC):
        return "ole"
    for magic, name in _FOREIGN_MAGIC:
        if data.startswith(magic):
            return name
    return None


def _looks_like_html(data: bytes) -> bool:
    head = data[:2048].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return head.startswith((b"<!doctype html", b"<html")) or b"<body" in head or b"<head" in head


def _refusal(sniffed: str, declared: str | None, ext: str) -> ExtractionError:
    """The error for a file whose first bytes show a format we do not read."""
    if sniffed == "ole":
        # Word/Excel/PowerPoint 97-2003 files, and also password-protected OOXML files, are OLE containers.
        if declared == "docx":
            return ExtractionError(MSG_DOCX_LOCKED)
        return _unsupported(ext if ext in ("doc", "xls", "ppt", "msg") else "doc")
    if sniffed == "broken-zip":
        if declared == "docx":
            return ExtractionError(MSG_INVALID.format(label="DOCX"))
        return _unsupported(ext or "zip")
    return _unsupported(sniffed)


_IMAGE_KINDS = ("png", "jpeg", "tiff")


_BINARY_KINDS = ("pdf", "docx", *_IMAGE_KINDS)  # proved by their first bytes


def detect_kind(data: bytes, filename: str, content_type: str | None) -> str:
    """The canonical kind ('pdf', 'docx', 'png', 'jpeg', 'tiff', 'html', 'markdown', 'text') of an upload.

    Magic bytes win; the extension (then the declared content type) decides among the text formats. Raises
    ExtractionError when the file is empty, of a type we do not read, or when its bytes contradict its name.
    """
    if not data:
        raise ExtractionError(MSG_EMPTY_FILE)
    declared, ext = _declared_kind(filename, content_type)
    sniffed = _sniff_binary(data, declared)
    if sniffed in _BINARY_KINDS:
        return sniffed
    if sniffed is not None:
        raise _refusal(sniffed, declared, ext)
    if declared in _BINARY_KINDS:
        raise ExtractionError(MSG_MISMATCH.format(label=_LABELS[declared]))
    if declared is not None:
        return declared
    if ext:
        raise _unsupported(ext)
    if _looks_like_html(data):
        return "html"
    if _looks_binary(data):
        raise _unsupported(None)
    return "text"
