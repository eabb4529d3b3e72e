"""A `ChatModel` answering with a primary model, and with a second one when the first is unavailable.

Fallback happens only on `ModelUnavailable(retryable=True)` (throttling, 5xx, timeouts, cold endpoints): a
guardrail intervention or a request the primary rejects as invalid propagates unchanged, since the fallback
would either bypass the guardrail or fail the same way. A circuit breaker stops calling a primary that keeps
failing: after `breaker_threshold` consecutive retryable failures the primary is skipped for
`breaker_reset_s`, then one request probes it (half-open) — success closes the breaker, failure opens it
again. Without a
fallback the breaker never skips the primary (there is nothing else to call).

A stream falls back only before its first text delta: two models' text are never mixed in one answer.

The `Generation` says which model answered (`Generation.model`). Per thread, `last_model_id` and
`last_fallback_reason` tell the caller the same and why the fallback was used (for metrics and logs).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Generator, Iterator, Sequence

from lectern.domain.errors import GuardrailBlocked, ModelUnavailable
from lectern.domain.models import ChatMessage, Generation
from lectern.domain.ports import ChatModel

log = logging.getLogger(__name__)

BOTH_DOWN = "Both the primary model and the fallback are unavailable; try again in a minute."
CIRCUIT_OPEN = "circuit_open"


class FallbackChatModel:
    def __init__(
        self,
        primary: ChatModel,
        fallback: ChatModel | None,
        *,
        breaker_threshold: int = 3,
        breaker_reset_s: float = 30,
        on_fallback: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if breaker_threshold < 1:
            raise ValueError("breaker_threshold must be at least 1")
        self.primary = primary
        self.fallback = fallback
        self.model_id = primary.model_id
        self.breaker_threshold = breaker_threshold
        self.breaker_reset_s = breaker_reset_s
        self._on_fallback = on_fallback
        self._clock = clock
        self._lock = threading.Lock()
        self._failures = 0
        self._opened_at: float | None = None
        self._probing = False
        self._local = threading.local()

    # -- what happened on this thread --

    @property
    def last_model_id(self) -> str | None:
        """The model that produced this thread's last Generation (None if the last call failed)."""
        return getattr(self._local, "model_id", None)

    @property
    def last_fallback_reason(self) -> str | None:
        """Why this thread's last call used the fallback (`throttled`, `cold`, `circuit_open`...) or None."""
        return getattr(self._local, "reason", None)

    def _record(self, model_id: str | None, reason: str | None) -> None:
        self._local.model_id = model_id
        self._local.reason = reason

    # -- circuit breaker --

    @property
    def breaker_state(self) -> str:
        with self._lock:
            if self._opened_at is None:
                return "closed"
            if self._clock() - self._opened_at < self.breaker_reset_s:
                return "open"
            return "half_open"

    def _try_primary(self) -> bool:
        if self.fallback is None:
            return True
        with self._lock:
            if self._opened_at is None:
                return True
            if self._clock() - self._opened_at < self.breaker_reset_s or self._probing:
                return False
            self._probing = True  # half-open: this request probes the primary, others keep using the fallback
            return True

    def _primary_succeeded(self) -> None:
        with self._lock:
            if self._opened_at is not None:
                log.info("primary model %s answered again: circuit closed", self.primary.model_id)
            self._failures, self._opened_at, self._probing = 0, None, False

    def _primary_failed(self) -> None:
        with self._lock:
            self._failures += 1
            if self._probing or self._failures >= self.breaker_threshold:
                if self._opened_at is None or self._probing:
                    log.warning(
                        "primary model %s failed %d times: circuit open for %ss",
                        self.primary.model_id,
                        self._failures,
                        self.breaker_reset_s,
                    )
                self._opened_at = self._clock()
            self._probing = False

    def _primary_neutral(self) -> None:
        """An outcome that says nothing about availability (invalid request, abandoned stream)."""
        with self._lock:
            self._probing = False

    def _notify(self, reason: str) -> None:
        log.warning("answering with fallback model %s (%s)", getattr(self.fallback, "model_id", "?"), reason)
        if self._on_fallback is not None:
            try:
                self._on_fallback(reason)
            except Exception:  # a metrics hook must not fail the answer
                log.exception("on_fallback hook failed")

    # -- ChatModel --

    def generate(self, messages: Sequence[ChatMessage], *, max_tokens: int, temperature: float) -> Generation:
        self._record(None, None)
        if self._try_primary():
            try:
                generation = self.primary.generate(messages, max_tokens=max_tokens, temperature=temperature)
            except ModelUnavailable as exc:
                if not exc.retryable:
                    self._primary_neutral()
                    raise
                self._primary_failed()
                if self.fallback is None:
                    raise
                reason = exc.reason
            except GuardrailBlocked:
                self._primary_succeeded()  # the primary is up; its guardrail said no
                raise
            except BaseException:
                self._primary_neutral()
                raise
            else:
                self._primary_succeeded()
                self._record(generation.model, None)
                return generation
        else:
            reason = CIRCUIT_OPEN
        assert self.fallback is not None
        self._notify(reason)
        try:
            generation = self.fallback.generate(messages, max_tokens=max_tokens, temperature=temperature)
        except ModelUnavailable as exc:
            log.error("fallback model %s failed too: %s", self.fallback.model_id, exc.message)
            raise ModelUnavailable(BOTH_DOWN, retryable=True, reason=exc.reason) from None
        self._record(generation.model, reason)
        return generation

    def stream(
        self, messages: Sequence[ChatMessage], *, max_tokens: int, temperature: float
    ) -> Iterator[str | Generation]:
        self._record(None, None)
        reason = CIRCUIT_OPEN
        if self._try_primary():
            primary_failure = yield from self._stream_primary(messages, max_tokens, temperature)
            if primary_failure is None:
                return
            reason = primary_failure
        yield from self._stream_fallback(reason, messages, max_tokens, temperature)

    def _stream_primary(
        self, messages: Sequence[ChatMessage], max_tokens: int, temperature: float
    ) -> Generator[str | Generation, None, str | None]:
        """Stream the primary; return None when it answered, or the reason to fall back."""
        outcome_known = False
        yielded = False
        try:
            for item in self.primary.stream(messages, max_tokens=max_tokens, temperature=temperature):
                if isinstance(item, Generation):
                    self._primary_succeeded()
                    outcome_known = True
                    self._record(item.model, None)
                else:
                    yielded = True
                yield item
            return None
        except ModelUnavailable as exc:
            outcome_known = True
            if not exc.retryable:
                self._primary_neutral()
                raise
            self._primary_failed()
            if yielded or self.fallback is None:
                raise  # text has been shown: never continue with another model's words
            return exc.reason
        except GuardrailBlocked:
            outcome_known = True
            self._primary_succeeded()
            raise
        finally:
            if not outcome_known:
                self._primary_neutral()  # abandoned by the consumer, or an unexpected error

    def _stream_fallback(
        self, reason: str, messages: Sequence[ChatMessage], max_tokens: int, temperature: float
    ) -> Iterator[str | Generation]:
        assert self.fallback is not None
        self._notify(reason)
        yielded = False
        try:
            for item in self.fallback.stream(messages, max_tokens=max_tokens, temperature=temperature):
                if isinstance(item, Generation):
                    self._record(item.model, reason)
                else:
                    yielded = True
                yield item
        except ModelUnavailable as exc:
            if yielded:
                raise
            log.error("fallback model %s failed too: %s", self.fallback.model_id, exc.message)
            raise ModelUnavailable(BOTH_DOWN, retryable=True, reason=exc.reason) from None
