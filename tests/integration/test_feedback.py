"""Feedback, query traces, routing and the prompt A/B split through the real local HTTP server.

The server runs the real extraction, ONNX embedder and SQLite index; the generators are the extractive test
model (cheap) and a second instance of it reporting another model id (strong), so which one answered is
visible.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
import pytest

from lectern.domain.feedback import QueryTrace
from tests.integration.helpers import parse_sse, upload, wait_status

GUIDE = b"""# Reactor handbook

## History
The Zorblax reactor was commissioned in 1987 in Tromso. It was designed by Ingrid Haldorsen.

## Safety
Coolant pressure must stay below 14 bar. Operators check the valves every Tuesday.
"""


@pytest.fixture
def server(tmp_path, embedder) -> Iterator[object]:
    from lectern.adapters.local.extractive_model import ExtractiveChatModel
    from lectern.local.container import build_local, frontend_dir
    from lectern.local.server import LocalServer
    from lectern.settings import LocalSettings

    settings = LocalSettings.from_env(
        {},
        data_dir=tmp_path / "data",
        llm="fake",
        strong_llm="fake",
        port=0,
        auth="none",
        prompt_version_b="answer-v2",
        prompt_b_share=0.5,
        route_min_similarity=-1,  # the extractive model's passages are short: keep only the question rules
    )
    lectern = build_local(settings, embedder=embedder, model=ExtractiveChatModel())
    srv = LocalServer("127.0.0.1", 0, lectern.make_app, frontend_dir(), 10 * 1024 * 1024)
    lectern.signer.base_url = srv.url
    lectern.worker.run_forever()
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    wait_status(srv.url, upload(srv.url, "handbook.md", GUIDE), {"INDEXED"})
    srv.lectern = lectern  # type: ignore[attr-defined]
    yield srv
    srv.shutdown()
    srv.server_close()
    lectern.close()


def test_answer_carries_route_cost_and_is_traced_then_feedback_attaches(server):
    base = server.url
    body = httpx.post(
        f"{base}/v1/query", json={"question": "When was the Zorblax reactor commissioned?"}
    ).json()
    assert "1987" in body["answer"]
    assert body["route"] == "cheap: default" and body["model"] == "extractive-test-model"
    assert body["cost_usd"] == 0.0 and body["cache_hit"] is False
    trace = server.lectern.queries.get("default", body["query_id"])
    assert trace is not None and trace.route == "cheap: default" and trace.model == "extractive-test-model"
    assert trace.input_tokens == body["usage"]["input_tokens"] > 0 and trace.latency_ms >= 0
    assert trace.prompt_version == body["prompt_version"] and trace.user_hash and trace.rating is None

    r = httpx.post(
        f"{base}/v1/feedback", json={"query_id": body["query_id"], "rating": "up", "comment": " ok "}
    )
    assert r.status_code == 200, r.text
    assert r.json()["rating"] == "up" and r.json()["comment"] == "ok" and r.json()["recorded_at"]
    r = httpx.post(f"{base}/v1/feedback", json={"query_id": body["query_id"], "rating": "down"})
    assert r.status_code == 200 and r.json()["comment"] is None
    stored = server.lectern.queries.get("default", body["query_id"])
    assert stored.rating == "down" and stored.comment is None and stored.feedback_at


def test_complex_questions_are_answered_by_the_strong_model_and_streamed_answers_are_traced(server):
    base = server.url
    r = httpx.post(
        f"{base}/v1/query",
        json={"question": "When was the reactor commissioned and who designed it?"},
        headers={"Accept": "text/event-stream"},
    )
    done = __import__("json").loads(parse_sse(r.text)[-1][1])
    assert done["route"] == "strong: multi-part" and done["model"] == "extractive-strong-test-model"
    trace = server.lectern.queries.get("default", done["query_id"])
    assert trace.route == "strong: multi-part" and trace.model == "extractive-strong-test-model"


def test_feedback_is_tenant_scoped_and_validated(server):
    base = server.url
    # a query of another tenant in the same database: invisible to this server's tenant
    other = QueryTrace(
        "other", "abc123", "2026-11-29T10:00:00.000000Z", "answer-v3", "m", "cheap: default", 1, 1, 0.0, 5
    )
    server.lectern.queries.record(other)
    for query_id in ("abc123", "0" * 32):
        r = httpx.post(f"{base}/v1/feedback", json={"query_id": query_id, "rating": "up"})
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", r.text
    assert server.lectern.queries.get("other", "abc123").rating is None
    for bad in (
        {"query_id": "abc123", "rating": "meh"},
        {"query_id": "../x", "rating": "up"},
        {"query_id": "abc123", "rating": "up", "comment": "x" * 2001},
        {"rating": "up"},
    ):
        assert httpx.post(f"{base}/v1/feedback", json=bad).status_code == 422, bad


def test_prompt_version_follows_the_client_id_header(server):
    base = server.url
    seen: dict[str, set[str]] = {}
    for client in [f"browser-{i}" for i in range(12)]:
        for _ in range(2):
            body = httpx.post(
                f"{base}/v1/query",
                json={"question": "How often are the valves checked?"},
                headers={"X-Lectern-Client": client},
            ).json()
            seen.setdefault(client, set()).add(body["prompt_version"])
    assert all(len(v) == 1 for v in seen.values()), seen  # stable per user
    assert set().union(*seen.values()) == {"answer-v2", "answer-v4"}  # both arms get traffic
