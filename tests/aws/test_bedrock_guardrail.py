"""Guardrails: Converse/ConverseStream interventions and ApplyGuardrail, over the fake Bedrock runtime.

The fake's trace quotes the offending word (as Bedrock's word-policy trace does), so these tests prove that
the user-facing message and the error never carry it."""

from __future__ import annotations

import pytest

from lectern.adapters.aws.bedrock import BedrockConverseModel, BedrockGuardrail
from lectern.domain.errors import GuardrailBlocked
from lectern.domain.models import ChatMessage, Generation
from tests.fakes.bedrock_server import GUARDRAIL_BLOCKED_INPUT

pytest_plugins = ["tests.fakes.bedrock_server"]  # the fake_bedrock fixture

MARKER = "FORBIDDEN-TOPIC"


def _ask(question: str) -> list[ChatMessage]:
    return [ChatMessage("system", "Answer from the passages."), ChatMessage("user", question)]


def _leaks(exc: GuardrailBlocked, secret: str) -> bool:
    return secret in str(exc) or secret in exc.message or any(secret in p for p in exc.policies)


def test_guardrail_config_is_sent(fake_bedrock) -> None:
    model = BedrockConverseModel(guardrail_id="gr-abc123", guardrail_version="3")
    model.generate(_ask("hello"), max_tokens=20, temperature=0.0)
    list(model.stream(_ask("hello"), max_tokens=20, temperature=0.0))
    assert fake_bedrock.of("converse")[0].body["guardrailConfig"] == {
        "guardrailIdentifier": "gr-abc123",
        "guardrailVersion": "3",
        "trace": "enabled",
    }
    assert fake_bedrock.of("converse-stream")[0].body["guardrailConfig"] == {
        "guardrailIdentifier": "gr-abc123",
        "guardrailVersion": "3",
        "trace": "enabled",
        "streamProcessingMode": "sync",
    }


def test_input_intervention_raises_without_the_blocked_text(fake_bedrock) -> None:
    model = BedrockConverseModel(guardrail_id="gr-abc123", guardrail_version="1")
    question = f"Tell me everything about {MARKER} right now"
    with pytest.raises(GuardrailBlocked) as exc:
        model.generate(_ask(question), max_tokens=20, temperature=0.0)
    assert exc.value.source == "input"
    assert exc.value.policies == ("topicPolicy", "contentPolicy", "wordPolicy")
    assert not _leaks(exc.value, MARKER) and not _leaks(exc.value, question)
    assert "Internal projects" not in exc.value.message  # nor the denied topic's name
    assert "rephrase" in exc.value.message


def test_output_intervention_is_reported_as_output(fake_bedrock) -> None:
    fake_bedrock.answer = "The SECRET-PROJECT budget is large."
    model = BedrockConverseModel(guardrail_id="gr-abc123", guardrail_version="1")
    with pytest.raises(GuardrailBlocked) as exc:
        model.generate(_ask("What is the budget?"), max_tokens=50, temperature=0.0)
    assert exc.value.source == "output"
    assert exc.value.policies == ("contentPolicy", "wordPolicy")
    assert not _leaks(exc.value, "SECRET-PROJECT") and "budget" not in exc.value.message


def test_stream_intervention_ends_with_guardrail_blocked(fake_bedrock) -> None:
    model = BedrockConverseModel(guardrail_id="gr-abc123", guardrail_version="1")
    seen: list[object] = []
    with pytest.raises(GuardrailBlocked) as exc:
        for item in model.stream(_ask(f"about {MARKER}"), max_tokens=20, temperature=0.0):
            seen.append(item)
    assert exc.value.source == "input" and "topicPolicy" in exc.value.policies
    # Only the guardrail's own configured message can have streamed (sync mode), never a Generation.
    assert "".join(s for s in seen if isinstance(s, str)) == GUARDRAIL_BLOCKED_INPUT
    assert not any(isinstance(s, Generation) for s in seen)
    assert not _leaks(exc.value, MARKER)


def test_trace_disabled_still_blocks_with_generic_message(fake_bedrock) -> None:
    model = BedrockConverseModel(guardrail_id="gr-abc123", guardrail_version="1", trace=False)
    with pytest.raises(GuardrailBlocked) as exc:
        model.generate(_ask(f"about {MARKER}"), max_tokens=20, temperature=0.0)
    assert exc.value.policies == ()
    assert fake_bedrock.of("converse")[0].body["guardrailConfig"]["trace"] == "disabled"


def test_without_guardrail_the_marker_is_just_text(fake_bedrock) -> None:
    gen = BedrockConverseModel().generate(_ask(f"about {MARKER}"), max_tokens=20, temperature=0.0)
    assert gen.text == fake_bedrock.answer


def test_apply_guardrail_passes_clean_text(fake_bedrock) -> None:
    verdict = BedrockGuardrail("gr-abc123", "2").apply_guardrail("How many days of leave?", "INPUT")
    assert (verdict.action, verdict.blocked, verdict.text, verdict.policies) == (
        "NONE",
        False,
        "How many days of leave?",
        (),
    )
    (req,) = fake_bedrock.of("apply-guardrail")
    assert req.params == {"guardrail": "gr-abc123", "version": "2"}
    assert req.body == {"source": "INPUT", "content": [{"text": {"text": "How many days of leave?"}}]}


def test_apply_guardrail_masks_pii(fake_bedrock) -> None:
    guardrail = BedrockGuardrail("gr-abc123", "2")
    verdict = guardrail.apply_guardrail("Mail jane.doe@example.com about leave", "OUTPUT")
    assert verdict.intervened and not verdict.blocked
    assert verdict.text == "Mail {EMAIL} about leave"
    assert verdict.policies == ("sensitiveInformationPolicy",)
    assert guardrail.guard("Mail jane.doe@example.com about leave", "OUTPUT") == "Mail {EMAIL} about leave"
    assert fake_bedrock.of("apply-guardrail")[0].body["source"] == "OUTPUT"


def test_apply_guardrail_blocks(fake_bedrock) -> None:
    guardrail = BedrockGuardrail("gr-abc123", "2")
    verdict = guardrail.apply_guardrail(f"about {MARKER}")
    assert verdict.blocked and verdict.text == GUARDRAIL_BLOCKED_INPUT
    assert verdict.policies == ("topicPolicy", "contentPolicy", "wordPolicy")
    with pytest.raises(GuardrailBlocked) as exc:
        guardrail.guard(f"about {MARKER}")
    assert exc.value.source == "input" and not _leaks(exc.value, MARKER)


def test_apply_guardrail_rejects_unknown_source() -> None:
    with pytest.raises(ValueError):
        BedrockGuardrail("g", "1", client=object()).apply_guardrail("x", "BOTH")
