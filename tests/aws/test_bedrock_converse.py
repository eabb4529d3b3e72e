"""BedrockConverseModel: Converse/ConverseStream over the fake Bedrock runtime; error mapping via Stubber."""

from __future__ import annotations

import pytest
from botocore.stub import Stubber

from lectern.adapters.aws import clients
from lectern.adapters.aws.bedrock import BedrockConverseModel, BedrockReranker
from lectern.domain.errors import ModelUnavailable
from lectern.domain.models import ChatMessage, Generation

pytest_plugins = ["tests.fakes.bedrock_server"]  # the fake_bedrock fixture

MESSAGES = [
    ChatMessage("system", "Answer from the passages only."),
    ChatMessage("user", "Passages: [1] Staff get 25 days."),
    ChatMessage("user", "How many days of leave?"),
]


def test_generate_maps_request_and_response(fake_bedrock) -> None:
    fake_bedrock.answer = "Staff get 25 days of leave [1]."
    model = BedrockConverseModel()
    gen = model.generate(MESSAGES, max_tokens=200, temperature=0.1)
    assert gen == Generation("Staff get 25 days of leave [1].", "amazon.nova-lite-v1:0", gen.usage, "stop")
    assert gen.usage.output_tokens == 7 and gen.usage.input_tokens > 10
    (req,) = fake_bedrock.of("converse")
    assert req.params["model"] == "amazon.nova-lite-v1:0"
    assert req.body["system"] == [{"text": "Answer from the passages only."}]
    # Two consecutive user messages become one user turn (Converse needs alternating roles).
    assert req.body["messages"] == [
        {
            "role": "user",
            "content": [{"text": "Passages: [1] Staff get 25 days."}, {"text": "How many days of leave?"}],
        }
    ]
    assert req.body["inferenceConfig"] == {"maxTokens": 200, "temperature": 0.1}
    assert "guardrailConfig" not in req.body


def test_max_tokens_finish_reason_is_length(fake_bedrock) -> None:
    fake_bedrock.answer = "one two three four five six"
    gen = BedrockConverseModel().generate(MESSAGES, max_tokens=3, temperature=0.0)
    assert gen.text == "one two three" and gen.finish_reason == "length"


def test_stream_yields_deltas_then_generation(fake_bedrock) -> None:
    fake_bedrock.answer = "Staff get 25 days [1]."
    model = BedrockConverseModel("anthropic.claude-3-haiku-20240307-v1:0")
    items = list(model.stream(MESSAGES, max_tokens=100, temperature=0.0))
    deltas, final = items[:-1], items[-1]
    assert all(isinstance(d, str) for d in deltas) and len(deltas) == 5
    assert "".join(deltas) == "Staff get 25 days [1]."
    assert isinstance(final, Generation)
    assert final.text == "Staff get 25 days [1]." and final.model == "anthropic.claude-3-haiku-20240307-v1:0"
    assert final.usage.output_tokens == 5 and final.finish_reason == "stop"
    assert fake_bedrock.of("converse-stream")[0].params["model"] == "anthropic.claude-3-haiku-20240307-v1:0"


def test_stream_error_mid_stream_is_retryable(fake_bedrock) -> None:
    fake_bedrock.answer = "a b c d"
    fake_bedrock.stream_error_after = 2
    got: list[object] = []
    with pytest.raises(ModelUnavailable) as exc:
        for item in BedrockConverseModel().stream(MESSAGES, max_tokens=50, temperature=0.0):
            got.append(item)
    assert got == ["a ", "b "]
    assert exc.value.retryable is True and exc.value.reason == "throttled"


def test_throttling_exhausted_is_retryable(fake_bedrock) -> None:
    fake_bedrock.throttle_next(5)
    client = clients.client("bedrock-runtime", config=clients.client_config(max_attempts=1))
    with pytest.raises(ModelUnavailable) as exc:
        BedrockConverseModel(client=client).generate(MESSAGES, max_tokens=10, temperature=0.0)
    assert exc.value.retryable is True and exc.value.reason == "throttled"
    assert "too many requests" in exc.value.message
    assert len(fake_bedrock.of("converse")) == 2


@pytest.mark.parametrize(
    ("status", "reason"),
    [(500, "server_error"), (503, "server_error"), (424, "server_error"), (408, "timeout")],
)
def test_service_errors_are_retryable(fake_bedrock, status: int, reason: str) -> None:
    fake_bedrock.fail_next(1, status)
    client = clients.client("bedrock-runtime", config=clients.client_config(max_attempts=0))
    with pytest.raises(ModelUnavailable) as exc:
        BedrockConverseModel(client=client).generate(MESSAGES, max_tokens=10, temperature=0.0)
    assert (exc.value.retryable, exc.value.reason) == (True, reason)


def test_read_timeout_is_retryable(fake_bedrock) -> None:
    fake_bedrock.delay_s = 1.0
    client = clients.client("bedrock-runtime", config=clients.client_config(max_attempts=0, read_timeout=0.2))
    with pytest.raises(ModelUnavailable) as exc:
        BedrockConverseModel(client=client).generate(MESSAGES, max_tokens=10, temperature=0.0)
    assert (exc.value.retryable, exc.value.reason) == (True, "timeout")


def _stubbed(code: str, status: int, message: str):
    client = clients.client("bedrock-runtime")
    stub = Stubber(client)
    stub.add_client_error(
        "converse", service_error_code=code, service_message=message, http_status_code=status
    )
    return client, stub


def test_validation_exception_is_not_retryable() -> None:
    client, stub = _stubbed("ValidationException", 400, "The provided model identifier is invalid.")
    with stub, pytest.raises(ModelUnavailable) as exc:
        BedrockConverseModel("no.such-model", client=client).generate(
            MESSAGES, max_tokens=10, temperature=0.0
        )
    assert (exc.value.retryable, exc.value.reason) == (False, "invalid")
    assert "The provided model identifier is invalid." in exc.value.message
    assert "no.such-model" in exc.value.message


def test_access_denied_explains_model_access() -> None:
    client, stub = _stubbed(
        "AccessDeniedException", 403, "You don't have access to the model with the specified model ID."
    )
    with stub, pytest.raises(ModelUnavailable) as exc:
        BedrockConverseModel(client=client).generate(MESSAGES, max_tokens=10, temperature=0.0)
    assert (exc.value.retryable, exc.value.reason) == (False, "invalid")
    assert "enable access to the model" in exc.value.message


@pytest.mark.parametrize(
    ("code", "status", "reason"),
    [
        ("ModelNotReadyException", 429, "cold"),
        ("ServiceUnavailableException", 503, "server_error"),
        ("InternalServerException", 500, "server_error"),
        ("ModelTimeoutException", 408, "timeout"),
    ],
)
def test_stubbed_retryable_codes(code: str, status: int, reason: str) -> None:
    client, stub = _stubbed(code, status, "x")
    with stub, pytest.raises(ModelUnavailable) as exc:
        BedrockConverseModel(client=client).generate(MESSAGES, max_tokens=10, temperature=0.0)
    assert (exc.value.retryable, exc.value.reason) == (True, reason)


def test_reranker_orders_by_score() -> None:
    client = clients.client("bedrock-agent-runtime")
    arn = "arn:aws:bedrock:us-west-2::foundation-model/amazon.rerank-v1:0"
    with Stubber(client) as stub:
        stub.add_response(
            "rerank",
            {"results": [{"index": 2, "relevanceScore": 0.4}, {"index": 0, "relevanceScore": 0.9}]},
            expected_params={
                "queries": [{"type": "TEXT", "textQuery": {"text": "leave"}}],
                "sources": [
                    {"type": "INLINE", "inlineDocumentSource": {"type": "TEXT", "textDocument": {"text": t}}}
                    for t in ("a", "b", "c")
                ],
                "rerankingConfiguration": {
                    "type": "BEDROCK_RERANKING_MODEL",
                    "bedrockRerankingConfiguration": {
                        "numberOfResults": 2,
                        "modelConfiguration": {"modelArn": arn},
                    },
                },
            },
        )
        assert BedrockReranker(arn, client=client).rerank("leave", ["a", "b", "c"], 2) == [(0, 0.9), (2, 0.4)]
    assert BedrockReranker(arn, client=client).rerank("leave", [], 2) == []
