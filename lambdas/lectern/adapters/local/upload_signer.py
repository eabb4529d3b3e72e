"""Local upload slots in the shape of an S3 presigned POST: `{url, fields}` where the fields carry an HMAC policy.

The browser (or CLI) posts `fields` + `file` as multipart/form-data to `url` exactly as it would to S3; Lectern's
upload route checks the signature, the key, the content type and the size before storing anything.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from pathlib import Path

from lectern.domain.documents import UploadSlot
from lectern.domain.errors import PayloadTooLarge, ValidationFailed


def load_or_create_secret(path: Path) -> bytes:
    if path.exists():
        return path.read_bytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_bytes(32)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(secret)
    tmp.chmod(0o600)
    tmp.replace(path)
    return secret


class HmacUploadSigner:
    def __init__(self, secret: bytes, base_url: str, ttl_s: int = 3600) -> None:
        self.secret = secret
        self.base_url = base_url.rstrip("/")
        self.ttl_s = ttl_s

    def _sign(self, policy_b64: str) -> str:
        return hmac.new(self.secret, policy_b64.encode(), hashlib.sha256).hexdigest()

    def presign(
        self, *, tenant_id: str, document_id: str, key: str, content_type: str, max_bytes: int
    ) -> UploadSlot:
        policy = {
            "expiration": int(time.time()) + self.ttl_s,
            "conditions": [
                {"key": key},
                {"Content-Type": content_type},
                ["content-length-range", 1, max_bytes],
            ],
        }
        policy_b64 = base64.b64encode(json.dumps(policy, separators=(",", ":")).encode()).decode()
        return UploadSlot(
            url=f"{self.base_url}/v1/uploads/{document_id}",
            fields={
                "key": key,
                "Content-Type": content_type,
                "policy": policy_b64,
                "x-lectern-signature": self._sign(policy_b64),
            },
        )

    def verify(self, fields: dict[str, str], *, key: str, size: int) -> None:
        """Raise ValidationFailed unless the fields are a valid, unexpired slot for `key` and `size` fits."""
        policy_b64 = fields.get("policy", "")
        if not hmac.compare_digest(self._sign(policy_b64), fields.get("x-lectern-signature", "")):
            raise ValidationFailed("The upload slot's signature is invalid.")
        policy = json.loads(base64.b64decode(policy_b64))
        if policy["expiration"] < time.time():
            raise ValidationFailed("The upload slot has expired; request a new one.")
        conditions = policy["conditions"]
        if fields.get("key") != key or conditions[0]["key"] != key:
            raise ValidationFailed("The upload slot is for another document.")
        if fields.get("Content-Type") != conditions[1]["Content-Type"]:
            raise ValidationFailed("The Content-Type field does not match the upload slot.")
        lo, hi = conditions[2][1], conditions[2][2]
        if size < lo:
            raise ValidationFailed("The uploaded file is empty.")
        if size > hi:
            raise PayloadTooLarge(f"The uploaded file is {size:,} bytes, more than the {hi:,} announced.")
