"""One behaviour for every `BlobStore`: the local file store and the S3 store (moto) pass the same tests."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from lectern.domain.documents import blob_key
from lectern.domain.ports import BlobStore

BUCKET = "lectern-docs-contract"
DOC = "0123456789abcdef0123456789abcdef"


@pytest.fixture
def moto_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fake credentials, no endpoint overrides, moto intercepting every boto3 call."""
    from moto import mock_aws

    from lectern.adapters.aws import clients

    for key in [k for k in os.environ if k.startswith("AWS_ENDPOINT_URL") or k == "AWS_PROFILE"]:
        monkeypatch.delenv(key)
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(key, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    clients.reset()
    with mock_aws():
        yield
    clients.reset()


@pytest.fixture(params=["local", "s3"])
def blobs(request: pytest.FixtureRequest, tmp_path) -> BlobStore:
    if request.param == "local":
        from lectern.adapters.local.file_blobs import FileBlobStore

        return FileBlobStore(tmp_path / "files")
    request.getfixturevalue("moto_env")
    from lectern.adapters.aws import clients
    from lectern.adapters.aws.s3_blobs import S3BlobStore

    s3 = clients.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    return S3BlobStore(BUCKET)


def test_put_get_exists_delete(blobs: BlobStore) -> None:
    key = blob_key("acme", DOC)
    assert not blobs.exists(key)
    blobs.put(key, b"%PDF-1.7 hello")
    assert blobs.exists(key)
    assert blobs.get(key) == b"%PDF-1.7 hello"
    blobs.delete(key)
    assert not blobs.exists(key)
    with pytest.raises(KeyError):
        blobs.get(key)


def test_overwrite_replaces_the_whole_content(blobs: BlobStore) -> None:
    key = blob_key("acme", DOC)
    blobs.put(key, b"a much longer first version of the file")
    blobs.put(key, b"v2")
    assert blobs.get(key) == b"v2"


def test_missing_key_raises_key_error_naming_the_key_and_delete_is_a_no_op(blobs: BlobStore) -> None:
    key = blob_key("acme", DOC)
    with pytest.raises(KeyError) as info:
        blobs.get(key)
    assert info.value.args == (key,)
    assert blobs.exists(key) is False
    blobs.delete(key)  # no error
    assert blobs.exists(key) is False


@pytest.mark.parametrize(
    "data",
    [bytes(range(256)) * 4, b"", b"\x00" * 10, b"\r\n\r\n--boundary\r\n", os.urandom(300_000)],
    ids=["all-bytes", "empty", "nuls", "crlf", "random-300k"],
)
def test_binary_safe(blobs: BlobStore, data: bytes) -> None:
    key = blob_key("acme", DOC)
    blobs.put(key, data)
    assert blobs.get(key) == data


def test_derived_objects_live_beside_the_original(blobs: BlobStore) -> None:
    keys = [f"acme/{DOC}/original", f"acme/{DOC}/extracted.json", f"acme/{DOC}/chunks.jsonl"]
    for i, key in enumerate(keys):
        blobs.put(key, f"content {i}".encode())
    assert [blobs.get(k) for k in keys] == [b"content 0", b"content 1", b"content 2"]
    blobs.delete(keys[0])
    assert [blobs.exists(k) for k in keys] == [False, True, True]


def test_tenants_are_separate_prefixes(blobs: BlobStore) -> None:
    a, b, c = blob_key("t1", DOC), blob_key("t2", DOC), blob_key("t10", DOC)
    blobs.put(a, b"tenant one")
    blobs.put(b, b"tenant two")
    assert blobs.get(a) == b"tenant one"
    assert blobs.get(b) == b"tenant two"
    assert not blobs.exists(c)
    blobs.delete(a)
    assert not blobs.exists(a)
    assert blobs.get(b) == b"tenant two"


@pytest.mark.parametrize(
    "key",
    ["../etc/passwd", "acme/../other/original", "/acme/x/original", "acme//original", "", ".hidden/x/y"],
)
def test_keys_that_are_not_plain_segments_are_refused(blobs: BlobStore, key: str) -> None:
    with pytest.raises(ValueError):
        blobs.put(key, b"x")
    with pytest.raises(ValueError):
        blobs.get(key)
    with pytest.raises(ValueError):
        blobs.exists(key)
    with pytest.raises(ValueError):
        blobs.delete(key)
