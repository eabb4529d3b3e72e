"""API keys in the local SQLite database: only SHA-256 hashes are stored."""

from __future__ import annotations

from lectern.adapters.local.sqlite_db import SqliteDatabase
from lectern.domain.auth import ApiKey
from lectern.domain.clock import utc_now_iso
from lectern.domain.documents import check_tenant

_SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
  key_hash TEXT PRIMARY KEY,
  key_id TEXT NOT NULL,
  tenant_id TEXT NOT NULL,
  name TEXT NOT NULL,
  created_at TEXT NOT NULL,
  revoked INTEGER NOT NULL DEFAULT 0
)
"""


def _row(row: object) -> ApiKey:
    r = dict(row)  # type: ignore[call-overload]
    return ApiKey(r["key_id"], r["tenant_id"], r["name"], r["created_at"], bool(r["revoked"]))


class SqliteApiKeyStore:
    def __init__(self, db: SqliteDatabase) -> None:
        self.db = db
        with self.db.transaction() as conn:
            conn.execute(_SCHEMA)

    def add(self, key_hash: str, tenant_id: str, name: str) -> ApiKey:
        key = ApiKey(key_hash[:8], check_tenant(tenant_id), name[:100], utc_now_iso())
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO api_keys (key_hash, key_id, tenant_id, name, created_at) VALUES (?, ?, ?, ?, ?)",
                (key_hash, key.key_id, key.tenant_id, key.name, key.created_at),
            )
        return key

    def find(self, key_hash: str) -> ApiKey | None:
        row = (
            self.db.connection().execute("SELECT * FROM api_keys WHERE key_hash = ?", (key_hash,)).fetchone()
        )
        return _row(row) if row else None

    def list(self) -> list[ApiKey]:
        rows = self.db.connection().execute("SELECT * FROM api_keys ORDER BY created_at").fetchall()
        return [_row(r) for r in rows]

    def revoke(self, key_id: str) -> bool:
        with self.db.transaction() as conn:
            cur = conn.execute("UPDATE api_keys SET revoked = 1 WHERE key_id = ? AND revoked = 0", (key_id,))
        return cur.rowcount > 0
