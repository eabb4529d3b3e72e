"""Per-tenant limits: a request rate and a daily token budget, enforced before any work is done.

Both answer `RateLimited` (HTTP 429) with a Retry-After: for the rate, the seconds until the current window ends;
for the budget, the seconds until the next UTC midnight. Counters live behind a small port (`LimitCounters`) —
SQLite locally, DynamoDB atomic counters on AWS — so several processes or Lambda instances share them.

Rate windows are fixed (one counter per tenant per window of `window_s` seconds): at most `limit` requests start
in any window, and at most 2 x `limit` in any span of `window_s` straddling a boundary. Simple, one atomic increment
per request, and the documented trade-off of fixed windows.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from lectern.domain.errors import RateLimited
from lectern.domain.pipeline import AnswerEvent, AnswerRequest, Done, Next


class LimitCounters(Protocol):
    def incr(self, tenant_id: str, name: str, amount: int, ttl_s: int) -> int:
        """Atomically add `amount` to the counter `name` of the tenant and return the new value (created at 0)."""
        ...

    def get(self, tenant_id: str, name: str) -> int: ...


@dataclass(frozen=True)
class LimitPolicy:
    requests_per_window: int = 120  # 0 = unlimited
    window_s: int = 60
    daily_tokens: int = 500_000  # input + output tokens of generation per tenant per UTC day; 0 = unlimited


class TenantLimits:
    def __init__(
        self,
        counters: LimitCounters,
        policy: LimitPolicy | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.counters = counters
        self.policy = policy or LimitPolicy()
        self.clock = clock

    def check_request(self, tenant_id: str) -> None:
        """Count one request; 429 once the tenant exceeded its rate in the current window."""
        p = self.policy
        if p.requests_per_window <= 0:
            return
        now = self.clock()
        window = int(now // p.window_s)
        used = self.counters.incr(tenant_id, f"rate:{p.window_s}:{window}", 1, ttl_s=2 * p.window_s)
        if used > p.requests_per_window:
            retry = max(1, math.ceil((window + 1) * p.window_s - now))
            raise RateLimited(
                f"Too many requests: the limit is {p.requests_per_window} per {p.window_s} s. "
                f"Try again in {retry} s.",
                retry_after_s=retry,
            )

    def _day(self) -> tuple[str, int]:
        now = datetime.fromtimestamp(self.clock(), UTC)
        midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
        return now.strftime("%Y-%m-%d"), max(1, math.ceil((midnight - now).total_seconds()))

    def check_budget(self, tenant_id: str) -> None:
        """429 when today's generation tokens already reached the budget (checked before calling a model)."""
        if self.policy.daily_tokens <= 0:
            return
        day, until_midnight = self._day()
        used = self.counters.get(tenant_id, f"tokens:{day}")
        if used >= self.policy.daily_tokens:
            raise RateLimited(
                f"Today's token budget of {self.policy.daily_tokens:,} tokens is used up; it resets at 00:00 UTC.",
                retry_after_s=until_midnight,
            )

    def record_tokens(self, tenant_id: str, tokens: int) -> int:
        if tokens <= 0:
            return 0
        day, _ = self._day()
        return self.counters.incr(tenant_id, f"tokens:{day}", tokens, ttl_s=3 * 86400)

    def tokens_today(self, tenant_id: str) -> int:
        day, _ = self._day()
        return self.counters.get(tenant_id, f"tokens:{day}")


class BudgetStage:
    """The answer pipeline's outermost stage: the tenant's daily token budget checked before and charged after
    each answer (a refused question is neither generated, cached nor traced)."""

    def __init__(self, limits: TenantLimits) -> None:
        self.limits = limits

    def run(self, request: AnswerRequest, next: Next) -> Iterator[AnswerEvent]:
        self.limits.check_budget(request.tenant_id)
        for event in next(request):
            if isinstance(event, Done):
                self._charge(request.tenant_id, event.answer)
            yield event

    def _charge(self, tenant_id: str, answer: object) -> None:
        usage = getattr(answer, "usage", None)
        if usage is not None:
            self.limits.record_tokens(tenant_id, usage.input_tokens + usage.output_tokens)
