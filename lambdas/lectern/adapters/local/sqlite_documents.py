"""The local `DocumentRepository`: document metadata and status in SQLite, with conditional transitions.

Schema migrations are additive and run at open (`_MIGRATIONS`): a data dir made by an older Lectern gains the new
columns with NULL values (documents ingested before `source_path` existed are adopted by `lectern sync` by their
filename, see `domain.sync`).
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Iterator, Sequence
from dataclasses import fields as dc_fields

from lectern.adapters.local.sqlite_db import SqliteDatabase
from lectern.domain.clock import utc_now_iso
from lectern.domain.errors import Conflict, NotFound
from lectern.domain.models import Document, DocumentStatus
from lectern.domain.ports import UPDATABLE_DOCUMENT_FIELDS

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
    source_path TEXT,
    timings TEXT,
    PRIMARY KEY (tenant_id, document_id)
);
CREATE INDEX IF NOT EXISTS documents_by_status ON documents (status);
"""
# (column, definition) added to tables created before the column existed
_MIGRATIONS: list[tuple[str, str]] = [("source_path", "TEXT"), ("timings", "TEXT")]
_INDEXES = "CREATE INDEX IF NOT EXISTS documents_by_source ON documents (tenant_id, source_path);"

_DOC_FIELDS = [f.name for f in dc_fields(Document)]
_UPDATABLE = UPDATABLE_DOCUMENT_FIELDS


def _row_to_doc(row: object) -> Document:
    data = {k: row[k] for k in _DOC_FIELDS}  # type: ignore[index]
    data["status"] = DocumentStatus(data["status"])
    if data["timings"] is not None:
        data["timings"] = json.loads(data["timings"])
    return Document(**data)


def _column_value(name: str, value: object) -> object:
    if name == "status":
        return value.value  # type: ignore[attr-defined]
    if name == "timings" and value is not None:
        return json.dumps(value, sort_keys=True)
    return value


class SqliteDocumentRepository:
    def __init__(self, db: SqliteDatabase) -> None:
        self.db = db
        conn = self.db.connection()
        conn.executescript(_SCHEMA)
        with self.db.transaction() as tx:
            have = {r[1] for r in tx.execute("PRAGMA table_info(documents)").fetchall()}
            for column, definition in _MIGRATIONS:
                if column not in have:
                    tx.execute(f"ALTER TABLE documents ADD COLUMN {column} {definition}")
        conn.executescript(_INDEXES)

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
                [_column_value(f, getattr(doc, f)) for f in _DOC_FIELDS],
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

    def find_by_filename(self, tenant_id: str, filename: str) -> builtins.list[Document]:
        rows = (
            self.db.connection()
            .execute(
                "SELECT * FROM documents WHERE tenant_id = ? AND filename = ? ORDER BY created_at",
                (tenant_id, filename),
            )
            .fetchall()
        )
        return [_row_to_doc(r) for r in rows]

    def find_by_source(self, tenant_id: str, source_path: str) -> builtins.list[Document]:
        """Every document of the tenant with this source path, oldest first."""
        rows = (
            self.db.connection()
            .execute(
                "SELECT * FROM documents WHERE tenant_id = ? AND source_path = ? ORDER BY created_at, document_id",
                (tenant_id, source_path),
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
                [
                    status.value,
                    utc_now_iso(),
                    *(_column_value(k, v) for k, v in fields.items()),
                    tenant_id,
                    document_id,
                ],
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
    def in_status(self, status: DocumentStatus) -> builtins.list[Document]:
        rows = (
            self.db.connection()
            .execute("SELECT * FROM documents WHERE status = ? ORDER BY updated_at", (status.value,))
            .fetchall()
        )
        return [_row_to_doc(r) for r in rows]

    def stale(self, status: DocumentStatus, updated_before: str) -> Iterator[tuple[str, str]]:
        """(tenant, document) in `status` last updated before `updated_before`, across tenants (domain.sweep)."""
        rows = (
            self.db.connection()
            .execute(
                "SELECT tenant_id, document_id FROM documents WHERE status = ? AND updated_at < ?",
                (status.value, updated_before),
            )
            .fetchall()
        )
        for r in rows:
            yield r[0], r[1]

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
