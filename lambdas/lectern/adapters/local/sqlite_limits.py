"""`LimitCounters` in the local SQLite database: one row per (tenant, counter), incremented in a transaction, so
the CLI and the server (or several server workers) share the same counts. Expired rows are swept lazily."""

from __future__ import annotations

import time

from lectern.adapters.local.sqlite_db import SqliteDatabase

_SCHEMA = """
CREATE TABLE IF NOT EXISTS limit_counters (
  tenant_id TEXT NOT NULL,
  name TEXT NOT NULL,
  value INTEGER NOT NULL,
  expires_at REAL NOT NULL,
  PRIMARY KEY (tenant_id, name)
)
"""


class SqliteLimitCounters:
    def __init__(self, db: SqliteDatabase, clock=time.time) -> None:
        self.db = db
        self.clock = clock
        with self.db.transaction() as conn:
            conn.execute(_SCHEMA)

    def incr(self, tenant_id: str, name: str, amount: int, ttl_s: int) -> int:
        now = self.clock()
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM limit_counters WHERE expires_at < ?", (now,))
            conn.execute(
                "INSERT INTO limit_counters (tenant_id, name, value, expires_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (tenant_id, name) DO UPDATE SET value = value + excluded.value",
                (tenant_id, name, amount, now + ttl_s),
            )
            row = conn.execute(
                "SELECT value FROM limit_counters WHERE tenant_id = ? AND name = ?", (tenant_id, name)
            ).fetchone()
        return int(row["value"])

    def get(self, tenant_id: str, name: str) -> int:
        row = (
            self.db.connection()
            .execute(
                "SELECT value FROM limit_counters WHERE tenant_id = ? AND name = ? AND expires_at >= ?",
                (tenant_id, name, self.clock()),
            )
            .fetchone()
        )
        return int(row["value"]) if row else 0
