"""The local model server is supervised: kill -9 of the child during a streamed answer and between answers.

The child is a stand-in for llama.cpp's server (tests/fakes/openai_chat_server.py: same command line, same
OpenAI-compatible wire format, the extractive model's answers streamed word by word), started by the real
LlamaServer, watched by the real SupervisedModel, behind the real API and local HTTP server. The same kill
with the real llama.cpp server runs in tests/integration/test_local_model.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from lectern.adapters.local import llama_server
from lectern.adapters.local.llama_server import LlamaServer
from lectern.adapters.local.llama_supervisor import SupervisedModel
from lectern.adapters.messages_api import MessagesApiChatModel
from tests.integration.helpers import parse_sse, upload, wait_status

FAKE = Path(__file__).resolve().parents[1] / "fakes" / "openai_chat_server.py"
TEXT = (
    "The Varnholt Bridge crosses the river Elsk in the town of Mirendal. The Varnholt Bridge was designed by "
    "the engineer Talia Brunswick and opened in 1987. The bridge is painted a pale green colour."
)
QUESTION = "Who designed the Varnholt Bridge?"

pytestmark = pytest.mark.timeout(180)


class FakeLlama(LlamaServer):
    """LlamaServer running the stand-in instead of llama_serve (everything else as in production)."""

    script = FAKE

    def command(self) -> list[str]:
        return [sys.executable, str(self.script), *super().command()[3:]]


class Served:
    def __init__(self, base: str, model: SupervisedModel, data: Path, servers: list[LlamaServer]) -> None:
        self.base, self.model, self.data, self.servers = base, model, data, servers

    def child_pid(self) -> int:
        proc = self.servers[-1]._proc
        assert proc is not None and proc.poll() is None
        return proc.pid

    def health(self) -> dict:
        return httpx.get(f"{self.base}/v1/health", timeout=5).json()

    def wait_health(self, want: Callable[[dict], bool], timeout: float = 15) -> tuple[dict, float]:
        start = time.monotonic()
        h: dict = {}
        while time.monotonic() - start < timeout:
            h = self.health()
            if want(h):
                return h, time.monotonic() - start
            time.sleep(0.05)
        raise AssertionError(f"health never matched: {h}")

    def ask_sse(
        self, question: str = QUESTION, on_token: Callable[[], None] | None = None
    ) -> list[tuple[str, str]]:
        frames: list[tuple[str, str]] = []
        with httpx.stream(
            "POST",
            f"{self.base}/v1/query",
            json={"question": question},
            headers={"Accept": "text/event-stream"},
            timeout=30,
        ) as r:
            assert r.status_code == 200, r.read()
            buf = ""
            for text in r.iter_text():
                buf += text
                while "\n\n" in buf:
                    frame, buf = buf.split("\n\n", 1)
                    frames += parse_sse(frame)
                    if frames[-1][0] == "token" and on_token is not None:
                        on_token()
                        on_token = None
        return frames


def _snapshot(data: Path) -> dict[str, str]:
    """Everything a user stored: documents, chunks, original files (not logs, not query traces)."""
    out: dict[str, str] = {}
    with sqlite3.connect(data / "lectern.db") as conn:
        for table in ("documents", "chunks"):
            rows = conn.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()
            out[table] = hashlib.sha256(repr(rows).encode()).hexdigest()
    for path in sorted((data / "files").rglob("*")):
        if path.is_file():
            out[str(path.relative_to(data))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


@pytest.fixture
def served(tmp_path: Path, embedder, monkeypatch: pytest.MonkeyPatch) -> Iterator[Served]:
    from lectern.local.container import build_local, frontend_dir
    from lectern.local.server import LocalServer
    from lectern.settings import LocalSettings

    monkeypatch.setattr(llama_server, "llama_available", lambda: True)
    monkeypatch.setenv("FAKE_CHAT_DELAY_S", "0.15")
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF")
    servers: list[LlamaServer] = []

    def make_server() -> LlamaServer:
        servers.append(
            FakeLlama(gguf, log_dir=tmp_path / "data" / "logs", startup_timeout_s=30, stop_grace_s=2)
        )
        return servers[-1]

    model = SupervisedModel(
        make_server,
        lambda url: MessagesApiChatModel(url, "fake-llama", timeout_s=30),
        "fake-llama",
        backoff_s=(0.5,),
        max_crashes=5,
    )
    settings = LocalSettings.from_env(
        {}, data_dir=tmp_path / "data", llm="fake", port=0, auth="none", cache_enabled=False
    )
    lectern = build_local(settings, embedder=embedder, model=model)
    server = LocalServer("127.0.0.1", 0, lectern.make_app, frontend_dir(), 60 * 1024 * 1024)
    lectern.signer.base_url = server.url
    lectern.worker.run_forever()
    model.warm()
    t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    yield Served(server.url, model, tmp_path / "data", servers)
    server.shutdown()
    server.server_close()
    lectern.close()
    assert all(not s.running for s in servers), "a model server outlived Lectern"


def test_kill9_mid_stream_and_between_answers(served: Served) -> None:
    doc = upload(served.base, "bridge.txt", TEXT.encode())
    wait_status(served.base, doc, {"INDEXED"})
    served.wait_health(lambda h: h["components"]["model"] == "ok", timeout=30)
    first = served.ask_sse()
    assert [k for k, _ in first][-2:] == ["citations", "done"], first
    assert "Talia Brunswick" in json.loads(first[-1][1])["answer"]
    before = _snapshot(served.data)

    # 1. kill -9 while the answer streams: the stream ends with an `error` event, never a `done`.
    killed = served.child_pid()
    events = served.ask_sse(on_token=lambda: os.kill(killed, signal.SIGKILL))
    kinds = [k for k, _ in events]
    assert "token" in kinds and kinds[-1] == "error" and "done" not in kinds, kinds
    error = json.loads(events[-1][1])["error"]
    assert error["code"] == "model_unavailable"
    assert "stopped while answering" in error["message"] and "SIGKILL" in error["message"], error

    # health: down with the reason, noticed within a second or two ...
    health, noticed_s = served.wait_health(lambda h: h["components"]["model"] != "ok", timeout=5)
    assert health["status"] == "degraded" and noticed_s < 2.0
    if health["components"]["model"] == "restarting":
        assert "SIGKILL" in health["details"]["model"]
    # ... a question during the outage is refused at once with a clear 503, and ...
    # (the backoff is 0.5 s: the outage may already be over, then the answer is simply given)
    start = time.monotonic()
    r = httpx.post(f"{served.base}/v1/query", json={"question": QUESTION}, timeout=30)
    if r.status_code == 503:
        assert r.json()["error"]["code"] == "model_unavailable" and time.monotonic() - start < 2.0
        assert "restarting" in r.json()["error"]["message"]
    else:
        assert r.status_code == 200, r.text
    # ... health comes back up and the next answer works, without restarting Lectern.
    served.wait_health(lambda h: h["components"]["model"] == "ok" and not h["details"], timeout=15)
    again = served.ask_sse()
    assert kinds_of(again)[-1] == "done" and "Talia Brunswick" in json.loads(again[-1][1])["answer"]
    assert served.child_pid() != killed

    # 2. kill -9 between answers: the same, and the answer after the restart matches the first one.
    killed = served.child_pid()
    os.kill(killed, signal.SIGKILL)
    health, noticed_s = served.wait_health(lambda h: h["components"]["model"] == "restarting", timeout=5)
    assert noticed_s < 2.0 and "SIGKILL" in health["details"]["model"]
    served.wait_health(lambda h: h["components"]["model"] == "ok", timeout=15)
    after = served.ask_sse()
    assert json.loads(after[-1][1])["answer"] == json.loads(first[-1][1])["answer"]
    assert served.model.restarts == 2
    assert _snapshot(served.data) == before, "a model crash changed stored data"


def kinds_of(events: list[tuple[str, str]]) -> list[str]:
    return [k for k, _ in events]


def test_a_question_during_the_outage_is_a_503_not_a_hang(served: Served) -> None:
    """With a long backoff the outage is certain: JSON and SSE questions both get the 503 at once."""
    served.model._backoff = (30.0,)
    doc = upload(served.base, "bridge.txt", TEXT.encode())
    wait_status(served.base, doc, {"INDEXED"})
    served.wait_health(lambda h: h["components"]["model"] == "ok", timeout=30)
    os.kill(served.child_pid(), signal.SIGKILL)
    health, _ = served.wait_health(lambda h: h["components"]["model"] == "restarting", timeout=5)
    assert "restarting" in health["details"]["model"]
    for headers in ({}, {"Accept": "text/event-stream"}):
        start = time.monotonic()
        r = httpx.post(f"{served.base}/v1/query", json={"question": QUESTION}, headers=headers, timeout=30)
        assert r.status_code == 503 and time.monotonic() - start < 2.0, r.text
        body = r.json()["error"]
        assert body["code"] == "model_unavailable" and "SIGKILL" in body["message"], body


def test_repeated_crashes_stop_the_restarts_and_say_so(
    served: Served, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A server that dies right after start-up, again and again: after max_crashes the supervisor gives up,
    health says "failed" with the reason, questions are refused with it, and the log says so."""
    wait_status(served.base, upload(served.base, "bridge.txt", TEXT.encode()), {"INDEXED"})
    served.wait_health(lambda h: h["components"]["model"] == "ok", timeout=30)
    served.model._backoff = (0.05,)
    crasher = tmp_path / "crasher.py"
    # ready once (the supervisor sees a good start), then dies of SIGSEGV a moment later, every time
    crasher.write_text(
        f"import os, signal, sys, threading, time\n"
        f"threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGSEGV)).start()\n"
        f"sys.argv[0] = {str(FAKE)!r}\n"
        f"exec(compile(open({str(FAKE)!r}).read(), {str(FAKE)!r}, 'exec'))\n"
    )
    FakeLlama.script = crasher  # the servers started from now on
    try:
        with caplog.at_level("ERROR", logger="lectern.adapters.local.llama_supervisor"):
            os.kill(served.child_pid(), signal.SIGSEGV)
            health, _ = served.wait_health(lambda h: h["components"]["model"] == "failed", timeout=60)
    finally:
        FakeLlama.script = FAKE
    detail = health["details"]["model"]
    assert "5 times" in detail and "not restarted" in detail and "SIGSEGV" in detail, detail
    r = httpx.post(f"{served.base}/v1/query", json={"question": QUESTION}, timeout=10)
    assert r.status_code == 503 and "not restarted" in r.json()["error"]["message"]
    assert any("not restarted again" in rec.getMessage() for rec in caplog.records)
    assert served.model.restarts == 4  # the fifth exit ends it
