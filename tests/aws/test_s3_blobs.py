"""S3 specifics of the blob store (the shared behaviour is in tests/contract/test_blob_store_contract.py):
encryption at rest, deletes on a versioned bucket, prefix listing and deletion, non-'missing' errors."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from moto import mock_aws

from lectern.adapters.aws import clients
from lectern.adapters.aws.s3_blobs import S3BlobStore

BUCKET = "lectern-docs"
DOC = "0123456789abcdef0123456789abcdef"


@pytest.fixture
def s3() -> Iterator[object]:
    with mock_aws():
        client = clients.client("s3")
        client.create_bucket(Bucket=BUCKET)
        client.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        yield client


def test_put_encrypts_with_sse_s3_by_default(s3) -> None:
    store = S3BlobStore(BUCKET, client=s3)
    store.put(f"acme/{DOC}/original", b"%PDF", content_type="application/pdf")
    head = s3.head_object(Bucket=BUCKET, Key=f"acme/{DOC}/original")
    assert head["ServerSideEncryption"] == "AES256"
    assert head["ContentType"] == "application/pdf"


def test_put_encrypts_with_the_given_kms_key(s3) -> None:
    key_id = clients.client("kms").create_key()["KeyMetadata"]["KeyId"]
    store = S3BlobStore(BUCKET, client=s3, kms_key_id=key_id)
    store.put(f"acme/{DOC}/extracted.json", b"{}")
    head = s3.head_object(Bucket=BUCKET, Key=f"acme/{DOC}/extracted.json")
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"].endswith(key_id)
    assert store.get(f"acme/{DOC}/extracted.json") == b"{}"


def test_delete_on_a_versioned_bucket_leaves_a_delete_marker_and_the_old_version(s3) -> None:
    store = S3BlobStore(BUCKET, client=s3)
    key = f"acme/{DOC}/original"
    store.put(key, b"v1")
    store.delete(key)
    assert not store.exists(key)
    with pytest.raises(KeyError):
        store.get(key)
    versions = s3.list_object_versions(Bucket=BUCKET, Prefix=key)
    assert [m["IsLatest"] for m in versions["DeleteMarkers"]] == [True]
    old = versions["Versions"]
    assert len(old) == 1
    kept = s3.get_object(Bucket=BUCKET, Key=key, VersionId=old[0]["VersionId"])["Body"].read()
    assert kept == b"v1"  # recoverable by an operator until the lifecycle rule expires it


def test_keys_pages_through_and_respects_segment_boundaries(s3) -> None:
    store = S3BlobStore(BUCKET, client=s3)
    names = [
        "original",
        "extracted.json",
        "chunks.jsonl",
        "embeddings/m-384.npz",
        "embeddings/m-384/batch-0.npz",
    ]
    for name in names:
        store.put(f"t1/{DOC}/{name}", b"x")
    store.put(f"t10/{DOC}/original", b"other tenant")

    def small_pages(params, **_):
        params["MaxKeys"] = 2

    s3.meta.events.register("provide-client-params.s3.ListObjectsV2", small_pages)
    assert sorted(store.keys("t1/")) == sorted(f"t1/{DOC}/{n}" for n in names)
    with pytest.raises(ValueError):
        list(store.keys("t1"))  # would also match t10/...
    assert store.delete_prefix(f"t1/{DOC}/") == len(names)
    assert list(store.keys("t1/")) == []
    assert store.get(f"t10/{DOC}/original") == b"other tenant"


def test_delete_prefix_reports_objects_s3_refused_to_delete() -> None:
    client = clients.client("s3")
    store = S3BlobStore(BUCKET, client=client)
    with Stubber(client) as stub:
        stub.add_response(
            "list_objects_v2", {"Contents": [{"Key": "t/d/a"}, {"Key": "t/d/b"}], "IsTruncated": False}
        )
        stub.add_response(
            "delete_objects", {"Errors": [{"Key": "t/d/b", "Code": "AccessDenied", "Message": "no"}]}
        )
        with pytest.raises(RuntimeError, match=r"1 of 2 .*t/d/b: AccessDenied"):
            store.delete_prefix("t/d/")


def test_errors_other_than_a_missing_key_are_not_key_errors(s3) -> None:
    store = S3BlobStore("no-such-bucket", client=s3)
    with pytest.raises(ClientError, match="NoSuchBucket"):
        store.get(f"acme/{DOC}/original")
    with pytest.raises(ClientError, match="NoSuchBucket"):
        store.put(f"acme/{DOC}/original", b"x")


def test_default_client_honours_the_endpoint_variable(
    moto_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No client passed: the production path builds its own; AWS_ENDPOINT_URL_S3 points it at moto."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_server)
    clients.reset()
    clients.client("s3").create_bucket(Bucket="endpoint-check")
    store = S3BlobStore("endpoint-check")
    store.put(f"acme/{DOC}/original", b"over real HTTP")
    assert store.get(f"acme/{DOC}/original") == b"over real HTTP"
    assert store.client.meta.endpoint_url == moto_server
