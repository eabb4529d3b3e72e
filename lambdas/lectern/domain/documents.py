"""Documents: upload slots, receiving uploads, listing and deleting. Plain domain code over the ports."""

from __future__ import annotations

import hashlib
import re
import unicodedata
import uuid
from dataclasses import dataclass, field
from typing import Literal, Protocol

from lectern.domain.clock import utc_now_iso
from lectern.domain.errors import (
    Conflict,
    DuplicateDocument,
    NotFound,
    PayloadTooLarge,
    UnsupportedMediaType,
    ValidationFailed,
)
from lectern.domain.formats import FORMATS, SUPPORTED_LIST, by_filename, by_mime, extension_of
from lectern.domain.lifecycle import RECEIVE_UPLOAD
from lectern.domain.models import Document, DocumentStatus
from lectern.domain.ports import BlobStore, DocumentRepository, IngestionTrigger, SearchIndex

# MIME types accepted at the door, and the extensions that go with them (lectern.domain.formats).
ACCEPTED_TYPES: dict[str, tuple[str, ...]] = {mime: f.extensions for f in FORMATS for mime in f.mime_types}
_TENANT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_DOC_ID_RE = re.compile(r"^[0-9a-f]{32}$")
MAX_FILENAME_CHARS = 255
MAX_SOURCE_PATH_CHARS = 1024
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")

OnDuplicate = Literal["replace", "keep_both", "reject"]
ON_DUPLICATE: tuple[str, ...] = ("replace", "keep_both", "reject")


@dataclass(frozen=True)
class UploadSlot:
    url: str
    fields: dict[str, str] = field(default_factory=dict)


class UploadSigner(Protocol):
    """Issues an upload slot shaped like an S3 presigned POST for exactly one key, type and size limit."""

    def presign(
        self, *, tenant_id: str, document_id: str, key: str, content_type: str, max_bytes: int
    ) -> UploadSlot: ...


def blob_key(tenant_id: str, document_id: str) -> str:
    return f"{tenant_id}/{document_id}/original"


def page_image_key(tenant_id: str, document_id: str, page: int) -> str:
    """The page's image, rendered at ingest (lectern.domain.page_images), next to the original; the blob stores
    delete it with the original."""
    return f"{tenant_id}/{document_id}/pages/{page}.png"


def check_tenant(tenant_id: str) -> str:
    if not _TENANT_RE.match(tenant_id):
        raise ValidationFailed("Invalid tenant id.")
    return tenant_id


def check_document_id(document_id: str) -> str:
    if not _DOC_ID_RE.match(document_id):
        raise NotFound(f"Document {document_id[:64]!r} was not found.")
    return document_id


def clean_filename(filename: str) -> str:
    """A display name: the last path component, NFC, control characters removed, at most 255 characters."""
    name = unicodedata.normalize("NFC", filename).replace("\\", "/").split("/")[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C").strip().strip(".")
    if not name:
        raise ValidationFailed("The filename is empty once path and control characters are removed.")
    if len(name) > MAX_FILENAME_CHARS:
        stem, dot, ext = name.rpartition(".")
        ext = ext if dot and len(ext) <= 10 else ""
        name = (stem or name)[: MAX_FILENAME_CHARS - len(ext) - 1] + ("." + ext if ext else "")
    return name


def clean_source_path(source_path: str) -> str:
    """A document's identity within its tenant: NFC, forward slashes, control characters removed."""
    path = unicodedata.normalize("NFC", source_path).replace("\\", "/")
    path = "".join(ch for ch in path if unicodedata.category(ch)[0] != "C").strip()
    if not path:
        raise ValidationFailed("source_path is empty once control characters are removed.")
    if len(path) > MAX_SOURCE_PATH_CHARS:
        raise ValidationFailed(f"source_path is longer than {MAX_SOURCE_PATH_CHARS} characters.")
    return path


def is_older(a: Document, b: Document) -> bool:
    """Whether `a` was created before `b` (ties broken by id, as the repositories order them)."""
    return (a.created_at, a.document_id) < (b.created_at, b.document_id)


def resolve_content_type(filename: str, content_type: str | None) -> str:
    """The MIME type an upload is stored as: the declared one if Lectern reads it, else (no type, or
    application/octet-stream) the canonical type of the file's extension; anything else is refused."""
    declared = (content_type or "").split(";")[0].strip().lower()
    if by_mime(declared) is not None:
        return declared
    fmt = by_filename(filename)
    if declared in ("", "application/octet-stream") and fmt is not None:
        return fmt.mime_type
    raise UnsupportedMediaType(
        f"Unsupported file type {declared or extension_of(filename) or 'unknown'!r}. Supported: {SUPPORTED_LIST}."
    )


class DocumentService:
    def __init__(
        self,
        *,
        documents: DocumentRepository,
        blobs: BlobStore,
        index: SearchIndex,
        trigger: IngestionTrigger,
        signer: UploadSigner,
        max_upload_bytes: int,
        supersede_versions: bool = True,
    ) -> None:
        self.supersede_versions = supersede_versions
        self.documents = documents
        self.blobs = blobs
        self.index = index
        self.trigger = trigger
        self.signer = signer
        self.max_upload_bytes = max_upload_bytes

    def create_upload(
        self,
        tenant_id: str,
        filename: str,
        content_type: str | None,
        size_bytes: int,
        *,
        source_path: str | None = None,
        sha256: str | None = None,
        on_duplicate: OnDuplicate = "replace",
    ) -> tuple[Document, UploadSlot]:
        """A new document in UPLOADING and its upload slot.

        Identity: `source_path` (default: the cleaned filename). When the tenant already has a document of that
        source path that is INDEXED or PROCESSING — or, with `sha256` given, an INDEXED document of that content —
        `on_duplicate` decides: `reject` raises DuplicateDocument (409 `duplicate_document`); `replace` creates the
        new version, which replaces every older document of the source path once it is INDEXED (a version that
        fails leaves the indexed one searchable); `keep_both` gives the new document a source path of its own
        (`name (2)`). A FAILED or never-uploaded older document is no duplicate: the new upload is its retry.
        """
        check_tenant(tenant_id)
        name = clean_filename(filename)
        ctype = resolve_content_type(name, content_type)
        if size_bytes <= 0:
            raise ValidationFailed("size_bytes must be positive: empty files cannot be indexed.")
        if size_bytes > self.max_upload_bytes:
            raise PayloadTooLarge(
                f"The file is {size_bytes:,} bytes; the limit is {self.max_upload_bytes:,} bytes."
            )
        if on_duplicate not in ON_DUPLICATE:
            raise ValidationFailed(f"on_duplicate must be one of {', '.join(ON_DUPLICATE)}.")
        if sha256 is not None and not _SHA256_RE.match(sha256):
            raise ValidationFailed("sha256 must be 64 lowercase hexadecimal characters.")
        key = clean_source_path(source_path) if source_path else name
        key = self._resolve_duplicate(tenant_id, key, sha256, on_duplicate)
        now = utc_now_iso()
        doc = Document(
            tenant_id=tenant_id,
            document_id=uuid.uuid4().hex,
            filename=name,
            content_type=ctype,
            size_bytes=size_bytes,
            status=DocumentStatus.UPLOADING,
            created_at=now,
            updated_at=now,
            source_path=key,
        )
        self.documents.create(doc)
        slot = self.signer.presign(
            tenant_id=tenant_id,
            document_id=doc.document_id,
            key=blob_key(tenant_id, doc.document_id),
            content_type=ctype,
            max_bytes=size_bytes,
        )
        return doc, slot

    def _resolve_duplicate(self, tenant_id: str, key: str, sha256: str | None, on_duplicate: str) -> str:
        live = (DocumentStatus.INDEXED, DocumentStatus.PROCESSING)
        same_path = [d for d in self.documents.find_by_source(tenant_id, key) if d.status in live]
        same_content = (
            [
                d
                for d in self.documents.list(tenant_id)
                if d.sha256 == sha256 and d.status is DocumentStatus.INDEXED
            ]
            if sha256
            else []
        )
        if on_duplicate == "reject" and (same_path or same_content):
            old = (same_path or same_content)[0]
            what = f"a document from {key!r}" if same_path else f"this content (as {old.filename!r})"
            raise DuplicateDocument(
                f"You already have {what}: document {old.document_id} ({old.status.value}). Upload again with "
                "on_duplicate=replace to replace it, or on_duplicate=keep_both to keep both.",
                existing_id=old.document_id,
            )
        if on_duplicate == "keep_both" and same_path:
            taken = {d.source_path for d in self.documents.list(tenant_id)}
            n = 2
            while f"{key} ({n})" in taken:
                n += 1
            return f"{key} ({n})"
        return key

    def replaced_by(self, doc: Document) -> list[str]:
        """The documents `doc` replaces once it is INDEXED (the older ones of its source path)."""
        if not doc.source_path or not self.supersede_versions:
            return []
        return [
            d.document_id
            for d in self.documents.find_by_source(doc.tenant_id, doc.source_path)
            if d.document_id != doc.document_id and is_older(d, doc)
        ]

    def receive_upload(self, tenant_id: str, document_id: str, data: bytes) -> Document:
        """Store the uploaded bytes (atomically) and start ingestion. The local twin of S3 + EventBridge."""
        doc = self.get(tenant_id, document_id)
        if doc.status is DocumentStatus.FAILED and doc.sha256 is None:
            raise Conflict(
                f"The upload slot of document {document_id} expired ({doc.error}) Create a new one."
            )
        if doc.status is not DocumentStatus.UPLOADING:
            raise Conflict(f"Document {document_id} was already uploaded (it is {doc.status.value}).")
        if len(data) > doc.size_bytes or len(data) > self.max_upload_bytes:
            raise PayloadTooLarge(f"The upload is larger than the {doc.size_bytes:,} bytes announced.")
        self.blobs.put(blob_key(tenant_id, document_id), data)
        doc = RECEIVE_UPLOAD.apply(
            self.documents,
            tenant_id,
            document_id,
            size_bytes=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
        )
        self.trigger.start(tenant_id, document_id)
        return doc

    def get(self, tenant_id: str, document_id: str) -> Document:
        check_tenant(tenant_id)
        check_document_id(document_id)
        doc = self.documents.get(tenant_id, document_id)
        if doc is None:
            raise NotFound(f"Document {document_id} was not found.")
        return doc

    def list(self, tenant_id: str) -> list[Document]:
        return self.documents.list(check_tenant(tenant_id))

    def page_image(self, tenant_id: str, document_id: str, page: int) -> bytes:
        """The PNG of one page of the tenant's document, as rendered at ingest (another tenant's is NotFound)."""
        doc = self.get(tenant_id, document_id)
        if doc.status is not DocumentStatus.INDEXED or not 1 <= page <= (doc.pages or 0):
            raise NotFound(f"Document {document_id} has no page {page}.")
        try:
            return self.blobs.get(page_image_key(tenant_id, document_id, page))
        except KeyError as exc:  # a flowing format, a page beyond LECTERN_MAX_PAGE_IMAGES, or ingested before
            raise NotFound(f"Page {page} of document {document_id} has no image; its text is in the passage.") from exc

    def delete(self, tenant_id: str, document_id: str) -> None:
        """Remove metadata first (so an ingestion in flight fails its final transition), then chunks, then file."""
        self.get(tenant_id, document_id)
        remove_document(self.documents, self.index, self.blobs, tenant_id, document_id)


def remove_document(
    documents: DocumentRepository, index: SearchIndex, blobs: BlobStore, tenant_id: str, document_id: str
) -> None:
    """Metadata, then chunks, then the file (a kill between leaves chunks of no document: `SearchIndex` orphans
    are removed by the local recovery, `lectern.local.worker.LocalIngestionWorker.recover`)."""
    documents.delete(tenant_id, document_id)
    index.delete_document(tenant_id, document_id)
    blobs.delete(blob_key(tenant_id, document_id))
