"""Document text extraction: the bytes of an upload -> ExtractedDocument (pages of typed blocks).

* The type is decided from the bytes first (magic numbers), then from the extension and the declared content
  type; a file whose bytes contradict its name is refused rather than guessed at.
* PDFs keep their real 1-based page numbers (a page without text stays, with no blocks); flowing formats
  (DOCX, HTML, Markdown, plain text) are one page, number 1. PDF pages without a usable text layer, and images
  (PNG, JPEG, TIFF: a page per frame), are read by OCR when `limits.ocr` holds an engine (`lectern.domain.ocr`).
* Every failure is an `ExtractionError` whose message is shown to the user as is: it says what is wrong and
  what to do, and never carries a path, a stack trace or a parser's own exception text (those go to the log).
* Hostile inputs are bounded: size, page and character limits, zip-bomb checks before a DOCX is opened, and
  HTML nested too deeply for the parser to stay linear is read by a linear tag stripper instead.
"""

from __future__ import annotations

import codecs
import html as html_lib
import io
import logging
import re
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import charset_normalizer
from charset_normalizer.md import mess_ratio

if TYPE_CHECKING:  # pypdf, python-docx and lxml load on the first PDF/DOCX: the API never pays for them
    import pypdf
    from docx.document import Document as DocxDocument
    from docx.oxml.text.paragraph import CT_P
    from lxml import etree

    from lectern.domain.ocr import OcrEngine
from selectolax.lexbor import LexborHTMLParser, LexborNode

from lectern.domain.errors import ExtractionError
from lectern.domain.formats import BY_EXTENSION, BY_MIME, FORMATS, SUPPORTED_LIST
from lectern.domain.models import Block, BlockKind, ExtractedDocument, Page

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExtractionLimits:
    max_bytes: int = 50 * 1024 * 1024
    max_pages: int = 2000
    max_chars: int = 5_000_000  # total extracted text
    max_uncompressed_bytes: int = 200 * 1024 * 1024  # for DOCX (zip) bomb protection
    max_compression_ratio: float = 200.0
    # OCR (lectern.domain.ocr): pages without a usable text layer and images; None = no engine, text layers only
    max_ocr_pages: int = 100  # pages read by OCR per document (about 1-2 s each on one core)
    max_image_pixels: int = 40_000_000  # an image page larger is refused; a PDF page is rendered smaller
    ocr_dpi: int = 200  # measured on the scans in tests/fixtures/ocr: 300 dpi read worse (docs/decisions.md)
    ocr: OcrEngine | None = None


DEFAULT_LIMITS = ExtractionLimits()

SUPPORTED_TYPES: dict[str, str] = {f.kind: f.mime_type for f in FORMATS}  # kind -> canonical MIME type
_LABELS = {f.kind: f.label for f in FORMATS}
_SUPPORTED_LIST = SUPPORTED_LIST

# -- Messages shown to users ---------------------------------------------------------------------------------
MSG_EMPTY_FILE = "The file is empty (0 bytes)."
MSG_NO_TEXT = "The document contains no text."
MSG_NO_PDF_TEXT = "The document contains no extractable text (is it a scanned image?)."
MSG_NO_OCR_TEXT = "No text was found in the document, by its text layer or by OCR of its pages (are they blank?)."
MSG_NO_IMAGE_TEXT = "OCR found no text in the image (is it blank, or a photo without writing?)."
MSG_PDF_LOCKED = "The PDF is password-protected; remove the password and upload it again."
MSG_PDF_CIPHER = (
    "The PDF is encrypted with a method that cannot be read here; save an unencrypted copy and upload it "
    "again."
)
MSG_DOCX_LOCKED = "The DOCX is password-protected; remove the password and upload it again."
MSG_INVALID = "The file is not a valid {label} (it may be truncated or corrupt)."
MSG_UNREADABLE = "The {label} file could not be read (it may be corrupt or use unsupported features)."
MSG_MISMATCH = (
    "The file's content does not match its type: it is named or declared as {label} but is not one."
)
MSG_BINARY_AS_TEXT = (
    "The file's content does not match its type: it is named or declared as {label} but is binary."
)


def _unsupported(kind: str | None) -> ExtractionError:
    if kind:
        return ExtractionError(f"Unsupported file type '{kind}'. Supported: {_SUPPORTED_LIST}.")
    return ExtractionError(f"Unsupported file type. Supported: {_SUPPORTED_LIST}.")


def _human_size(n: int) -> str:
    if n >= 1024**3:
        return f"{n / 1024**3:.1f} GB"
    if n >= 1024 * 1024:
        return f"{n / (1024 * 1024):.1f} MB"
    if n >= 10 * 1024:
        return f"{n / 1024:.0f} KB"
    return f"{n:,} bytes"


# -- Type detection ------------------------------------------------------------------------------------------
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


# -- Text cleaning shared by every format --------------------------------------------------------------------
# C0/C1 controls except tab and newline, DEL, zero-width and BOM characters, soft hyphens.
_CONTROL_RE = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x9f\u00ad\u200b\u200e\u200f\u2060\ufeff\ufffe]")
_LINEBREAK_RE = re.compile("\r\n?|[\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")
# UTF-8 read as Latin-1 leaves C1 controls behind ("â\x80\x93" for "–"); such runs are decoded back.
_MOJIBAKE_RE = re.compile(
    "[\u00c2-\u00df][\u0080-\u00bf]|[\u00e0-\u00ef][\u0080-\u00bf]{2}|[\u00f0-\u00f4][\u0080-\u00bf]{3}"
)
_C1_RE = re.compile("[\u0080-\u009f]")
_LIGATURES = str.maketrans({"ﬀ": "ff", "ﬁ": "fi", "ﬂ": "fl", "ﬃ": "ffi", "ﬄ": "ffl", "ﬅ": "st", "ﬆ": "st"})


def _repair_mojibake(match: re.Match[str]) -> str:
    run = match.group(0)
    if not _C1_RE.search(run):
        return run
    try:
        return run.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return run


def clean_text(text: str) -> str:
    """Line breaks made \\n, C1 mojibake repaired, controls and NULs dropped, ligatures split."""
    text = _LINEBREAK_RE.sub("\n", text)
    if _C1_RE.search(text):
        text = _MOJIBAKE_RE.sub(_repair_mojibake, text)
    return _CONTROL_RE.sub("", text).translate(_LIGATURES)


def _squash(text: str) -> str:
    """One line, single spaces."""
    return " ".join(clean_text(text).split())


def _block(text: str, kind: BlockKind = "paragraph", level: int = 0) -> Block | None:
    text = _squash(text)
    return Block(text, kind, level) if text else None


def _code_block(text: str) -> Block | None:
    lines = [line.rstrip() for line in clean_text(text).expandtabs(4).split("\n")]
    body = "\n".join(lines).strip("\n")
    return Block(body, "code") if body.strip() else None


def _table_block(rows: Iterable[Iterable[str]]) -> Block | None:
    """Rows as lines, cells joined by ' | '. Columns empty in every row (layout spacers) are dropped."""
    grid = [[_squash(c) for c in row] for row in rows]
    grid = [row for row in grid if any(row)]
    width = max((len(row) for row in grid), default=0)
    used = [j for j in range(width) if any(j < len(row) and row[j] for row in grid)]
    lines = []
    for row in grid:
        cells = [row[j] if j < len(row) else "" for j in used]
        while cells and not cells[-1]:
            cells.pop()
        lines.append(" | ".join(cells))
    return Block("\n".join(lines), "table") if lines else None


def _keep(blocks: Iterable[Block | None]) -> list[Block]:
    return [b for b in blocks if b is not None]


# -- Decoding bytes to text ----------------------------------------------------------------------------------
_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),  # before UTF-16 LE: its BOM starts with the same two bytes
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_SNIFF_BYTES = 64 * 1024
_BINARY_BYTES = re.compile(b"[\x00-\x08\x0e-\x1a\x1c-\x1f]")


def _bom_encoding(data: bytes) -> tuple[str, int] | None:
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return encoding, len(bom)
    return None


def _utf16_without_bom(data: bytes) -> str | None:
    """UTF-16 text without a BOM shows as NULs in every other byte (for Latin-script text)."""
    sample = data[:4096]
    if len(sample) < 8:
        return None
    even, odd = sample[0::2], sample[1::2]
    if odd.count(0) > 0.4 * len(odd) and even.count(0) < 0.05 * len(even):
        return "utf-16-le"
    if even.count(0) > 0.4 * len(even) and odd.count(0) < 0.05 * len(odd):
        return "utf-16-be"
    return None


def _looks_binary(data: bytes) -> bool:
    """Control bytes that text does not use, in numbers (a stray one or two do not make a file binary)."""
    sample = data[:8192]
    count = len(_BINARY_BYTES.findall(sample))
    return count >= 8 and count > 0.05 * len(sample)


def _guess_legacy_encoding(data: bytes) -> str:
    """cp1252 when it reads as sensible text, else charset-normalizer's guess.

    A few bytes are too little for any detector (charset-normalizer calls "café €" UTF-16), and on Western
    text it often prefers cp1250 or cp1257, which turn è into č: cp1252 is the likelier legacy encoding."""
    try:
        as_cp1252 = data[:_SNIFF_BYTES].decode("cp1252")
    except UnicodeDecodeError:  # bytes that cp1252 leaves undefined
        as_cp1252 = None
    if as_cp1252 is not None and (len(data) < 32 or mess_ratio(as_cp1252, 1.0) < 0.3):
        return "cp1252"
    best = charset_normalizer.from_bytes(data[:_SNIFF_BYTES]).best()
    return best.encoding if best is not None else "cp1252"


def decode_text(data: bytes, declared: str | None = None) -> str:
    """Bytes -> str: BOM, strict UTF-8, a declared charset, UTF-16 recognised by its NULs, then a guess."""
    bom = _bom_encoding(data)
    if bom:
        return data[bom[1] :].decode(bom[0], errors="replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    for encoding in (declared, _utf16_without_bom(data)):
        if encoding:
            try:
                return data.decode(encoding, errors="replace")
            except LookupError:
                continue
    return data.decode(_guess_legacy_encoding(data), errors="replace")


def _decode_declared_text(data: bytes, label: str, declared: str | None = None) -> str:
    if _bom_encoding(data) is None and _utf16_without_bom(data) is None and _looks_binary(data):
        raise ExtractionError(MSG_BINARY_AS_TEXT.format(label=label))
    return decode_text(data, declared)


# -- Lines -> paragraphs (PDF page text and plain text) ------------------------------------------------------
_BULLET_RE = re.compile(r"^(?:[•●▪■◦○‣⁃∙·]\s*|[-*–]\s+)")
_HYPHEN_END_RE = re.compile(r"[^\W\d_]-$")


def _typical_width(lines: list[str]) -> int:
    lengths = sorted(len(s) for s in lines if s)
    return lengths[(len(lengths) * 3) // 4] if len(lengths) >= 5 else 0


class _Paragraphs:
    """Groups lines into paragraph and list blocks.

    A blank line or a bullet starts a new block. In hard-wrapped text (typical line 40-200 characters) a line
    clearly shorter than the typical one ends its paragraph; text whose lines are longer than that is one
    paragraph per line.
    """

    def __init__(self, width: int, dehyphenate: bool) -> None:
        self.width = width
        self.dehyphenate = dehyphenate
        self.blocks: list[Block] = []
        self.parts: list[str] = []
        self.kind: BlockKind = "paragraph"

    def flush(self) -> None:
        block = _block(" ".join(self.parts), self.kind)
        if block is not None:
            self.blocks.append(block)
        self.parts, self.kind = [], "paragraph"

    def add(self, line: str) -> None:
        line = line.strip()
        if not line:
            self.flush()
            return
        bullet = _BULLET_RE.match(line)
        if bullet:
            self.flush()
            self.kind = "list"
            line = line[bullet.end() :]
            if not line:
                return
        self._append(line)
        if self.width > 200 or (self.width >= 40 and len(line) < 0.7 * self.width):
            self.flush()

    def _append(self, line: str) -> None:
        if self.dehyphenate and self.parts and _HYPHEN_END_RE.search(self.parts[-1]) and line[0].islower():
            self.parts[-1] = self.parts[-1][:-1] + line
        else:
            self.parts.append(line)


def _lines_to_blocks(text: str, *, dehyphenate: bool) -> list[Block]:
    lines = clean_text(text).split("\n")
    builder = _Paragraphs(_typical_width([s.strip() for s in lines]), dehyphenate)
    for line in lines:
        builder.add(line)
    builder.flush()
    return builder.blocks


# -- PDF -----------------------------------------------------------------------------------------------------
def _open_pdf(data: bytes) -> pypdf.PdfReader:
    import pypdf
    from pypdf.errors import DependencyError

    try:
        reader = pypdf.PdfReader(io.BytesIO(data), strict=False)
    except Exception as exc:
        log.info("pdf open failed: %s: %s", type(exc).__name__, exc)
        raise ExtractionError(MSG_INVALID.format(label="PDF")) from exc
    if reader.is_encrypted:
        try:
            decrypted = reader.decrypt("")
        except DependencyError as exc:  # AES without the `cryptography` package
            raise ExtractionError(MSG_PDF_CIPHER) from exc
        except Exception as exc:
            log.info("pdf decrypt failed: %s: %s", type(exc).__name__, exc)
            raise ExtractionError(MSG_PDF_LOCKED) from exc
        if decrypted == pypdf.PasswordType.NOT_DECRYPTED:
            raise ExtractionError(MSG_PDF_LOCKED)
    return reader


def _pdf_page_count(reader: pypdf.PdfReader, limits: ExtractionLimits) -> int:
    def over(n: int) -> ExtractionError:
        return ExtractionError(f"The PDF has {n:,} pages; the limit is {limits.max_pages:,}.")

    try:  # the declared count first: cheap, and refuses a huge page tree before it is walked
        declared = reader.trailer["/Root"]["/Pages"]["/Count"]  # type: ignore[index]
    except Exception:
        declared = None
    if isinstance(declared, int) and declared > limits.max_pages:
        raise over(declared)
    try:
        count = len(reader.pages)
    except Exception as exc:
        log.info("pdf page tree unreadable: %s: %s", type(exc).__name__, exc)
        raise ExtractionError(MSG_INVALID.format(label="PDF")) from exc
    if count > limits.max_pages:
        raise over(count)
    if count == 0:
        raise ExtractionError("The PDF has no pages.")
    return count


def _pdf_title(reader: pypdf.PdfReader) -> str | None:
    try:
        title = reader.metadata.title if reader.metadata else None
    except Exception:
        return None
    return (_squash(title) or None) if isinstance(title, str) else None


def _extract_pdf(data: bytes, limits: ExtractionLimits) -> ExtractedDocument:
    """The text layer page by page; the pages where it is missing or unusable are then read by OCR."""
    reader = _open_pdf(data)
    count = _pdf_page_count(reader, limits)
    pages: list[Page] = []
    failed = chars = 0
    for index in range(count):
        try:
            text = reader.pages[index].extract_text() or ""
        except Exception as exc:  # one broken page must not sink the document
            log.info("pdf page %d unreadable: %s: %s", index + 1, type(exc).__name__, exc)
            failed, text = failed + 1, ""
        blocks = _lines_to_blocks(text, dehyphenate=True)
        chars += sum(len(b.text) for b in blocks)
        _check_chars(chars, limits)
        pages.append(Page(index + 1, blocks))
    if failed == count and limits.ocr is None:
        raise ExtractionError(MSG_UNREADABLE.format(label="PDF"))
    from lectern.domain.ocr import ocr_pdf_pages

    return ExtractedDocument(ocr_pdf_pages(data, pages, limits), _pdf_title(reader))


# -- Images (OCR) --------------------------------------------------------------------------------------------
def _image_reader(kind: str) -> Callable[[bytes, ExtractionLimits], ExtractedDocument]:
    def read(data: bytes, limits: ExtractionLimits) -> ExtractedDocument:
        from lectern.domain.ocr import ocr_image

        return ExtractedDocument(ocr_image(data, _LABELS[kind], limits))

    read.__name__ = f"_extract_{kind}"
    return read


# -- DOCX ----------------------------------------------------------------------------------------------------
_W_NS = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"  # python-docx's nsmap["w"]


def qn(tag: str) -> str:
    """Clark notation of a `w:` tag, as python-docx's `docx.oxml.ns.qn` (without importing python-docx)."""
    prefix, _, local = tag.partition(":")
    assert prefix == "w", tag
    return f"{{{_W_NS}}}{local}"


_W_P, _W_TBL, _W_TR, _W_TC = qn("w:p"), qn("w:tbl"), qn("w:tr"), qn("w:tc")
_W_T, _W_TAB, _W_BR, _W_CR = qn("w:t"), qn("w:tab"), qn("w:br"), qn("w:cr")
_W_SDT, _W_SDT_CONTENT, _W_CUSTOM_XML = qn("w:sdt"), qn("w:sdtContent"), qn("w:customXml")
_MC_FALLBACK = "{http://schemas.openxmlformats.org/markup-compatibility/2006}Fallback"
_HEADING_STYLE_RE = re.compile(r"^heading\s*([1-9])$", re.IGNORECASE)


def _check_zip(data: bytes, limits: ExtractionLimits) -> None:
    """Refuse a zip bomb before anything is inflated (zipfile stops a member at its declared size)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            total = sum(info.file_size for info in zf.infolist())
    except Exception as exc:
        raise ExtractionError(MSG_INVALID.format(label="DOCX")) from exc
    if total > limits.max_uncompressed_bytes:
        raise ExtractionError(
            f"The DOCX expands to {_human_size(total)} when unpacked; the limit is "
            f"{_human_size(limits.max_uncompressed_bytes)}."
        )
    if total / max(1, len(data)) > limits.max_compression_ratio:
        raise ExtractionError(
            "The DOCX is compressed far more than real documents are (a possible zip bomb), so it was not "
            "opened."
        )


def _inside(node: etree._Element, stop: etree._Element, tags: tuple[str, ...]) -> bool:
    """Whether `node` has an ancestor with one of `tags` below `stop`."""
    for ancestor in node.iterancestors():
        if ancestor is stop:
            return False
        if ancestor.tag in tags:
            return True
    return False


def _docx_text(p: etree._Element) -> str:
    """A paragraph's text, including hyperlinks, tracked insertions and fields, excluding deleted text and the
    fallback copies of text boxes (which Word stores twice)."""
    parts: list[str] = []
    for node in p.iter(_W_T, _W_TAB, _W_BR, _W_CR, _W_P):
        if node is p or _inside(node, p, (_MC_FALLBACK,)):
            continue
        if node.tag == _W_T:
            parts.append(node.text or "")
        else:
            parts.append("\n" if node.tag in (_W_BR, _W_P) else "\t")
    return "".join(parts)


def _docx_style(p: CT_P, styles: dict[str, str]) -> str:
    style_id = p.pPr.style if p.pPr is not None else None
    return styles.get(style_id or "", "")


def _docx_paragraph(p: CT_P, styles: dict[str, str]) -> Block | None:
    text = _docx_text(p)
    style = _docx_style(p, styles)
    heading = _HEADING_STYLE_RE.match(style)
    if heading:
        return _block(text, "heading", int(heading.group(1)))
    if style.lower() == "title":
        return _block(text, "heading", 1)
    numbered = p.pPr is not None and p.pPr.numPr is not None
    bullet = _BULLET_RE.match(text.strip())
    if bullet:  # a bullet typed by hand
        return _block(text.strip()[bullet.end() :], "list")
    if numbered or style.lower().startswith("list"):
        return _block(text, "list")
    return _block(text)


def _docx_cell_text(tc: etree._Element) -> str:
    paragraphs = [p for p in tc.iter(_W_P) if not _inside(p, tc, (_W_P,))]
    return " ".join(_docx_text(p) for p in paragraphs)


def _docx_table(tbl: etree._Element) -> Block | None:
    rows = []
    for tr in tbl.iterchildren(_W_TR):
        rows.append([_docx_cell_text(tc) for tc in tr.iterchildren(_W_TC)])
    return _table_block(rows)


def _docx_body(body: etree._Element) -> Iterator[etree._Element]:
    """Paragraphs and tables of the body in document order, looking inside content controls."""
    stack = list(reversed(body))
    while stack:
        el = stack.pop()
        if el.tag in (_W_P, _W_TBL):
            yield el
        elif el.tag in (_W_SDT, _W_SDT_CONTENT, _W_CUSTOM_XML):
            stack.extend(reversed(el))


def _docx_title(document: DocxDocument) -> str | None:
    # Reading core_properties of a package without them invents a part titled "Word Document": look first.
    from docx.opc.constants import RELATIONSHIP_TYPE

    rels = document.part.package.rels.values()
    if not any(r.reltype == RELATIONSHIP_TYPE.CORE_PROPERTIES for r in rels):
        return None
    return _squash(document.core_properties.title or "") or None


def _extract_docx(data: bytes, limits: ExtractionLimits) -> ExtractedDocument:
    _check_zip(data, limits)
    import docx

    try:
        document = docx.Document(io.BytesIO(data))
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:  # a member's data is damaged
        raise ExtractionError(MSG_INVALID.format(label="DOCX")) from exc
    styles = {s.style_id: s.name or "" for s in document.styles}
    blocks: list[Block | None] = []
    for el in _docx_body(document.element.body):
        blocks.append(_docx_paragraph(el, styles) if el.tag == _W_P else _docx_table(el))
    kept = _keep(blocks)
    title = _docx_title(document)
    if title is None:
        title = next((b.text for b in kept if b.kind == "heading" and b.level == 1), None)
    return ExtractedDocument([Page(1, kept)], title)


def _tags(names: str) -> frozenset[str]:
    return frozenset(names.split())


# -- HTML ----------------------------------------------------------------------------------------------------
_HTML_SKIP = _tags(
    "script style noscript template nav header footer aside form svg iframe object embed canvas select "
    "button head title math audio video ix:header"
)
_HTML_KEEP_IN_ARTICLE = frozenset({"header", "footer"})  # an article's own header holds its title
_HTML_HEADINGS = {f"h{i}": i for i in range(1, 7)}
_HTML_BLOCKS = _tags(
    "address article blockquote body caption center dd details dialog dir div dl dt fieldset figcaption "
    "figure hgroup hr html legend li main menu ol p section summary table tbody td tfoot th thead tr ul"
)
_HTML_VOID = _tags("area base br col embed hr img input link meta param source track wbr")
_HTML_OPTIONAL_END = _tags(
    "p li dt dd tr td th tbody thead tfoot option optgroup colgroup caption rb rt rp html head body"
)
_META_CHARSET_RE = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.IGNORECASE)
_WS_RE = re.compile(r"\s+")
_PARAGRAPH_BREAK_RE = re.compile(r"\n\s*\n")
_TAG_RE = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9:-]*)")
MAX_HTML_DEPTH = 1000
MAX_HTML_PARSE_COST = 100_000_000  # sum of element depths: the HTML parser's work grows with it


def _html_charset(data: bytes) -> str | None:
    match = _META_CHARSET_RE.search(data[:4096])
    if not match:
        return None
    name = match.group(1).decode("ascii").lower()
    if name in ("iso-8859-1", "latin1", "latin-1", "us-ascii", "ascii"):
        return "cp1252"  # as browsers do (WHATWG encoding standard)
    return None if name.startswith(("utf-16", "utf-32")) else name


def _html_is_pathological(text: str) -> bool:
    """Whether the parser would be slow: its work per element grows with nesting depth (100k nested divs take
    about a minute). Estimated from the tags alone, in linear time."""
    depth = max_depth = cost = 0
    for closing, name in _TAG_RE.findall(text):
        name = name.lower()
        if name in _HTML_VOID or name in _HTML_OPTIONAL_END:
            continue
        if closing:
            depth = max(0, depth - 1)
        else:
            depth += 1
            cost += depth
            max_depth = max(max_depth, depth)
    return max_depth > MAX_HTML_DEPTH or cost > MAX_HTML_PARSE_COST


class _HtmlWalker:
    """Walks an HTML tree in document order without recursion, turning it into blocks.

    Text of inline elements is gathered until a block element starts or ends. Headings, <pre> and data tables
    become one block each; layout tables (nested, or a single column) are walked like any other element.
    """

    def __init__(self) -> None:
        self.blocks: list[Block] = []
        self.buffer: list[str] = []
        self.list_depth = 0
        self.article_depth = 0

    def run(self, root: LexborNode) -> list[Block]:
        """The blocks of the children of `root`."""
        children = list(root.iter(include_text=True))
        stack: list[tuple[LexborNode, bool]] = [(c, False) for c in reversed(children)]
        while stack:
            node, leaving = stack.pop()
            if leaving:
                self._leave(node.tag or "")
            elif self._enter(node):
                stack.append((node, True))
                children = list(node.iter(include_text=True))
                stack.extend((child, False) for child in reversed(children))
        self.flush()
        return self.blocks

    def flush(self) -> None:
        for part in _PARAGRAPH_BREAK_RE.split("".join(self.buffer)):
            block = _block(part, "list" if self.list_depth else "paragraph")
            if block is not None:
                self.blocks.append(block)
        self.buffer = []

    def _add(self, block: Block | None) -> None:
        self.flush()
        if block is not None:
            self.blocks.append(block)

    def _skipped(self, node: LexborNode, tag: str) -> bool:
        if tag.startswith("-"):  # comments, doctype
            return True
        if tag in _HTML_SKIP and not (tag in _HTML_KEEP_IN_ARTICLE and self.article_depth):
            return True
        attrs = node.attributes
        style = (attrs.get("style") or "").replace(" ", "").lower()
        return "hidden" in attrs or "display:none" in style

    def _enter(self, node: LexborNode) -> bool:
        """Handle an element's start; True when its children are to be walked."""
        tag = node.tag or ""
        if tag == "-text":
            self.buffer.append(_WS_RE.sub(" ", node.text_content or ""))
            return False
        if self._skipped(node, tag):
            return False
        if tag == "br":  # one line break joins lines, two or more end a paragraph
            self.buffer.append("\n")
            return False
        if tag in _HTML_HEADINGS:
            self._add(_block(_inner_text(node), "heading", _HTML_HEADINGS[tag]))
            return False
        if tag == "pre":
            self._add(_code_block(node.text(deep=True)))
            return False
        if tag == "table" and _is_data_table(node):
            self._add(_html_table(node))
            return False
        if tag in _HTML_BLOCKS:
            self.flush()
        self.list_depth += tag == "li"
        self.article_depth += tag in ("article", "main")
        return True

    def _leave(self, tag: str) -> None:
        if tag in _HTML_BLOCKS:
            self.flush()
        self.list_depth -= tag == "li"
        self.article_depth -= tag in ("article", "main")


def _inner_text(node: LexborNode) -> str:
    return " ".join(b.text for b in _HtmlWalker().run(node))


def _table_rows(table: LexborNode) -> list[list[LexborNode]]:
    return [[c for c in tr.iter() if c.tag in ("td", "th")] for tr in table.css("tr")]


def _is_data_table(table: LexborNode) -> bool:
    """A table of data (rows of several short cells), as opposed to one used for page layout."""
    if len(table.css("table")) > 1:  # css() includes the table itself
        return False
    rows = _table_rows(table)
    if not rows or max(len(r) for r in rows) < 2:
        return False
    return all(len(c.text(deep=True)) <= 500 for r in rows for c in r)


def _html_table(table: LexborNode) -> Block | None:
    return _table_block([_inner_text(c) for c in row] for row in _table_rows(table))


def _strip_elements(text: str, names: Iterable[str]) -> str:
    """Remove <name>...</name> elements and comments in linear time (an unclosed one removes the rest)."""
    lower = text.lower()
    out, pos = [], 0
    opening = re.compile(rf"<({'|'.join(map(re.escape, names))})\b|<!--")
    while (m := opening.search(lower, pos)) is not None:
        out.append(text[pos : m.start()])
        end_marker = "-->" if m.group(0) == "<!--" else f"</{m.group(1)}"
        end = lower.find(end_marker, m.end())
        if end < 0:
            return "".join(out)
        pos = lower.find(">", end)
        pos = len(text) if pos < 0 else pos + 1
    out.append(text[pos:])
    return "".join(out)


def _html_fallback_blocks(text: str) -> list[Block]:
    """Tag stripping for HTML too deeply nested to parse quickly: paragraphs only, no structure."""
    text = _strip_elements(text, ("script", "style", "noscript", "template", "svg", "head"))
    block_tags = "|".join(sorted(_HTML_BLOCKS | set(_HTML_HEADINGS) | {"br", "pre"}))
    # `[^<>]*`, not `[^>]*`: a tag never spans another '<', and "<div<div<div..." stays linear.
    text = re.sub(rf"</?(?:{block_tags})\b[^<>]*>", "\n\n", text, flags=re.IGNORECASE)
    text = html_lib.unescape(re.sub(r"<[^<>]*>", "", text))
    return _keep(_block(part) for part in _PARAGRAPH_BREAK_RE.split(clean_text(text)))


def _extract_html(data: bytes, limits: ExtractionLimits) -> ExtractedDocument:
    text = _decode_declared_text(data, "HTML", _html_charset(data))
    if _html_is_pathological(text):
        log.info("html nested too deeply for the parser; stripping tags instead")
        return ExtractedDocument([Page(1, _html_fallback_blocks(text))])
    tree = LexborHTMLParser(text)
    title_node = tree.css_first("title")
    title = _squash(title_node.text()) if title_node is not None else ""
    root = tree.body or tree.root
    blocks = _HtmlWalker().run(root) if root is not None else []
    return ExtractedDocument([Page(1, blocks)], title or None)


# -- Markdown ------------------------------------------------------------------------------------------------
_MD_FENCE_RE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_MD_ATX_RE = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_MD_SETEXT_RE = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_MD_RULE_RE = re.compile(r"^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$")
_MD_LIST_RE = re.compile(r"^[ \t]*(?:([-*+])|(\d{1,9}[.)]))[ \t]+(.*)$")
_MD_QUOTE_RE = re.compile(r"^ {0,3}>[ \t]?")
_MD_TABLE_SEP_RE = re.compile(r"^[ \t]*\|?[ \t]*:?-+:?[ \t]*(\|[ \t]*:?-+:?[ \t]*)*\|?[ \t]*$")
# Every pattern stops at the next delimiter it could start over from, so a line full of unclosed openers
# ("**x **x ...", "[a](" * n) is read in linear time (the earlier `.+?` / `[^)]*` forms were quadratic: 80 KB
# of "**x " took 17 s).
_MD_INLINE = (
    (re.compile(r"!\[([^\[\]]*)\]\([^()\[\]]*\)"), r"\1"),  # image -> alt text
    (re.compile(r"\[([^\[\]]+)\]\([^()\[\]]*\)"), r"\1"),  # link -> its text
    (re.compile(r"(\*\*|__)(?=\S)((?:(?!\1).)+?)(?<=\S)\1"), r"\2"),  # strong
    (re.compile(r"`([^`]+)`"), r"\1"),  # inline code
)


def _md_inline(text: str) -> str:
    for pattern, repl in _MD_INLINE:
        text = pattern.sub(repl, text)
    return text


def _md_cells(line: str) -> list[str]:
    line = line.strip()
    line = line[1:] if line.startswith("|") else line
    line = line[:-1] if line.endswith("|") and not line.endswith("\\|") else line
    return [_md_inline(c.replace("\\|", "|")) for c in re.split(r"(?<!\\)\|", line)]


class _Markdown:
    """A line-based Markdown reader: ATX and setext headings, fenced code, lists, pipe tables, paragraphs."""

    def __init__(self, text: str) -> None:
        self.lines = clean_text(text).split("\n")
        self.i = 0
        self.blocks: list[Block] = []
        self.para: list[str] = []
        self.kind: BlockKind = "paragraph"

    def parse(self) -> list[Block]:
        self._skip_front_matter()
        while self.i < len(self.lines):
            line = self.lines[self.i]
            self.i += 1
            self._line(line)
        self.flush()
        return self.blocks

    def flush(self) -> None:
        block = _block(_md_inline(" ".join(self.para)), self.kind)
        if block is not None:
            self.blocks.append(block)
        self.para, self.kind = [], "paragraph"

    def _add(self, block: Block | None) -> None:
        self.flush()
        if block is not None:
            self.blocks.append(block)

    def _skip_front_matter(self) -> None:
        if self.lines and self.lines[0].strip() == "---":
            for j in range(1, min(len(self.lines), 100)):
                if self.lines[j].strip() in ("---", "..."):
                    self.i = j + 1
                    return

    def _line(self, line: str) -> None:
        if not line.strip():
            self.flush()
        elif fence := _MD_FENCE_RE.match(line):
            self._add(_code_block(self._fenced(fence.group(1))))
        elif heading := _MD_ATX_RE.match(line):
            self._add(_block(_md_inline(heading.group(2) or ""), "heading", len(heading.group(1))))
        elif self._setext(line):
            pass
        elif _MD_RULE_RE.match(line):
            self.flush()
        elif "|" in line and self.i < len(self.lines) and _MD_TABLE_SEP_RE.match(self.lines[self.i]):
            self._add(self._table(line))
        elif item := _MD_LIST_RE.match(line):
            self.flush()
            self.kind = "list"  # an ordered item keeps its number, a bullet loses its marker
            self.para.append(f"{item.group(2) or ''} {item.group(3)}")
        else:
            self.para.append(_MD_QUOTE_RE.sub("", line))

    def _setext(self, line: str) -> bool:
        """A '===' or '---' underline turns the paragraph above it into a heading."""
        underline = _MD_SETEXT_RE.match(line)
        if not (underline and self.para and self.kind == "paragraph"):
            return False
        text, self.para = " ".join(self.para), []
        self._add(_block(_md_inline(text), "heading", 1 if underline.group(1)[0] == "=" else 2))
        return True

    def _fenced(self, fence: str) -> str:
        body = []
        while self.i < len(self.lines):
            line = self.lines[self.i]
            self.i += 1
            closing = _MD_FENCE_RE.match(line)
            if closing and self._closes(fence, closing.group(1), line):
                break
            body.append(line)
        return "\n".join(body)

    @staticmethod
    def _closes(fence: str, candidate: str, line: str) -> bool:
        same = candidate[0] == fence[0] and len(candidate) >= len(fence)
        return same and not line.strip()[len(candidate) :].strip()

    def _table(self, header: str) -> Block | None:
        rows = [_md_cells(header)]
        self.i += 1  # the separator line
        while self.i < len(self.lines) and "|" in self.lines[self.i] and self.lines[self.i].strip():
            rows.append(_md_cells(self.lines[self.i]))
            self.i += 1
        return _table_block(rows)


def _extract_markdown(data: bytes, limits: ExtractionLimits) -> ExtractedDocument:
    blocks = _Markdown(_decode_declared_text(data, "Markdown")).parse()
    title = next((b.text for b in blocks if b.kind == "heading" and b.level == 1), None)
    return ExtractedDocument([Page(1, blocks)], title)


# -- Plain text ----------------------------------------------------------------------------------------------
def _extract_text(data: bytes, limits: ExtractionLimits) -> ExtractedDocument:
    text = _decode_declared_text(data, "plain text")
    return ExtractedDocument([Page(1, _lines_to_blocks(text, dehyphenate=False))])


# -- Entry point ---------------------------------------------------------------------------------------------
_EXTRACTORS: dict[str, Callable[[bytes, ExtractionLimits], ExtractedDocument]] = {
    "pdf": _extract_pdf,
    "docx": _extract_docx,
    "html": _extract_html,
    "markdown": _extract_markdown,
    "text": _extract_text,
    **{kind: _image_reader(kind) for kind in _IMAGE_KINDS},
}


def _check_chars(chars: int, limits: ExtractionLimits) -> None:
    if chars > limits.max_chars:
        raise ExtractionError(
            f"The document has more than {limits.max_chars:,} characters of text, the limit; split it into "
            "smaller documents."
        )


def _finish(doc: ExtractedDocument, kind: str, limits: ExtractionLimits) -> ExtractedDocument:
    chars = doc.char_count
    if not any(b.text.strip() for p in doc.pages for b in p.blocks):
        if kind in _IMAGE_KINDS:
            raise ExtractionError(MSG_NO_IMAGE_TEXT)
        if kind == "pdf":
            raise ExtractionError(MSG_NO_OCR_TEXT if limits.ocr is not None else MSG_NO_PDF_TEXT)
        raise ExtractionError(MSG_NO_TEXT)
    _check_chars(chars, limits)
    return doc


def extract(
    data: bytes, filename: str, content_type: str | None = None, limits: ExtractionLimits = DEFAULT_LIMITS
) -> ExtractedDocument:
    """Extract the text of an upload as pages of blocks. Raises ExtractionError, and only that, on failure."""
    if len(data) > limits.max_bytes:
        raise ExtractionError(
            f"The file is {_human_size(len(data))}; the limit is {_human_size(limits.max_bytes)}."
        )
    kind = detect_kind(data, filename, content_type)
    try:
        doc = _EXTRACTORS[kind](data, limits)
    except ExtractionError:
        raise
    except Exception as exc:  # a parser's own error: logged in full, reported to the user in plain words
        log.warning("extraction of a %s failed: %s", kind, type(exc).__name__, exc_info=True)
        raise ExtractionError(MSG_UNREADABLE.format(label=_LABELS[kind])) from exc
    return _finish(doc, kind, limits)
