"""The AWS `BlobStore`: objects in the documents bucket, encrypted at rest.

Same contract as `adapters.local.file_blobs.FileBlobStore`: keys are made by Lectern from ids only
(`{tenant}/{document_id}/original`, `{tenant}/{document_id}/extracted.json`, ...) and each segment is checked
against the same strict pattern; `get` of a missing key raises KeyError; `delete` of a missing key is a no-op;
a PutObject is atomic (readers see the old object or the new one, never part of one).

The bucket is expected to be versioned: `delete` removes the *current* version, which S3 does by writing a
delete marker; older versions stay until the bucket's lifecycle rule expires noncurrent versions. So a deleted
file is gone for every reader of this store at once, and recoverable by an operator for the lifecycle's grace
period.
https://docs.aws.amazon.com/AmazonS3/latest/userguide/DeletingObjectVersions.html
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from botocore.exceptions import ClientError

from lectern.adapters.aws import clients

_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_MISSING = {"NoSuchKey", "404", "NotFound"}


def check_key(key: str) -> str:
    """Raise ValueError unless every `/`-separated segment is a plain name (as FileBlobStore does)."""
    parts = key.split("/")
    if not parts or any(not _SEGMENT.match(p) or p in {".", ".."} for p in parts):
        raise ValueError(f"invalid blob key {key!r}")
    return key


def check_prefix(prefix: str) -> str:
    """A listing/deletion prefix: whole segments ending in `/` (so `t1/` never matches `t10/...`)."""
    if not prefix.endswith("/"):
        raise ValueError(f"a prefix must end with '/': {prefix!r}")
    check_key(prefix[:-1])
    return prefix


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def sse_args(kms_key_id: str | None) -> dict[str, Any]:
    """PutObject arguments for server-side encryption: SSE-KMS with the given key, else SSE-S3 (AES256)."""
    if kms_key_id:
        return {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": kms_key_id, "BucketKeyEnabled": True}
    return {"ServerSideEncryption": "AES256"}


class S3BlobStore:
    def __init__(self, bucket: str, *, client: Any = None, kms_key_id: str | None = None) -> None:
        self.bucket = bucket
        self.kms_key_id = kms_key_id
        self.client = client or clients.client("s3")

    def put(self, key: str, data: bytes, *, content_type: str = "application/octet-stream") -> None:
        self.client.put_object(
            Bucket=self.bucket,
            Key=check_key(key),
            Body=bytes(data),
            ContentType=content_type,
            **sse_args(self.kms_key_id),
        )

    def get(self, key: str) -> bytes:
        try:
            resp = self.client.get_object(Bucket=self.bucket, Key=check_key(key))
        except ClientError as exc:
            if _code(exc) in _MISSING:
                raise KeyError(key) from exc
            raise
        body = resp["Body"]
        try:
            return body.read()
        finally:
            body.close()

    def delete(self, key: str) -> None:
        """Remove the current version (a delete marker on a versioned bucket); missing keys are fine."""
        self.client.delete_object(Bucket=self.bucket, Key=check_key(key))

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=check_key(key))
        except ClientError as exc:
            if _code(exc) in _MISSING:
                return False
            raise
        return True

    # -- beyond the port: what the ingestion steps and the delete path need ----------------------------------
    def keys(self, prefix: str) -> Iterator[str]:
        """Every current key under `prefix` (which must end with '/'), in key order, across all pages."""
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=check_prefix(prefix)):
            for obj in page.get("Contents", []):
                yield obj["Key"]

    def delete_prefix(self, prefix: str) -> int:
        """Delete every current key under `prefix` (e.g. `{tenant}/{doc}/`), 1000 a call; returns how many."""
        batch: list[str] = []
        deleted = 0
        for key in self.keys(prefix):
            batch.append(key)
            if len(batch) == 1000:
                deleted += self._delete_many(batch)
                batch = []
        if batch:
            deleted += self._delete_many(batch)
        return deleted

    def _delete_many(self, keys: list[str]) -> int:
        resp = self.client.delete_objects(
            Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in keys], "Quiet": True}
        )
        errors = resp.get("Errors", [])
        if errors:
            first = errors[0]
            raise RuntimeError(
                f"S3 refused to delete {len(errors)} of {len(keys)} objects "
                f"(first: {first.get('Key')}: {first.get('Code')})"
            )
        return len(keys)
