"""Amazon Bedrock adapters: Titan V2 embeddings, Converse/ConverseStream generation with a guardrail,
ApplyGuardrail, and Bedrock's rerank API.

Decision: plain boto3, not langchain-aws's `ChatBedrockConverse`. Our `ChatModel` port is narrow (text
messages in; text, usage and a finish reason out), and what this adapter must get exactly right is what
LangChain abstracts away: mapping botocore error codes onto `ModelUnavailable(retryable=...)` for the fallback
router, and reading the guardrail trace into `GuardrailBlocked` without ever passing the blocked text on.
langchain-aws would also add langchain-core and its pydantic models to the Lambda bundle and to every cold
start, to save about a hundred lines. boto3 is already in the Lambda runtime.

Request/response shapes: https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html,
https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_ConverseStream.html,
https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_ApplyGuardrail.html,
https://docs.aws.amazon.com/bedrock/latest/userguide/model-parameters-titan-embed-text.html.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from lectern.adapters.aws import clients
from lectern.domain.errors import GuardrailBlocked, ModelUnavailable
from lectern.domain.models import ChatMessage, Generation, Usage

log = logging.getLogger(__name__)

_MAX_ERROR_CHARS = 300

# Error codes (lower-cased, no "Exception" suffix) on which another attempt or another model may work.
# Codes come from the bedrock-runtime and sagemaker-runtime service models; inside an event stream botocore
# reports the union member name (`throttlingException`), which normalises to the same key.
_RETRYABLE_CODES = {
    "throttling": "throttled",
    "toomanyrequests": "throttled",
    "servicequotaexceeded": "throttled",
    "serviceunavailable": "server_error",
    "internalserver": "server_error",
    "internalfailure": "server_error",
    "internaldependency": "server_error",
    "internalstreamfailure": "server_error",
    "modelstreamerror": "server_error",
    "modelerror": "server_error",
    "modelnotready": "cold",
    "modeltimeout": "timeout",
}
_MESSAGES = {
    "throttled": "{what} is receiving too many requests right now; try again shortly.",
    "server_error": "{what} failed on the service side; try again shortly.",
    "cold": "{what} is starting up; try again in a minute.",
    "timeout": "{what} did not answer in time.",
    "unavailable": "{what} is not reachable.",
}


def _trim(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= _MAX_ERROR_CHARS else text[: _MAX_ERROR_CHARS - 1] + "…"


def error_code(exc: ClientError) -> str:
    """`ThrottlingException` / `throttlingException` / `Throttling` → `throttling`."""
    code = str(exc.response.get("Error", {}).get("Code") or "").lower()
    return code.removesuffix("exception")


def unavailable_from(exc: Exception, what: str) -> ModelUnavailable:
    """Map a botocore failure to the domain error the router acts on. `what` names the model for the user."""
    if isinstance(exc, ClientError):
        code = error_code(exc)
        message = _trim(exc.response.get("Error", {}).get("Message") or "")
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        reason = _RETRYABLE_CODES.get(code)
        if reason is None and status == 429:
            reason = "throttled"
        elif reason is None and status >= 500:
            reason = "server_error"
        if reason is not None:
            log.warning("%s: %s (%s)", what, code or status, message)
            return ModelUnavailable(_MESSAGES[reason].format(what=what), retryable=True, reason=reason)
        if code == "accessdenied":
            text = (
                f"{what} refused access (AccessDenied): enable access to the model in this region and allow "
                f"the function's role to invoke it."
            )
        else:
            text = f"{what} rejected the request ({code or status}): {message}"
        log.error("%s: non-retryable %s: %s", what, code or status, message)
        return ModelUnavailable(text, retryable=False, reason="invalid")
    if isinstance(exc, (ReadTimeoutError, ConnectTimeoutError)):
        reason = "timeout"
    elif isinstance(exc, (EndpointConnectionError, ConnectionClosedError)):
        reason = "unavailable"
    else:
        reason = "unavailable"
    log.warning("%s: %s: %s", what, type(exc).__name__, exc)
    return ModelUnavailable(_MESSAGES[reason].format(what=what), retryable=True, reason=reason)


# ------------------------------------------------------------------------------------------------ embeddings

TITAN_DIMENSIONS = (256, 512, 1024)
TITAN_MAX_CHARS = 50_000  # and 8,192 tokens, which cannot be counted client-side
_TOO_MANY_TOKENS = re.compile(r"Max input tokens:\s*(\d+),\s*request input token count:\s*(\d+)", re.I)
_TRUNCATION_ATTEMPTS = 5


class TitanEmbedder:
    """`Embedder` over Amazon Titan Text Embeddings V2 (`InvokeModel`, one text per call).

    Batches run as concurrent calls on a bounded thread pool (boto3 clients are thread-safe), in input order.
    Over-long input is truncated, never refused: first to Titan's 50,000 characters; then, if the service
    still reports more than 8,192 tokens (`Too many input tokens. Max input tokens: 8192, request input token
    count: N`, the message Bedrock returns, see github.com/aws-samples/amazon-bedrock-workshop/issues/136), to
    the proportional share of characters with a 5% margin, up to five times. Throttling is retried by
    botocore's adaptive retry mode; once retries are exhausted it surfaces as
    `ModelUnavailable(reason="throttled")`.
    `input_tokens` counts the tokens Titan reports, for cost metrics.
    """

    def __init__(
        self,
        model_id: str = "amazon.titan-embed-text-v2:0",
        dimension: int = 1024,
        normalize: bool = True,
        client: Any | None = None,
        max_workers: int = 8,
    ) -> None:
        if dimension not in TITAN_DIMENSIONS:
            raise ValueError(f"Titan V2 embeddings have 256, 512 or 1024 dimensions, not {dimension}")
        if max_workers < 1:
            raise ValueError("max_workers must be at least 1")
        self.model_id = model_id
        self.dimension = dimension
        self.normalize = normalize
        self._client = client or clients.client(
            "bedrock-runtime", config=clients.client_config(pool=max(max_workers, 10))
        )
        self._max_workers = max_workers
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._input_tokens = 0
        self._what = f"The embedding model {model_id}"

    @property
    def input_tokens(self) -> int:
        with self._lock:
            return self._input_tokens

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)

    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._max_workers, thread_name_prefix="titan-embed")
            return self._pool

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        # one text: no pool; more: the pool's map keeps input order
        rows = [self._embed_one(texts[0])] if len(texts) == 1 else list(self._executor().map(self._embed_one, texts))
        matrix = np.asarray(rows, dtype=np.float32)
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        return matrix / np.where(norms == 0, 1.0, norms)

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed_documents([text])[0]

    def _embed_one(self, text: str) -> list[float]:
        if not text or not text.strip():
            raise ValueError("cannot embed an empty text")
        text = text[:TITAN_MAX_CHARS]
        for _ in range(_TRUNCATION_ATTEMPTS + 1):
            body = json.dumps({"inputText": text, "dimensions": self.dimension, "normalize": self.normalize})
            try:
                response = self._client.invoke_model(
                    modelId=self.model_id,
                    body=body,
                    contentType="application/json",
                    accept="application/json",
                )
                data = json.loads(response["body"].read())
            except ClientError as exc:
                match = _TOO_MANY_TOKENS.search(exc.response.get("Error", {}).get("Message") or "")
                if error_code(exc) == "validation" and match:
                    limit, count = int(match.group(1)), int(match.group(2))
                    keep = max(1, int(len(text) * limit / max(count, 1) * 0.95))
                    log.info(
                        "truncating a %d-character text (%d tokens) to %d characters", len(text), count, keep
                    )
                    text = text[: min(keep, len(text) - 1)]
                    continue
                raise unavailable_from(exc, self._what) from None
            except BotoCoreError as exc:
                raise unavailable_from(exc, self._what) from None
            except ValueError:
                raise ModelUnavailable(f"{self._what} sent a response that is not JSON.") from None
            vector = data.get("embedding") if isinstance(data, dict) else None
            if not isinstance(vector, list) or len(vector) != self.dimension:
                got = len(vector) if isinstance(vector, list) else "no"
                raise ModelUnavailable(
                    f"{self._what} returned {got} dimensions instead of {self.dimension}.",
                    retryable=False,
                    reason="invalid",
                )
            with self._lock:
                self._input_tokens += int(data.get("inputTextTokenCount") or 0)
            return vector
        raise ModelUnavailable(
            f"{self._what} kept refusing a text as too long after truncation.",
            retryable=False,
            reason="invalid",
        )


# ------------------------------------------------------------------------------------------------ guardrails

POLICY_KEYS = (
    "topicPolicy",
    "contentPolicy",
    "wordPolicy",
    "sensitiveInformationPolicy",
    "contextualGroundingPolicy",
    "automatedReasoningPolicy",
)
_BLOCKED_INPUT = (
    "Your question was stopped by this service's content policy and was not answered. "
    "Please rephrase it or ask about something else."
)
_BLOCKED_OUTPUT = "The answer was withheld by this service's content policy."
_BLOCKED_UNKNOWN = "The request was stopped by this service's content policy."


def _acted(node: object, actions: frozenset[str]) -> bool:
    """Whether any entry below `node` (a policy's assessment) has an `action` in `actions`."""
    if isinstance(node, dict):
        if str(node.get("action") or "") in actions:
            return True
        return any(_acted(v, actions) for v in node.values() if isinstance(v, (dict, list)))
    if isinstance(node, list):
        return any(_acted(v, actions) for v in node)
    return False


def policies_that_acted(
    assessments: Iterable[object], actions: Iterable[str] = ("BLOCKED",)
) -> tuple[str, ...]:
    """The policy categories (`topicPolicy`, `contentPolicy`, ...) that took one of `actions` in any of the
    guardrail assessments. Only category names: never a matched word, topic name or pattern."""
    wanted = frozenset(actions)
    found: set[str] = set()
    for assessment in assessments:
        if not isinstance(assessment, dict):
            continue
        for key in POLICY_KEYS:
            if key in assessment and _acted(assessment[key], wanted):
                found.add(key)
    return tuple(k for k in POLICY_KEYS if k in found)


def blocked_from_trace(trace: object) -> GuardrailBlocked:
    """A user-safe GuardrailBlocked from a Converse `trace` (None when the trace is off)."""
    guardrail = trace.get("guardrail") if isinstance(trace, dict) else None
    guardrail = guardrail if isinstance(guardrail, dict) else {}
    inputs = guardrail.get("inputAssessment") or {}
    outputs = guardrail.get("outputAssessments") or {}
    input_policies = policies_that_acted(inputs.values() if isinstance(inputs, dict) else ())
    output_list = (
        [a for lst in outputs.values() if isinstance(lst, list) for a in lst]
        if isinstance(outputs, dict)
        else []
    )
    output_policies = policies_that_acted(output_list)
    if input_policies:
        return GuardrailBlocked(_BLOCKED_INPUT, policies=input_policies, source="input")
    if output_policies:
        return GuardrailBlocked(_BLOCKED_OUTPUT, policies=output_policies, source="output")
    return GuardrailBlocked(_BLOCKED_UNKNOWN, policies=(), source="input")


@dataclass(frozen=True)
class GuardrailVerdict:
    """The outcome of ApplyGuardrail on one text.

    `text` is what to use downstream: the input unchanged (action NONE), the masked text when the guardrail
    only anonymised sensitive information, or the guardrail's configured blocked message when it blocked.
    """

    action: str  # "NONE" | "GUARDRAIL_INTERVENED"
    blocked: bool
    text: str
    policies: tuple[str, ...] = ()

    @property
    def intervened(self) -> bool:
        return self.action == "GUARDRAIL_INTERVENED"


GROUNDING_SOURCE_CHARS, GROUNDING_QUERY_CHARS, GROUNDING_ANSWER_CHARS = 100_000, 1_000, 5_000


class BedrockGuardrail:
    """A guardrail applied on its own (ApplyGuardrail), e.g. to a question before retrieval."""

    def __init__(self, guardrail_id: str, version: str, client: Any | None = None) -> None:
        self.guardrail_id = guardrail_id
        self.version = version
        self._client = client or clients.client(
            "bedrock-runtime", config=clients.client_config(read_timeout=10)
        )

    def apply_guardrail(self, text: str, source: str = "INPUT") -> GuardrailVerdict:
        if source not in ("INPUT", "OUTPUT"):
            raise ValueError("source must be 'INPUT' or 'OUTPUT'")
        try:
            response = self._client.apply_guardrail(
                guardrailIdentifier=self.guardrail_id,
                guardrailVersion=self.version,
                source=source,
                content=[{"text": {"text": text}}],
            )
        except (ClientError, BotoCoreError) as exc:
            raise unavailable_from(exc, "The content guardrail") from None
        action = str(response.get("action") or "NONE")
        assessments = response.get("assessments") or []
        if action != "GUARDRAIL_INTERVENED":
            return GuardrailVerdict(action, False, text, ())
        policies = policies_that_acted(assessments, ("BLOCKED", "ANONYMIZED"))
        blocked = bool(policies_that_acted(assessments, ("BLOCKED",)))
        outputs = "".join(o.get("text", "") for o in response.get("outputs") or [] if isinstance(o, dict))
        return GuardrailVerdict(action, blocked, outputs, policies)

    def check_grounding(self, answer: str, sources: list[str], query: str) -> GuardrailVerdict:
        """The guardrail's contextual grounding check on an answer: ApplyGuardrail (source OUTPUT) with the
        passages marked `grounding_source`, the question `query` and the answer `guard_content` (the other
        policies judge the answer too). Limits per request: 100,000 characters of grounding source, 1,000 of
        query, 5,000 of answer; longer texts are cut (the check then judges the cut text).
        https://docs.aws.amazon.com/bedrock/latest/userguide/guardrails-contextual-grounding-check.html"""
        content = [
            {
                "text": {
                    "text": "\n\n".join(sources)[:GROUNDING_SOURCE_CHARS],
                    "qualifiers": ["grounding_source"],
                }
            },
            {"text": {"text": query[:GROUNDING_QUERY_CHARS], "qualifiers": ["query"]}},
            {"text": {"text": answer[:GROUNDING_ANSWER_CHARS], "qualifiers": ["guard_content"]}},
        ]
        try:
            response = self._client.apply_guardrail(
                guardrailIdentifier=self.guardrail_id,
                guardrailVersion=self.version,
                source="OUTPUT",
                content=content,
            )
        except (ClientError, BotoCoreError) as exc:
            raise unavailable_from(exc, "The content guardrail") from None
        action = str(response.get("action") or "NONE")
        if action != "GUARDRAIL_INTERVENED":
            return GuardrailVerdict(action, False, answer, ())
        assessments = response.get("assessments") or []
        policies = policies_that_acted(assessments, ("BLOCKED", "ANONYMIZED"))
        blocked = bool(policies_that_acted(assessments, ("BLOCKED",)))
        outputs = "".join(o.get("text", "") for o in response.get("outputs") or [] if isinstance(o, dict))
        return GuardrailVerdict(action, blocked, outputs, policies)

    def guard(self, text: str, source: str = "INPUT") -> str:
        """The text to carry on with (masked if needed); raises GuardrailBlocked when the guardrail blocks."""
        verdict = self.apply_guardrail(text, source)
        if verdict.blocked:
            message = _BLOCKED_INPUT if source == "INPUT" else _BLOCKED_OUTPUT
            raise GuardrailBlocked(message, policies=verdict.policies, source=source.lower())
        return verdict.text


# ------------------------------------------------------------------------------------------------ generation

_FINISH = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "tool_use": "tool_calls"}


def _finish(stop_reason: object) -> str:
    reason = str(stop_reason or "end_turn")
    return _FINISH.get(reason, reason)


def _usage(data: object) -> Usage:
    if not isinstance(data, dict):
        return Usage()
    try:
        return Usage(int(data.get("inputTokens") or 0), int(data.get("outputTokens") or 0))
    except (TypeError, ValueError):
        return Usage()


class BedrockConverseModel:
    """`ChatModel` over Bedrock's Converse and ConverseStream APIs, optionally behind a guardrail.

    System messages go to Converse's `system` field; consecutive messages of one role are merged into one turn
    (Converse requires alternating roles). Finish reasons are given in the Messages API's words (`stop`,
    `length`) so both ChatModel adapters read alike.
    """

    def __init__(
        self,
        model_id: str = "amazon.nova-lite-v1:0",
        *,
        guardrail_id: str | None = None,
        guardrail_version: str | None = None,
        client: Any | None = None,
        trace: bool = True,
    ) -> None:
        if bool(guardrail_id) != bool(guardrail_version):
            raise ValueError("guardrail_id and guardrail_version go together")
        self.model_id = model_id
        self.guardrail_id = guardrail_id
        self.guardrail_version = guardrail_version
        self.trace = trace
        self._client = client or clients.client(
            "bedrock-runtime", config=clients.client_config(read_timeout=60)
        )
        self._what = f"The Bedrock model {model_id}"

    def _request(
        self, messages: Sequence[ChatMessage], max_tokens: int, temperature: float
    ) -> dict[str, Any]:
        system = [{"text": m.content} for m in messages if m.role == "system" and m.content.strip()]
        turns: list[dict[str, Any]] = []
        for m in messages:
            if m.role == "system" or not m.content.strip():
                continue
            if turns and turns[-1]["role"] == m.role:
                turns[-1]["content"].append({"text": m.content})
            else:
                turns.append({"role": m.role, "content": [{"text": m.content}]})
        request: dict[str, Any] = {
            "modelId": self.model_id,
            "messages": turns,
            "inferenceConfig": {"maxTokens": max_tokens, "temperature": temperature},
        }
        if system:
            request["system"] = system
        if self.guardrail_id:
            request["guardrailConfig"] = {
                "guardrailIdentifier": self.guardrail_id,
                "guardrailVersion": self.guardrail_version,
                "trace": "enabled" if self.trace else "disabled",
            }
        return request

    def generate(self, messages: Sequence[ChatMessage], *, max_tokens: int, temperature: float) -> Generation:
        try:
            response = self._client.converse(**self._request(messages, max_tokens, temperature))
        except (ClientError, BotoCoreError) as exc:
            raise unavailable_from(exc, self._what) from None
        stop = response.get("stopReason")
        if stop == "guardrail_intervened":
            raise blocked_from_trace(response.get("trace"))
        if stop == "content_filtered":  # the model's own safety filter, not our guardrail
            raise GuardrailBlocked(_BLOCKED_OUTPUT, policies=("modelContentFilter",), source="output")
        try:
            content = response["output"]["message"]["content"]
            text = "".join(block["text"] for block in content if isinstance(block, dict) and "text" in block)
        except (KeyError, TypeError):
            raise ModelUnavailable(f"{self._what} sent a response without a message.") from None
        return Generation(text, self.model_id, _usage(response.get("usage")), _finish(stop))

    def stream(
        self, messages: Sequence[ChatMessage], *, max_tokens: int, temperature: float
    ) -> Iterator[str | Generation]:
        """Yield text deltas as they arrive, then one Generation.

        With a guardrail, ConverseStream runs it in `sync` mode: the guardrail scans each chunk *before* it is
        sent, so blocked model output never reaches this process, and sensitive-information masking works (it
        is not supported in `async` mode). `async` would send chunks at once and could stream text that the
        guardrail blocks a moment later — not acceptable for answers shown to people; the cost is some latency
        per chunk. https://docs.aws.amazon.com/bedrock/latest/userguide/guardrails-streaming.html
        On an intervention the deltas already yielded can only be the guardrail's own configured blocked
        message (sync mode), and the stream then ends with GuardrailBlocked, which the API turns into an
        `error` event.
        """
        request = self._request(messages, max_tokens, temperature)
        if "guardrailConfig" in request:
            request["guardrailConfig"]["streamProcessingMode"] = "sync"
        parts: list[str] = []
        stop: object = None
        usage = Usage()
        trace: object = None
        events = None
        try:
            events = self._client.converse_stream(**request)["stream"]
            for event in events:
                if "contentBlockDelta" in event:
                    text = (event["contentBlockDelta"].get("delta") or {}).get("text")
                    if text:
                        parts.append(text)
                        yield text
                elif "messageStop" in event:
                    stop = event["messageStop"].get("stopReason")
                elif "metadata" in event:
                    usage = _usage(event["metadata"].get("usage"))
                    trace = event["metadata"].get("trace")
        except (ClientError, BotoCoreError) as exc:
            raise unavailable_from(exc, self._what) from None
        finally:
            if events is not None:
                events.close()
        self._check_stream_end(stop, trace)
        yield Generation("".join(parts), self.model_id, usage, _finish(stop))

    def _check_stream_end(self, stop: object, trace: object) -> None:
        """A stream that ended without a stop reason, or stopped by the guardrail or a content filter, fails."""
        if stop is None:
            raise ModelUnavailable(f"{self._what} ended the answer stream early.", reason="server_error")
        if stop == "guardrail_intervened":
            raise blocked_from_trace(trace)
        if stop == "content_filtered":
            raise GuardrailBlocked(_BLOCKED_OUTPUT, policies=("modelContentFilter",), source="output")


# ------------------------------------------------------------------------------------------------- reranking


class BedrockReranker:
    """Optional second-stage reranking with a Bedrock reranker model (bedrock-agent-runtime `Rerank`).
    https://docs.aws.amazon.com/bedrock/latest/APIReference/API_agent-runtime_Rerank.html"""

    def __init__(self, model_arn: str, client: Any | None = None) -> None:
        self.model_arn = model_arn
        self._client = client or clients.client("bedrock-agent-runtime", config=clients.client_config())

    def rerank(self, query: str, texts: Sequence[str], top_n: int) -> list[tuple[int, float]]:
        """(index into `texts`, relevance score) of the best `top_n`, best first."""
        if not texts or top_n <= 0:
            return []
        try:
            response = self._client.rerank(
                queries=[{"type": "TEXT", "textQuery": {"text": query}}],
                sources=[
                    {"type": "INLINE", "inlineDocumentSource": {"type": "TEXT", "textDocument": {"text": t}}}
                    for t in texts
                ],
                rerankingConfiguration={
                    "type": "BEDROCK_RERANKING_MODEL",
                    "bedrockRerankingConfiguration": {
                        "numberOfResults": min(top_n, len(texts)),
                        "modelConfiguration": {"modelArn": self.model_arn},
                    },
                },
            )
        except (ClientError, BotoCoreError) as exc:
            raise unavailable_from(exc, "The reranking model") from None
        results = [
            (int(r["index"]), float(r["relevanceScore"]))
            for r in response.get("results") or []
            if 0 <= int(r.get("index", -1)) < len(texts)
        ]
        results.sort(key=lambda item: (-item[1], item[0]))
        return results[:top_n]
