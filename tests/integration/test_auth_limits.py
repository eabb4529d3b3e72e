"""Sign-in and limits over the real local HTTP server: API keys map to tenants, every path is tenant-scoped, and
per-tenant request rates and token budgets answer 429 with Retry-After before any work is done.

The isolation property (Hypothesis): with three tenants making random uploads, questions, searches, feedback and
deletes, no response to one tenant ever contains another tenant's document ids, filenames or text.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

TENANTS = ("acme", "globex", "initech")
SECRET = {t: f"{t}-codeword-{uuid.uuid4().hex[:6]}" for t in TENANTS}


class Served:
    def __init__(self, lectern, server, keys: dict[str, str]) -> None:
        self.lectern, self.server, self.keys, self.url = lectern, server, keys, server.url

    def h(self, tenant: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[tenant]}"}

    def upload(self, tenant: str, name: str, text: str) -> str:
        data = text.encode()
        r = httpx.post(
            f"{self.url}/v1/documents",
            json={"filename": name, "content_type": "text/markdown", "size_bytes": len(data)},
            headers=self.h(tenant),
        )
        assert r.status_code == 201, r.text
        up = r.json()["upload"]
        assert (
            httpx.post(
                up["url"], data=up["fields"], files={"file": (name, data, "text/markdown")}
            ).status_code
            == 204
        )
        return r.json()["document_id"]

    def wait_indexed(self, tenant: str, doc_id: str) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            r = httpx.get(f"{self.url}/v1/documents/{doc_id}", headers=self.h(tenant))
            if r.json().get("status") in ("INDEXED", "FAILED"):
                assert r.json()["status"] == "INDEXED", r.text
                return
            time.sleep(0.1)
        raise AssertionError("not indexed in time")


def _serve(tmp_path, embedder, **overrides) -> Iterator[Served]:
    from lectern.adapters.local.extractive_model import ExtractiveChatModel
    from lectern.domain.auth import hash_key, new_key
    from lectern.local.container import build_local, frontend_dir
    from lectern.local.server import LocalServer
    from lectern.settings import LocalSettings

    settings = LocalSettings.from_env({}, data_dir=tmp_path / "data", llm="fake", port=0, **overrides)
    lectern = build_local(settings, embedder=embedder, model=ExtractiveChatModel())
    keys = {}
    for tenant in TENANTS:
        keys[tenant] = new_key()
        lectern.keys.add(hash_key(keys[tenant]), tenant, "test")
    server = LocalServer("127.0.0.1", 0, lectern.make_app, frontend_dir(), 10 * 1024 * 1024)
    lectern.signer.base_url = server.url
    lectern.worker.run_forever()
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        yield Served(lectern, server, keys)
    finally:
        server.shutdown()
        server.server_close()
        lectern.close()


@pytest.fixture
def served_keys(tmp_path, embedder) -> Iterator[Served]:
    yield from _serve(tmp_path, embedder, rate_limit_per_minute=0, cache_enabled=False)


def test_every_api_route_needs_a_valid_key_but_health_and_the_page_do_not(served_keys):
    s = served_keys
    assert httpx.get(f"{s.url}/v1/health").status_code == 200
    assert httpx.get(f"{s.url}/").status_code == 200
    for method, path, body in [
        ("GET", "/v1/documents", None),
        ("POST", "/v1/documents", {"filename": "a.md", "size_bytes": 3}),
        ("POST", "/v1/query", {"question": "what?"}),
        ("POST", "/v1/search", {"query": "what"}),
        ("POST", "/v1/feedback", {"query_id": "abc", "rating": "up"}),
        ("DELETE", f"/v1/documents/{'0' * 32}", None),
    ]:
        for headers in ({}, {"Authorization": "Bearer lk_forged"}, {"X-Api-Key": ""}):
            r = httpx.request(method, f"{s.url}{path}", json=body, headers=headers)
            assert r.status_code == 401, (method, path, headers, r.text)
            assert r.json()["error"]["code"] == "unauthenticated"
    assert s.lectern.documents.list("acme") == []  # nothing was created by the refused POST


def test_a_revoked_key_stops_at_once(served_keys):
    s = served_keys
    assert httpx.get(f"{s.url}/v1/documents", headers=s.h("acme")).status_code == 200
    key_id = next(k.key_id for k in s.lectern.keys.list() if k.tenant_id == "acme")
    s.lectern.keys.revoke(key_id)
    assert httpx.get(f"{s.url}/v1/documents", headers=s.h("acme")).status_code == 401


def test_request_rate_limit_is_per_tenant_with_retry_after(tmp_path, embedder):
    for s in _serve(tmp_path, embedder, rate_limit_per_minute=5):
        codes = [httpx.get(f"{s.url}/v1/documents", headers=s.h("acme")).status_code for _ in range(7)]
        assert codes[:5] == [200] * 5 and codes[5:] == [429, 429], codes
        r = httpx.get(f"{s.url}/v1/documents", headers=s.h("acme"))
        assert r.status_code == 429 and 1 <= int(r.headers["Retry-After"]) <= 60
        assert r.json()["error"]["code"] == "rate_limited"
        assert httpx.get(f"{s.url}/v1/documents", headers=s.h("globex")).status_code == 200
        assert httpx.get(f"{s.url}/v1/health").status_code == 200  # never limited


def test_daily_token_budget_refuses_questions_but_not_reads(tmp_path, embedder):
    for s in _serve(tmp_path, embedder, rate_limit_per_minute=0, daily_token_budget=1, cache_enabled=False):
        doc = s.upload("acme", "a.md", f"# Facts\n\nThe {SECRET['acme']} is stored in vault seven.\n")
        s.wait_indexed("acme", doc)
        s.lectern.limits.record_tokens("acme", 5)  # the day's budget (1 token) is spent
        r = httpx.post(f"{s.url}/v1/query", json={"question": "Where is the codeword?"}, headers=s.h("acme"))
        assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0
        assert "budget" in r.json()["error"]["message"]
        assert (
            httpx.post(f"{s.url}/v1/search", json={"query": "vault"}, headers=s.h("acme")).status_code == 200
        )
        r = httpx.post(f"{s.url}/v1/query", json={"question": "Where is it?"}, headers=s.h("globex"))
        assert r.status_code == 200


def _all_strings(value) -> str:
    if isinstance(value, dict):
        return " ".join(f"{k} {_all_strings(v)}" for k, v in value.items())
    if isinstance(value, list):
        return " ".join(_all_strings(v) for v in value)
    return str(value)


@pytest.fixture(scope="module")
def shared_served(tmp_path_factory, embedder) -> Iterator[Served]:
    gen = _serve(tmp_path_factory.mktemp("iso"), embedder, rate_limit_per_minute=0)
    s = next(gen)
    s.docs = {t: [] for t in TENANTS}  # type: ignore[attr-defined]
    s.queries = {t: [] for t in TENANTS}  # type: ignore[attr-defined]
    for t in TENANTS:
        doc = s.upload(t, f"{t}-handbook.md", f"# {t} handbook\n\nOur {SECRET[t]} opens the vault of {t}.\n")
        s.wait_indexed(t, doc)
        s.docs[t].append(doc)  # type: ignore[attr-defined]
    yield s
    with contextlib.suppress(StopIteration):
        next(gen)


ACTIONS = st.sampled_from(
    ["list", "get_other", "search", "query", "query_sse", "feedback_other", "delete_other"]
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    steps=st.lists(
        st.tuples(st.sampled_from(TENANTS), ACTIONS, st.sampled_from(TENANTS)), min_size=1, max_size=6
    )
)
def test_no_response_ever_contains_another_tenants_data(shared_served, steps):
    s = shared_served
    for tenant, action, other in steps:
        foreign = (
            [SECRET[o] for o in TENANTS if o != tenant]
            + [d for o in TENANTS if o != tenant for d in s.docs[o]]
            + [f"{o}-handbook" for o in TENANTS if o != tenant]
        )
        h = s.h(tenant)
        if action == "list":
            r = httpx.get(f"{s.url}/v1/documents", headers=h)
        elif action == "get_other":
            r = httpx.get(f"{s.url}/v1/documents/{s.docs[other][0]}", headers=h)
            if other != tenant:
                assert r.status_code == 404
        elif action == "search":
            r = httpx.post(
                f"{s.url}/v1/search", json={"query": f"codeword vault {other}", "top_k": 20}, headers=h
            )
        elif action in ("query", "query_sse"):
            extra = {"Accept": "text/event-stream"} if action == "query_sse" else {}
            r = httpx.post(
                f"{s.url}/v1/query",
                json={"question": f"Which codeword opens the vault of {other}?"},
                headers=h | extra,
                timeout=30,
            )
            if action == "query" and r.status_code == 200:
                s.queries[tenant].append(r.json()["query_id"])
        elif action == "feedback_other":
            qids = s.queries[other]
            if not qids or other == tenant:
                continue
            r = httpx.post(f"{s.url}/v1/feedback", json={"query_id": qids[0], "rating": "down"}, headers=h)
            assert r.status_code == 404
        else:  # delete_other: never allowed across tenants
            if other == tenant:
                continue
            r = httpx.delete(f"{s.url}/v1/documents/{s.docs[other][0]}", headers=h)
            assert r.status_code == 404
        assert r.status_code < 500, r.text
        text = r.text
        sent = (
            {s.docs[other][0]} if action in ("get_other", "delete_other") else set()
        )  # echoing input is no leak
        leaked = [f for f in foreign if f in text and f not in sent]
        assert not leaked, f"{tenant} saw {leaked} via {action}: {text[:300]}"
    for t in TENANTS:  # nothing was deleted across tenants
        assert s.lectern.documents.get(t, s.docs[t][0]) is not None
