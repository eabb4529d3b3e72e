"""Documents: upload slots, receiving uploads, listing and deleting. Plain domain code over the ports."""

from __future__ import annotations

import hashlib
import re
import unicodedata
import uuid
from dataclasses import dataclass, field
from typing import Protocol

from lectern.domain.clock import utc_now_iso
from lectern.domain.errors import Conflict, NotFound, PayloadTooLarge, UnsupportedMediaType, ValidationFailed
from lectern.domain.formats import FORMATS, SUPPORTED_LIST, by_filename, by_mime, extension_of
from lectern.domain.models import Document, DocumentStatus
from lectern.domain.ports import BlobStore, DocumentRepository, IngestionTrigger, SearchIndex

# MIME types accepted at the door, and the extensions that go with them (lectern.domain.formats).
ACCEPTED_TYPES: dict[str, tuple[str, ...]] = {mime: f.extensions for f in FORMATS for mime in f.mime_types}
_TENANT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_DOC_ID_RE = re.compile(r"^[0-9a-f]{32}$")
MAX_FILENAME_CHARS = 255


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
    ) -> None:
        self.documents = documents
        self.blobs = blobs
        self.index = index
        self.trigger = trigger
        self.signer = signer
        self.max_upload_bytes = max_upload_bytes

    def create_upload(
        self, tenant_id: str, filename: str, content_type: str | None, size_bytes: int
    ) -> tuple[Document, UploadSlot]:
        check_tenant(tenant_id)
        name = clean_filename(filename)
        ctype = resolve_content_type(name, content_type)
        if size_bytes <= 0:
            raise ValidationFailed("size_bytes must be positive: empty files cannot be indexed.")
        if size_bytes > self.max_upload_bytes:
            raise PayloadTooLarge(
                f"The file is {size_bytes:,} bytes; the limit is {self.max_upload_bytes:,} bytes."
            )
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

    def receive_upload(self, tenant_id: str, document_id: str, data: bytes) -> Document:
        """Store the uploaded bytes (atomically) and start ingestion. The local twin of S3 + EventBridge."""
        doc = self.get(tenant_id, document_id)
        if doc.status is not DocumentStatus.UPLOADING:
            raise Conflict(f"Document {document_id} was already uploaded (it is {doc.status.value}).")
        if len(data) > doc.size_bytes or len(data) > self.max_upload_bytes:
            raise PayloadTooLarge(f"The upload is larger than the {doc.size_bytes:,} bytes announced.")
        self.blobs.put(blob_key(tenant_id, document_id), data)
        doc = self.documents.update(
            tenant_id,
            document_id,
            status=DocumentStatus.PROCESSING,
            allowed_from=[DocumentStatus.UPLOADING],
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

    def delete(self, tenant_id: str, document_id: str) -> None:
        """Remove metadata first (so an ingestion in flight fails its final transition), then chunks, then file."""
        self.get(tenant_id, document_id)
        self.documents.delete(tenant_id, document_id)
        self.index.delete_document(tenant_id, document_id)
        self.blobs.delete(blob_key(tenant_id, document_id))
