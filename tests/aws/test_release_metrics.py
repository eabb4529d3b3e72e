"""The metrics the canary's rollback alarms and the prompt A/B dashboard read, through the real API handler:
PromptAnswers per prompt version on every answer, ThumbsDown (0/1 per rating, service set) and PromptThumbsDown /
PromptFeedback per prompt version on every rating; a failing metric callback never fails the rating."""

from __future__ import annotations

from lectern.domain.feedback import FeedbackService, QueryTrace
from tests.aws.handler_env import emf_metrics
from tests.aws.test_handlers_end_to_end import HANDBOOK

pytest_plugins = ["tests.aws.handler_env", "tests.fakes.bedrock_server"]


def _docs(out: str, name: str) -> list[dict]:
    return [d for d in emf_metrics(out) if name in d]


def _value(doc: dict, name: str) -> float:
    v = doc[name]
    return float(v[0] if isinstance(v, list) else v)


def test_answers_and_ratings_emit_the_release_metrics_per_prompt_version(aws_harness, capsys) -> None:
    h = aws_harness
    doc_id = h.upload("handbook.md", HANDBOOK, "text/markdown")
    assert h.ingest(doc_id)["status"] == "INDEXED"
    capsys.readouterr()
    status, answer = h.json("POST", "/v1/query", {"question": "How many days of annual leave do employees get?"})
    assert status == 200, answer
    (answers,) = _docs(capsys.readouterr().out, "PromptAnswers")
    version = answer["prompt_version"]
    assert (
        answers["prompt_version"] == version
        and answers["service"] == "lectern"
        and _value(answers, "PromptAnswers") == 1
    )
    assert answers["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["service", "prompt_version"]]

    for rating, down in (("down", 1), ("up", 0)):
        status, body = h.json("POST", "/v1/feedback", {"query_id": answer["query_id"], "rating": rating})
        assert status == 200, body
        out = capsys.readouterr().out
        (service,) = _docs(out, "ThumbsDown")
        assert (
            _value(service, "ThumbsDown") == down and service["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "Lectern"
        )
        assert "prompt_version" not in service  # the alarm's metric set: dimension service only
        (per_version,) = _docs(out, "PromptThumbsDown")
        assert per_version["prompt_version"] == version and _value(per_version, "PromptThumbsDown") == down
        assert _value(_docs(out, "PromptFeedback")[0], "PromptFeedback") == 1


class _Log:
    def __init__(self, trace: QueryTrace) -> None:
        self.trace = trace

    def get(self, tenant_id: str, query_id: str) -> QueryTrace | None:
        return self.trace if query_id == self.trace.query_id else None

    def add_feedback(self, tenant_id, query_id, rating, comment, at) -> QueryTrace:
        from dataclasses import replace

        self.trace = replace(self.trace, rating=rating, comment=comment, feedback_at=at)
        return self.trace


def test_a_failing_feedback_metric_is_logged_and_the_rating_stands(caplog) -> None:
    trace = QueryTrace("acme", "q1", "2026-12-03T00:00:00Z", "answer-v3", "m", "cheap", 1, 1, 0.0, 10)
    log = _Log(trace)

    def broken(_t: QueryTrace) -> None:
        raise RuntimeError("metrics down")

    seen: list[QueryTrace] = []
    assert FeedbackService(log, on_feedback=seen.append).give("acme", "q1", "down").rating == "down"
    assert seen and seen[0].rating == "down" and seen[0].prompt_version == "answer-v3"
    stored = FeedbackService(log, on_feedback=broken).give("acme", "q1", "up")
    assert stored.rating == "up" == log.trace.rating
    assert "could not emit the feedback metric of query q1" in caplog.text
