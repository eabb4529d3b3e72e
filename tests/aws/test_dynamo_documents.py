"""DynamoDB specifics of the document repository and the single-table helpers (the shared behaviour is in
tests/contract/test_document_repository_contract.py): the stored item layout, one conditional UpdateItem per
transition, Query (never Scan) across pages, errors that are not conditional failures, the table itself."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from decimal import Decimal

import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from moto import mock_aws

from lectern.adapters.aws import clients
from lectern.adapters.aws.dynamo_documents import DynamoDocumentRepository
from lectern.adapters.aws.table import (
    ATTRIBUTE_DEFINITIONS,
    KEY_SCHEMA,
    TTL_ATTRIBUTE,
    create_table,
    deserialize_item,
    document_key,
    expired,
    serialize_item,
    tenant_pk,
    ttl_in,
)
from lectern.domain.errors import Conflict, NotFound
from lectern.domain.models import Document, DocumentStatus

S = DocumentStatus
TABLE = "lectern-test"


@pytest.fixture
def ddb() -> Iterator[object]:
    with mock_aws():
        client = clients.client("dynamodb")
        create_table(client, TABLE)
        yield client


def doc(tenant: str = "acme", status: DocumentStatus = S.UPLOADING, n: int = 0) -> Document:
    return Document(
        tenant_id=tenant,
        document_id=uuid.uuid4().hex,
        filename="a.pdf",
        content_type="application/pdf",
        size_bytes=10,
        status=status,
        created_at=f"2026-11-29T10:00:00.{n:06d}Z",
        updated_at=f"2026-11-29T10:00:00.{n:06d}Z",
    )


def record_calls(client) -> list[str]:
    calls: list[str] = []
    client.meta.events.register("before-call.dynamodb.*", lambda model, **_: calls.append(model.name))
    return calls


def test_item_layout_single_table_keys(ddb) -> None:
    repo = DynamoDocumentRepository(TABLE, client_or_resource=ddb)
    d = doc()
    repo.create(d)
    item = deserialize_item(ddb.get_item(TableName=TABLE, Key=document_key("acme", d.document_id))["Item"])
    assert item["pk"] == "TENANT#acme"
    assert item["sk"] == f"DOC#{d.document_id}"
    assert item["type"] == "DOCUMENT"
    assert item["status"] == "UPLOADING" and item["attempts"] == 0 and item["size_bytes"] == 10
    assert "error" not in item and "pages" not in item  # None is stored as absent


def test_transition_is_one_conditional_update_item(ddb) -> None:
    repo = DynamoDocumentRepository(TABLE, client_or_resource=ddb)
    d = doc()
    repo.create(d)
    calls = record_calls(ddb)
    repo.update("acme", d.document_id, status=S.PROCESSING, allowed_from=[S.UPLOADING], sha256="a" * 64)
    assert calls == ["UpdateItem"]
    calls.clear()
    with pytest.raises(Conflict, match="PROCESSING"):
        repo.update("acme", d.document_id, status=S.PROCESSING, allowed_from=[S.UPLOADING])
    assert calls == ["UpdateItem"]  # the refused item came back with the failure: no second read
    calls.clear()
    with pytest.raises(NotFound):
        repo.update("acme", uuid.uuid4().hex, status=S.PROCESSING, allowed_from=[S.UPLOADING])
    assert calls == ["UpdateItem", "GetItem"]  # no item came back: one consistent read confirms it is gone


def test_refused_update_without_returned_item_reads_once_to_tell_conflict_from_not_found() -> None:
    """Fakes or older endpoints may not return the old item with the failure: the repository then reads it."""
    client = clients.client("dynamodb")
    repo = DynamoDocumentRepository(TABLE, client_or_resource=client)
    d = doc(status=S.INDEXED)
    stored = serialize_item(
        {"pk": tenant_pk("acme"), "sk": f"DOC#{d.document_id}", **d.__dict__, "status": "INDEXED"}
    )
    with Stubber(client) as stub:
        stub.add_client_error("update_item", "ConditionalCheckFailedException", http_status_code=400)
        stub.add_response("get_item", {"Item": stored})
        stub.add_client_error("update_item", "ConditionalCheckFailedException", http_status_code=400)
        stub.add_response("get_item", {})
        with pytest.raises(Conflict, match="INDEXED"):
            repo.update("acme", d.document_id, status=S.PROCESSING, allowed_from=[S.UPLOADING])
        with pytest.raises(NotFound):
            repo.update("acme", d.document_id, status=S.PROCESSING, allowed_from=[S.UPLOADING])
        stub.assert_no_pending_responses()


def test_other_errors_are_not_mistaken_for_conflicts() -> None:
    client = clients.client("dynamodb")
    repo = DynamoDocumentRepository(TABLE, client_or_resource=client)
    with Stubber(client) as stub:
        stub.add_client_error("update_item", "ProvisionedThroughputExceededException", http_status_code=400)
        stub.add_client_error("put_item", "ResourceNotFoundException", http_status_code=400)
        with pytest.raises(ClientError, match="ProvisionedThroughputExceeded"):
            repo.update("acme", "a" * 32, status=S.PROCESSING, allowed_from=[S.UPLOADING])
        with pytest.raises(ClientError, match="ResourceNotFound"):
            repo.create(doc())


def test_list_is_a_paginated_query_never_a_scan(ddb) -> None:
    repo = DynamoDocumentRepository(TABLE, client_or_resource=ddb)
    docs = [doc(n=i) for i in range(5)]
    for d in reversed(docs):
        repo.create(d)
    repo.create(doc("other"))
    # other item types in the same partition must not be read as documents
    ddb.put_item(
        TableName=TABLE, Item=serialize_item({"pk": "TENANT#acme", "sk": "CACHE#abc", "ttl": ttl_in(60)})
    )

    def small_pages(params, **_):
        params["Limit"] = 2  # force DynamoDB to page (it does past 1 MB in production)

    ddb.meta.events.register("provide-client-params.dynamodb.Query", small_pages)
    calls = record_calls(ddb)
    assert repo.list("acme") == docs
    assert calls == ["Query", "Query", "Query"]


def test_numbers_and_floats_round_trip_without_decimal() -> None:
    item = serialize_item(
        {"i": 3, "f": 0.1, "big": 2**53 + 1, "b": True, "none": None, "l": [1, 2.5], "m": {"x": 1}}
    )
    assert "none" not in item
    assert item["f"] == {"N": "0.1"}
    back = deserialize_item(item)
    assert back == {"i": 3, "f": 0.1, "big": 2**53 + 1, "b": True, "l": [1, 2.5], "m": {"x": 1}}
    assert type(back["i"]) is int and type(back["f"]) is float
    assert not any(isinstance(v, Decimal) for v in back.values())
    with pytest.raises(ValueError):
        serialize_item({"nan": float("nan")})


def test_accepts_a_resource(ddb) -> None:
    import boto3

    resource = boto3.resource("dynamodb", region_name="us-east-1")
    repo = DynamoDocumentRepository(TABLE, client_or_resource=resource)
    d = doc()
    repo.create(d)
    assert repo.get("acme", d.document_id) == d


def test_default_client_honours_the_endpoint_variable(
    moto_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No client passed: the production path builds its own; AWS_ENDPOINT_URL_DYNAMODB points it at moto."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", moto_server)
    clients.reset()
    name = f"t-{uuid.uuid4().hex[:8]}"
    create_table(clients.client("dynamodb"), name)
    repo = DynamoDocumentRepository(name)
    d = doc()
    repo.create(d)
    assert repo.get("acme", d.document_id) == d
    assert repo.client.meta.endpoint_url == moto_server


def test_create_table_matches_the_key_design(ddb) -> None:
    desc = ddb.describe_table(TableName=TABLE)["Table"]
    assert desc["KeySchema"] == KEY_SCHEMA
    assert sorted(desc["AttributeDefinitions"], key=lambda a: a["AttributeName"]) == ATTRIBUTE_DEFINITIONS
    assert desc["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    ttl = ddb.describe_time_to_live(TableName=TABLE)["TimeToLiveDescription"]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": TTL_ATTRIBUTE}


def test_keys_cannot_be_forged_across_item_types() -> None:
    for bad in ("", "a#b", "x#DOC#y"):
        with pytest.raises(ValueError):
            tenant_pk(bad)
        with pytest.raises(ValueError):
            document_key("acme", bad)


def test_ttl_helpers() -> None:
    assert ttl_in(60, now=1_000.4) == 1_060
    assert expired({"ttl": 1_000}, now=1_000.0)
    assert not expired({"ttl": 1_001}, now=1_000.0)
    assert not expired({}, now=1_000.0)
