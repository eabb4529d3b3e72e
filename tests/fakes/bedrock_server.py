"""A fake Amazon Bedrock runtime on loopback, speaking the real REST wire format boto3 uses.

Operations (paths from botocore's `bedrock-runtime` service model, protocol rest-json):

* `POST /model/{modelId}/invoke` — Titan Text Embeddings V2 (`{"inputText","dimensions","normalize"}` →
  `{"embedding","inputTextTokenCount"}`); deterministic bag-of-words vectors, so identical texts embed
  identically and texts sharing words are similar. Enforces Titan's 50,000-character and 8,192-token limits
  with the messages the service sends.
* `POST /model/{modelId}/converse` — Converse JSON.
* `POST /model/{modelId}/converse-stream` — ConverseStream as `application/vnd.amazon.eventstream` frames
  (messageStart, contentBlockDelta*, contentBlockStop, messageStop, metadata), sent chunked as produced.
* `POST /guardrail/{id}/version/{v}/apply` — ApplyGuardrail. Text blocks may carry `qualifiers`
  (`grounding_source`, `query`, `guard_content`; anything else is a ValidationException, as is a grounding
  source without source OUTPUT or without a `guard_content` block). With a grounding source the contextual
  grounding filter runs: GROUNDING = the share of the answer's words found in the sources, RELEVANCE = 1.0
  when the answer shares a word with the query, else 0.0 — a stand-in for Bedrock's model-based scores,
  with its response shape (`assessments[].contextualGroundingPolicy.filters[]`); below `grounding_threshold` /
  `relevance_threshold` the filter BLOCKs. Word and PII rules apply to the guarded text only.

Requests are SigV4-signed by boto3; the signature is ignored. Errors use rest-json's shape: the status code,
an `x-amzn-ErrorType` header and a `{"message": ...}` body, which botocore turns into `ClientError` codes.
Everything a test configures is a plain attribute; every request is recorded in `requests`.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

import pytest

from tests.fakes import eventstream

TITAN_MAX_CHARS = 50_000
TITAN_MAX_TOKENS = 8_192
TITAN_DIMENSIONS = (256, 512, 1024)
GUARDRAIL_BLOCKED_INPUT = "Sorry, the model cannot answer this question."
GUARDRAIL_BLOCKED_OUTPUT = "Sorry, the model cannot provide this answer."

_ERROR_TYPES = {
    429: "ThrottlingException",
    500: "InternalServerException",
    503: "ServiceUnavailableException",
    424: "ModelErrorException",
    408: "ModelTimeoutException",
    400: "ValidationException",
    403: "AccessDeniedException",
}
_ROUTES = [
    ("invoke", re.compile(r"^/model/(?P<model>[^/]+)/invoke$")),
    ("converse", re.compile(r"^/model/(?P<model>[^/]+)/converse$")),
    ("converse-stream", re.compile(r"^/model/(?P<model>[^/]+)/converse-stream$")),
    ("apply-guardrail", re.compile(r"^/guardrail/(?P<guardrail>[^/]+)/version/(?P<version>[^/]+)/apply$")),
]
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+")


def tokens(text: str) -> list[str]:
    """The fake's tokenizer: words and punctuation marks."""
    return re.findall(r"\w+|[^\w\s]", text)


def fake_embedding(text: str, dimension: int, normalize: bool = True) -> list[float]:
    """Hashing-trick bag of words (lower-cased words), deterministic across processes."""
    vec = [0.0] * dimension
    for word in re.findall(r"\w+", text.lower()):
        h = int.from_bytes(hashlib.sha256(word.encode()).digest()[:8], "big")
        vec[h % dimension] += 1.0 if (h >> 63) == 0 else -1.0
    if not any(vec):
        vec[0] = 1.0
    if normalize:
        norm = math.sqrt(sum(v * v for v in vec))
        vec = [v / norm for v in vec]
    return vec


@dataclass
class Recorded:
    operation: str
    path: str
    params: dict[str, str]
    headers: dict[str, str]
    body: Any  # parsed JSON


@dataclass
class _Error:
    status: int
    error_type: str
    message: str
    operations: tuple[str, ...] = ()  # empty: any operation


@dataclass
class FakeBedrock:
    """Per-test configuration and the record of requests. Start with `start()` (the fixture does)."""

    answer: str | Callable[[dict[str, Any]], str] = "The handbook allows 25 days of leave [1]."
    guardrail_marker: str = (
        "FORBIDDEN-TOPIC"  # input containing it is blocked (when a guardrail is configured)
    )
    output_marker: str = "SECRET-PROJECT"  # an answer containing it is blocked
    grounding_threshold: float = (
        0.75  # the guardrail's GROUNDING filter (cdk/config models.grounding_threshold)
    )
    relevance_threshold: float = 0.5
    delay_s: float = 0.0
    stream_error_after: int | None = None  # send a throttlingException frame after this many deltas
    requests: list[Recorded] = field(default_factory=list)
    _errors: list[_Error] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    # -- configuration -------------------------------------------------------------------------------------

    def fail_next(
        self,
        n: int,
        status: int = 500,
        message: str | None = None,
        error_type: str | None = None,
        *,
        operations: tuple[str, ...] = (),
    ):
        """The next `n` requests (of `operations`, or of any operation) fail with `status`."""
        error_type = error_type or _ERROR_TYPES.get(status, "InternalServerException")
        message = message or f"Injected {error_type}."
        with self._lock:
            self._errors.extend(_Error(status, error_type, message, operations) for _ in range(n))

    def throttle_next(self, n: int, *, operations: tuple[str, ...] = ()) -> None:
        self.fail_next(n, 429, "Too many requests, please wait before trying again.", operations=operations)

    def clear_errors(self) -> None:
        with self._lock:
            self._errors.clear()

    def of(self, operation: str) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if r.operation == operation]

    # -- lifecycle -----------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self._server is not None, "not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeBedrock:
        fake = self

        class Handler(_Handler):
            owner = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # -- behaviour -----------------------------------------------------------------------------------------

    def _take_error(self, operation: str = "") -> _Error | None:
        with self._lock:
            for i, err in enumerate(self._errors):
                if not err.operations or operation in err.operations:
                    return self._errors.pop(i)
            return None

    def _answer_for(self, body: dict[str, Any]) -> str:
        return self.answer(body) if callable(self.answer) else self.answer

    def embed(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        text = body.get("inputText")
        if not isinstance(text, str) or not text:
            return 400, _error_body(
                "ValidationException", "Malformed input request: #: required key [inputText] not found"
            )
        dimension = body.get("dimensions", 1024)
        if dimension not in TITAN_DIMENSIONS:
            return 400, _error_body(
                "ValidationException",
                f"Malformed input request: #/dimensions: {dimension} is not a valid enum value",
            )
        if len(text) > TITAN_MAX_CHARS:
            return 400, _error_body(
                "ValidationException",
                f"Malformed input request: expected maxLength: {TITAN_MAX_CHARS}, actual: {len(text)}, "
                "please reformat your input and try again.",
            )
        count = len(tokens(text))
        if count > TITAN_MAX_TOKENS:
            return 400, _error_body(
                "ValidationException",
                f"400 Bad Request: Too many input tokens. Max input tokens: {TITAN_MAX_TOKENS}, "
                f"request input token count: {count}",
            )
        vec = fake_embedding(text, dimension, bool(body.get("normalize", True)))
        return 200, {"embedding": vec, "embeddingsByType": {"float": vec}, "inputTextTokenCount": count}

    def converse_result(self, body: dict[str, Any], guardrail: dict[str, Any] | None) -> dict[str, Any]:
        """What the model (behind the guardrail) answers: text, stopReason, usage and trace."""
        texts = [b.get("text", "") for b in body.get("system") or []]
        for message in body.get("messages") or []:
            texts.extend(b.get("text", "") for b in message.get("content") or [])
        input_tokens = sum(len(tokens(t)) for t in texts)
        trace: dict[str, Any] = {}
        gid = (guardrail or {}).get("guardrailIdentifier", "")
        traced = (guardrail or {}).get("trace", "disabled") != "disabled"
        if guardrail and any(self.guardrail_marker in t for t in texts):
            if traced:
                trace = {"guardrail": {"inputAssessment": {gid: _blocking_assessment(self.guardrail_marker)}}}
            return {
                "text": GUARDRAIL_BLOCKED_INPUT,
                "stopReason": "guardrail_intervened",
                "usage": _usage(0, 0),
                "trace": trace,
            }
        answer = self._answer_for(body)
        words = answer.split(" ")
        max_tokens = (body.get("inferenceConfig") or {}).get("maxTokens")
        stop = "end_turn"
        if max_tokens is not None and len(words) > max_tokens:
            words, stop = words[:max_tokens], "max_tokens"
        answer = " ".join(words)
        if guardrail and self.output_marker in answer:
            if traced:
                trace = {
                    "guardrail": {
                        "inputAssessment": {gid: {}},
                        "outputAssessments": {gid: [_blocking_assessment(self.output_marker, topic=False)]},
                    }
                }
            return {
                "text": GUARDRAIL_BLOCKED_OUTPUT,
                "stopReason": "guardrail_intervened",
                "usage": _usage(input_tokens, len(words)),
                "trace": trace,
            }
        if traced:
            trace = {"guardrail": {"inputAssessment": {gid: {}}, "outputAssessments": {gid: [{}]}}}
        return {"text": answer, "stopReason": stop, "usage": _usage(input_tokens, len(words)), "trace": trace}

    def apply_guardrail(self, body: dict[str, Any]) -> dict[str, Any]:
        source = body.get("source")
        if source not in ("INPUT", "OUTPUT"):
            raise ValueError("source must be INPUT or OUTPUT")
        blocks: dict[str, list[str]] = {"grounding_source": [], "query": [], "guard_content": []}
        for c in body.get("content") or []:
            block = c.get("text") or {}
            qualifiers = block.get("qualifiers") or ["guard_content"]
            for q in qualifiers:
                if q not in blocks:
                    raise ValueError(f"unknown qualifier {q!r}")
                blocks[q].append(block.get("text", ""))
        if blocks["grounding_source"] and (source != "OUTPUT" or not blocks["guard_content"]):
            raise ValueError("a grounding source needs source OUTPUT and guard_content to check")
        text = " ".join(blocks["guard_content"])
        grounding = self._grounding(blocks, text) if blocks["grounding_source"] else None
        if grounding and any(f["action"] == "BLOCKED" for f in grounding["filters"]):
            return {
                "action": "GUARDRAIL_INTERVENED",
                "actionReason": "Guardrail blocked.",
                "outputs": [{"text": GUARDRAIL_BLOCKED_OUTPUT}],
                "assessments": [{"contextualGroundingPolicy": grounding}],
                "usage": _guardrail_usage(),
            }
        if self.guardrail_marker in text or self.output_marker in text:
            marker = self.guardrail_marker if self.guardrail_marker in text else self.output_marker
            blocked = GUARDRAIL_BLOCKED_INPUT if source == "INPUT" else GUARDRAIL_BLOCKED_OUTPUT
            return {
                "action": "GUARDRAIL_INTERVENED",
                "actionReason": "Guardrail blocked.",
                "outputs": [{"text": blocked}],
                "assessments": [_blocking_assessment(marker)],
                "usage": _guardrail_usage(),
            }
        emails = _EMAIL.findall(text)
        if emails:
            masked = _EMAIL.sub("{EMAIL}", text)
            entities = [
                {"match": e, "type": "EMAIL", "action": "ANONYMIZED", "detected": True} for e in emails
            ]
            return {
                "action": "GUARDRAIL_INTERVENED",
                "actionReason": "Guardrail masked.",
                "outputs": [{"text": masked}],
                "assessments": [{"sensitiveInformationPolicy": {"piiEntities": entities}}],
                "usage": _guardrail_usage(),
            }
        assessment = {"contextualGroundingPolicy": grounding} if grounding else {}
        return {"action": "NONE", "outputs": [], "assessments": [assessment], "usage": _guardrail_usage()}

    def _grounding(self, blocks: dict[str, list[str]], answer: str) -> dict[str, Any]:
        def words(t: str) -> set[str]:
            return {w.rstrip("s") for w in re.findall(r"[a-z0-9]+", t.lower()) if len(w) > 3}

        said, known, asked = (
            words(answer),
            words(" ".join(blocks["grounding_source"])),
            words(" ".join(blocks["query"])),
        )
        grounding = len(said & known) / len(said) if said else 1.0
        relevance = 1.0 if (said & asked or not asked) else 0.0
        filters = []
        for kind, score, threshold in (
            ("GROUNDING", grounding, self.grounding_threshold),
            ("RELEVANCE", relevance, self.relevance_threshold),
        ):
            blocked = score < threshold
            filters.append(
                {
                    "type": kind,
                    "threshold": threshold,
                    "score": round(score, 2),
                    "action": "BLOCKED" if blocked else "NONE",
                    "detected": blocked,
                }
            )
        return {"filters": filters}


def _usage(i: int, o: int) -> dict[str, int]:
    return {"inputTokens": i, "outputTokens": o, "totalTokens": i + o}


def _guardrail_usage() -> dict[str, int]:
    return {
        "topicPolicyUnits": 1,
        "contentPolicyUnits": 1,
        "wordPolicyUnits": 1,
        "sensitiveInformationPolicyUnits": 1,
        "sensitiveInformationPolicyFreeUnits": 0,
        "contextualGroundingPolicyUnits": 0,
    }


def _blocking_assessment(marker: str, *, topic: bool = True) -> dict[str, Any]:
    """A trace assessment that blocked: a word-policy match that quotes the offending text (as the real trace
    does), a content filter and optionally a denied topic."""
    assessment: dict[str, Any] = {
        "wordPolicy": {"customWords": [{"match": marker, "action": "BLOCKED", "detected": True}]},
        "contentPolicy": {
            "filters": [
                {
                    "type": "MISCONDUCT",
                    "confidence": "HIGH",
                    "filterStrength": "HIGH",
                    "action": "BLOCKED",
                    "detected": True,
                },
                {
                    "type": "HATE",
                    "confidence": "NONE",
                    "filterStrength": "HIGH",
                    "action": "NONE",
                    "detected": False,
                },
            ]
        },
    }
    if topic:
        assessment["topicPolicy"] = {
            "topics": [{"name": "Internal projects", "type": "DENY", "action": "BLOCKED", "detected": True}]
        }
    return assessment


def _error_body(error_type: str, message: str) -> dict[str, Any]:
    return {"__error_type": error_type, "message": message}


class _Handler(BaseHTTPRequestHandler):
    owner: FakeBedrock
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        path = self.path.split("?", 1)[0]
        matches = [(op, pattern.match(path)) for op, pattern in _ROUTES]
        operation, m = next(((op, m) for op, m in matches if m), ("", None))
        if m is None:
            self._json(404, {"message": f"Unknown operation {path}"}, "UnknownOperationException")
            return
        params = {k: unquote(v) for k, v in m.groupdict().items()}
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            self._json(400, {"message": "Malformed input request: not JSON"}, "ValidationException")
            return
        fake = self.owner
        with fake._lock:
            fake.requests.append(Recorded(operation, path, params, dict(self.headers.items()), body))
        if fake.delay_s:
            time.sleep(fake.delay_s)
        error = fake._take_error(operation)
        if error is not None:
            self._json(error.status, {"message": error.message}, error.error_type)
            return
        if operation == "invoke":
            status, data = fake.embed(body)
            error_type = data.pop("__error_type", None)
            self._json(status, data, error_type)
        elif operation == "converse":
            result = fake.converse_result(body, body.get("guardrailConfig"))
            data = {
                "output": {"message": {"role": "assistant", "content": [{"text": result["text"]}]}},
                "stopReason": result["stopReason"],
                "usage": result["usage"],
                "metrics": {"latencyMs": 12},
            }
            if result["trace"]:
                data["trace"] = result["trace"]
            self._json(200, data)
        elif operation == "converse-stream":
            self._converse_stream(fake, body)
        else:
            try:
                data = fake.apply_guardrail(body)
            except ValueError as exc:
                self._json(400, {"message": str(exc)}, "ValidationException")
                return
            self._json(200, data)

    def _json(self, status: int, data: dict[str, Any], error_type: str | None = None) -> None:
        payload = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("x-amzn-RequestId", "fake-" + hashlib.md5(payload).hexdigest()[:12])
        if error_type:
            self.send_header("x-amzn-ErrorType", f"{error_type}:http://internal.amazon.com/coral/")
        self.end_headers()
        self.wfile.write(payload)

    def _converse_stream(self, fake: FakeBedrock, body: dict[str, Any]) -> None:
        result = fake.converse_result(body, body.get("guardrailConfig"))
        self.send_response(200)
        self.send_header("Content-Type", "application/vnd.amazon.eventstream")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("x-amzn-RequestId", "fake-stream")
        self.end_headers()
        self._chunk(eventstream.event("messageStart", {"role": "assistant"}))
        pieces = re.findall(r"\S+\s*", result["text"]) or [""]
        for i, piece in enumerate(pieces):
            if fake.stream_error_after is not None and i == fake.stream_error_after:
                self._chunk(eventstream.exception("throttlingException", "Too many tokens, slow down."))
                self._chunk(b"")
                return
            delta = {"delta": {"text": piece}, "contentBlockIndex": 0}
            self._chunk(eventstream.event("contentBlockDelta", delta))
        self._chunk(eventstream.event("contentBlockStop", {"contentBlockIndex": 0}))
        self._chunk(eventstream.event("messageStop", {"stopReason": result["stopReason"]}))
        metadata: dict[str, Any] = {"usage": result["usage"], "metrics": {"latencyMs": 12}}
        if result["trace"]:
            metadata["trace"] = result["trace"]
        self._chunk(eventstream.event("metadata", metadata))
        self._chunk(b"")

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()


@pytest.fixture
def fake_bedrock(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeBedrock]:
    """A started fake with boto3's `bedrock-runtime` endpoint variable pointing at it."""
    fake = FakeBedrock().start()
    monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", fake.url)
    from lectern.adapters.aws import clients

    clients.reset()
    yield fake
    fake.stop()
