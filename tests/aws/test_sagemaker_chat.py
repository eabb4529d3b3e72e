"""SageMakerMessagesModel.

* `invoke_endpoint` against moto's server with canned endpoint results (POST /moto-api/static/sagemaker/
  endpoint-results), reached through boto3's AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME like production would be.
* `invoke_endpoint_with_response_stream`: Stubber validates responses against the output shape and cannot
  carry an event stream, so a `before-send` hook answers with real event stream bytes instead, which
  botocore's own parser decodes (PayloadPart frames, SSE lines split across parts, frames split across
  reads).
* Error codes via Stubber.
"""

from __future__ import annotations

import itertools
import json
import urllib.request
import uuid

import pytest
from botocore.awsrequest import AWSResponse
from botocore.stub import Stubber

from lectern.adapters.aws import clients
from lectern.adapters.aws.sagemaker_chat import SageMakerMessagesModel
from lectern.domain.errors import ModelUnavailable
from lectern.domain.models import ChatMessage, Generation, Usage
from tests.fakes import eventstream

MESSAGES = [ChatMessage("system", "Answer briefly."), ChatMessage("user", "How many days of leave?")]


def _completion(text: str, finish: str = "stop") -> str:
    return json.dumps(
        {
            "object": "chat.completion",
            "model": "tgi",
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}
            ],
            "usage": {"prompt_tokens": 21, "completion_tokens": 6, "total_tokens": 27},
        }
    )


@pytest.fixture
def sagemaker_moto(moto_server: str, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", moto_server)
    clients.reset()

    def queue(*bodies: str) -> None:
        request = urllib.request.Request(
            f"{moto_server}/moto-api/static/sagemaker/endpoint-results",
            data=json.dumps(
                {"results": [{"Body": b, "ContentType": "application/json"} for b in bodies]}
            ).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 201

    return queue


def _capture(client, operation: str) -> list[dict]:
    seen: list[dict] = []
    client.meta.events.register(
        f"provide-client-params.sagemaker-runtime.{operation}", lambda params, **_: seen.append(params)
    )
    return seen


def test_generate_against_moto_canned_result(sagemaker_moto) -> None:
    sagemaker_moto(_completion("Staff get 25 days [1]."))
    endpoint = f"lectern-fallback-{uuid.uuid4().hex[:8]}"
    model = SageMakerMessagesModel(endpoint, inference_component="qwen-ic", model_id="qwen2.5-1.5b")
    sent = _capture(model._client, "InvokeEndpoint")
    gen = model.generate(MESSAGES, max_tokens=64, temperature=0.2)
    assert gen == Generation("Staff get 25 days [1].", "qwen2.5-1.5b", Usage(21, 6), "stop")
    (params,) = sent
    assert params["EndpointName"] == endpoint and params["InferenceComponentName"] == "qwen-ic"
    assert params["ContentType"] == "application/json"
    assert json.loads(params["Body"]) == {
        "model": "qwen2.5-1.5b",
        "messages": [
            {"role": "system", "content": "Answer briefly."},
            {"role": "user", "content": "How many days of leave?"},
        ],
        "max_tokens": 64,
        "temperature": 0.2,
        "stream": False,
    }


def test_generate_rejects_a_body_that_is_not_a_completion(sagemaker_moto) -> None:
    sagemaker_moto(json.dumps({"unexpected": True}))
    model = SageMakerMessagesModel(f"ep-{uuid.uuid4().hex[:8]}")
    with pytest.raises(ModelUnavailable, match="not a chat completion"):
        model.generate(MESSAGES, max_tokens=8, temperature=0.0)


# -- streaming --


class _Raw:
    """What botocore reads an event stream from (urllib3's response): `.stream()` yields byte chunks."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks
        self.closed = False

    def stream(self, *_args, **_kwargs):
        yield from self.chunks

    def close(self) -> None:
        self.closed = True


def _sse(*chunks: dict | str) -> bytes:
    out = b""
    for chunk in chunks:
        data = chunk if isinstance(chunk, str) else json.dumps(chunk)
        out += f"data: {data}\n\n".encode()
    return out


def _delta(text: str | None, finish: str | None = None) -> dict:
    delta = {"role": "assistant", "content": text} if text is not None else {}
    return {
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def _stream_client(payload_parts: list[bytes], *, read_size: int = 7, tail: bytes = b""):
    """A sagemaker-runtime client whose streaming call answers with these PayloadPart bytes."""
    client = clients.client("sagemaker-runtime")
    frames = (
        b"".join(
            eventstream.encode_frame(
                {
                    ":event-type": "PayloadPart",
                    ":content-type": "application/octet-stream",
                    ":message-type": "event",
                },
                part,
            )
            for part in payload_parts
        )
        + tail
    )
    raw = _Raw([frames[i : i + read_size] for i in range(0, len(frames), read_size)])

    def answer(request, **_kwargs):
        if not request.url.endswith("/invocations-response-stream"):
            return None
        return AWSResponse(request.url, 200, {"Content-Type": "application/vnd.amazon.eventstream"}, raw)

    client.meta.events.register("before-send.sagemaker-runtime", answer)
    return client, raw


def test_stream_reassembles_lines_split_across_parts() -> None:
    sse = _sse(
        _delta("Staff "),
        _delta("get 25 "),
        _delta("days [1]."),
        _delta(None, "stop"),
        {
            "object": "chat.completion.chunk",
            "choices": [],
            "usage": {"prompt_tokens": 30, "completion_tokens": 7},
        },
        "[DONE]",
    )
    cuts = [0, 3, 11, 40, 41, 90, 150, len(sse)]  # cut inside "data:", inside JSON, between lines ...
    parts = [sse[a:b] for a, b in itertools.pairwise(cuts) if b > a]
    client, raw = _stream_client(parts)
    model = SageMakerMessagesModel("ep", client=client)
    sent = _capture(client, "InvokeEndpointWithResponseStream")
    items = list(model.stream(MESSAGES, max_tokens=32, temperature=0.0))
    assert items[:-1] == ["Staff ", "get 25 ", "days [1]."]
    assert items[-1] == Generation("Staff get 25 days [1].", "sagemaker:ep", Usage(30, 7), "stop")
    body = json.loads(sent[0]["Body"])
    assert body["stream"] is True and body["max_tokens"] == 32
    assert "InferenceComponentName" not in sent[0]
    assert raw.closed


def test_stream_without_done_or_finish_is_an_error() -> None:
    client, _ = _stream_client([_sse(_delta("half an answ"))])
    with pytest.raises(ModelUnavailable, match="ended the answer stream early"):
        list(SageMakerMessagesModel("ep", client=client).stream(MESSAGES, max_tokens=8, temperature=0.0))


def test_model_stream_error_mid_stream_is_retryable() -> None:
    error = eventstream.encode_frame(
        {
            ":exception-type": "ModelStreamError",
            ":content-type": "application/json",
            ":message-type": "exception",
        },
        json.dumps({"Message": "CUDA out of memory", "ErrorCode": "500"}).encode(),
    )
    client, _ = _stream_client([_sse(_delta("Staff "))], tail=error)
    got = []
    with pytest.raises(ModelUnavailable) as exc:
        for item in SageMakerMessagesModel("ep", client=client).stream(
            MESSAGES, max_tokens=8, temperature=0.0
        ):
            got.append(item)
    assert got == ["Staff "]
    assert (exc.value.retryable, exc.value.reason) == (True, "server_error")
    assert "CUDA" not in exc.value.message


def test_tgi_error_event_is_an_error() -> None:
    client, _ = _stream_client([_sse({"error": "Input validation error", "error_type": "validation"})])
    with pytest.raises(ModelUnavailable, match="failed while answering"):
        list(SageMakerMessagesModel("ep", client=client).stream(MESSAGES, max_tokens=8, temperature=0.0))


# -- errors --

_NO_CAPACITY = (
    "Inference Component has no capacity to process this request. ApplicationAutoScaling may be in-progress "
    "(if configured) or try to increase the capacity by invoking UpdateInferenceComponentRuntimeConfig API."
)


@pytest.mark.parametrize(
    ("code", "status", "message"),
    [
        ("ValidationError", 400, _NO_CAPACITY),
        ("ValidationError", 400, "Endpoint lectern-fallback of account 123456789012 not found."),
        ("ModelNotReadyException", 429, "Model is not ready yet."),
        ("ServiceUnavailable", 503, "Service is unavailable."),
    ],
)
@pytest.mark.parametrize("streaming", [False, True])
def test_cold_endpoint_is_retryable_and_says_so(
    code: str, status: int, message: str, streaming: bool
) -> None:
    client = clients.client("sagemaker-runtime")
    model = SageMakerMessagesModel("lectern-fallback", inference_component="qwen-ic", client=client)
    operation = "invoke_endpoint_with_response_stream" if streaming else "invoke_endpoint"
    with Stubber(client) as stub:
        stub.add_client_error(
            operation, service_error_code=code, service_message=message, http_status_code=status
        )
        with pytest.raises(ModelUnavailable) as exc:
            if streaming:
                list(model.stream(MESSAGES, max_tokens=8, temperature=0.0))
            else:
                model.generate(MESSAGES, max_tokens=8, temperature=0.0)
    assert (exc.value.retryable, exc.value.reason) == (True, "cold")
    assert "scaled to zero or still starting" in exc.value.message
    assert "lectern-fallback" in exc.value.message and "qwen-ic" in exc.value.message


@pytest.mark.parametrize(
    ("code", "status", "extra", "expected"),
    [
        ("ValidationError", 400, {}, (False, "invalid")),
        ("ModelError", 424, {"OriginalStatusCode": 422}, (False, "invalid")),
        ("ModelError", 424, {"OriginalStatusCode": 429}, (True, "throttled")),
        ("ModelError", 424, {"OriginalStatusCode": 500}, (True, "server_error")),
        ("InternalFailure", 500, {}, (True, "server_error")),
        ("ThrottlingException", 400, {}, (True, "throttled")),
    ],
)
def test_other_errors(code: str, status: int, extra: dict, expected: tuple[bool, str]) -> None:
    client = clients.client("sagemaker-runtime")
    with Stubber(client) as stub:
        stub.add_client_error(
            "invoke_endpoint",
            service_error_code=code,
            service_message="Input validation error: max_tokens must be <= 1024",
            http_status_code=status,
            modeled_fields=extra,
        )
        with pytest.raises(ModelUnavailable) as exc:
            SageMakerMessagesModel("ep", client=client).generate(MESSAGES, max_tokens=8, temperature=0.0)
    assert (exc.value.retryable, exc.value.reason) == expected
