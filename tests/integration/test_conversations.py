"""Conversations through the real local HTTP server (extraction, ONNX embedder, SQLite, extractive model):
a follow-up is rewritten from the history (the terms rule: the extractive model cannot rewrite) and answered
with a citation; the same follow-up without the conversation is not; list/get/delete; unknown, malformed and
other users' ids are 404/400 and leave the stored conversation intact."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import httpx
import pytest

from tests.integration.helpers import parse_sse, upload, wait_status

POLICY = b"""# Travel policy

## Meals
The daily meal allowance is 55 EUR in Germany.

## Hotels
Hotel stays are reimbursed up to 140 EUR per night.

## Trains
Train tickets are reimbursed in second class.
"""
FIRST = "What is the daily meal allowance?"
FOLLOW_UP = "And in which country does it apply?"


@pytest.fixture
def server(tmp_path, embedder) -> Iterator[object]:
    from lectern.adapters.local.extractive_model import ExtractiveChatModel
    from lectern.local.container import build_local, frontend_dir
    from lectern.local.server import LocalServer
    from lectern.settings import LocalSettings

    settings = LocalSettings.from_env({}, data_dir=tmp_path / "data", llm="fake", port=0, auth="none")
    lectern = build_local(settings, embedder=embedder, model=ExtractiveChatModel())
    srv = LocalServer("127.0.0.1", 0, lectern.make_app, frontend_dir(), 10 * 1024 * 1024)
    lectern.signer.base_url = srv.url
    lectern.worker.run_forever()
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    wait_status(srv.url, upload(srv.url, "travel.md", POLICY), {"INDEXED"})
    yield srv
    srv.shutdown()
    srv.server_close()
    lectern.close()


def ask(base: str, question: str, conversation_id: str | None = None, client: str = "alice") -> httpx.Response:
    body: dict = {"question": question}
    if conversation_id is not None:
        body["conversation_id"] = conversation_id
    return httpx.post(f"{base}/v1/query", json=body, headers={"X-Lectern-Client": client}, timeout=60)


def test_follow_up_is_rewritten_answered_with_a_citation_and_recorded(server):
    base = server.url
    first = ask(base, FIRST).json()
    assert "55 EUR" in first["answer"] and first["rewrite"] == "none"
    cid = first["conversation_id"]
    assert cid and first["standalone_question"] == FIRST

    follow = ask(base, FOLLOW_UP, cid).json()
    assert follow["conversation_id"] == cid and follow["rewrite"] == "terms"
    assert follow["standalone_question"].startswith(FOLLOW_UP) and "meal" in follow["standalone_question"]
    assert not follow["abstained"] and "Germany" in follow["answer"], follow
    assert [c["filename"] for c in follow["citations"]] == ["travel.md"]
    assert "Germany" in follow["citations"][0]["text"]

    alone = ask(base, FOLLOW_UP).json()  # the same words without the conversation: nothing to go on
    assert alone["abstained"] and alone["conversation_id"] != cid

    listed = httpx.get(f"{base}/v1/conversations", headers={"X-Lectern-Client": "alice"}).json()["conversations"]
    assert [(c["conversation_id"], c["turns"]) for c in listed][-1] == (cid, 2)
    got = httpx.get(f"{base}/v1/conversations/{cid}", headers={"X-Lectern-Client": "alice"}).json()
    assert [t["question"] for t in got["history"]] == [FIRST, FOLLOW_UP]
    assert got["history"][1]["standalone_question"] == follow["standalone_question"]
    assert got["history"][1]["cited"] == ["travel.md"] and got["title"] == FIRST


def test_sse_done_carries_the_conversation_and_the_standalone_question(server):
    base = server.url
    cid = ask(base, FIRST).json()["conversation_id"]
    r = httpx.post(
        f"{base}/v1/query",
        json={"question": FOLLOW_UP, "conversation_id": cid},
        headers={"Accept": "text/event-stream", "X-Lectern-Client": "alice"},
        timeout=60,
    )
    events = parse_sse(r.text)
    done = json.loads(next(d for e, d in events if e == "done"))
    assert done["conversation_id"] == cid and done["rewrite"] == "terms" and "Germany" in done["answer"]


def history(base: str, cid: str, client: str = "alice") -> list[str]:
    r = httpx.get(f"{base}/v1/conversations/{cid}", headers={"X-Lectern-Client": client})
    assert r.status_code == 200, r.text
    return [t["question"] for t in r.json()["history"]]


def test_bad_ids_are_clear_errors_and_leave_the_conversation_intact(server):
    base = server.url
    cid = ask(base, FIRST).json()["conversation_id"]
    # unknown, and another user's (same tenant, another client id): 404, as JSON and before any stream
    for client, conversation in (("alice", "0" * 32), ("bob", cid)):
        r = ask(base, FOLLOW_UP, conversation, client=client)
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", r.text
        r = httpx.post(
            f"{base}/v1/query",
            json={"question": FOLLOW_UP, "conversation_id": conversation},
            headers={"Accept": "text/event-stream", "X-Lectern-Client": client},
        )
        assert r.status_code == 404 and r.headers["content-type"].startswith("application/json")
    r = ask(base, FOLLOW_UP, "not a valid id!")
    assert r.status_code == 400 and "conversation id" in r.json()["error"]["message"]
    assert httpx.get(f"{base}/v1/conversations/{cid}", headers={"X-Lectern-Client": "bob"}).status_code == 404
    assert httpx.get(f"{base}/v1/conversations", headers={"X-Lectern-Client": "bob"}).json() == {"conversations": []}
    assert httpx.delete(f"{base}/v1/conversations/{cid}", headers={"X-Lectern-Client": "bob"}).status_code == 404
    assert httpx.get(f"{base}/v1/conversations/bad%20id", headers={"X-Lectern-Client": "alice"}).status_code == 400
    assert history(base, cid) == [FIRST]  # every refused call left it as it was

    assert httpx.delete(f"{base}/v1/conversations/{cid}", headers={"X-Lectern-Client": "alice"}).status_code == 204
    assert httpx.get(f"{base}/v1/conversations/{cid}", headers={"X-Lectern-Client": "alice"}).status_code == 404
    assert ask(base, FOLLOW_UP, cid).status_code == 404
