"""The local `DocumentRepository`: document metadata and status in SQLite, with conditional transitions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields as dc_fields

from lectern.adapters.local.sqlite_db import SqliteDatabase
from lectern.domain.clock import utc_now_iso
from lectern.domain.errors import Conflict, NotFound
from lectern.domain.models import Document, DocumentStatus

_SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    tenant_id TEXT NOT NULL,
    document_id TEXT NOT NULL,
    filename TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size_bytes INTEGER NOT NULL,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    error TEXT,
    pages INTEGER,
    chunks INTEGER,
    sha256 TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, document_id)
);
CREATE INDEX IF NOT EXISTS documents_by_status ON documents (status);
"""

_DOC_FIELDS = [f.name for f in dc_fields(Document)]
_UPDATABLE = {"error", "pages", "chunks", "sha256", "size_bytes", "content_type", "filename"}


def _row_to_doc(row: object) -> Document:
    data = {k: row[k] for k in _DOC_FIELDS}  # type: ignore[index]
    data["status"] = DocumentStatus(data["status"])
    return Document(**data)


class SqliteDocumentRepository:
    def __init__(self, db: SqliteDatabase) -> None:
        self.db = db
        self.db.connection().executescript(_SCHEMA)

    def create(self, doc: Document) -> None:
        with self.db.transaction() as conn:
            exists = conn.execute(
                "SELECT 1 FROM documents WHERE tenant_id = ? AND document_id = ?",
                (doc.tenant_id, doc.document_id),
            ).fetchone()
            if exists:
                raise Conflict(f"Document {doc.document_id} already exists.")
            cols = ", ".join(_DOC_FIELDS)
            conn.execute(
                f"INSERT INTO documents ({cols}) VALUES ({', '.join('?' * len(_DOC_FIELDS))})",  # noqa: S608
                [getattr(doc, f).value if f == "status" else getattr(doc, f) for f in _DOC_FIELDS],
            )

    def get(self, tenant_id: str, document_id: str) -> Document | None:
        row = (
            self.db.connection()
            .execute(
                "SELECT * FROM documents WHERE tenant_id = ? AND document_id = ?", (tenant_id, document_id)
            )
            .fetchone()
        )
        return _row_to_doc(row) if row else None

    def list(self, tenant_id: str) -> list[Document]:
        rows = (
            self.db.connection()
            .execute(
                "SELECT * FROM documents WHERE tenant_id = ? ORDER BY created_at, document_id", (tenant_id,)
            )
            .fetchall()
        )
        return [_row_to_doc(r) for r in rows]

    def find_by_filename(self, tenant_id: str, filename: str) -> list[Document]:
        rows = (
            self.db.connection()
            .execute(
                "SELECT * FROM documents WHERE tenant_id = ? AND filename = ? ORDER BY created_at",
                (tenant_id, filename),
            )
            .fetchall()
        )
        return [_row_to_doc(r) for r in rows]

    def update(
        self,
        tenant_id: str,
        document_id: str,
        *,
        status: DocumentStatus,
        allowed_from: Sequence[DocumentStatus],
        **fields: object,
    ) -> Document:
        unknown = set(fields) - _UPDATABLE
        if unknown:
            raise ValueError(f"cannot update {sorted(unknown)}")
        with self.db.transaction() as conn:
            row = conn.execute(
                "SELECT status FROM documents WHERE tenant_id = ? AND document_id = ?",
                (tenant_id, document_id),
            ).fetchone()
            if row is None:
                raise NotFound(f"Document {document_id} was not found.")
            current = DocumentStatus(row[0])
            if current not in allowed_from:
                raise Conflict(f"Document {document_id} is {current.value}; it cannot become {status.value}.")
            assignments = ["status = ?", "updated_at = ?"] + [f"{k} = ?" for k in fields]
            conn.execute(
                f"UPDATE documents SET {', '.join(assignments)} WHERE tenant_id = ? AND document_id = ?",  # noqa: S608
                [status.value, utc_now_iso(), *fields.values(), tenant_id, document_id],
            )
        doc = self.get(tenant_id, document_id)
        assert doc is not None
        return doc

    def delete(self, tenant_id: str, document_id: str) -> None:
        with self.db.transaction() as conn:
            conn.execute(
                "DELETE FROM documents WHERE tenant_id = ? AND document_id = ?", (tenant_id, document_id)
            )

    # -- local ingestion queue support ---------------------------------------------------------------------
    def in_status(self, status: DocumentStatus) -> list[Document]:
        rows = (
            self.db.connection()
            .execute("SELECT * FROM documents WHERE status = ? ORDER BY updated_at", (status.value,))
            .fetchall()
        )
        return [_row_to_doc(r) for r in rows]

    def begin_attempt(self, tenant_id: str, document_id: str) -> int:
        """Count a processing attempt durably (so a document that kills the process cannot loop forever)."""
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE documents SET attempts = attempts + 1 WHERE tenant_id = ? AND document_id = ?",
                (tenant_id, document_id),
            )
            row = conn.execute(
                "SELECT attempts FROM documents WHERE tenant_id = ? AND document_id = ?",
                (tenant_id, document_id),
            ).fetchone()
        return int(row[0]) if row else 0
