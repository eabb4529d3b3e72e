"""The local `ConversationStore`: the `conversations` table of lectern.db, one row per conversation with its turns
as JSON (a conversation holds at most `max_turns` short turns). Rows expire `retention_days` after the last turn:
readers skip expired rows and every write deletes the expired rows of that tenant."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from lectern.adapters.local.sqlite_db import SqliteDatabase
from lectern.domain.conversations import Conversation, Turn, turn_of, turn_to_dict
from lectern.domain.errors import Conflict, NotFound

_SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    tenant_id TEXT NOT NULL,
    owner TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    title TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    turn_count INTEGER NOT NULL,
    turns TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, owner, conversation_id)
);
CREATE INDEX IF NOT EXISTS conversations_by_update ON conversations (tenant_id, owner, updated_at);
"""


class SqliteConversationStore:
    def __init__(self, db: SqliteDatabase, *, retention_days: int = 30, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.retention_s = retention_days * 86400
        self.clock = clock
        self.db.connection().executescript(_SCHEMA)

    def _row(self, row: object, *, with_turns: bool) -> Conversation:
        r: dict = dict(row)  # type: ignore[call-overload]
        turns = tuple(turn_of(t) for t in json.loads(r["turns"])) if with_turns else ()
        return Conversation(
            r["tenant_id"],
            r["owner"],
            r["conversation_id"],
            r["title"],
            r["created_at"],
            r["updated_at"],
            turns,
            int(r["turn_count"]),
        )

    def create(self, conversation: Conversation, first_turn: Turn) -> None:
        c = conversation
        now = int(self.clock())
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM conversations WHERE tenant_id = ? AND expires_at <= ?", (c.tenant_id, now))
            cur = conn.execute(
                "INSERT OR IGNORE INTO conversations VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?)",
                (
                    c.tenant_id,
                    c.owner,
                    c.conversation_id,
                    c.title,
                    c.created_at,
                    first_turn.at,
                    json.dumps([turn_to_dict(first_turn)], ensure_ascii=False),
                    now + self.retention_s,
                ),
            )
            if cur.rowcount == 0:
                raise Conflict(f"Conversation {c.conversation_id} already exists.")

    def get(self, tenant_id: str, owner: str, conversation_id: str) -> Conversation | None:
        row = (
            self.db.connection()
            .execute(
                "SELECT * FROM conversations WHERE tenant_id = ? AND owner = ? AND conversation_id = ? "
                "AND expires_at > ?",
                (tenant_id, owner, conversation_id, int(self.clock())),
            )
            .fetchone()
        )
        return self._row(row, with_turns=True) if row else None

    def list(self, tenant_id: str, owner: str) -> list[Conversation]:
        rows = (
            self.db.connection()
            .execute(
                "SELECT tenant_id, owner, conversation_id, title, created_at, updated_at, turn_count, '[]' AS turns "
                "FROM conversations WHERE tenant_id = ? AND owner = ? AND expires_at > ? "
                "ORDER BY updated_at DESC, conversation_id",
                (tenant_id, owner, int(self.clock())),
            )
            .fetchall()
        )
        return [self._row(r, with_turns=False) for r in rows]

    def append(self, tenant_id: str, owner: str, conversation_id: str, turn: Turn, *, max_turns: int) -> None:
        now = int(self.clock())
        with self.db.transaction() as conn:
            row = conn.execute(
                "SELECT turns, turn_count FROM conversations WHERE tenant_id = ? AND owner = ? "
                "AND conversation_id = ? AND expires_at > ?",
                (tenant_id, owner, conversation_id, now),
            ).fetchone()
            if row is None:
                raise NotFound(f"No conversation {conversation_id}.")
            if row["turn_count"] >= max_turns:
                raise Conflict(f"Conversation {conversation_id} has reached {max_turns} turns.")
            turns = [*json.loads(row["turns"]), turn_to_dict(turn)]
            conn.execute(
                "UPDATE conversations SET turns = ?, turn_count = ?, updated_at = ?, expires_at = ? "
                "WHERE tenant_id = ? AND owner = ? AND conversation_id = ?",
                (
                    json.dumps(turns, ensure_ascii=False),
                    len(turns),
                    turn.at,
                    now + self.retention_s,
                    tenant_id,
                    owner,
                    conversation_id,
                ),
            )

    def delete(self, tenant_id: str, owner: str, conversation_id: str) -> bool:
        with self.db.transaction() as conn:
            cur = conn.execute(
                "DELETE FROM conversations WHERE tenant_id = ? AND owner = ? AND conversation_id = ? "
                "AND expires_at > ?",
                (tenant_id, owner, conversation_id, int(self.clock())),
            )
            return cur.rowcount > 0
