"""A short locust run (20 users, 20 s) through scripts/load_test.py against a loopback `lectern up`: questions
(JSON and SSE), searches, listings, lookups and uploads at once, with no 5xx and no dropped connection.
The full run (50 users, 2 minutes) is docs/results/load-local.json.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(240)
def test_short_load_run_has_no_server_errors(tmp_path: Path):
    out = tmp_path / "load.json"
    cmd = [sys.executable, str(REPO / "scripts" / "load_test.py"), "--users", "20", "--spawn-rate", "10"]
    cmd += ["--duration", "20s", "--docs", "3", "--out", str(out)]
    run = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=230)
    assert out.is_file(), run.stdout[-3000:] + run.stderr[-3000:]
    result = json.loads(out.read_text())
    assert run.returncode == 0, (run.stdout[-2000:], result["failures"], result["status_codes"])
    assert result["server_errors_5xx"] == 0 and result["transport_errors"] == 0, result["failures"]
    assert result["health_after"] == 200
    total = result["total"]
    assert total["requests"] >= 100 and total["failures"] == 0, total
    assert 0 < total["p50_ms"] <= total["p95_ms"] <= total["p99_ms"]
    for endpoint in ("POST /v1/query", "POST /v1/query (SSE)", "POST /v1/search", "POST /v1/uploads/{id}"):
        assert result["endpoints"][endpoint]["requests"] > 0, endpoint
    # each status code line is "<endpoint> <code>"; every one seen here is a success
    assert {k.rsplit(" ", 1)[1] for k in result["status_codes"]} <= {"200", "201", "204"}, result[
        "status_codes"
    ]


@pytest.fixture
def open_server(tmp_path: Path, embedder):
    """The real local HTTP server in process, without rate limit (conftest's `served` allows 120/min)."""
    import threading

    from lectern.adapters.local.extractive_model import ExtractiveChatModel
    from lectern.local.container import build_local, frontend_dir
    from lectern.local.server import LocalServer
    from lectern.settings import LocalSettings
    from tests.integration.live_server import open_settings

    settings = LocalSettings.from_env({}, data_dir=tmp_path / "data", llm="fake", port=0, **open_settings())
    lectern = build_local(settings, embedder=embedder, model=ExtractiveChatModel())
    server = LocalServer("127.0.0.1", 0, lectern.make_app, frontend_dir(), 1024 * 1024)
    lectern.signer.base_url = server.url
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield server.url
    server.shutdown()
    server.server_close()
    lectern.close()


def test_concurrent_requests_never_see_each_others_body(open_server: str):
    """Powertools keeps the current event on the BaseRouter *class*: without the server's per-resolver
    isolation, a request could be handled with another thread's body (the load run saw a query answered 422
    with an upload's body, and an upload refused with a query's)."""
    from concurrent.futures import ThreadPoolExecutor

    base = open_server

    def create(i: int) -> tuple[str, str]:
        name = f"concurrent-{i:04d}.txt"
        with httpx.Client(timeout=30) as client:
            r = client.post(f"{base}/v1/documents", json={"filename": name, "size_bytes": 1000 + i})
        assert r.status_code == 201, r.text
        return name, r.json()["document_id"]

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # switch threads often: the server runs in this process
    try:
        with ThreadPoolExecutor(max_workers=12) as pool:
            created = list(pool.map(create, range(200)))
    finally:
        sys.setswitchinterval(interval)
    wrong = []
    for name, doc_id in created:
        doc = httpx.get(f"{base}/v1/documents/{doc_id}").json()
        if doc["filename"] != name:
            wrong.append((name, doc["filename"]))
    assert not wrong, f"{len(wrong)} of {len(created)} requests were handled with another request's body"
