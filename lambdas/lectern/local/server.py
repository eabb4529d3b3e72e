"""The local HTTP server: every API request becomes an API Gateway (REST, v1 proxy) event for the same
Powertools resolver that runs in Lambda. It also serves the web page (on AWS CloudFront does that).

Streaming: for `POST /v1/query` with `Accept: text/event-stream` the server puts a live event sink into the
resolver's context, so tokens reach the browser as they are generated; in Lambda the same route buffers.
"""

from __future__ import annotations

import base64
import json
import logging
import mimetypes
import queue
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from aws_lambda_powertools.event_handler import APIGatewayRestResolver

from lectern.api.app import sse_frame

log = logging.getLogger("lectern.server")

_TEXT_TYPES = ("application/json", "text/", "application/x-www-form-urlencoded")
_STATIC_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    # blob: images: the passage view shows the cited page image, fetched with the auth headers
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
}


class LambdaContext:
    """The few attributes Powertools reads from a Lambda context."""

    function_name = "lectern-local"
    memory_limit_in_mb = 0
    invoked_function_arn = "arn:aws:lambda:local:000000000000:function:lectern-local"

    def __init__(self) -> None:
        self.aws_request_id = uuid.uuid4().hex

    def get_remaining_time_in_millis(self) -> int:
        return 900_000


def to_api_gateway_event(
    method: str, raw_path: str, headers: dict[str, str], body: bytes, source_ip: str
) -> dict[str, Any]:
    parts = urlsplit(raw_path)
    qs = parse_qs(parts.query, keep_blank_values=True)
    ctype = headers.get("content-type", "")
    is_text = not body or any(ctype.startswith(t) for t in _TEXT_TYPES)
    if is_text:
        try:
            body_str: str | None = body.decode("utf-8")
            b64 = False
        except UnicodeDecodeError:
            body_str, b64 = base64.b64encode(body).decode(), True
    else:
        body_str, b64 = base64.b64encode(body).decode(), True
    request_id = uuid.uuid4().hex
    return {
        "resource": parts.path,
        "path": parts.path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": {k: v[-1] for k, v in qs.items()} or None,
        "multiValueQueryStringParameters": qs or None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "requestId": request_id,
            "stage": "local",
            "httpMethod": method,
            "path": parts.path,
            "resourcePath": parts.path,
            "requestTimeEpoch": int(time.time() * 1000),
            "identity": {"sourceIp": source_ip},
        },
        "body": body_str if body else None,
        "isBase64Encoded": b64,
    }


def _decodable(body: bytes, content_type: str) -> bool:
    """Whether a body can reach the routes: multipart uploads are bytes, every other body must be UTF-8."""
    if not body or content_type.lower().startswith("multipart/form-data"):
        return True
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


class _LiveSink:
    def __init__(self, handler: BaseHTTPRequestHandler) -> None:
        self.handler = handler
        self.started = False
        self.broken = False

    def send(self, event: str, data: dict) -> None:
        if self.broken:
            return
        try:
            if not self.started:
                self.started = True
                self.handler.send_response(200)
                self.handler.send_header("Content-Type", "text/event-stream; charset=utf-8")
                self.handler.send_header("Cache-Control", "no-cache")
                self.handler.send_header("X-Accel-Buffering", "no")
                self.handler.end_headers()
            self.handler.wfile.write(sse_frame(event, data).encode("utf-8"))
            self.handler.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.broken = True  # the client went away; generation finishes quietly


def isolate(app: APIGatewayRestResolver) -> APIGatewayRestResolver:
    """Keep the request's event and context on this resolver instance.

    Powertools' `resolve()` stores them on the `BaseRouter` *class* (one slot shared by every resolver and
    thread), so with concurrent requests a route or the validation middleware could read another request's
    body, headers or identity (the load test caught a query handled with an upload's body). An instance
    attribute shadows the class one; each pooled resolver serves one request at a time.
    """
    to_proxy_event = app._to_proxy_event
    resolve = app.resolve

    def _to_proxy_event(event: dict) -> Any:
        proxy = to_proxy_event(event)
        app.current_event = proxy  # type: ignore[assignment]
        return proxy

    def _resolve(event: dict, context: Any) -> dict[str, Any]:
        app.lambda_context = context
        return resolve(event, context)

    app._to_proxy_event = _to_proxy_event  # type: ignore[method-assign]
    app.resolve = _resolve  # type: ignore[method-assign,assignment]
    return app


class ResolverPool:
    """Powertools resolvers keep per-request state, so each request borrows its own (see `isolate`)."""

    def __init__(self, factory: Callable[[], APIGatewayRestResolver], size: int = 16) -> None:
        self.factory = factory
        self._pool: queue.LifoQueue[APIGatewayRestResolver] = queue.LifoQueue()
        self._created = 0
        self._size = size
        self._lock = threading.Lock()

    def acquire(self) -> APIGatewayRestResolver:
        try:
            return self._pool.get_nowait()
        except queue.Empty:
            with self._lock:
                if self._created < self._size:
                    self._created += 1
                    return isolate(self.factory())
            return self._pool.get()

    def release(self, app: APIGatewayRestResolver) -> None:
        self._pool.put(app)


class _JsonHandler(BaseHTTPRequestHandler):
    """Sending bodies and JSON errors; any method without a `do_` method is a JSON 405."""

    def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json_error(self, status: int, code: str, message: str) -> None:
        body = json.dumps({"error": {"code": code, "message": message}}).encode()
        self._send(status, {"Content-Type": "application/json"}, body)

    def _not_allowed(self) -> None:
        self.close_connection = True
        self._json_error(405, "method_not_allowed", f"Method {self.command[:20]!r} is not allowed.")

    def __getattr__(self, name: str) -> Any:
        # TRACE, CONNECT, QUERY...: http.server itself would answer a 501 HTML page (a server error).
        if name.startswith("do_"):
            return self._not_allowed
        raise AttributeError(name)


def static_target(frontend_dir: Path, path: str) -> Path | None:
    """The page's file for `/`, `/index.html` or `/static/<name>` (no subfolders, no dot files), if it exists."""
    if path in ("/", "/index.html"):
        target = frontend_dir / "index.html"
    elif path.startswith("/static/"):
        name = path[len("/static/") :]
        if not name or "/" in name or "\\" in name or name.startswith("."):
            return None
        target = frontend_dir / name
    else:
        return None
    return target if target.is_file() else None


def response_parts(result: dict) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body bytes of an API Gateway proxy response."""
    raw = result.get("body") or ""
    data = base64.b64decode(raw) if result.get("isBase64Encoded") else raw.encode("utf-8")
    headers = dict(result.get("headers") or {})
    for k, values in (result.get("multiValueHeaders") or {}).items():
        headers[k] = ", ".join(values)
    return int(result["statusCode"]), headers, data


class _Handler(_JsonHandler):
    """One request: the page's static files, else the API through a pooled resolver (`make_handler` binds
    the pool, the page folder and the body limit)."""

    pool: ResolverPool
    frontend_dir: Path | None
    max_body: int
    server_version = "Lectern"
    sys_version = ""

    def log_message(self, format: str, *args: object) -> None:
        log.info("%s %s", self.address_string(), format % args)

    def _static(self, path: str) -> bool:
        if self.frontend_dir is None or self.command not in ("GET", "HEAD"):
            return False
        target = static_target(self.frontend_dir, path)
        if target is None:
            return False
        ctype = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        if ctype.startswith("text/") or ctype.endswith("javascript"):
            ctype += "; charset=utf-8"
        self._send(
            200,
            {"Content-Type": ctype, "Cache-Control": "no-cache", **_STATIC_HEADERS},
            target.read_bytes(),
        )
        return True

    def _read_body(self) -> bytes | None:
        length = self.headers.get("Content-Length")
        if length is None:
            return b""
        try:
            n = int(length)
        except ValueError:
            self._json_error(400, "invalid_request", "Invalid Content-Length.")
            return None
        if n < 0 or n > self.max_body:
            self.close_connection = True
            self._json_error(
                413, "payload_too_large", f"The request body is over the {self.max_body:,}-byte limit."
            )
            return None
        return self.rfile.read(n)

    def _handle(self) -> None:
        path = urlsplit(self.path).path
        if self._static(path):
            return
        body = self._read_body()
        if body is None:
            return
        headers = {k.lower(): v for k, v in self.headers.items()}
        if not _decodable(body, headers.get("content-type", "")):
            # Powertools decodes a JSON body from base64 as UTF-8 and raises on bad bytes (a 500).
            self._json_error(400, "invalid_request", "The request body is not valid UTF-8.")
            return
        event = to_api_gateway_event(self.command, self.path, headers, body, self.client_address[0])
        sink = None
        app = self.pool.acquire()
        try:
            if "text/event-stream" in headers.get("accept", ""):
                sink = _LiveSink(self)
                app.append_context(sse_sink=sink)
            result = app.resolve(event, LambdaContext())  # type: ignore[arg-type]  # the attributes Powertools reads
        finally:
            self.pool.release(app)
        if sink is not None and sink.started:
            return
        self._send(*response_parts(result))

    do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = do_HEAD = do_OPTIONS = _handle


def make_handler(
    pool: ResolverPool, frontend_dir: Path | None, max_body: int
) -> type[BaseHTTPRequestHandler]:
    return type("Handler", (_Handler,), {"pool": pool, "frontend_dir": frontend_dir, "max_body": max_body})


class LocalServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # socketserver's default listen backlog is 5: with every response closing its connection (HTTP/1.0), 50
    # concurrent clients overflowed it (SYN retries gave a 1 s p99 and a few connections reset mid-request).
    request_queue_size = 128

    def __init__(
        self,
        host: str,
        port: int,
        app_factory: Callable[[], APIGatewayRestResolver],
        frontend_dir: Path | None,
        max_body: int,
    ) -> None:
        self.pool = ResolverPool(app_factory)
        super().__init__((host, port), make_handler(self.pool, frontend_dir, max_body))

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host.decode() if isinstance(host, bytes) else host}:{port}"
