"""FallbackChatModel: when it falls back, when it must not, the circuit breaker (injectable clock, no sleeps),
and one run over the real adapters (Bedrock fake throttling → SageMaker via moto)."""

from __future__ import annotations

import json
import threading
import urllib.request
import uuid
from collections.abc import Iterator, Sequence

import pytest

from lectern.adapters.aws import clients
from lectern.adapters.aws.bedrock import BedrockConverseModel
from lectern.adapters.aws.fallback import BOTH_DOWN, FallbackChatModel
from lectern.adapters.aws.sagemaker_chat import SageMakerMessagesModel
from lectern.domain.errors import GuardrailBlocked, ModelUnavailable
from lectern.domain.models import ChatMessage, Generation, Usage

pytest_plugins = ["tests.fakes.bedrock_server"]  # the fake_bedrock fixture

MESSAGES = [ChatMessage("user", "How many days of leave?")]


def throttled() -> ModelUnavailable:
    return ModelUnavailable("busy", retryable=True, reason="throttled")


class Scripted:
    """A ChatModel whose successive calls follow a script: a text answers, an exception is raised.
    For streams an answer is yielded word by word; `fail_after` raises after that many deltas."""

    def __init__(
        self, model_id: str, *script: str | Exception, fail_after: tuple[int, Exception] | None = None
    ):
        self.model_id = model_id
        self.script = list(script)
        self.calls = 0
        self.fail_after = fail_after

    def _next(self) -> str:
        self.calls += 1
        step = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(step, Exception):
            raise step
        return step

    def generate(self, messages: Sequence[ChatMessage], *, max_tokens: int, temperature: float) -> Generation:
        return Generation(self._next(), self.model_id, Usage(3, 4), "stop")

    def stream(
        self, messages: Sequence[ChatMessage], *, max_tokens: int, temperature: float
    ) -> Iterator[str | Generation]:
        text = self._next()
        words = text.split(" ")
        for i, word in enumerate(words):
            if self.fail_after and i == self.fail_after[0]:
                raise self.fail_after[1]
            yield word if i == len(words) - 1 else word + " "
        yield Generation(text, self.model_id, Usage(3, len(words)), "stop")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def gen(router: FallbackChatModel) -> Generation:
    return router.generate(MESSAGES, max_tokens=10, temperature=0.0)


def test_primary_answers_no_fallback() -> None:
    fallback = Scripted("fallback", "from fallback")
    reasons: list[str] = []
    router = FallbackChatModel(Scripted("primary", "from primary"), fallback, on_fallback=reasons.append)
    assert gen(router).model == "primary"
    assert (router.last_model_id, router.last_fallback_reason) == ("primary", None)
    assert fallback.calls == 0 and reasons == []


def test_primary_throttled_fallback_answers_and_is_reported() -> None:
    reasons: list[str] = []
    router = FallbackChatModel(
        Scripted("primary", throttled()), Scripted("fallback", "from fallback"), on_fallback=reasons.append
    )
    result = gen(router)
    assert (result.text, result.model) == ("from fallback", "fallback")
    assert (router.last_model_id, router.last_fallback_reason) == ("fallback", "throttled")
    assert reasons == ["throttled"]


def test_both_down() -> None:
    cold = ModelUnavailable("cold", retryable=True, reason="cold")
    router = FallbackChatModel(Scripted("primary", throttled()), Scripted("fallback", cold))
    with pytest.raises(ModelUnavailable) as exc:
        gen(router)
    assert exc.value.message == BOTH_DOWN and exc.value.retryable is True
    assert router.last_model_id is None


@pytest.mark.parametrize(
    "error",
    [
        GuardrailBlocked("blocked", policies=("topicPolicy",), source="input"),
        ModelUnavailable("bad request", retryable=False, reason="invalid"),
    ],
)
def test_guardrail_and_invalid_requests_do_not_fall_back(error: Exception) -> None:
    fallback = Scripted("fallback", "from fallback")
    reasons: list[str] = []
    router = FallbackChatModel(Scripted("primary", error), fallback, on_fallback=reasons.append)
    with pytest.raises(type(error)) as exc:
        gen(router)
    assert exc.value is error
    assert fallback.calls == 0 and reasons == []


def test_without_fallback_the_primary_error_propagates() -> None:
    primary = Scripted("primary", throttled())
    router = FallbackChatModel(primary, None, breaker_threshold=1)
    for _ in range(3):
        with pytest.raises(ModelUnavailable) as exc:
            gen(router)
        assert exc.value.reason == "throttled"
    assert primary.calls == 3  # no breaker skipping when there is nothing to fall back to


def test_breaker_opens_then_half_opens() -> None:
    clock = Clock()
    primary = Scripted("primary", throttled(), throttled(), throttled(), throttled(), "primary is back")
    fallback = Scripted("fallback", "from fallback")
    reasons: list[str] = []
    router = FallbackChatModel(
        primary, fallback, breaker_threshold=3, breaker_reset_s=30, on_fallback=reasons.append, clock=clock
    )
    for _ in range(3):
        assert gen(router).model == "fallback"
    assert primary.calls == 3 and router.breaker_state == "open"
    # Open: the primary is not called at all.
    clock.now += 10
    assert gen(router).model == "fallback"
    assert primary.calls == 3 and router.last_fallback_reason == "circuit_open"
    # Half-open after reset_s: one probe; it fails, so the breaker opens again for another reset_s.
    clock.now += 25
    assert router.breaker_state == "half_open"
    assert gen(router).model == "fallback"
    assert primary.calls == 4 and router.breaker_state == "open"
    clock.now += 29
    gen(router)
    assert primary.calls == 4
    # Next probe succeeds: closed again, the primary answers from now on.
    clock.now += 2
    assert gen(router).model == "primary"
    assert router.breaker_state == "closed" and router.last_fallback_reason is None
    assert gen(router).model == "primary" and primary.calls == 6
    assert reasons == ["throttled"] * 3 + ["circuit_open", "throttled", "circuit_open"]


def test_success_resets_the_failure_count() -> None:
    primary = Scripted("primary", throttled(), throttled(), "ok", throttled(), throttled(), "ok")
    router = FallbackChatModel(primary, Scripted("fallback", "fb"), breaker_threshold=3, clock=Clock())
    for _ in range(6):
        gen(router)
    assert router.breaker_state == "closed" and primary.calls == 6


def test_half_open_lets_one_probe_through() -> None:
    clock = Clock()
    gate = threading.Event()
    entered = threading.Event()

    class SlowPrimary(Scripted):
        def generate(self, messages, *, max_tokens, temperature):
            if self.calls >= 1:
                entered.set()
                gate.wait(5)
            return super().generate(messages, max_tokens=max_tokens, temperature=temperature)

    primary = SlowPrimary("primary", throttled(), "back")
    router = FallbackChatModel(primary, Scripted("fallback", "fb"), breaker_threshold=1, clock=clock)
    assert gen(router).model == "fallback"
    clock.now += 31
    results: list[str] = []
    probe = threading.Thread(target=lambda: results.append(gen(router).model))
    probe.start()
    assert entered.wait(5)
    assert gen(router).model == "fallback"  # while the probe is in flight, others use the fallback
    gate.set()
    probe.join(5)
    assert results == ["primary"] and router.breaker_state == "closed"


def test_last_model_is_per_thread() -> None:
    router = FallbackChatModel(
        Scripted("primary", throttled()), Scripted("fallback", "fb"), breaker_threshold=99
    )
    gen(router)
    seen: list[object] = []
    t = threading.Thread(target=lambda: seen.extend([router.last_model_id, router.last_fallback_reason]))
    t.start()
    t.join()
    assert seen == [None, None]
    assert (router.last_model_id, router.last_fallback_reason) == ("fallback", "throttled")


def test_on_fallback_hook_errors_do_not_fail_the_answer() -> None:
    def boom(_reason: str) -> None:
        raise RuntimeError("metrics down")

    router = FallbackChatModel(Scripted("primary", throttled()), Scripted("fallback", "fb"), on_fallback=boom)
    assert gen(router).text == "fb"


# -- streaming --


def stream(router: FallbackChatModel) -> list[str | Generation]:
    return list(router.stream(MESSAGES, max_tokens=10, temperature=0.0))


def test_stream_falls_back_before_the_first_delta() -> None:
    reasons: list[str] = []
    router = FallbackChatModel(
        Scripted("primary", throttled()),
        Scripted("fallback", "from the fallback"),
        on_fallback=reasons.append,
    )
    items = stream(router)
    assert items[:-1] == ["from ", "the ", "fallback"]
    assert isinstance(items[-1], Generation) and items[-1].model == "fallback"
    assert reasons == ["throttled"] and router.last_model_id == "fallback"


def test_stream_never_mixes_two_models_text() -> None:
    primary = Scripted("primary", "one two three", fail_after=(2, throttled()))
    fallback = Scripted("fallback", "other words")
    router = FallbackChatModel(primary, fallback)
    got: list[object] = []
    with pytest.raises(ModelUnavailable) as exc:
        for item in router.stream(MESSAGES, max_tokens=10, temperature=0.0):
            got.append(item)
    assert got == ["one ", "two "] and exc.value.reason == "throttled"
    assert fallback.calls == 0


def test_stream_both_down_and_guardrail() -> None:
    router = FallbackChatModel(Scripted("primary", throttled()), Scripted("fallback", throttled()))
    with pytest.raises(ModelUnavailable, match="Both the primary model and the fallback"):
        stream(router)
    blocked = GuardrailBlocked("blocked", source="output")
    fallback = Scripted("fallback", "x")
    router = FallbackChatModel(Scripted("primary", blocked), fallback)
    with pytest.raises(GuardrailBlocked):
        stream(router)
    assert fallback.calls == 0


def test_stream_counts_for_the_breaker() -> None:
    clock = Clock()
    primary = Scripted("primary", throttled(), throttled(), "back again")
    router = FallbackChatModel(primary, Scripted("fallback", "fb"), breaker_threshold=2, clock=clock)
    stream(router)
    stream(router)
    assert router.breaker_state == "open"
    stream(router)
    assert primary.calls == 2 and router.last_fallback_reason == "circuit_open"
    clock.now += 31
    assert stream(router)[-1].model == "primary"
    assert router.breaker_state == "closed"


def test_abandoned_probe_stream_releases_the_half_open_slot() -> None:
    clock = Clock()
    primary = Scripted("primary", throttled(), "a b c")
    router = FallbackChatModel(primary, Scripted("fallback", "fb"), breaker_threshold=1, clock=clock)
    stream(router)
    clock.now += 31
    it = router.stream(MESSAGES, max_tokens=10, temperature=0.0)
    assert next(it) == "a "
    it.close()  # the client went away mid-probe
    assert stream(router)[-1].model == "primary"  # the next request may probe again


# -- over the real adapters --


def test_bedrock_throttled_falls_back_to_sagemaker(fake_bedrock, moto_server, monkeypatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", moto_server)
    clients.reset()
    completion = {
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "25 days [1]."}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 9, "completion_tokens": 4},
    }
    request = urllib.request.Request(
        f"{moto_server}/moto-api/static/sagemaker/endpoint-results",
        data=json.dumps(
            {"results": [{"Body": json.dumps(completion), "ContentType": "application/json"}]}
        ).encode(),
        method="POST",
    )
    urllib.request.urlopen(request, timeout=10).close()
    fake_bedrock.throttle_next(1)
    primary = BedrockConverseModel(
        client=clients.client("bedrock-runtime", config=clients.client_config(max_attempts=0))
    )
    fallback = SageMakerMessagesModel(f"fallback-{uuid.uuid4().hex[:8]}", model_id="qwen-fallback")
    reasons: list[str] = []
    router = FallbackChatModel(primary, fallback, on_fallback=reasons.append)
    result = gen(router)
    assert (result.text, result.model, result.usage) == ("25 days [1].", "qwen-fallback", Usage(9, 4))
    assert reasons == ["throttled"]
    assert len(fake_bedrock.of("converse")) == 1
    # Bedrock answers again: the primary is used.
    assert gen(router).model == "amazon.nova-lite-v1:0"
