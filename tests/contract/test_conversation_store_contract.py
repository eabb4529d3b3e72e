"""The same conversation-store behaviour on SQLite (local) and DynamoDB (moto): per tenant and owner, turns in
order, list without turns newest first, TTL, max turns, delete — and bad ids leave stored data intact."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lectern.domain.conversations import Conversation, Turn
from lectern.domain.errors import Conflict, NotFound


class Clock:
    def __init__(self, t: float = 1_795_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture(params=["sqlite", "dynamodb"])
def store(request, tmp_path, monkeypatch) -> Iterator[tuple[object, Clock]]:
    clock = Clock()
    if request.param == "sqlite":
        from lectern.adapters.local.sqlite_conversations import SqliteConversationStore
        from lectern.adapters.local.sqlite_db import SqliteDatabase

        db = SqliteDatabase(tmp_path / "c.db")
        yield SqliteConversationStore(db, retention_days=1, clock=clock), clock
        db.close()
        return
    from moto import mock_aws

    for k, v in {"AWS_ACCESS_KEY_ID": "t", "AWS_SECRET_ACCESS_KEY": "t", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(k, v)
    with mock_aws():
        from lectern.adapters.aws import clients
        from lectern.adapters.aws.dynamo_conversations import DynamoConversationStore, create_conversations_table

        clients.reset()
        name = f"c-{uuid.uuid4().hex[:8]}"
        create_conversations_table(clients.client("dynamodb"), name)
        yield DynamoConversationStore(name, retention_days=1, clock=clock), clock
        clients.reset()


def turn(i: int, at: str | None = None) -> Turn:
    return Turn(
        question=f"q{i} – ünïcode?",
        standalone_question=f"standalone q{i}",
        answer=f"answer {i} [1]",
        query_id=f"qid{i}",
        at=at or f"2026-12-03T10:00:0{i}Z",
        abstained=i % 2 == 1,
        rewrite="terms" if i else "none",
        cited=("a.txt", "b.pdf") if i else (),
    )


def conv(tenant: str, owner: str, cid: str, at: str = "2026-12-03T10:00:00Z") -> Conversation:
    return Conversation(tenant, owner, cid, f"title {cid}", at, at)


def test_create_get_append_in_order(store):
    s, _ = store
    s.create(conv("a", "u1", "c1"), turn(0))
    s.append("a", "u1", "c1", turn(1), max_turns=10)
    s.append("a", "u1", "c1", turn(2), max_turns=10)
    got = s.get("a", "u1", "c1")
    assert got is not None and got.turn_count == 3
    assert got.turns == (turn(0), turn(1), turn(2))
    assert got.title == "title c1" and got.updated_at == turn(2).at and got.created_at == "2026-12-03T10:00:00Z"


def test_tenants_and_owners_do_not_see_each_other(store):
    s, _ = store
    s.create(conv("a", "u1", "c1"), turn(0))
    assert s.get("b", "u1", "c1") is None and s.get("a", "u2", "c1") is None
    assert s.list("b", "u1") == [] and s.list("a", "u2") == []
    with pytest.raises(NotFound):
        s.append("b", "u1", "c1", turn(1), max_turns=10)
    with pytest.raises(NotFound):
        s.append("a", "u2", "c1", turn(1), max_turns=10)
    assert s.delete("b", "u1", "c1") is False and s.delete("a", "u2", "c1") is False
    got = s.get("a", "u1", "c1")  # intact after every refused call
    assert got is not None and got.turns == (turn(0),)


def test_list_newest_first_without_turns(store):
    s, _ = store
    s.create(conv("a", "u1", "old"), turn(0, "2026-12-03T09:00:00Z"))
    s.create(conv("a", "u1", "new"), turn(0, "2026-12-03T09:30:00Z"))
    s.append("a", "u1", "old", turn(1, "2026-12-03T11:00:00Z"), max_turns=10)
    listed = s.list("a", "u1")
    assert [c.conversation_id for c in listed] == ["old", "new"]
    assert [c.turn_count for c in listed] == [2, 1] and all(c.turns == () for c in listed)


def test_unknown_and_duplicate(store):
    s, _ = store
    assert s.get("a", "u1", "nope") is None
    with pytest.raises(NotFound):
        s.append("a", "u1", "nope", turn(1), max_turns=10)
    assert s.delete("a", "u1", "nope") is False
    s.create(conv("a", "u1", "c1"), turn(0))
    with pytest.raises(Conflict):
        s.create(conv("a", "u1", "c1"), turn(5))
    got = s.get("a", "u1", "c1")
    assert got is not None and got.turns == (turn(0),)


def test_max_turns_refused_and_history_intact(store):
    s, _ = store
    s.create(conv("a", "u1", "c1"), turn(0))
    s.append("a", "u1", "c1", turn(1), max_turns=2)
    with pytest.raises(Conflict):
        s.append("a", "u1", "c1", turn(2), max_turns=2)
    got = s.get("a", "u1", "c1")
    assert got is not None and got.turns == (turn(0), turn(1))


def test_expires_after_retention_and_each_turn_extends_it(store):
    s, clock = store
    s.create(conv("a", "u1", "c1"), turn(0))
    clock.t += 86400 - 10
    s.append("a", "u1", "c1", turn(1), max_turns=10)  # the last turn moves the expiry
    clock.t += 86400 - 10
    assert s.get("a", "u1", "c1") is not None
    clock.t += 11
    assert s.get("a", "u1", "c1") is None and s.list("a", "u1") == []
    with pytest.raises(NotFound):
        s.append("a", "u1", "c1", turn(2), max_turns=10)


def test_delete(store):
    s, _ = store
    s.create(conv("a", "u1", "c1"), turn(0))
    s.create(conv("a", "u1", "c2"), turn(0))
    assert s.delete("a", "u1", "c1") is True
    assert s.get("a", "u1", "c1") is None and s.delete("a", "u1", "c1") is False
    assert [c.conversation_id for c in s.list("a", "u1")] == ["c2"]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    ops=st.lists(
        st.tuples(st.sampled_from(["t1", "t2"]), st.sampled_from(["u1", "u2"]), st.sampled_from(["x", "y"])),
        min_size=1,
        max_size=8,
    )
)
def test_tenant_isolation_property(store, ops):
    """Whatever turns are written, each (tenant, owner) reads back exactly its own, in order."""
    s, _ = store
    run = uuid.uuid4().hex[:6]  # hypothesis reuses the store: every example gets fresh ids
    expected: dict[tuple[str, str, str], list[Turn]] = {}
    for i, (tenant, owner, cid) in enumerate(ops):
        key = (tenant, owner, f"{cid}{run}")
        t = turn(i % 10)
        if key in expected:
            s.append(*key, t, max_turns=50)
        else:
            s.create(conv(*key), t)
            expected[key] = []
        expected[key].append(t)
    for tenant in ("t1", "t2"):
        for owner in ("u1", "u2"):
            mine = {k[2] for k in expected if k[:2] == (tenant, owner)}
            listed = {c.conversation_id for c in s.list(tenant, owner) if c.conversation_id.endswith(run)}
            assert listed == mine
            for cid in ("x", "y"):
                got = s.get(tenant, owner, f"{cid}{run}")
                want = expected.get((tenant, owner, f"{cid}{run}"))
                assert (got.turns if got else None) == (tuple(want) if want else None)
