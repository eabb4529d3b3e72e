"""The S3 presigned POST upload slot.

What crosses real HTTP: a multipart upload (httpx) of the returned fields + file to moto's S3 server on
loopback lands the bytes at the document's key with its Content-Type and owner metadata, readable through
S3BlobStore.

What moto cannot show: moto 5 does not evaluate POST policies at all. Checked against moto 5.2.5 (kept as a
canary test below): a POST with another key, a file larger than the range, or a forged signature is stored all
the same (204). So the refusals are asserted against the signed policy itself, with `s3_post_policy_refusal`
below: an evaluator of the rules in
https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-HTTPPOSTConstructPolicy.html (exact-match and
`eq`/`starts-with` conditions, `content-length-range`, expiration, every form field but `policy`,
`x-amz-signature`, `file` and `x-ignore-*` named in a condition) and the SigV4 POST signature
(https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-post-example.html) recomputed from the fake secret key.
Real S3 enforcement is not exercised here (no AWS account).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from lectern.adapters.aws import clients
from lectern.adapters.aws.s3_blobs import S3BlobStore
from lectern.adapters.aws.s3_uploads import S3PresignedPostSigner
from lectern.domain.documents import blob_key

SECRET = "testing"  # tests/aws/conftest.py's fake AWS_SECRET_ACCESS_KEY
DOC = "0123456789abcdef0123456789abcdef"
KEY = blob_key("acme", DOC)


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def s3_post_policy_refusal(
    fields: dict[str, str], *, file_size: int, bucket: str, secret: str = SECRET, now: datetime | None = None
) -> str | None:
    """Why S3 would refuse this POST (None: it would accept it). `fields`: the form fields, not the file."""
    now = now or datetime.now(UTC)
    policy_b64 = fields.get("policy", "")
    credential = fields.get("x-amz-credential", "")
    _, date, region, service, _ = credential.split("/")
    signing_key = _hmac(
        _hmac(_hmac(_hmac(("AWS4" + secret).encode(), date), region), service), "aws4_request"
    )
    expected = hmac.new(signing_key, policy_b64.encode(), hashlib.sha256).hexdigest()
    if fields.get("x-amz-algorithm") != "AWS4-HMAC-SHA256" or not hmac.compare_digest(
        expected, fields.get("x-amz-signature", "")
    ):
        return "SignatureDoesNotMatch"
    policy = json.loads(base64.b64decode(policy_b64))
    if datetime.fromisoformat(policy["expiration"].replace("Z", "+00:00")) <= now:
        return "Invalid according to Policy: Policy expired"
    values = {k.lower(): v for k, v in fields.items()} | {"bucket": bucket}
    named: set[str] = set()
    for cond in policy["conditions"]:
        if isinstance(cond, dict):
            ((name, want),) = cond.items()
            op = "eq"
        elif cond[0] == "content-length-range":
            if not cond[1] <= file_size <= cond[2]:
                return "EntityTooSmall" if file_size < cond[1] else "EntityTooLarge"
            continue
        else:
            op, name, want = cond[0], cond[1].lstrip("$"), cond[2]
        name = name.lower()
        named.add(name)
        got = values.get(name)
        if got is None or (op == "eq" and got != want) or (op == "starts-with" and not got.startswith(want)):
            return f"Invalid according to Policy: Policy Condition failed: {name}"
    extra = {n for n in values if n not in named and n not in {"policy", "x-amz-signature", "file"}}
    extra = {n for n in extra if not n.startswith("x-ignore-")}
    if extra:
        return f"Invalid according to Policy: Extra input fields: {sorted(extra)}"
    return None


@pytest.fixture
def bucket(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A bucket on moto's server; the production client path reaches it through AWS_ENDPOINT_URL_S3."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_server)
    clients.reset()
    name = "lectern-uploads"
    s3 = clients.client("s3")
    if name not in [b["Name"] for b in s3.list_buckets()["Buckets"]]:
        s3.create_bucket(Bucket=name)
    return name


def presign(bucket: str, max_bytes: int = 100, **kwargs) -> dict:
    signer = S3PresignedPostSigner(bucket, **kwargs)
    slot = signer.presign(
        tenant_id="acme", document_id=DOC, key=KEY, content_type="application/pdf", max_bytes=max_bytes
    )
    return {"url": slot.url, "fields": slot.fields}


def upload(slot: dict, data: bytes, fields: dict | None = None) -> httpx.Response:
    return httpx.post(
        slot["url"],
        data=fields or slot["fields"],
        files={"file": ("report.pdf", data, "application/pdf")},
        timeout=10,
    )


def test_real_multipart_upload_lands_at_the_key(bucket: str, moto_server: str) -> None:
    slot = presign(bucket)
    assert slot["url"].startswith(moto_server)
    resp = upload(slot, b"%PDF-1.7 tiny")
    assert resp.status_code == 204, resp.text
    head = clients.client("s3").head_object(Bucket=bucket, Key=KEY)
    assert head["ContentType"] == "application/pdf"
    assert head["Metadata"] == {"tenant-id": "acme", "document-id": DOC}
    assert S3BlobStore(bucket).get(KEY) == b"%PDF-1.7 tiny"


def test_moto_does_not_enforce_post_policies(bucket: str) -> None:
    """Canary: once a moto upgrade enforces policies, the refusal tests below should go over HTTP too."""
    slot = presign(bucket, max_bytes=5)
    other = f"acme/{'e' * 32}/original"
    forged = slot["fields"] | {"key": other, "x-amz-signature": "0" * 64}
    assert upload(slot, b"far more than five bytes", forged).status_code == 204
    assert S3BlobStore(bucket).exists(other)


def test_the_fields_as_issued_satisfy_their_own_policy(bucket: str) -> None:
    slot = presign(bucket)
    assert s3_post_policy_refusal(slot["fields"], file_size=100, bucket=bucket) is None
    assert s3_post_policy_refusal(slot["fields"], file_size=1, bucket=bucket) is None


def test_policy_pins_key_type_size_owner_and_expiry(bucket: str) -> None:
    before = datetime.now(UTC)
    fields = presign(bucket, max_bytes=4096, ttl_s=600)["fields"]
    policy = json.loads(base64.b64decode(fields["policy"]))
    conds = policy["conditions"]
    assert {"key": KEY} in conds  # exact match, not starts-with
    assert not any(isinstance(c, list) and c[0] == "starts-with" for c in conds)
    assert {"Content-Type": "application/pdf"} in conds
    assert ["content-length-range", 1, 4096] in conds
    assert {"bucket": bucket} in conds
    assert {"x-amz-meta-tenant-id": "acme"} in conds and {"x-amz-meta-document-id": DOC} in conds
    expires = datetime.fromisoformat(policy["expiration"].replace("Z", "+00:00"))
    assert before + timedelta(seconds=590) <= expires <= before + timedelta(seconds=610)
    assert fields["x-amz-algorithm"] == "AWS4-HMAC-SHA256"  # SigV4, not botocore's SigV2 default in us-east-1


@pytest.mark.parametrize(
    ("change", "size", "reason"),
    [
        ({"key": f"acme/{'f' * 32}/original"}, 10, "Condition failed: key"),
        ({"key": f"globex/{DOC}/original"}, 10, "Condition failed: key"),
        ({"Content-Type": "text/html"}, 10, "Condition failed: content-type"),
        ({"x-amz-meta-tenant-id": "globex"}, 10, "Condition failed: x-amz-meta-tenant-id"),
        ({}, 101, "EntityTooLarge"),
        ({}, 0, "EntityTooSmall"),
        ({"acl": "public-read"}, 10, "Extra input fields"),
        ({"success_action_redirect": "https://evil.example/"}, 10, "Extra input fields"),
    ],
)
def test_a_changed_field_or_size_is_refused(bucket: str, change: dict, size: int, reason: str) -> None:
    fields = presign(bucket, max_bytes=100)["fields"] | change
    refusal = s3_post_policy_refusal(fields, file_size=size, bucket=bucket)
    assert refusal is not None and reason in refusal


def test_a_rewritten_policy_breaks_the_signature(bucket: str) -> None:
    fields = presign(bucket, max_bytes=100)["fields"]
    policy = json.loads(base64.b64decode(fields["policy"]))
    policy["conditions"] = [
        c if not (isinstance(c, list) and c[0] == "content-length-range") else [c[0], 1, 10**9]
        for c in policy["conditions"]
    ]
    forged = fields | {"policy": base64.b64encode(json.dumps(policy).encode()).decode()}
    assert s3_post_policy_refusal(forged, file_size=10**6, bucket=bucket) == "SignatureDoesNotMatch"
    assert (
        s3_post_policy_refusal(fields, file_size=10, bucket=bucket, secret="other") == "SignatureDoesNotMatch"
    )


def test_an_expired_slot_is_refused(bucket: str) -> None:
    fields = presign(bucket, ttl_s=60)["fields"]
    later = datetime.now(UTC) + timedelta(seconds=61)
    assert "expired" in (s3_post_policy_refusal(fields, file_size=10, bucket=bucket, now=later) or "")


def test_another_bucket_is_refused(bucket: str) -> None:
    fields = presign(bucket)["fields"]
    assert "bucket" in (s3_post_policy_refusal(fields, file_size=10, bucket="someone-elses") or "")


def test_server_side_encryption_fields_are_signed_when_required(bucket: str) -> None:
    fields = presign(bucket, sse="aws:kms", kms_key_id="arn:aws:kms:us-east-1:111122223333:key/abc")["fields"]
    policy = json.loads(base64.b64decode(fields["policy"]))
    assert fields["x-amz-server-side-encryption"] == "aws:kms"
    assert {"x-amz-server-side-encryption": "aws:kms"} in policy["conditions"]
    assert {
        "x-amz-server-side-encryption-aws-kms-key-id": "arn:aws:kms:us-east-1:111122223333:key/abc"
    } in policy["conditions"]
    assert s3_post_policy_refusal(fields, file_size=10, bucket=bucket) is None
    stripped = {k: v for k, v in fields.items() if not k.startswith("x-amz-server-side-encryption")}
    assert "Condition failed: x-amz-server-side-encryption" in (
        s3_post_policy_refusal(stripped, file_size=10, bucket=bucket) or ""
    )
    plain = presign(bucket)["fields"]
    assert not any(k.startswith("x-amz-server-side-encryption") for k in plain)  # bucket default applies


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        S3PresignedPostSigner("b", sse="aws:kms:dsse", client=object())
    with pytest.raises(ValueError):
        S3PresignedPostSigner("b", kms_key_id="k", client=object())
    signer = S3PresignedPostSigner("b", client=clients.client("s3"))
    with pytest.raises(ValueError):
        signer.presign(tenant_id="acme", document_id=DOC, key="../x", content_type="text/plain", max_bytes=10)
    with pytest.raises(ValueError):
        signer.presign(tenant_id="acme", document_id=DOC, key=KEY, content_type="text/plain", max_bytes=0)


def test_production_url_is_the_regional_virtual_hosted_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without an endpoint override the URL names the bucket's region (no global-name 307 on new buckets)."""
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-2")
    monkeypatch.setenv("AWS_REGION", "eu-west-2")
    clients.reset()
    slot = S3PresignedPostSigner("lectern-docs").presign(
        tenant_id="acme", document_id=DOC, key=KEY, content_type="application/pdf", max_bytes=10
    )
    assert slot.url == "https://lectern-docs.s3.eu-west-2.amazonaws.com/"
    assert "/eu-west-2/s3/aws4_request" in slot.fields["x-amz-credential"]
