"""MessagesApiChatModel against a tiny fake OpenAI-compatible server (stdlib http.server on 127.0.0.1)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from lectern.adapters.messages_api import MessagesApiChatModel
from lectern.domain.errors import ModelUnavailable
from lectern.domain.models import ChatMessage, Generation, Usage

TOKENS = ["The", " answer", " is", " 42", "."]
SECRET = "sk-test-secret-key"
MESSAGES = [ChatMessage("system", "Answer from the context."), ChatMessage("user", "What is the answer?")]


def _chunk(delta: dict[str, str], finish: str | None = None) -> dict[str, object]:
    return {"id": "c1", "object": "chat.completion.chunk", "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def _sse(events: list[object], sep: str) -> bytes:
    out = [": ping - keep-alive"]  # comments, as sse-starlette sends, are skipped
    for e in events:
        out.append(f"data: {e if isinstance(e, str) else json.dumps(e)}")
    return (sep.join(out) + sep).encode()


STREAM_OK = [_chunk({"role": "assistant"})] + [_chunk({"content": t}) for t in TOKENS] + [
    _chunk({}, "stop"),
    {"id": "c1", "object": "chat.completion.chunk", "choices": [],
     "usage": {"prompt_tokens": 17, "completion_tokens": 5, "total_tokens": 22}},
    "[DONE]",
]
COMPLETION_OK = {
    "id": "c1", "object": "chat.completion", "model": "m",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "The answer is 42."},
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 17, "completion_tokens": 6, "total_tokens": 23},
}


class Handler(BaseHTTPRequestHandler):
    """Behaviour is chosen by the first path segment: /ok/v1/chat/completions, /e500/v1/..., and so on."""

    protocol_version = "HTTP/1.1"
    server: FakeHTTPServer

    def log_message(self, *args: object) -> None:
        pass

    def _send(self, status: int, body: bytes, ctype: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _stream(self, events: list[object], sep: str = "\n\n") -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(_sse(events, sep))
        self.wfile.flush()
        self.close_connection = True

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
        self.server.requests.append((self.path, dict(self.headers), body))
        mode = self.path.strip("/").split("/")[0]
        getattr(self, f"mode_{mode}", self.mode_missing)(bool(body.get("stream")))

    def mode_ok(self, streaming: bool) -> None:
        if streaming:
            self._stream(STREAM_OK, "\r\n\r\n")  # sse-starlette's separators
        else:
            self._send(200, json.dumps(COMPLETION_OK).encode())

    def mode_nousage(self, streaming: bool) -> None:
        if streaming:
            self._stream([_chunk({"content": t}) for t in TOKENS] + [_chunk({}, "length"), "[DONE]"])
        else:
            self._send(200, json.dumps({k: v for k, v in COMPLETION_OK.items() if k != "usage"}).encode())

    def mode_e500(self, streaming: bool) -> None:
        self._send(500, b'{"error": {"message": "CUDA out of memory at /srv/secret/path"}}')

    def mode_e400(self, streaming: bool) -> None:
        msg = "This model's maximum context length is 4096 tokens. " + "x" * 1000
        self._send(400, json.dumps({"error": {"message": msg, "type": "invalid_request_error"}}).encode())

    def mode_tgi422(self, streaming: bool) -> None:
        body = {"error": "Input validation error: `temperature` must be >= 0", "error_type": "validation"}
        self._send(422, json.dumps(body).encode())

    def mode_hang(self, streaming: bool) -> None:
        self.server.release.wait(10)
        self._send(200, json.dumps(COMPLETION_OK).encode())

    def mode_midstream(self, streaming: bool) -> None:
        error = {"error": "Request failed during generation: OOM", "error_type": "generation"}
        self._stream([_chunk({"content": "The"}), error])

    def mode_truncated(self, streaming: bool) -> None:
        self._stream([_chunk({"content": t}) for t in TOKENS[:2]])

    def mode_garbage(self, streaming: bool) -> None:
        self._send(200, b"<html>not json</html>", "text/html")

    def mode_missing(self, streaming: bool) -> None:
        self._send(404, b'{"detail": "Not Found"}')


class FakeHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.requests: list[tuple[str, dict[str, str], dict[str, object]]] = []
        self.release = threading.Event()
        self.port = self.server_address[1]
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def url(self, mode: str) -> str:
        return f"http://127.0.0.1:{self.port}/{mode}"

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that timed out and hung up is what some tests do on purpose

    def close(self) -> None:
        self.release.set()
        self.shutdown()
        self.server_close()


@pytest.fixture(scope="module")
def server() -> Iterator[FakeHTTPServer]:
    s = FakeHTTPServer()
    yield s
    s.close()


def model(
    server: FakeHTTPServer, mode: str, *, timeout_s: float = 5.0, api_key: str | None = None
) -> MessagesApiChatModel:
    return MessagesApiChatModel(server.url(mode), "test-model", timeout_s=timeout_s, api_key=api_key)


def test_generate_returns_text_usage_and_sends_the_request_fields(server: FakeHTTPServer) -> None:
    gen = model(server, "ok", api_key=SECRET).generate(MESSAGES, max_tokens=64, temperature=0.0)
    assert gen == Generation("The answer is 42.", "test-model", Usage(17, 6), "stop")
    path, headers, body = server.requests[-1]
    assert path == "/ok/v1/chat/completions"
    assert headers["Authorization"] == f"Bearer {SECRET}"
    assert body == {
        "model": "test-model",
        "messages": [{"role": "system", "content": "Answer from the context."},
                     {"role": "user", "content": "What is the answer?"}],
        "max_tokens": 64,
        "temperature": 0.0,
    }


def test_base_url_may_end_in_v1(server: FakeHTTPServer) -> None:
    m = MessagesApiChatModel(server.url("ok") + "/v1/", "test-model")
    assert m.generate(MESSAGES, max_tokens=8, temperature=0.2).text == "The answer is 42."
    assert server.requests[-1][0] == "/ok/v1/chat/completions"


def test_stream_yields_each_delta_then_one_generation_with_usage(server: FakeHTTPServer) -> None:
    items = list(model(server, "ok").stream(MESSAGES, max_tokens=64, temperature=0.0))
    assert items[:-1] == TOKENS
    assert items[-1] == Generation("The answer is 42.", "test-model", Usage(17, 5), "stop")
    body = server.requests[-1][2]
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["max_tokens"] == 64 and body["temperature"] == 0.0


def test_missing_usage_counts_zero(server: FakeHTTPServer) -> None:
    m = model(server, "nousage")
    items = list(m.stream(MESSAGES, max_tokens=5, temperature=0.0))
    assert items[:-1] == TOKENS
    assert items[-1] == Generation("The answer is 42.", "test-model", Usage(0, 0), "length")
    assert m.generate(MESSAGES, max_tokens=5, temperature=0.0).usage == Usage(0, 0)


@pytest.mark.parametrize("call", ["generate", "stream"])
def test_5xx_is_model_unavailable_without_server_internals(server: FakeHTTPServer, call: str) -> None:
    with pytest.raises(ModelUnavailable) as err:
        _call(model(server, "e500", api_key=SECRET), call)
    assert "HTTP 500" in err.value.message
    assert "/srv/secret" not in err.value.message and SECRET not in err.value.message


@pytest.mark.parametrize("call", ["generate", "stream"])
def test_4xx_is_model_unavailable_with_the_trimmed_server_message(server: FakeHTTPServer, call: str) -> None:
    with pytest.raises(ModelUnavailable) as err:
        _call(model(server, "e400", api_key=SECRET), call)
    msg = err.value.message
    assert "HTTP 400" in msg and "maximum context length is 4096 tokens" in msg
    assert len(msg) < 400 and SECRET not in msg


def test_tgi_error_body_is_understood(server: FakeHTTPServer) -> None:
    with pytest.raises(ModelUnavailable, match="Input validation error"):
        model(server, "tgi422").generate(MESSAGES, max_tokens=8, temperature=0.0)


@pytest.mark.parametrize("call", ["generate", "stream"])
def test_timeout_is_model_unavailable(server: FakeHTTPServer, call: str) -> None:
    with pytest.raises(ModelUnavailable, match="did not answer in time"):
        _call(model(server, "hang", timeout_s=0.3), call)


@pytest.mark.parametrize("call", ["generate", "stream"])
def test_connection_refused_is_model_unavailable(call: str) -> None:
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    m = MessagesApiChatModel(f"http://127.0.0.1:{port}", "m", timeout_s=1, connect_timeout_s=1)
    with pytest.raises(ModelUnavailable, match="not reachable"):
        _call(m, call)


def test_error_event_mid_stream_is_model_unavailable(server: FakeHTTPServer) -> None:
    it = model(server, "midstream").stream(MESSAGES, max_tokens=8, temperature=0.0)
    assert next(it) == "The"
    with pytest.raises(ModelUnavailable, match="OOM"):
        next(it)


def test_stream_cut_short_is_model_unavailable(server: FakeHTTPServer) -> None:
    with pytest.raises(ModelUnavailable, match="ended the answer stream early"):
        list(model(server, "truncated").stream(MESSAGES, max_tokens=8, temperature=0.0))


def test_non_json_success_is_model_unavailable(server: FakeHTTPServer) -> None:
    with pytest.raises(ModelUnavailable, match="not a chat completion"):
        model(server, "garbage").generate(MESSAGES, max_tokens=8, temperature=0.0)


def test_injected_client_is_used() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=COMPLETION_OK)

    client = httpx.Client(transport=httpx.MockTransport(handler))
    m = MessagesApiChatModel("http://model.invalid", "m", client=client)
    assert m.generate(MESSAGES, max_tokens=4, temperature=0.0).text == "The answer is 42."
    assert str(seen[0].url) == "http://model.invalid/v1/chat/completions"
    assert m.model_id == "m"


def _call(m: MessagesApiChatModel, call: str) -> object:
    if call == "generate":
        return m.generate(MESSAGES, max_tokens=8, temperature=0.0)
    return list(m.stream(MESSAGES, max_tokens=8, temperature=0.0))
