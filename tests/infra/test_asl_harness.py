"""The harness's Step Functions quotas: 256 KiB per state input/output/task result, 25,000 history events.

Both execution paths are covered: the in-repo interpreter (`asl_interpreter`, which runs the rebuild's
Distributed Map) and moto (which runs the ingestion machine, checked through a hook on its history events).
"""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws

from tests.infra.asl_harness import QuotaExceeded, harness, s3_object_created
from tests.infra.asl_interpreter import (
    HISTORY_EVENT_LIMIT,
    STATE_PAYLOAD_LIMIT,
    HistoryLimitExceeded,
    Interpreter,
    payload_size,
)
from tests.infra.ingest_standins import World

pytestmark = pytest.mark.timeout(120)

FN = "arn:aws:lambda:us-east-1:123456789012:function:f"
MACHINE = "arn:aws:states:us-east-1:123456789012:stateMachine:m"
RETRY = [
    {
        "ErrorEquals": ["Lambda.ServiceException", "Lambda.ClientExecutionTimeoutException"],
        "IntervalSeconds": 2,
        "BackoffRate": 2,
        "MaxAttempts": 5,
        "JitterStrategy": "FULL",
    }
]


def task(**extra) -> dict:
    return {
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {"FunctionName": FN, "Payload.$": "$"},
        "OutputPath": "$.Payload",
        "Retry": RETRY,
        **extra,
    }


def interpreter(definition: dict, handler, s3=None) -> Interpreter:
    def invoke(arn, payload):
        assert arn == FN
        try:
            return json.loads(json.dumps(handler(payload))), False
        except Exception as exc:
            return {"errorType": type(exc).__name__, "errorMessage": str(exc)}, True

    return Interpreter(definition, state_machine_arn=MACHINE, invoke=invoke, s3=s3)


def test_payload_size_is_the_utf8_bytes_of_the_json() -> None:
    assert payload_size({"a": "é"}) == len('{"a":"é"}'.encode()) == 10
    assert STATE_PAYLOAD_LIMIT == 256 * 1024 and HISTORY_EVENT_LIMIT == 25_000


def test_a_task_output_over_256_kib_fails_the_execution_with_data_limit_exceeded_even_when_caught() -> None:
    definition = {
        "StartAt": "Big",
        "States": {
            "Big": task(
                Catch=[{"ErrorEquals": ["States.ALL"], "Next": "Caught"}],
                End=True,
            ),
            "Caught": {"Type": "Pass", "End": True},
        },
    }
    just_under = interpreter(definition, lambda e: {"x": "y" * (STATE_PAYLOAD_LIMIT - 200)})
    assert just_under.start("under", {}).status == "SUCCEEDED"
    assert STATE_PAYLOAD_LIMIT - 200 < just_under.largest_payload <= STATE_PAYLOAD_LIMIT

    over = interpreter(definition, lambda e: {"x": "y" * STATE_PAYLOAD_LIMIT})
    run = over.start("over", {})
    assert run.status == "FAILED" and run.error == "States.DataLimitExceeded"  # States.ALL does not catch it
    assert "Big task result" in run.cause and "262,144" in run.cause


def test_a_state_output_built_by_result_path_over_256_kib_fails() -> None:
    # each piece fits; the state's output (input + result under ResultPath) does not
    definition = {"StartAt": "Add", "States": {"Add": task(OutputPath="$", ResultPath="$.more", End=True)}}
    run = interpreter(definition, lambda e: {"x": "y" * 140_000}).start("grows", {"x": "y" * 140_000})
    assert run.status == "FAILED" and run.error == "States.DataLimitExceeded"
    assert "Add output" in run.cause


def test_the_history_limit_counts_inline_map_iterations_in_the_parent() -> None:
    definition = {
        "StartAt": "Each",
        "States": {
            "Each": {
                "Type": "Map",
                "ItemsPath": "$.items",
                "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "INLINE"},
                    "StartAt": "Work",
                    "States": {"Work": task(End=True)},
                },
                "ResultPath": None,
                "End": True,
            }
        },
    }
    # per item: MapIterationStarted/Succeeded + TaskStateEntered/Exited + TaskScheduled/Started/Succeeded = 7
    fits = interpreter(definition, lambda e: {}).start("fits", {"items": list(range(3_000))})
    assert fits.status == "SUCCEEDED" and fits.events == 3_000 * 7 + 6
    with pytest.raises(HistoryLimitExceeded, match="25,000"):
        interpreter(definition, lambda e: {}).start("too-long", {"items": list(range(3_600))})


def test_retries_count_their_events_and_are_recorded_not_slept() -> None:
    calls = []

    def flaky(event):
        calls.append(event)
        if len(calls) < 3:
            raise type("ServiceException", (Exception,), {})("busy")
        return {"ok": True}

    definition = {"StartAt": "T", "States": {"T": task(End=True)}}
    definition["States"]["T"]["Retry"][0]["ErrorEquals"].append("ServiceException")
    i = interpreter(definition, flaky)
    run = i.start("flaky", {})
    assert run.status == "SUCCEEDED" and run.output == {"ok": True}
    assert len(i.retry_waits) == 2 and 0 <= i.retry_waits[0] <= 2 and 0 <= i.retry_waits[1] <= 4
    assert run.event_types["TaskFailed"] == 2 and run.event_types["TaskSucceeded"] == 1


OLD_REBUILD = {  # the rebuild before issue 13: the list and the results in one state
    "StartAt": "ListDocuments",
    "States": {
        "ListDocuments": task(Next="ReindexDocuments", End=None),
        "ReindexDocuments": {
            "Type": "Map",
            "ItemsPath": "$.documents",
            "ItemProcessor": {
                "ProcessorConfig": {"Mode": "INLINE"},
                "StartAt": "ReindexDocument",
                "States": {"ReindexDocument": task(End=True)},
            },
            "ResultPath": "$.results",
            "End": True,
        },
    },
}
del OLD_REBUILD["States"]["ListDocuments"]["End"]


def test_the_old_single_state_rebuild_is_rejected_at_2000_documents() -> None:
    docs = [{"tenant_id": "acme", "document_id": f"{i:032x}"} for i in range(2_000)]

    def handler(event):
        if "document_id" in event:
            return event | {"status": "INDEXED", "embedded": 0, "reused": 12}
        return {"documents": docs, "count": len(docs)}

    run = interpreter(OLD_REBUILD, handler).start("old", {})
    assert run.status == "FAILED" and run.error == "States.DataLimitExceeded"
    assert "ReindexDocuments output" in run.cause


def test_distributed_map_children_have_their_own_histories_and_results_go_to_s3() -> None:
    definition = {
        "StartAt": "Each",
        "States": {
            "Each": {
                "Type": "Map",
                "ItemReader": {
                    "Resource": "arn:aws:states:::s3:getObject",
                    "ReaderConfig": {"InputType": "JSON"},
                    "Parameters": {"Bucket": "results-b", "Key.$": "$.key"},
                },
                "ItemSelector": {"n.$": "$$.Map.Item.Value", "i.$": "$$.Map.Item.Index"},
                "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                    "StartAt": "Work",
                    "States": {"Work": task(End=True)},
                },
                "ResultWriter": {
                    "Resource": "arn:aws:states:::s3:putObject",
                    "Parameters": {"Bucket": "results-b", "Prefix": "out"},
                },
                "End": True,
            }
        },
    }
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="results-b")
        s3.put_object(Bucket="results-b", Key="items.json", Body=json.dumps(list(range(4_000))).encode())
        i = interpreter(definition, lambda e: {"double": e["n"] * 2, "i": e["i"]}, s3=s3)
        run = i.start("dist", {"key": "items.json"})
        assert run.status == "SUCCEEDED", run.cause
        parent, *children = i.executions
        assert len(children) == 4_000 and parent.events < 20  # 4,000 inline iterations would be 28,000+
        manifest = json.loads(
            s3.get_object(Bucket="results-b", Key=run.output["ResultWriterDetails"]["Key"])["Body"].read()
        )
        assert manifest["MapRunArn"] == run.output["MapRunArn"] and manifest["ResultFiles"]["FAILED"] == []
        (part,) = manifest["ResultFiles"]["SUCCEEDED"]
        assert part["Key"].startswith("out/") and part["Key"].endswith("/SUCCEEDED_0.json")
        records = json.loads(s3.get_object(Bucket="results-b", Key=part["Key"])["Body"].read())
        assert [json.loads(r["Output"]) for r in records][:2] == [
            {"double": 0, "i": 0},
            {"double": 2, "i": 1},
        ]
        assert {r["Status"] for r in records} == {"SUCCEEDED"}


def test_moto_executions_are_held_to_the_same_payload_quota(monkeypatch) -> None:
    world = World(max_bytes=10_000_000)
    handlers = world.handlers()
    validate = handlers["ValidateFunctionArn"]

    def validate_with_a_huge_job(event, context):
        return validate(event, context) | {"blob": "z" * 300_000}

    handlers["ValidateFunctionArn"] = validate_with_a_huge_job
    with harness(handlers, monkeypatch) as sfn:
        key = world.upload("t1", "d1", "alpha beta")
        with pytest.raises(QuotaExceeded, match="DataLimitExceeded"):
            sfn.ingest("huge", s3_object_created("lectern-documents", key, 10))


def test_moto_executions_within_the_quotas_pass_and_report_their_largest_payload(monkeypatch) -> None:
    world = World()
    with harness(world.handlers(), monkeypatch) as sfn:
        key = world.upload("t1", "d1", "alpha beta gamma")
        assert sfn.ingest("small", s3_object_created("lectern-documents", key, 16))["status"] == "SUCCEEDED"
        assert 100 < sfn.largest_payload < 10_000 and sfn.violations == []
