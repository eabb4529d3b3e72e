"""The AWS `UploadSigner`: a real S3 presigned POST for exactly one document.

The browser posts the returned `fields` and then `file` as multipart/form-data straight to S3; Lambda never
sees the bytes. The signed POST policy pins the upload to:
- the document's key (`{tenant}/{document_id}/original`, an exact match, not a prefix),
- the Content-Type announced when the slot was requested,
- a size in [1, max_bytes] (`content-length-range`),
- `x-amz-meta-tenant-id` / `x-amz-meta-document-id` (the object carries its owner for the ingestion trigger),
- server-side encryption when configured (`x-amz-server-side-encryption`, plus the KMS key id for aws:kms),
  for buckets whose policy denies unencrypted PutObject,
- an expiry `ttl_s` seconds ahead.
S3 refuses a POST whose fields break any condition, and any form field not named in the policy.
Policy format: https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-HTTPPOSTConstructPolicy.html
SDK call: https://boto3.amazonaws.com/v1/documentation/api/latest/reference/services/s3/client/generate_presigned_post.html
(botocore adds the `bucket` and `key` conditions itself, and the SigV4 credential, date and token fields.)
"""

from __future__ import annotations

from typing import Any

from botocore.config import Config

from lectern.adapters.aws import clients
from lectern.adapters.aws.s3_blobs import check_key
from lectern.domain.documents import UploadSlot

TENANT_META = "x-amz-meta-tenant-id"
DOCUMENT_META = "x-amz-meta-document-id"


def presign_client() -> Any:
    """An S3 client for presigning: SigV4 (botocore still signs POST policies with SigV2 in us-east-1 unless
    told otherwise, and SigV2 is refused by newer regions) and virtual-hosted style, which gives the regional
    URL `https://{bucket}.s3.{region}.amazonaws.com/` instead of the global one (a new bucket outside
    us-east-1 answers the global name with a 307 redirect for up to a day, which breaks browser POSTs).
    With `AWS_ENDPOINT_URL_S3` set to an IP endpoint, botocore falls back to path style by itself."""
    config = clients.client_config().merge(
        Config(signature_version="s3v4", s3={"addressing_style": "virtual"})
    )
    return clients.client("s3", config=config)


class S3PresignedPostSigner:
    def __init__(
        self,
        bucket: str,
        *,
        client: Any = None,
        ttl_s: int = 900,
        sse: str | None = None,
        kms_key_id: str | None = None,
    ) -> None:
        """`sse`: None (the bucket's default encryption applies), "AES256", or "aws:kms" with `kms_key_id`."""
        if sse not in (None, "AES256", "aws:kms"):
            raise ValueError(f"unsupported server-side encryption {sse!r}")
        if kms_key_id and sse != "aws:kms":
            raise ValueError("kms_key_id needs sse='aws:kms'")
        self.bucket = bucket
        self.client = client or presign_client()
        self.ttl_s = ttl_s
        self.sse = sse
        self.kms_key_id = kms_key_id

    def presign(
        self, *, tenant_id: str, document_id: str, key: str, content_type: str, max_bytes: int
    ) -> UploadSlot:
        if max_bytes < 1:
            raise ValueError("max_bytes must be at least 1")
        fields: dict[str, str] = {
            "Content-Type": content_type,
            TENANT_META: tenant_id,
            DOCUMENT_META: document_id,
        }
        if self.sse:
            fields["x-amz-server-side-encryption"] = self.sse
            if self.kms_key_id:
                fields["x-amz-server-side-encryption-aws-kms-key-id"] = self.kms_key_id
        conditions: list[Any] = [{name: value} for name, value in fields.items()]
        conditions.append(["content-length-range", 1, max_bytes])
        post = self.client.generate_presigned_post(
            Bucket=self.bucket,
            Key=check_key(key),
            Fields=fields,
            Conditions=conditions,
            ExpiresIn=self.ttl_s,
        )
        return UploadSlot(url=post["url"], fields={k: str(v) for k, v in post["fields"].items()})
