"""Who is calling: API keys locally (hashed at rest), Cognito JWT claims on AWS. The tenant always comes from the
verified identity, never from the request body.

An API key is `lk_` + 32 random bytes (URL-safe base64). Only its SHA-256 is stored: a leaked database does not leak
usable keys, and a key is shown once, when it is created. Keys are high-entropy random strings, so a plain
(unsalted) SHA-256 is the right hash here — slow password hashes exist for low-entropy secrets.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Protocol

from lectern.domain.errors import Unauthenticated

KEY_PREFIX = "lk_"


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ApiKey:
    key_id: str  # the first 8 hex characters of the hash: safe to show and to log
    tenant_id: str
    name: str
    created_at: str
    revoked: bool = False


class ApiKeyStore(Protocol):
    def add(self, key_hash: str, tenant_id: str, name: str) -> ApiKey: ...
    def find(self, key_hash: str) -> ApiKey | None: ...
    def list(self) -> list[ApiKey]: ...
    def revoke(self, key_id: str) -> bool: ...


def key_from_headers(headers: dict[str, str] | None) -> str | None:
    """`Authorization: Bearer <key>` or `X-Api-Key: <key>` (header names are case-insensitive)."""
    lower = {k.lower(): v for k, v in (headers or {}).items() if isinstance(v, str)}
    auth = lower.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None
    return (lower.get("x-api-key") or "").strip() or None


class ApiKeyAuthenticator:
    def __init__(self, store: ApiKeyStore) -> None:
        self.store = store

    def tenant_for(self, headers: dict[str, str] | None) -> str:
        key = key_from_headers(headers)
        if not key:
            raise Unauthenticated("Sign in: send your API key as 'Authorization: Bearer <key>'.")
        # Looked up by its SHA-256: the comparison happens on hashes of a 256-bit random key, so response timing
        # says nothing useful about the stored value.
        found = self.store.find(hash_key(key))
        if found is None or found.revoked:
            raise Unauthenticated("This API key is not valid (unknown or revoked).")
        return found.tenant_id
