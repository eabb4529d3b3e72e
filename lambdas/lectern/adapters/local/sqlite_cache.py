"""The local answer cache: a table in the index's SQLite database, float32 vectors as BLOBs, exact cosine.

One row per cached answer; the exact tier is a primary-key read, the similarity tier loads the tenant's
vectors of one scope (bounded by `max_entries`) and ranks them in numpy. Entries past `expires_at` are never
returned and are deleted on the next write; beyond `max_entries` per tenant the least recently used go
(`touch` on every hit).
"""

from __future__ import annotations

import json

import numpy as np

from lectern.adapters.local.sqlite_db import SqliteDatabase
from lectern.domain.cache import CacheEntry, best_matches, vector_from_bytes, vector_to_bytes

_SCHEMA = """
CREATE TABLE IF NOT EXISTS answer_cache (
    tenant_id TEXT NOT NULL,
    key TEXT NOT NULL,
    scope TEXT NOT NULL,
    question TEXT NOT NULL,
    vector BLOB,
    answer TEXT NOT NULL,
    sources TEXT NOT NULL,
    created_at REAL NOT NULL,
    last_used REAL NOT NULL,
    expires_at REAL NOT NULL,
    PRIMARY KEY (tenant_id, key)
);
CREATE INDEX IF NOT EXISTS answer_cache_by_scope ON answer_cache (tenant_id, scope);
"""

_COLUMNS = "tenant_id, key, scope, question, vector, answer, sources, created_at, expires_at"
_SELECT_ONE = f"SELECT {_COLUMNS} FROM answer_cache WHERE tenant_id = ? AND key = ? AND expires_at > ?"  # noqa: S608
_INSERT = (
    f"INSERT OR REPLACE INTO answer_cache ({_COLUMNS}, last_used) "  # noqa: S608  (constant column list)
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _entry(row: object) -> CacheEntry:
    r = row  # sqlite3.Row
    return CacheEntry(
        tenant_id=r["tenant_id"],  # type: ignore[index]
        key=r["key"],  # type: ignore[index]
        scope=r["scope"],  # type: ignore[index]
        question=r["question"],  # type: ignore[index]
        vector=vector_from_bytes(r["vector"]) if r["vector"] is not None else None,  # type: ignore[index]
        answer=json.loads(r["answer"]),  # type: ignore[index]
        sources=json.loads(r["sources"]),  # type: ignore[index]
        created_at=float(r["created_at"]),  # type: ignore[index]
        expires_at=float(r["expires_at"]),  # type: ignore[index]
    )


class SqliteAnswerCache:
    def __init__(self, db: SqliteDatabase) -> None:
        self.db = db
        self.db.connection().executescript(_SCHEMA)

    def get(self, tenant_id: str, key: str, *, now: float) -> CacheEntry | None:
        row = (
            self.db.connection()
            .execute(
                _SELECT_ONE,
                (tenant_id, key, now),
            )
            .fetchone()
        )
        return _entry(row) if row is not None else None

    def nearest(
        self,
        tenant_id: str,
        scope: str,
        vector: np.ndarray,
        k: int,
        *,
        now: float,
        min_similarity: float = -1.0,
    ) -> list[tuple[CacheEntry, float]]:
        conn = self.db.connection()
        rows = conn.execute(
            "SELECT key, vector FROM answer_cache WHERE tenant_id = ? AND scope = ? AND expires_at > ? "
            "AND vector IS NOT NULL",
            (tenant_id, scope, now),
        ).fetchall()
        q = np.asarray(vector, dtype=np.float32)
        rows = [r for r in rows if len(r["vector"]) == q.size * 4]  # another embedder's vectors never match
        if not rows:
            return []
        matrix = np.stack([vector_from_bytes(r["vector"]) for r in rows])
        out = []
        for i, sim in best_matches(matrix, q, k):
            if sim < min_similarity:
                break
            entry = self.get(tenant_id, rows[i]["key"], now=now)
            if entry is not None:
                out.append((entry, sim))
        return out

    def put(self, entry: CacheEntry, *, max_entries: int) -> None:
        with self.db.transaction() as conn:
            conn.execute(
                _INSERT,
                (
                    entry.tenant_id,
                    entry.key,
                    entry.scope,
                    entry.question,
                    vector_to_bytes(entry.vector) if entry.vector is not None else None,
                    json.dumps(entry.answer),
                    json.dumps(entry.sources, sort_keys=True),
                    entry.created_at,
                    entry.expires_at,
                    entry.created_at,
                ),
            )
            conn.execute(
                "DELETE FROM answer_cache WHERE tenant_id = ? AND expires_at <= ?",
                (entry.tenant_id, entry.created_at),
            )
            conn.execute(
                "DELETE FROM answer_cache WHERE tenant_id = ? AND key IN (SELECT key FROM answer_cache "
                "WHERE tenant_id = ? ORDER BY last_used DESC, created_at DESC LIMIT -1 OFFSET ?)",
                (entry.tenant_id, entry.tenant_id, max_entries),
            )

    def touch(self, tenant_id: str, key: str, *, now: float) -> None:
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE answer_cache SET last_used = ? WHERE tenant_id = ? AND key = ?", (now, tenant_id, key)
            )

    def delete(self, tenant_id: str, key: str) -> None:
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM answer_cache WHERE tenant_id = ? AND key = ?", (tenant_id, key))

    def count(self, tenant_id: str) -> int:
        row = (
            self.db.connection()
            .execute("SELECT COUNT(*) FROM answer_cache WHERE tenant_id = ?", (tenant_id,))
            .fetchone()
        )
        return int(row[0])

    def clear(self, tenant_id: str) -> int:
        with self.db.transaction() as conn:
            return conn.execute("DELETE FROM answer_cache WHERE tenant_id = ?", (tenant_id,)).rowcount
