"""The sweep that fails documents stuck UPLOADING/PROCESSING (lectern.domain.sweep), on the DynamoDB
repository in moto: the `status-updated` index query, the conditional update, and the handler."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from moto import mock_aws

from lectern.adapters.aws import clients
from lectern.adapters.aws.dynamo_documents import DynamoDocumentRepository
from lectern.adapters.aws.table import STATUS_INDEX, create_table
from lectern.domain.models import Document, DocumentStatus
from lectern.domain.sweep import StuckDocumentSweeper, StuckLimits

S = DocumentStatus
TABLE = "lectern-sweep"
NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@pytest.fixture
def repo() -> Iterator[DynamoDocumentRepository]:
    with mock_aws():
        create_table(clients.client("dynamodb"), TABLE)
        yield DynamoDocumentRepository(TABLE)


def put(
    repo: DynamoDocumentRepository, tenant: str, status: DocumentStatus, age: timedelta, now: datetime = NOW
) -> str:
    doc_id = uuid.uuid4().hex
    stamp = iso(now - age)
    repo.create(
        Document(
            tenant_id=tenant,
            document_id=doc_id,
            filename="a.pdf",
            content_type="application/pdf",
            size_bytes=10,
            status=status,
            created_at=stamp,
            updated_at=stamp,
        )
    )
    return doc_id


def test_the_index_query_finds_only_old_documents_of_one_status_across_tenants(repo) -> None:
    old = {("acme", put(repo, "acme", S.PROCESSING, timedelta(hours=5))) for _ in range(3)}
    old |= {("initech", put(repo, "initech", S.PROCESSING, timedelta(hours=4)))}
    put(repo, "acme", S.PROCESSING, timedelta(minutes=10))  # young
    put(repo, "acme", S.UPLOADING, timedelta(hours=9))  # another status
    put(repo, "acme", S.INDEXED, timedelta(days=9))
    seen: list[str | None] = []
    query = repo.client.query
    repo.client.query = lambda **kw: (seen.append(kw.get("IndexName")), query(**kw))[1]
    repo.client.scan = lambda **kw: pytest.fail("the sweep must not Scan the table")
    found = set(repo.stale(S.PROCESSING, iso(NOW - timedelta(hours=3))))
    assert found == old
    assert seen == [STATUS_INDEX]  # one Query on the index


def test_the_sweep_fails_stuck_uploads_and_ingestions_with_a_reason_and_leaves_the_rest(repo) -> None:
    stuck_upload = put(repo, "acme", S.UPLOADING, timedelta(hours=4))
    stuck_ingest = put(repo, "initech", S.PROCESSING, timedelta(hours=3, minutes=1))
    running = put(repo, "acme", S.PROCESSING, timedelta(hours=1))
    indexed = put(repo, "acme", S.INDEXED, timedelta(days=30))
    sweeper = StuckDocumentSweeper(repo, repo, StuckLimits(timedelta(hours=3), timedelta(hours=3)))

    swept = sweeper.sweep(NOW)

    assert {(s.tenant_id, s.document_id, s.was) for s in swept} == {
        ("acme", stuck_upload, S.UPLOADING),
        ("initech", stuck_ingest, S.PROCESSING),
    }
    upload = repo.get("acme", stuck_upload)
    assert (
        upload.status is S.FAILED and "upload was not received" in upload.error and "3 hours" in upload.error
    )
    ingest = repo.get("initech", stuck_ingest)
    assert ingest.status is S.FAILED and ingest.error.startswith("Processing did not finish within 3 hours")
    assert repo.get("acme", running).status is S.PROCESSING
    assert repo.get("acme", indexed).status is S.INDEXED
    assert sweeper.sweep(NOW) == []  # nothing left: a second run changes nothing


def test_a_document_that_moved_on_after_the_index_read_is_not_failed(repo) -> None:
    doc_id = put(repo, "acme", S.PROCESSING, timedelta(hours=5))

    class LateIndex:
        """The index still lists the document; meanwhile its ingestion finished."""

        def stale(self, status, updated_before):
            if status is S.PROCESSING:
                repo.update("acme", doc_id, status=S.INDEXED, allowed_from=[S.PROCESSING], chunks=3)
                yield "acme", doc_id

    assert StuckDocumentSweeper(repo, LateIndex()).sweep(NOW + timedelta(hours=5)) == []
    assert repo.get("acme", doc_id).status is S.INDEXED


def test_the_handler_sweeps_with_the_limits_from_its_environment(repo, monkeypatch) -> None:
    from lectern.aws import container
    from lectern.aws.handlers import sweep
    from lectern.aws.settings import AwsSettings

    now = datetime.now(UTC)  # the handler sweeps at the real time
    stuck = put(
        repo, "acme", S.UPLOADING, timedelta(hours=2), now
    )  # past 90 minutes, not the default 3 hours
    young = put(repo, "acme", S.UPLOADING, timedelta(minutes=30), now)
    settings = AwsSettings(
        documents_bucket="lectern-docs",
        table_name=TABLE,
        opensearch_endpoint="https://search.example",
        stuck_uploading_after_minutes=90,
    )
    monkeypatch.setattr(container, "current", lambda: container.AwsLectern(settings))

    class Context:
        function_name, memory_limit_in_mb, aws_request_id = "sweep", 256, "r-1"
        invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:sweep"

    out = sweep.mark_stuck({}, Context())
    assert [f["document_id"] for f in out["failed"]] == [stuck] and out["failed"][0]["was"] == "UPLOADING"
    assert repo.get("acme", stuck).status is S.FAILED and repo.get("acme", young).status is S.UPLOADING


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError):
        StuckLimits(uploading=timedelta(0))
