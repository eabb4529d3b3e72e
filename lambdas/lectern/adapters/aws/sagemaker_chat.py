"""`ChatModel` over a SageMaker real-time endpoint running Hugging Face TGI (the self-hosted fallback model).

The request body is the OpenAI/TGI Messages API (`/v1/chat/completions`) JSON; TGI's SageMaker route
(`/invocations`) accepts it as is. `invoke_endpoint` returns one chat completion;
`invoke_endpoint_with_response_stream` returns TGI's server-sent events (`data: {chat.completion.chunk}`
lines) inside `PayloadPart.Bytes` events, cut wherever the container flushed — so lines are reassembled.
https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_runtime_InvokeEndpointWithResponseStream.html

The fallback endpoint may be scaled to zero (inference components, MinInstanceCount 0) or still starting:
that answers `ValidationError` ("... no capacity to process this request ...", or "Endpoint ... not found"
while it is being recreated), `ModelNotReadyException` or `ServiceUnavailable`, all reported as
`ModelUnavailable(retryable=True, reason="cold")` with a message saying so.
https://docs.aws.amazon.com/sagemaker/latest/dg/endpoint-auto-scaling-zero-instances.html
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from lectern.adapters.aws import clients
from lectern.adapters.aws.bedrock import error_code, unavailable_from
from lectern.adapters.messages_api import _usage, chunk_content  # the same Messages API as llama.cpp's server
from lectern.domain.errors import ModelUnavailable
from lectern.domain.models import ChatMessage, Generation, Usage

log = logging.getLogger(__name__)

_COLD_VALIDATION = re.compile(
    r"no capacity|capacity to process|not found|could not find|scaled? (?:in|down|to zero)|not in service|"
    r"InService|being (?:created|updated)",
    re.I,
)


class SageMakerMessagesModel:
    """A `ChatModel` speaking the Messages API to a SageMaker endpoint (optionally an inference component)."""

    def __init__(
        self,
        endpoint_name: str,
        *,
        inference_component: str | None = None,
        client: Any | None = None,
        model_id: str | None = None,
        timeout_s: float = 60,
    ) -> None:
        self.endpoint_name = endpoint_name
        self.inference_component = inference_component
        self.model_id = model_id or f"sagemaker:{inference_component or endpoint_name}"
        # One retry at most: a cold endpoint stays cold for minutes, and the router has somewhere else to go.
        self._client = client or clients.client(
            "sagemaker-runtime", config=clients.client_config(read_timeout=timeout_s, max_attempts=1)
        )
        target = f"endpoint {endpoint_name}" + (
            f", component {inference_component}" if inference_component else ""
        )
        self._what = f"The SageMaker model ({target})"

    # -- request --

    def _params(
        self, messages: Sequence[ChatMessage], max_tokens: int, temperature: float, stream: bool
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model_id,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "max_tokens": max_tokens,
            "temperature": temperature,
            "stream": stream,
        }
        if stream:
            body["stream_options"] = {"include_usage": True}  # TGI >= 2.3 sends a last chunk with usage
        params: dict[str, Any] = {
            "EndpointName": self.endpoint_name,
            "Body": json.dumps(body).encode("utf-8"),
            "ContentType": "application/json",
        }
        if not stream:
            params["Accept"] = "application/json"
        if self.inference_component:
            params["InferenceComponentName"] = self.inference_component
        return params

    # -- errors --

    def _cold(self) -> ModelUnavailable:
        return ModelUnavailable(
            f"{self._what} is scaled to zero or still starting; it takes a few minutes to come up. "
            "Try again shortly.",
            retryable=True,
            reason="cold",
        )

    def _error(self, exc: Exception) -> ModelUnavailable:
        if isinstance(exc, ClientError):
            code = error_code(exc)
            error = exc.response.get("Error", {})
            message = str(error.get("Message") or "")
            cold_validation = code in ("validationerror", "validation") and _COLD_VALIDATION.search(message)
            if code in ("modelnotready", "serviceunavailable") or cold_validation:
                log.warning("%s: cold (%s: %s)", self._what, code, message)
                return self._cold()
            if code == "modelerror":
                # The container answered an error; its own status says whose fault it is.
                original = int(exc.response.get("OriginalStatusCode") or error.get("OriginalStatusCode") or 0)
                if original == 429:
                    return ModelUnavailable(
                        f"{self._what} is overloaded; try again shortly.", retryable=True, reason="throttled"
                    )
                if 400 <= original < 500:
                    detail = " ".join(message.split())[:300]
                    return ModelUnavailable(
                        f"{self._what} rejected the request (HTTP {original}): {detail}",
                        retryable=False,
                        reason="invalid",
                    )
        return unavailable_from(exc, self._what)

    # -- ChatModel --

    def generate(self, messages: Sequence[ChatMessage], *, max_tokens: int, temperature: float) -> Generation:
        try:
            response = self._client.invoke_endpoint(**self._params(messages, max_tokens, temperature, False))
            raw = response["Body"].read()
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc) from None
        try:
            data = json.loads(raw)
            if isinstance(data, list) and data and isinstance(data[0], dict) and "generated_text" in data[0]:
                return Generation(
                    str(data[0]["generated_text"]), self.model_id, Usage(), "stop"
                )  # TGI /generate
            choice = data["choices"][0]
            text = choice["message"].get("content") or ""
            finish = choice.get("finish_reason") or "stop"
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            raise ModelUnavailable(f"{self._what} sent a response that is not a chat completion.") from None
        return Generation(text, self.model_id, _usage(data.get("usage")) or Usage(), str(finish))

    def stream(
        self, messages: Sequence[ChatMessage], *, max_tokens: int, temperature: float
    ) -> Iterator[str | Generation]:
        """Yield text deltas as they arrive, then one Generation (usage 0 when the server reports none)."""
        parts: list[str] = []
        usage: Usage | None = None
        finish: str | None = None
        done = False
        events = None
        try:
            response = self._client.invoke_endpoint_with_response_stream(
                **self._params(messages, max_tokens, temperature, True)
            )
            events = response["Body"]
            for payload in self._payloads(events):
                if payload is None:
                    done = True
                    break
                usage = _usage(payload.get("usage")) or usage
                deltas, finish = chunk_content(payload, finish)
                for delta in deltas:
                    parts.append(delta)
                    yield delta
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc) from None
        finally:
            if events is not None:
                events.close()
        if not done and finish is None:
            raise ModelUnavailable(f"{self._what} ended the answer stream early.", reason="server_error")
        yield Generation("".join(parts), self.model_id, usage or Usage(), finish or "stop")

    def _payloads(self, events: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any] | None]:
        """The SSE `data:` payloads of the PayloadPart events, parsed, in order; None stands for `[DONE]`.
        A line may be split across parts (and a part may hold several lines)."""
        buffer = b""
        for event in events:
            chunk = (event.get("PayloadPart") or {}).get("Bytes")
            if not chunk:
                continue
            *lines, buffer = (buffer + chunk).split(b"\n")
            for line in lines:
                data = self._data(line)
                if data == "[DONE]":
                    yield None
                    return
                if data is not None:
                    yield self._parse_chunk(data)
        data = self._data(buffer)  # a last line without its newline
        if data == "[DONE]":
            yield None
        elif data:
            yield self._parse_chunk(data)

    @staticmethod
    def _data(line: bytes) -> str | None:
        text = line.decode("utf-8", "replace").strip()
        if not text.startswith("data:"):
            return None  # blank separators, `:` comments, `event:` and `id:` fields
        return text[5:].strip()

    def _parse_chunk(self, data: str) -> dict[str, Any]:
        try:
            payload = json.loads(data)
        except ValueError:
            raise ModelUnavailable(
                f"{self._what} sent an unreadable stream event.", reason="server_error"
            ) from None
        if not isinstance(payload, dict):
            raise ModelUnavailable(f"{self._what} sent an unreadable stream event.", reason="server_error")
        if payload.get("error"):  # TGI reports a failure mid-stream as an event
            raise ModelUnavailable(f"{self._what} failed while answering.", reason="server_error")
        return payload
