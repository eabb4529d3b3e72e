"""Model directories to and from S3, uncompressed, one object per file.

SageMaker copies an uncompressed S3 prefix (`ModelDataSource.S3DataSource`, `S3DataType: S3Prefix`,
`CompressionType: None`) to /opt/ml/model file by file and in parallel, which is much faster than unpacking a
model.tar.gz of several GB. Every object under the prefix lands in the model directory, so an upload refuses a
prefix that already holds other objects (a stale shard of an earlier model would be loaded beside the new
ones) unless asked to delete them.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MANIFEST_NAME = "lectern-manifest.json"
_MiB = 1024 * 1024


class S3LocationError(ValueError):
    pass


@dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str  # "" or ending in "/"

    @classmethod
    def parse(cls, uri: str) -> S3Location:
        if not uri.startswith("s3://"):
            raise S3LocationError(f"not an s3:// URI: {uri!r}")
        bucket, _, key = uri[5:].partition("/")
        if not bucket:
            raise S3LocationError(f"no bucket in {uri!r}")
        prefix = key if not key or key.endswith("/") else key + "/"
        return cls(bucket, prefix)

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


def is_s3_uri(value: str) -> bool:
    return value.startswith("s3://")


def _client(client: Any | None) -> Any:
    if client is not None:
        return client
    import boto3

    return boto3.client("s3")


def _transfer_config() -> Any:
    from boto3.s3.transfer import TransferConfig

    return TransferConfig(multipart_threshold=64 * _MiB, multipart_chunksize=64 * _MiB, max_concurrency=8)


def list_keys(location: S3Location, client: Any | None = None) -> Iterator[tuple[str, int]]:
    s3 = _client(client)
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=location.bucket, Prefix=location.prefix):
        for obj in page.get("Contents", []):
            yield obj["Key"], int(obj["Size"])


def download_prefix(uri: str, dest: Path, client: Any | None = None) -> Path:
    """Copy every object under `uri` into `dest`, keeping relative paths; files already there with the same
    size are kept (a rerun after an interruption resumes)."""
    location = S3Location.parse(uri)
    s3 = _client(client)
    dest = Path(dest)
    found = False
    for key, size in list_keys(location, s3):
        rel = key[len(location.prefix) :]
        if not rel or rel.endswith("/"):
            continue
        target = (dest / rel).resolve()
        if dest.resolve() not in target.parents:
            raise S3LocationError(f"refusing key outside the destination: {key!r}")
        found = True
        if target.is_file() and target.stat().st_size == size:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".part")
        s3.download_file(location.bucket, key, str(partial), Config=_transfer_config())
        os.replace(partial, target)
    if not found:
        raise S3LocationError(f"no objects under {location.uri}")
    return dest


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(8 * _MiB), b""):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class UploadResult:
    uri: str
    files: dict[str, dict[str, Any]]  # relative name -> {"bytes", "sha256"}
    deleted: list[str]

    @property
    def total_bytes(self) -> int:
        return sum(int(f["bytes"]) for f in self.files.values())


def upload_dir(
    src: Path,
    uri: str,
    *,
    client: Any | None = None,
    replace: bool = False,
    extra: dict[str, Any] | None = None,
) -> UploadResult:
    """Upload every file of `src` under the prefix `uri` and write a manifest (sizes, sha256) beside them.

    Objects already under the prefix that are not part of `src` make this fail, or are deleted with
    `replace=True`, so the prefix ends up holding exactly this model.
    """
    location = S3Location.parse(uri)
    if not location.prefix:
        raise S3LocationError("upload to a prefix (s3://bucket/models/name/version/), not a bucket's root")
    s3 = _client(client)
    src = Path(src)
    files = {p.relative_to(src).as_posix(): p for p in sorted(src.rglob("*")) if p.is_file()}
    wanted = {location.prefix + rel for rel in files} | {location.prefix + MANIFEST_NAME}
    stale = sorted(key for key, _ in list_keys(location, s3) if key not in wanted)
    if stale and not replace:
        shown = ", ".join(stale[:5]) + (" ..." if len(stale) > 5 else "")
        raise S3LocationError(
            f"{location.uri} already holds {len(stale)} other object(s) ({shown}); SageMaker would load them "
            "too. Use a new prefix (recommended: one per model version) or replace=True to delete them."
        )
    manifest: dict[str, dict[str, Any]] = {}
    config = _transfer_config()
    for rel, path in files.items():
        digest = sha256_file(path)
        s3.upload_file(
            str(path),
            location.bucket,
            location.prefix + rel,
            Config=config,
            ExtraArgs={"Metadata": {"sha256": digest}},
        )
        manifest[rel] = {"bytes": path.stat().st_size, "sha256": digest}
    for key in stale:
        s3.delete_object(Bucket=location.bucket, Key=key)
    body = json.dumps({"files": manifest, **(extra or {})}, indent=2, sort_keys=True).encode()
    s3.put_object(
        Bucket=location.bucket, Key=location.prefix + MANIFEST_NAME, Body=body, ContentType="application/json"
    )
    return UploadResult(location.uri, manifest, stale)
