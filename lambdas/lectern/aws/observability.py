"""Powertools Logger, Tracer and Metrics (EMF), and the answer metrics every query emits.

One instance of each per process (Powertools' own recommendation); handlers decorate themselves with them.
Metric names are the contract with the CloudWatch dashboard and alarms in cdk/.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer, single_metric
from aws_lambda_powertools.metrics import MetricUnit

from lectern.domain.costing import PriceTable, default_prices
from lectern.domain.errors import GuardrailBlocked, ModelUnavailable
from lectern.domain.models import Answer
from lectern.domain.pipeline import AnswerEvent, AnswerRequest, Done, Next

NAMESPACE = "Lectern"
logger = Logger(service="lectern")
# X-Ray patches only the clients the functions call out through: botocore (DynamoDB, S3, Bedrock, SageMaker,
# Textract) and requests (OpenSearch). Powertools' default, patch_all, imports every patchable library in the
# bundle at cold start (httpx, sqlite3, http.client, ...), none of them an outbound call of ours (issue 19).
TRACED_MODULES = ("botocore", "requests")
tracer = Tracer(service="lectern", patch_modules=TRACED_MODULES)
metrics = Metrics(namespace=NAMESPACE, service="lectern")


class MetricsStage:
    """The answer pipeline's stage for EMF metrics (AWS): latency, tokens, cost, fallback, guardrail blocks.

    `fallback_probe()` returns the reason the last answer on this thread came from the fallback model (or None).
    """

    def __init__(
        self,
        *,
        metrics: Metrics = metrics,
        prices: PriceTable | None = None,
        fallback_probe: Any = None,
    ) -> None:
        self.metrics = metrics
        self.prices = prices or default_prices()
        self.fallback_probe = fallback_probe or (lambda: None)

    def run(self, request: AnswerRequest, next: Next) -> Iterator[AnswerEvent]:
        started = time.perf_counter()
        try:
            for event in next(request):
                if isinstance(event, Done):
                    self._record(event.answer, started, request.tenant_id)
                yield event
        except (GuardrailBlocked, ModelUnavailable) as exc:
            self._failure(exc)
            raise

    def _failure(self, exc: Exception) -> None:
        if isinstance(exc, GuardrailBlocked):
            self.metrics.add_metric(name="GuardrailInterventions", unit=MetricUnit.Count, value=1)
            logger.info("guardrail blocked", extra={"policies": list(exc.policies), "source": exc.source})
        else:
            self.metrics.add_metric(name="ModelUnavailable", unit=MetricUnit.Count, value=1)

    def _record(self, answer: Answer, started: float, tenant_id: str = "") -> None:
        cost = self.prices.tokens(answer.model, answer.usage)
        if answer.cache_hit:
            cost = type(cost)(0.0, True)  # a cached answer called no model
        fallback = self.fallback_probe()
        m = self.metrics
        m.add_metric(
            name="QueryLatencyMs", unit=MetricUnit.Milliseconds, value=(time.perf_counter() - started) * 1000
        )
        m.add_metric(name="InputTokens", unit=MetricUnit.Count, value=answer.usage.input_tokens)
        m.add_metric(name="OutputTokens", unit=MetricUnit.Count, value=answer.usage.output_tokens)
        m.add_metric(name="QueryCostUSD", unit=MetricUnit.NoUnit, value=cost.usd)
        m.add_metric(name="FallbackUsed", unit=MetricUnit.Count, value=1 if fallback else 0)
        m.add_metric(name="Abstentions", unit=MetricUnit.Count, value=1 if answer.abstained else 0)
        m.add_metric(
            name="RoutedStrong", unit=MetricUnit.Count, value=1 if answer.route.startswith("strong") else 0
        )
        # The prompt A/B split per version (dashboard): one count per answer, dimension `prompt_version`
        prompt_metric("PromptAnswers", 1, answer.prompt_version)
        if tenant_id:
            # Per-tenant cost in its own metric set (dimension `tenant`), so the service-level set above keeps
            # its dimensions and each tenant's cost can be graphed or alarmed on.
            with single_metric(
                name="TenantQueryCostUSD",
                unit=MetricUnit.NoUnit,
                value=cost.usd,
                namespace=NAMESPACE,
                default_dimensions={"service": "lectern", "tenant": tenant_id},
            ):
                pass  # flushed on exit; SampleCount of this metric is the tenant's query count
        logger.info(
            "answered",
            extra={
                "query_id": answer.query_id,
                "model": answer.model,
                "input_tokens": answer.usage.input_tokens,
                "output_tokens": answer.usage.output_tokens,
                "cost_usd": cost.usd,
                "cost_priced": cost.priced,
                "fallback_reason": fallback,
                "prompt_version": answer.prompt_version,
                "abstained": answer.abstained,
                "route": answer.route,
                "cache_hit": answer.cache_hit,
                "tenant": tenant_id,
            },
        )


def prompt_metric(name: str, value: float, prompt_version: str) -> None:
    """One value in the metric set of a prompt version (dimensions service + prompt_version), flushed now."""
    with single_metric(
        name=name,
        unit=MetricUnit.Count,
        value=value,
        namespace=NAMESPACE,
        default_dimensions={"service": "lectern", "prompt_version": prompt_version or "unknown"},
    ):
        pass


def feedback_metrics(m: Metrics = metrics) -> Any:
    """FeedbackService's `on_feedback` callback: ThumbsDown 1 or 0 per rating in the service set (Average x 100
    is the thumbs-down rate the canary's rollback alarm reads) and per prompt version (the A/B dashboard)."""

    def on_feedback(trace: Any) -> None:
        down = 1 if trace.rating == "down" else 0
        m.add_metric(name="ThumbsDown", unit=MetricUnit.Count, value=down)
        prompt_metric("PromptThumbsDown", down, trace.prompt_version)
        prompt_metric("PromptFeedback", 1, trace.prompt_version)

    return on_feedback


def cache_lookup_metrics(m: Metrics = metrics) -> Any:
    """The semantic cache's `on_lookup` callback: CacheHits and CacheMisses (0 or 1 each per lookup, so
    Sum(CacheHits) / SampleCount is the hit rate), and the tier or miss reason in the log."""

    def on_lookup(hit: bool, tier: str) -> None:
        m.add_metric(name="CacheHits", unit=MetricUnit.Count, value=1 if hit else 0)
        m.add_metric(name="CacheMisses", unit=MetricUnit.Count, value=0 if hit else 1)
        logger.debug("answer cache lookup", extra={"cache_hit": hit, "cache_tier": tier})

    return on_lookup
