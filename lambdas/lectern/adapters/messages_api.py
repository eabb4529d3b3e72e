"""`ChatModel` over the OpenAI-compatible `/v1/chat/completions` API.

llama.cpp's servers (llama-cpp-python's and the C++ one), Hugging Face TGI's Messages API, vLLM and OpenAI
itself all speak it. Every failure to get an answer becomes `ModelUnavailable`: transport errors and 5xx with
a generic message, 4xx with the server's own error message (trimmed). The API key never appears in one.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from typing import Any

import httpx

from lectern.domain.errors import ModelUnavailable
from lectern.domain.models import ChatMessage, Generation, Usage

log = logging.getLogger(__name__)

_MAX_ERROR_CHARS = 300


def _trim(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_ERROR_CHARS else text[: _MAX_ERROR_CHARS - 1] + "…"


def _error_message(body: bytes) -> str:
    """The human part of an error body: OpenAI/llama.cpp `{"error": {"message"}}`, TGI `{"error": "..."}`,
    FastAPI `{"detail": ...}`, or the raw text."""
    text = body.decode("utf-8", "replace")
    try:
        data = json.loads(text)
    except ValueError:
        return _trim(text)
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict) and err.get("message"):
            return _trim(str(err["message"]))
        for key in ("error", "detail", "message"):
            value = data.get(key)
            if isinstance(value, str) and value:
                return _trim(value)
            if value:
                return _trim(json.dumps(value))
    return _trim(text)


def _usage(data: object) -> Usage | None:
    if not isinstance(data, dict):
        return None
    try:
        return Usage(int(data.get("prompt_tokens") or 0), int(data.get("completion_tokens") or 0))
    except (TypeError, ValueError):
        return None


def chunk_content(chunk: dict[str, Any], finish: str | None = None) -> tuple[list[str], str | None]:
    """The text deltas of one `chat.completion.chunk`, and its finish reason (else the previous one)."""
    deltas: list[str] = []
    for choice in chunk.get("choices") or ():
        if not isinstance(choice, dict):
            continue
        delta = (choice.get("delta") or {}).get("content")
        if delta:
            deltas.append(delta)
        finish = choice.get("finish_reason") or finish
    return deltas, finish


class MessagesApiChatModel:
    """A `ChatModel` speaking the OpenAI chat-completions API to `base_url` (with or without its `/v1`)."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        timeout_s: float = 120.0,
        connect_timeout_s: float = 5.0,
        api_key: str | None = None,
        client: httpx.Client | None = None,
    ) -> None:
        base = base_url.rstrip("/")
        self.url = (base if base.endswith("/v1") else base + "/v1") + "/chat/completions"
        self.model_id = model
        self._timeout = httpx.Timeout(timeout_s, connect=connect_timeout_s)
        self._headers = {"Accept": "application/json"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._client = client or httpx.Client(timeout=self._timeout)
        self._owns_client = client is None

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    def _body(self, messages: Sequence[ChatMessage], max_tokens: int, temperature: float) -> dict[str, Any]:
        return {
            "model": self.model_id,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "max_tokens": max_tokens,
            "temperature": temperature,
        }

    def _raise_for_status(self, response: httpx.Response) -> None:
        status = response.status_code
        if status < 400:
            return
        body = response.read()
        if status >= 500:
            log.warning("model server %s answered HTTP %d: %s", self.url, status, _error_message(body))
            raise ModelUnavailable(f"The language model server failed (HTTP {status}); try again shortly.")
        raise ModelUnavailable(f"The language model server rejected the request (HTTP {status}): "
                               f"{_error_message(body)}")

    def _transport_error(self, exc: httpx.HTTPError) -> ModelUnavailable:
        if isinstance(exc, httpx.TimeoutException):
            what = "did not answer in time"
        elif isinstance(exc, httpx.ConnectError):
            what = "is not reachable"
        else:
            what = f"connection failed ({type(exc).__name__})"
        log.warning("model server %s %s: %s", self.url, what, exc)
        return ModelUnavailable(f"The language model server {what}.")

    def generate(self, messages: Sequence[ChatMessage], *, max_tokens: int, temperature: float) -> Generation:
        try:
            response = self._client.post(
                self.url, json=self._body(messages, max_tokens, temperature), headers=self._headers,
                timeout=self._timeout,
            )
            self._raise_for_status(response)
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from None
        try:
            data = response.json()
            choice = data["choices"][0]
            text = choice["message"].get("content") or ""
            finish = choice.get("finish_reason") or "stop"
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            raise ModelUnavailable(
                "The language model server sent a response that is not a chat completion."
            ) from None
        return Generation(text, self.model_id, _usage(data.get("usage")) or Usage(), str(finish))

    def stream(
        self, messages: Sequence[ChatMessage], *, max_tokens: int, temperature: float
    ) -> Iterator[str | Generation]:
        """Yield text deltas as they arrive, then one Generation (usage 0 when the server reports none)."""
        body = self._body(messages, max_tokens, temperature)
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
        headers = {**self._headers, "Accept": "text/event-stream"}
        parts: list[str] = []
        usage: Usage | None = None
        finish: str | None = None
        done = False
        try:
            with self._client.stream(
                "POST", self.url, json=body, headers=headers, timeout=self._timeout
            ) as r:
                self._raise_for_status(r)
                for line in r.iter_lines():
                    if not line.startswith("data:"):
                        continue  # blank separators, `: ping` comments, `event:` and `id:` fields
                    payload = line[5:].strip()
                    if payload == "[DONE]":
                        done = True
                        break
                    chunk = self._parse_chunk(payload)
                    usage = _usage(chunk.get("usage")) or usage
                    deltas, finish = chunk_content(chunk, finish)
                    for delta in deltas:
                        parts.append(delta)
                        yield delta
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from None
        if not done and finish is None:
            raise ModelUnavailable("The language model server ended the answer stream early.")
        yield Generation("".join(parts), self.model_id, usage or Usage(), finish or "stop")

    @staticmethod
    def _parse_chunk(payload: str) -> dict[str, Any]:
        try:
            chunk = json.loads(payload)
        except ValueError:
            raise ModelUnavailable("The language model server sent an unreadable stream event.") from None
        if not isinstance(chunk, dict):
            raise ModelUnavailable("The language model server sent an unreadable stream event.")
        if chunk.get("error"):  # TGI and llama.cpp report a failure mid-stream as an event
            raise ModelUnavailable(
                f"The language model failed while answering: {_error_message(payload.encode())}"
            )
        return chunk
