"""The local `QueryLog`: query traces and their feedback in the `queries` table of lectern.db."""

from __future__ import annotations

from dataclasses import fields as dc_fields

from lectern.adapters.local.sqlite_db import SqliteDatabase
from lectern.domain.errors import NotFound
from lectern.domain.feedback import QueryTrace, Rating

_SCHEMA = """
CREATE TABLE IF NOT EXISTS queries (
    tenant_id TEXT NOT NULL,
    query_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    prompt_version TEXT NOT NULL,
    model TEXT NOT NULL,
    route TEXT NOT NULL,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cost_usd REAL NOT NULL,
    latency_ms INTEGER NOT NULL,
    cache_hit INTEGER NOT NULL,
    abstained INTEGER NOT NULL,
    user_hash TEXT,
    rating TEXT CHECK (rating IN ('up', 'down')),
    comment TEXT,
    feedback_at TEXT,
    withheld TEXT,
    withheld_reason TEXT,
    PRIMARY KEY (tenant_id, query_id)
);
CREATE INDEX IF NOT EXISTS queries_by_time ON queries (tenant_id, created_at);
"""

# columns added after the table was first shipped: added to an existing lectern.db when it is opened
_ADDED_COLUMNS = {"withheld": "TEXT", "withheld_reason": "TEXT"}
_FIELDS = [f.name for f in dc_fields(QueryTrace)]
_BOOLS = {"cache_hit", "abstained"}


def _row_to_trace(row: object) -> QueryTrace:
    data = {k: row[k] for k in _FIELDS}  # type: ignore[index]
    for k in _BOOLS:
        data[k] = bool(data[k])
    return QueryTrace(**data)


class SqliteQueryLog:
    def __init__(self, db: SqliteDatabase) -> None:
        self.db = db
        conn = self.db.connection()
        conn.executescript(_SCHEMA)
        have = {r[1] for r in conn.execute("PRAGMA table_info(queries)").fetchall()}
        missing = [c for c in _ADDED_COLUMNS if c not in have]
        if missing:
            with self.db.transaction() as tx:
                for column in missing:
                    tx.execute(f"ALTER TABLE queries ADD COLUMN {column} {_ADDED_COLUMNS[column]}")

    def record(self, trace: QueryTrace) -> None:
        values = [int(v) if isinstance(v, bool) else v for v in (getattr(trace, f) for f in _FIELDS)]
        with self.db.transaction() as conn:
            conn.execute(
                f"INSERT OR REPLACE INTO queries ({', '.join(_FIELDS)}) "  # noqa: S608 - column names are ours
                f"VALUES ({', '.join('?' * len(_FIELDS))})",
                values,
            )

    def get(self, tenant_id: str, query_id: str) -> QueryTrace | None:
        row = (
            self.db.connection()
            .execute("SELECT * FROM queries WHERE tenant_id = ? AND query_id = ?", (tenant_id, query_id))
            .fetchone()
        )
        return _row_to_trace(row) if row else None

    def add_feedback(self, tenant_id: str, query_id: str, rating: Rating, comment: str | None, at: str) -> QueryTrace:
        with self.db.transaction() as conn:
            cur = conn.execute(
                "UPDATE queries SET rating = ?, comment = ?, feedback_at = ? WHERE tenant_id = ? AND query_id = ?",
                (rating, comment, at, tenant_id, query_id),
            )
            if cur.rowcount == 0:
                raise NotFound(f"No query {query_id} to give feedback on.")
        trace = self.get(tenant_id, query_id)
        assert trace is not None
        return trace

    def traces(self, tenant_id: str, since: str, until: str) -> list[QueryTrace]:
        rows = (
            self.db.connection()
            .execute(
                "SELECT * FROM queries WHERE tenant_id = ? AND created_at >= ? AND created_at < ? "
                "ORDER BY created_at, query_id",
                (tenant_id, since, until),
            )
            .fetchall()
        )
        return [_row_to_trace(r) for r in rows]

    def tenants(self) -> list[str]:
        """Every tenant with a trace (the local report covers all of them)."""
        rows = self.db.connection().execute("SELECT DISTINCT tenant_id FROM queries ORDER BY 1").fetchall()
        return [r[0] for r in rows]
