"""One behaviour for every `DocumentRepository`: SQLite (local) and DynamoDB (under moto) pass the same
tests, and a Hypothesis property drives both with the same random sequences of operations and compares every
outcome."""

from __future__ import annotations

import dataclasses
import itertools
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lectern.domain.errors import Conflict, NotFound
from lectern.domain.models import Document, DocumentStatus
from lectern.domain.ports import DocumentRepository

S = DocumentStatus
TABLE = "lectern-contract"
_ids = itertools.count()


@contextmanager
def moto_dynamodb() -> Iterator[None]:
    """Fake credentials, no endpoint overrides, moto intercepting every boto3 call, one table created."""
    from moto import mock_aws

    from lectern.adapters.aws import clients
    from lectern.adapters.aws.table import create_table

    with pytest.MonkeyPatch.context() as mp:
        for key in [k for k in os.environ if k.startswith("AWS_ENDPOINT_URL") or k == "AWS_PROFILE"]:
            mp.delenv(key)
        for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
            mp.setenv(key, "testing")
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        clients.reset()
        with mock_aws():
            create_table(clients.client("dynamodb"), TABLE)
            yield
        clients.reset()


def make_local(path) -> DocumentRepository:
    from lectern.adapters.local.sqlite_db import SqliteDatabase
    from lectern.adapters.local.sqlite_documents import SqliteDocumentRepository

    return SqliteDocumentRepository(SqliteDatabase(path))


def make_dynamo() -> DocumentRepository:
    from lectern.adapters.aws.dynamo_documents import DynamoDocumentRepository

    return DynamoDocumentRepository(TABLE)


@pytest.fixture(params=["sqlite", "dynamodb"])
def repo(request: pytest.FixtureRequest, tmp_path) -> Iterator[DocumentRepository]:
    if request.param == "sqlite":
        yield make_local(tmp_path / "lectern.db")
    else:
        with moto_dynamodb():
            yield make_dynamo()


def new_doc(tenant: str = "acme", status: DocumentStatus = S.UPLOADING, **over: object) -> Document:
    n = next(_ids)
    base = Document(
        tenant_id=tenant,
        document_id=uuid.uuid4().hex,
        filename=f"file-{n}.pdf",
        content_type="application/pdf",
        size_bytes=1000 + n,
        status=status,
        created_at=f"2026-11-29T10:00:{n % 60:02d}.{n:06d}Z",
        updated_at=f"2026-11-29T10:00:{n % 60:02d}.{n:06d}Z",
    )
    return dataclasses.replace(base, **over)


def test_create_get_round_trips_every_field(repo: DocumentRepository) -> None:
    doc = new_doc(
        filename="Rapport annuel – été 2026 (v2).pdf", error="none yet", pages=7, chunks=0, sha256="ab" * 32
    )
    repo.create(doc)
    assert repo.get(doc.tenant_id, doc.document_id) == doc
    plain = new_doc()
    repo.create(plain)
    got = repo.get(plain.tenant_id, plain.document_id)
    assert got == plain
    assert got is not None and got.error is None and got.pages is None and got.sha256 is None
    assert isinstance(got.size_bytes, int) and type(got.status) is DocumentStatus


def test_source_path_and_timings_round_trip_and_find_by_source(repo: DocumentRepository) -> None:
    a = new_doc(source_path="/docs/a.md", timings={"extract": 12, "chunk": 3, "embed": 140, "index": 9})
    b = new_doc(source_path="/docs/a.md")
    other = new_doc(source_path="/docs/b.md")
    elsewhere = new_doc("globex", source_path="/docs/a.md")
    for d in (b, other, a, elsewhere):
        repo.create(d)
    assert repo.get(a.tenant_id, a.document_id) == a
    assert repo.find_by_source("acme", "/docs/a.md") == [a, b]  # oldest first, this tenant only
    assert repo.find_by_source("acme", "/docs/none.md") == []
    got = repo.update(
        b.tenant_id,
        b.document_id,
        status=S.UPLOADING,
        allowed_from=[S.UPLOADING],
        timings={"extract": 1},
        source_path="/docs/c.md",
    )
    assert (got.timings, got.source_path) == ({"extract": 1}, "/docs/c.md")
    assert repo.find_by_source("acme", "/docs/a.md") == [a]


def test_create_twice_is_a_conflict(repo: DocumentRepository) -> None:
    doc = new_doc()
    repo.create(doc)
    with pytest.raises(Conflict):
        repo.create(dataclasses.replace(doc, filename="other.pdf"))
    assert repo.get(doc.tenant_id, doc.document_id) == doc


def test_get_missing_is_none(repo: DocumentRepository) -> None:
    assert repo.get("acme", uuid.uuid4().hex) is None


def test_list_returns_only_the_tenants_documents_in_creation_order(repo: DocumentRepository) -> None:
    mine = [new_doc("acme") for _ in range(4)]
    theirs = [new_doc("globex") for _ in range(3)]
    for doc in [mine[2], theirs[0], mine[0], theirs[1], mine[3], mine[1], theirs[2]]:
        repo.create(doc)
    assert repo.list("acme") == mine
    assert repo.list("globex") == theirs
    assert repo.list("initech") == []


def test_tenant_isolation_same_document_id(repo: DocumentRepository) -> None:
    a = new_doc("acme")
    b = dataclasses.replace(a, tenant_id="globex", filename="theirs.pdf")
    repo.create(a)
    repo.create(b)  # the same id in another tenant is another document
    repo.update("acme", a.document_id, status=S.PROCESSING, allowed_from=[S.UPLOADING], sha256="1" * 64)
    assert repo.get("globex", a.document_id) == b
    repo.delete("globex", a.document_id)
    got = repo.get("acme", a.document_id)
    assert got is not None and got.status is S.PROCESSING
    with pytest.raises(NotFound):
        repo.update("globex", a.document_id, status=S.PROCESSING, allowed_from=list(S))


def test_allowed_update_moves_status_sets_fields_and_touches_updated_at(repo: DocumentRepository) -> None:
    doc = new_doc()
    repo.create(doc)
    got = repo.update(
        doc.tenant_id,
        doc.document_id,
        status=S.PROCESSING,
        allowed_from=[S.UPLOADING],
        size_bytes=2048,
        sha256="f" * 64,
    )
    assert got.status is S.PROCESSING
    assert (got.size_bytes, got.sha256) == (2048, "f" * 64)
    assert got.updated_at > doc.updated_at and got.created_at == doc.created_at
    assert repo.get(doc.tenant_id, doc.document_id) == got
    done = repo.update(
        doc.tenant_id, doc.document_id, status=S.INDEXED, allowed_from=[S.PROCESSING], pages=3, chunks=12
    )
    assert (done.status, done.pages, done.chunks, done.sha256) == (S.INDEXED, 3, 12, "f" * 64)


def test_refused_update_is_a_conflict_and_changes_nothing(repo: DocumentRepository) -> None:
    doc = new_doc(status=S.PROCESSING)
    repo.create(doc)
    with pytest.raises(Conflict):
        repo.update(doc.tenant_id, doc.document_id, status=S.INDEXED, allowed_from=[S.UPLOADING], chunks=99)
    assert repo.get(doc.tenant_id, doc.document_id) == doc


def test_late_or_repeated_event_cannot_move_indexed_backwards(repo: DocumentRepository) -> None:
    doc = new_doc()
    repo.create(doc)
    repo.update(doc.tenant_id, doc.document_id, status=S.PROCESSING, allowed_from=[S.UPLOADING])
    indexed = repo.update(
        doc.tenant_id, doc.document_id, status=S.INDEXED, allowed_from=[S.PROCESSING], chunks=5
    )
    # the upload event delivered a second time, then a late failure of an earlier attempt
    with pytest.raises(Conflict):
        repo.update(doc.tenant_id, doc.document_id, status=S.PROCESSING, allowed_from=[S.UPLOADING])
    with pytest.raises(Conflict):
        repo.update(
            doc.tenant_id, doc.document_id, status=S.FAILED, allowed_from=[S.PROCESSING], error="late"
        )
    assert repo.get(doc.tenant_id, doc.document_id) == indexed


def test_none_clears_a_field(repo: DocumentRepository) -> None:
    doc = new_doc(status=S.FAILED, error="The PDF is encrypted.")
    repo.create(doc)
    got = repo.update(
        doc.tenant_id, doc.document_id, status=S.PROCESSING, allowed_from=[S.FAILED], error=None
    )
    assert got.error is None
    assert repo.get(doc.tenant_id, doc.document_id) == got


def test_unknown_fields_are_refused_before_anything_is_written(repo: DocumentRepository) -> None:
    doc = new_doc()
    repo.create(doc)
    for field in ("tenant_id", "created_at", "status", "evil"):
        with pytest.raises((ValueError, TypeError)):
            repo.update(
                doc.tenant_id, doc.document_id, status=S.INDEXED, allowed_from=list(S), **{field: "x"}
            )
    assert repo.get(doc.tenant_id, doc.document_id) == doc


def test_empty_allowed_from_refuses(repo: DocumentRepository) -> None:
    doc = new_doc()
    repo.create(doc)
    with pytest.raises(Conflict):
        repo.update(doc.tenant_id, doc.document_id, status=S.PROCESSING, allowed_from=[])
    with pytest.raises(NotFound):
        repo.update(doc.tenant_id, uuid.uuid4().hex, status=S.PROCESSING, allowed_from=[])


def test_not_found_after_delete_and_delete_is_idempotent(repo: DocumentRepository) -> None:
    doc = new_doc()
    repo.create(doc)
    repo.delete(doc.tenant_id, doc.document_id)
    assert repo.get(doc.tenant_id, doc.document_id) is None
    assert repo.list(doc.tenant_id) == []
    with pytest.raises(NotFound):
        repo.update(doc.tenant_id, doc.document_id, status=S.INDEXED, allowed_from=[S.PROCESSING])
    repo.delete(doc.tenant_id, doc.document_id)  # no error
    repo.create(doc)  # the id can be used again
    assert repo.get(doc.tenant_id, doc.document_id) == doc


def test_begin_attempt_counts_durably(repo) -> None:
    doc = new_doc(status=S.PROCESSING)
    repo.create(doc)
    assert [repo.begin_attempt(doc.tenant_id, doc.document_id) for _ in range(3)] == [1, 2, 3]
    assert repo.begin_attempt(doc.tenant_id, uuid.uuid4().hex) == 0
    assert repo.get(doc.tenant_id, doc.document_id) == doc  # attempts is not a Document field


# -- the property: same operations, same outcomes ---------------------------------------------------------
statuses = st.sampled_from(list(S))
field_values = st.fixed_dictionaries(
    {},
    optional={
        "error": st.none() | st.text(max_size=40),
        "pages": st.none() | st.integers(0, 10_000),
        "chunks": st.none() | st.integers(0, 10_000),
        "sha256": st.none() | st.text("0123456789abcdef", min_size=64, max_size=64),
        "size_bytes": st.integers(1, 2**40),
    },
)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("update"), statuses, st.lists(statuses, max_size=4), field_values),
        st.tuples(st.just("delete")),
        st.tuples(st.just("create"), statuses),
        st.tuples(st.just("get")),
        st.tuples(st.just("list")),
    ),
    min_size=1,
    max_size=12,
)


@pytest.fixture(scope="module")
def both(tmp_path_factory) -> Iterator[tuple[DocumentRepository, DocumentRepository]]:
    with moto_dynamodb():
        yield make_local(tmp_path_factory.mktemp("prop") / "lectern.db"), make_dynamo()


def _outcome(repo: DocumentRepository, op: tuple, tenant: str, template: Document) -> object:
    try:
        if op[0] == "update":
            _, status, allowed, fields = op
            result: object = repo.update(
                tenant, template.document_id, status=status, allowed_from=allowed, **fields
            )
        elif op[0] == "delete":
            result = repo.delete(tenant, template.document_id)
        elif op[0] == "create":
            result = repo.create(dataclasses.replace(template, status=op[1]))
        elif op[0] == "get":
            result = repo.get(tenant, template.document_id)
        else:
            result = repo.list(tenant)
    except (Conflict, NotFound) as exc:
        return type(exc).__name__
    # updated_at is the adapter's own clock: compare everything else
    if isinstance(result, Document):
        return dataclasses.replace(result, updated_at="")
    if isinstance(result, list):
        return [dataclasses.replace(d, updated_at="") for d in result]
    return result


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(initial=statuses, ops=operations)
def test_random_transition_sequences_agree(both, initial: DocumentStatus, ops: list[tuple]) -> None:
    local, dynamo = both
    tenant = (
        "t" + uuid.uuid4().hex[:12]
    )  # a fresh tenant per example: list() sees only this example's document
    template = new_doc(tenant, initial)
    local.create(template)
    dynamo.create(template)
    for op in ops:
        assert _outcome(local, op, tenant, template) == _outcome(dynamo, op, tenant, template), op
    assert _outcome(local, ("get",), tenant, template) == _outcome(dynamo, ("get",), tenant, template)
