"""Local API keys: stored only as hashes, resolved to their tenant, revocable; headers parsed strictly."""

from __future__ import annotations

import sqlite3

import pytest

from lectern.adapters.local.sqlite_db import SqliteDatabase
from lectern.adapters.local.sqlite_keys import SqliteApiKeyStore
from lectern.domain.auth import ApiKeyAuthenticator, hash_key, key_from_headers, new_key
from lectern.domain.errors import Unauthenticated, ValidationFailed


@pytest.fixture
def store(tmp_path):
    db = SqliteDatabase(tmp_path / "k.db")
    yield SqliteApiKeyStore(db), tmp_path / "k.db"
    db.close()


def test_keys_resolve_to_their_tenant_and_only_hashes_are_stored(store):
    keys, path = store
    key_a, key_b = new_key(), new_key()
    keys.add(hash_key(key_a), "acme", "laptop")
    keys.add(hash_key(key_b), "globex", "ci")
    auth = ApiKeyAuthenticator(keys)
    assert auth.tenant_for({"Authorization": f"Bearer {key_a}"}) == "acme"
    assert auth.tenant_for({"x-api-key": key_b}) == "globex"
    raw = sqlite3.connect(path).execute("SELECT * FROM api_keys").fetchall()
    dump = repr(raw)
    assert key_a not in dump and key_b not in dump and hash_key(key_a) in dump


@pytest.mark.parametrize(
    "headers",
    [None, {}, {"Authorization": "Bearer "}, {"Authorization": "Basic abc"}, {"x-api-key": "lk_not-a-key"}],
)
def test_missing_or_unknown_keys_are_refused(store, headers):
    keys, _ = store
    keys.add(hash_key(new_key()), "acme", "x")
    with pytest.raises(Unauthenticated):
        ApiKeyAuthenticator(keys).tenant_for(headers)


def test_revoked_keys_stop_working(store):
    keys, _ = store
    key = new_key()
    record = keys.add(hash_key(key), "acme", "old")
    assert keys.revoke(record.key_id)
    assert not keys.revoke(record.key_id)
    with pytest.raises(Unauthenticated, match="revoked"):
        ApiKeyAuthenticator(keys).tenant_for({"authorization": f"bearer {key}"})
    assert [k.revoked for k in keys.list()] == [True]


def test_bad_tenant_names_are_refused(store):
    keys, _ = store
    with pytest.raises(ValidationFailed):
        keys.add(hash_key(new_key()), "../etc", "x")


def test_header_parsing():
    assert key_from_headers({"AUTHORIZATION": "Bearer  abc "}) == "abc"
    assert key_from_headers({"X-Api-Key": " k "}) == "k"
    assert key_from_headers({"authorization": "Token abc"}) is None
    assert new_key().startswith("lk_") and len(new_key()) > 40 and new_key() != new_key()
