"""Query traces and feedback in the single DynamoDB table (moto), and the per-tenant EMF cost metric."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from moto import mock_aws

from lectern.adapters.aws import clients
from lectern.adapters.aws.dynamo_queries import DynamoQueryLog
from lectern.adapters.aws.table import create_table, feedback_sk, query_sk, tenant_pk
from lectern.domain.errors import NotFound
from lectern.domain.feedback import FeedbackService, QueryTrace

TABLE = "lectern-test"


@pytest.fixture
def ddb() -> Iterator[object]:
    with mock_aws():
        client = clients.client("dynamodb")
        create_table(client, TABLE)
        yield client


def trace(tenant: str = "acme", qid: str = "q1", at: str = "2026-11-29T10:00:00.000000Z", **kw) -> QueryTrace:
    values = dict(
        prompt_version="answer-v3",
        model="us.amazon.nova-lite-v1:0",
        route="cheap: default",
        input_tokens=900,
        output_tokens=80,
        cost_usd=0.0000732,
        latency_ms=812,
    )
    values.update(kw)
    return QueryTrace(tenant, qid, at, **values)  # type: ignore[arg-type]


def test_trace_round_trips_with_both_items_in_the_tenant_partition(ddb):
    log = DynamoQueryLog(TABLE, client_or_resource=ddb)
    t = trace(cache_hit=True, user_hash="abc", route="strong: comparison")
    log.record(t)
    assert log.get("acme", "q1") == t
    keys = ddb.query(  # type: ignore[attr-defined]
        TableName=TABLE,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": tenant_pk("acme")}},
    )["Items"]
    assert sorted(i["sk"]["S"] for i in keys) == sorted([query_sk(t.created_at, "q1"), feedback_sk("q1")])
    assert all("ttl" in i for i in keys)
    assert log.get("other", "q1") is None and log.get("acme", "nope") is None


def test_feedback_updates_the_trace_and_is_tenant_scoped(ddb):
    log = DynamoQueryLog(TABLE, client_or_resource=ddb)
    log.record(trace())
    service = FeedbackService(log, clock=lambda: "2026-11-29T10:05:00.000000Z")
    got = service.give("acme", "q1", "down", "wrong page cited")
    assert (got.rating, got.comment, got.feedback_at) == (
        "down",
        "wrong page cited",
        "2026-11-29T10:05:00.000000Z",
    )
    assert log.get("acme", "q1").rating == "down"
    assert service.give("acme", "q1", "up").comment is None  # a later rating replaces the earlier one
    # the rating is on the trace item itself: a period report (Query on traces) sees it
    assert [x.rating for x in log.traces("acme", "2026-11-29", "2026-11-30")] == ["up"]
    with pytest.raises(NotFound):
        service.give("other", "q1", "up")
    with pytest.raises(NotFound):
        log.add_feedback("acme", "missing", "up", None, "2026-11-29T10:05:00.000000Z")


def test_traces_query_is_half_open_by_time_and_pages(ddb):
    log = DynamoQueryLog(TABLE, client_or_resource=ddb)
    for i in range(30):
        log.record(trace(qid=f"q{i:02d}", at=f"2026-11-{28 + i % 3:02d}T12:00:{i:02d}.000000Z"))
    log.record(trace(tenant="other", qid="x", at="2026-11-29T12:00:00.000000Z"))
    day = log.traces("acme", "2026-11-29", "2026-11-30")
    assert len(day) == 10 and all(t.created_at.startswith("2026-11-29") for t in day)
    assert [t.created_at for t in day] == sorted(t.created_at for t in day)
    edge = "2026-11-29T12:00:01.000000Z"  # exactly `until` is excluded, exactly `since` included
    assert all(t.created_at < edge for t in log.traces("acme", "2026-11-29", edge))
    assert log.traces("acme", edge, "2026-11-30")[0].created_at == edge
    calls: list[dict] = []
    ddb.meta.events.register("before-call.dynamodb.Query", lambda params, **_: calls.append(params))  # type: ignore[attr-defined]
    original = log.client.query
    log.client.query = lambda **kw: original(**{**kw, "Limit": 4})  # force pagination
    assert len(log.traces("acme", "2026-11-01", "2026-12-01")) == 30
    assert len(calls) >= 8


def test_expired_traces_are_ignored_before_ttl_deletes_them(ddb):
    log = DynamoQueryLog(TABLE, client_or_resource=ddb)
    log.retention_s = -10  # written already expired
    log.record(trace())
    assert log.get("acme", "q1") is None
    assert log.traces("acme", "2026-11-29", "2026-11-30") == []
    with pytest.raises(NotFound):
        FeedbackService(log).give("acme", "q1", "up")


def test_metered_answerer_emits_a_per_tenant_cost_metric(capsys):
    from aws_lambda_powertools import Metrics

    from lectern.aws.observability import MetricsStage
    from lectern.domain.models import Answer, Usage
    from lectern.domain.pipeline import AnswerPipeline, Done

    answer = Answer(
        "x [1]", [], "us.amazon.nova-pro-v1:0", Usage(1000, 100), 5, "answer-v3", route="strong: comparison"
    )

    class Inner:
        def events(self, request):
            yield Done(answer)

    metrics = Metrics(namespace="Lectern", service="lectern")
    AnswerPipeline(Inner(), [MetricsStage(metrics=metrics)]).answer("acme", "Compare A and B")
    blobs = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    tenant = [b for b in blobs if "TenantQueryCostUSD" in b]
    assert len(tenant) == 1 and tenant[0]["tenant"] == "acme"
    assert tenant[0]["TenantQueryCostUSD"] == [pytest.approx(0.0008 + 0.1 * 0.0032)]
    assert ["service", "tenant"] in [sorted(d) for d in tenant[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"]]
    metrics.flush_metrics()
    service_level = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    assert service_level[0]["RoutedStrong"] == [1.0] and "tenant" not in service_level[0]
    metrics.clear_metrics()


def test_trace_records_withheld_and_its_reason(ddb):
    log = DynamoQueryLog(TABLE, client_or_resource=ddb)
    withheld = trace(qid="w", abstained=True, withheld="not_supported", withheld_reason="Not supported.")
    given = trace(qid="g")
    log.record(withheld)
    log.record(given)
    assert log.get("acme", "w") == withheld
    got = log.get("acme", "g")
    assert got is not None and got.withheld is None and got.withheld_reason is None
    assert {t.query_id: t.withheld for t in log.traces("acme", "2026", "2027")} == {"w": "not_supported", "g": None}
