"""The REST API end to end over real HTTP on loopback: upload -> indexed -> search -> query -> delete.

Uses the real extraction, chunker, ONNX embedder and SQLite index; the language model is the deterministic
extractive test model (the real one has its own test in test_local_model.py).
"""

from __future__ import annotations

import json

import httpx

from tests.integration.helpers import parse_sse, upload, wait_status

GUIDE = b"""# Reactor handbook

## History
The Zorblax reactor was commissioned in 1987 in Tromso. It was designed by Ingrid Haldorsen.

## Safety
Coolant pressure must stay below 14 bar. Operators check the valves every Tuesday.
"""


def test_roundtrip_upload_index_search_query_delete(served):
    base = served.url
    doc_id = upload(base, "handbook.md", GUIDE)
    doc = wait_status(base, doc_id, {"INDEXED", "FAILED"})
    assert doc["status"] == "INDEXED", doc
    assert doc["chunks"] >= 1 and doc["pages"] == 1 and doc["filename"] == "handbook.md"

    listed = httpx.get(f"{base}/v1/documents").json()["documents"]
    assert [d["document_id"] for d in listed] == [doc_id]

    for mode in ("hybrid", "bm25", "vector"):
        res = httpx.post(
            f"{base}/v1/search", json={"query": "When was the reactor commissioned?", "mode": mode}
        )
        assert res.status_code == 200, res.text
        top = res.json()["results"][0]
        assert "1987" in top["text"] and top["document_id"] == doc_id and top["page"] == 1

    r = httpx.post(f"{base}/v1/query", json={"question": "When was the Zorblax reactor commissioned?"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert "1987" in body["answer"] and not body["abstained"]
    assert body["citations"] and body["citations"][0]["filename"] == "handbook.md"
    assert "1987" in body["citations"][0]["snippet"]
    assert body["prompt_version"] == "answer-v4" and body["latency_ms"] >= 0
    assert set(body["usage"]) == {"input_tokens", "output_tokens"}

    r = httpx.post(
        f"{base}/v1/query",
        json={"question": "How often are the valves checked?"},
        headers={"Accept": "text/event-stream"},
    )
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    events = parse_sse(r.text)
    kinds = [k for k, _ in events]
    # progress first (retrieving, generating), then the tokens, then the checked answer
    assert kinds[:2] == ["status", "status"] and kinds[-2:] == ["citations", "done"], kinds
    assert [json.loads(d)["stage"] for k, d in events if k == "status"][:2] == ["retrieving", "generating"]
    assert "token" in kinds and kinds.index("token") < kinds.index("citations"), kinds
    streamed = "".join(json.loads(d)["text"] for k, d in events if k == "token")
    done = json.loads(events[-1][1])
    assert streamed.strip() == done["answer"] and "Tuesday" in done["answer"]

    assert httpx.delete(f"{base}/v1/documents/{doc_id}").status_code == 204
    assert httpx.get(f"{base}/v1/documents/{doc_id}").status_code == 404
    assert httpx.post(f"{base}/v1/search", json={"query": "reactor"}).json()["results"] == []
    assert served.lectern.index.count("default") == 0
    assert not list((served.lectern.settings.data_dir / "files").rglob("original"))


def test_unanswerable_question_says_i_dont_know(served):
    base = served.url
    wait_status(base, upload(base, "handbook.md", GUIDE), {"INDEXED"})
    body = httpx.post(f"{base}/v1/query", json={"question": "What is the capital of Peru?"}).json()
    assert body["abstained"] is True
    assert body["answer"] == "I don't know based on the provided documents."
    assert body["citations"] == []


def test_broken_file_fails_with_reason_and_leaves_others_intact(served):
    base = served.url
    good = upload(base, "handbook.md", GUIDE)
    wait_status(base, good, {"INDEXED"})
    bad = upload(base, "broken.pdf", b"%PDF-1.7\n" + bytes(range(256)) * 8)
    doc = wait_status(base, bad, {"FAILED", "INDEXED"})
    assert doc["status"] == "FAILED" and doc["error"]
    assert "Traceback" not in doc["error"] and "/" not in doc["error"].replace("PDF/", "")
    assert httpx.get(f"{base}/v1/documents/{good}").json()["status"] == "INDEXED"
    assert served.lectern.index.count("default") == httpx.get(f"{base}/v1/documents/{good}").json()["chunks"]


def test_errors_are_json_with_proper_codes(served):
    base = served.url
    cases = [
        (
            "POST",
            "/v1/documents",
            {"filename": "a.exe", "content_type": "application/x-msdownload", "size_bytes": 3},
            415,
        ),
        ("POST", "/v1/documents", {"filename": "a.txt", "content_type": "text/plain", "size_bytes": 0}, 422),
        ("POST", "/v1/documents", {"filename": "a.txt", "size_bytes": 10**12}, 413),
        ("POST", "/v1/documents", {"filename": "a.txt", "size_bytes": 3, "extra": 1}, 422),
        ("POST", "/v1/query", {"question": ""}, 422),
        ("POST", "/v1/query", {"question": "x" * 2001}, 422),
        ("POST", "/v1/search", {"query": "x", "mode": "fuzzy"}, 422),
        ("GET", "/v1/documents/0123456789abcdef0123456789abcdef", None, 404),
        ("GET", "/v1/documents/..%2F..%2Fetc", None, 404),
        ("GET", "/v1/nope", None, 404),
    ]
    for method, path, body, status in cases:
        r = httpx.request(method, base + path, json=body)
        assert r.status_code == status, (path, body, r.status_code, r.text)
        err = r.json()["error"]
        assert err["code"] and err["message"], r.text
    r = httpx.post(f"{base}/v1/query", content=b"{not json", headers={"content-type": "application/json"})
    assert 400 <= r.status_code < 500


def test_upload_slot_is_enforced(served):
    base = served.url
    slot = httpx.post(f"{base}/v1/documents", json={"filename": "a.txt", "size_bytes": 5}).json()
    url, fields = slot["upload"]["url"], slot["upload"]["fields"]
    forged = dict(fields, **{"x-lectern-signature": "0" * 64})
    assert httpx.post(url, data=forged, files={"file": ("a.txt", b"hello")}).status_code == 400
    assert httpx.post(url, data=fields, files={"file": ("a.txt", b"hello, too long")}).status_code == 413
    assert httpx.post(url, data=fields, files={"file": ("a.txt", b"hello")}).status_code == 204
    again = httpx.post(url, data=fields, files={"file": ("a.txt", b"hello")})
    assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"
    other = httpx.post(f"{base}/v1/documents", json={"filename": "b.txt", "size_bytes": 5}).json()
    # a slot signed for one document cannot upload another
    assert (
        httpx.post(other["upload"]["url"], data=fields, files={"file": ("b.txt", b"hello")}).status_code
        == 400
    )


def test_web_page_is_served(served):
    r = httpx.get(served.url + "/")
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    assert httpx.get(served.url + "/static/../pyproject.toml").status_code == 404
