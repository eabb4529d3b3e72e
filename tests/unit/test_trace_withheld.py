"""Traces record whether an answer was withheld and why (the local SQLite query log; DynamoDB in
tests/aws/test_dynamo_queries.py), and an existing lectern.db gains the columns with its traces intact."""

from __future__ import annotations

import sqlite3

from lectern.adapters.local.sqlite_db import SqliteDatabase
from lectern.adapters.local.sqlite_queries import SqliteQueryLog
from lectern.domain.answering import I_DONT_KNOW, WITHHELD_REASONS
from lectern.domain.feedback import QueryTrace
from lectern.domain.models import Answer, Usage

AT = "2026-12-03T10:00:00.000000Z"


def answer(qid: str, withheld: str | None) -> Answer:
    return Answer(
        answer=I_DONT_KNOW if withheld else "It is 4410. [1]",
        citations=[],
        model="qwen",
        usage=Usage(900, 20),
        latency_ms=30,
        prompt_version="answer-v3",
        abstained=withheld is not None,
        query_id=qid,
        withheld=withheld,  # type: ignore[arg-type]
        withheld_reason=WITHHELD_REASONS[withheld] if withheld else "",  # type: ignore[index]
    )


def test_sqlite_trace_records_withheld_and_its_reason(tmp_path):
    db = SqliteDatabase(tmp_path / "lectern.db")
    log = SqliteQueryLog(db)
    log.record(QueryTrace.of("acme", answer("q1", "not_supported"), user_id="u", at=AT))
    log.record(QueryTrace.of("acme", answer("q2", None), user_id="u", at=AT))
    t1, t2 = log.get("acme", "q1"), log.get("acme", "q2")
    assert t1 is not None and t1.withheld == "not_supported" and t1.abstained
    assert t1.withheld_reason == WITHHELD_REASONS["not_supported"]
    assert t2 is not None and t2.withheld is None and t2.withheld_reason is None and not t2.abstained
    assert [t.withheld for t in log.traces("acme", AT, "2027")] == ["not_supported", None]
    db.close()


def test_an_existing_queries_table_gains_the_columns_with_its_rows_intact(tmp_path):
    path = tmp_path / "lectern.db"
    old = sqlite3.connect(path)
    old.executescript(
        """CREATE TABLE queries (tenant_id TEXT NOT NULL, query_id TEXT NOT NULL, created_at TEXT NOT NULL,
        prompt_version TEXT NOT NULL, model TEXT NOT NULL, route TEXT NOT NULL, input_tokens INTEGER NOT NULL,
        output_tokens INTEGER NOT NULL, cost_usd REAL NOT NULL, latency_ms INTEGER NOT NULL,
        cache_hit INTEGER NOT NULL, abstained INTEGER NOT NULL, user_hash TEXT,
        rating TEXT CHECK (rating IN ('up', 'down')), comment TEXT, feedback_at TEXT,
        PRIMARY KEY (tenant_id, query_id));
        INSERT INTO queries VALUES ('acme', 'old', '2026-12-01T00:00:00Z', 'answer-v3', 'qwen', 'default', 1, 2,
        0.0, 3, 0, 1, NULL, 'down', 'wrong', '2026-12-01T00:01:00Z');"""
    )
    old.commit()
    old.close()
    db = SqliteDatabase(path)
    log = SqliteQueryLog(db)
    kept = log.get("acme", "old")
    assert kept is not None and kept.abstained and kept.rating == "down" and kept.comment == "wrong"
    assert kept.withheld is None
    log.record(QueryTrace.of("acme", answer("new", "no_relevant_passages"), user_id=None, at=AT))
    new = log.get("acme", "new")
    assert new is not None and new.withheld == "no_relevant_passages"
    SqliteQueryLog(db)  # opening it again adds nothing twice
    db.close()
