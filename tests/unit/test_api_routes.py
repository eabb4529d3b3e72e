"""The API's routes are Routers per resource, and the caller is resolved once per request (it was three times per
query: the middleware, the route, and the user lookup calling the tenant lookup again)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from lectern.api.app import build_app
from lectern.local.container import build_local
from lectern.settings import LocalSettings
from tests.aws.handler_env import api_event
from tests.fakes.embedder import HashEmbedder


class _Ctx:
    function_name = "t"
    memory_limit_in_mb = 128
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:t"
    aws_request_id = "r"


@pytest.fixture
def lectern(tmp_path: Path) -> Any:
    s = LocalSettings.from_env({}, data_dir=tmp_path / "d", llm="fake", auth="none", cache_enabled=False)
    lec = build_local(s, embedder=HashEmbedder())
    yield lec
    lec.close()


def test_each_request_resolves_its_caller_once(lectern: Any) -> None:
    services = lectern.api_services()
    calls: list[str] = []
    tenant_of, user_of = services.tenant_of, services.user_of

    def counting_tenant(event: Any) -> str:
        calls.append("tenant")
        return tenant_of(event)

    def counting_user(event: Any, tenant: str) -> str | None:
        calls.append("user")
        return user_of(event, tenant)

    services.tenant_of, services.user_of = counting_tenant, counting_user
    app = build_app(services)
    for method, path, body in [
        ("POST", "/v1/query", {"question": "What is in the documents?"}),
        ("POST", "/v1/search", {"query": "anything"}),
        ("GET", "/v1/documents", None),
    ]:
        calls.clear()
        out = app.resolve(api_event(method, path, None, body=body), _Ctx())
        assert out["statusCode"] == 200, out
        assert calls == ["tenant", "user"], (path, calls)
    calls.clear()
    health = app.resolve(api_event("GET", "/v1/health", None), _Ctx())
    assert json.loads(health["body"])["status"] == "ok" and calls == []


def test_an_unidentified_caller_gets_401_before_any_route_runs(lectern: Any) -> None:
    services = lectern.api_services()
    from lectern.domain.errors import Unauthenticated

    def nobody(event: Any) -> str:
        raise Unauthenticated("no key")

    searched: list[str] = []
    search = services.retriever.search
    services.retriever.search = lambda *a, **k: searched.append("x") or search(*a, **k)  # type: ignore[method-assign]
    services.tenant_of = nobody
    app = build_app(services)
    out = app.resolve(api_event("POST", "/v1/search", None, body={"query": "x"}), _Ctx())
    assert out["statusCode"] == 401 and searched == []


def test_routes_are_grouped_by_resource() -> None:
    from lectern.api import routes
    from lectern.api.routes import documents, feedback, health, query

    paths = {}
    for module in (health, documents, query, feedback):
        r = module.router(None)  # type: ignore[arg-type]
        paths[module.__name__.rsplit(".", 1)[1]] = sorted({rule for rule, *_ in r._routes})
    assert paths == {
        "health": ["/v1/health"],
        "documents": [
            "/v1/documents",
            "/v1/documents/<document_id>",
            "/v1/documents/<document_id>/pages/<page>/image",
        ],
        "query": ["/v1/query", "/v1/search"],
        "feedback": ["/v1/feedback"],
    }
    assert routes.Caller("t").user_id is None


def test_the_format_table_is_served_for_the_page(lectern: Any) -> None:
    from lectern.domain.formats import FORMATS

    app = build_app(lectern.api_services())
    out = app.resolve(api_event("GET", "/v1/formats", None), _Ctx())
    assert out["statusCode"] == 200, out
    served = json.loads(out["body"])["formats"]
    assert [f["kind"] for f in served] == [f.kind for f in FORMATS]
    assert {e for f in served for e in f["extensions"]} >= {".pdf", ".docx", ".md", ".csv"}
