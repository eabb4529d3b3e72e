"""Run the state machines of `state_machines/` in moto, with their Lambda tasks calling Python in-process.

moto's Step Functions backend executes definitions when configured with `{"stepfunctions":
{"execute_state_machine": True}}` (moto docs, stepfunctions, "execute_state_machine"). Its Lambda task
integration invokes the function through moto's Lambda API. With `{"lambda": {"use_docker": False}}` that is
`moto.awslambda_simple.LambdaSimpleBackend`, which never runs the function's code: `invoke` echoes the payload
(or pops a queued canned result) and cannot report a function error. So the harness replaces that backend's
`invoke` with a dispatcher: each deployed function name maps to a Python callable `(event, context) -> dict`.
A callable that raises becomes what Lambda returns for an unhandled Python exception (`X-Amz-Function-Error:
Unhandled`, payload `{"errorType": <class name>, "errorMessage": ...}`), which moto's ASL interpreter, like
Step Functions, turns into an error named after the exception class.

The callables are whatever the test passes: small stand-ins here, and the real handlers
(`lectern.aws.handlers.ingest.validate`, ...) once they exist; `INGEST_FUNCTIONS` / `REBUILD_FUNCTIONS` map
each substitution of the ASL file to the handler's dotted path.

Retry waits are recorded instead of slept (the interpreter calls `time.sleep` in `retrier_decl`).

The rebuild machine is a Distributed Map with an S3 ItemReader and ResultWriter, which moto does not run
faithfully (see `asl_interpreter`): `Harness.rebuild` runs it on the in-repo interpreter instead, against the
same moto account (S3 for the document list and the results) and the same dispatcher. The ingestion machine
stays on moto.

Step Functions' quotas are enforced on both paths: every state input/output and task result over 256 KiB
(262,144 bytes of UTF-8 JSON), and every execution history over 25,000 events. The interpreter fails the
execution with States.DataLimitExceeded (or raises `HistoryLimitExceeded`), as AWS would; on moto, a hook on
its history EventManager records each violation and `Harness.run` raises `QuotaExceeded` (moto itself has no
such limits and would let the execution succeed).
"""

from __future__ import annotations

import json
import re
import time
import types
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
from moto import mock_aws

from tests.infra.asl_interpreter import (
    HISTORY_EVENT_LIMIT,
    STATE_PAYLOAD_LIMIT,
    Execution,
    Interpreter,
    payload_size,
)

ROOT = Path(__file__).resolve().parents[2]
INGEST_ASL = ROOT / "state_machines" / "ingest.asl.json"
REBUILD_ASL = ROOT / "state_machines" / "rebuild.asl.json"
REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account
DOCUMENTS_BUCKET = "lectern-documents"


class QuotaExceeded(AssertionError):
    """A moto execution went past a Step Functions quota that moto does not enforce."""


Handler = Callable[[dict[str, Any], Any], Any]

# ASL substitution -> the handler it stands for (the Lambda contract of issue 3).
INGEST_FUNCTIONS = {
    "ValidateFunctionArn": "lectern.aws.handlers.ingest.validate",
    "ExtractFunctionArn": "lectern.aws.handlers.ingest.extract",
    "ChunkFunctionArn": "lectern.aws.handlers.ingest.chunk",
    "EmbedBatchFunctionArn": "lectern.aws.handlers.ingest.embed_batch",
    "IndexFunctionArn": "lectern.aws.handlers.ingest.index",
    "MarkIndexedFunctionArn": "lectern.aws.handlers.ingest.mark_indexed",
    "MarkFailedFunctionArn": "lectern.aws.handlers.ingest.mark_failed",
}
REBUILD_FUNCTIONS = {
    "ListDocumentsFunctionArn": "lectern.aws.handlers.rebuild.list_documents",
    "ReindexDocumentFunctionArn": "lectern.aws.handlers.rebuild.reindex_document",
}
_PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_]+)\}")


def placeholders(path: Path) -> set[str]:
    return set(_PLACEHOLDER.findall(path.read_text()))


def render(path: Path, substitutions: Mapping[str, str | int]) -> dict[str, Any]:
    """The definition as CloudFormation's DefinitionSubstitutions make it (textual `${Name}` replacement)."""
    text = path.read_text()
    missing = placeholders(path) - set(substitutions)
    if missing:
        raise KeyError(f"no substitution for {sorted(missing)}")
    return json.loads(_PLACEHOLDER.sub(lambda m: str(substitutions[m[1]]), text))


def s3_object_created(bucket: str, key: str, size: int) -> dict[str, Any]:
    """An EventBridge "Object Created" event from S3.

    https://docs.aws.amazon.com/AmazonS3/latest/userguide/ev-events.html
    """
    return {
        "version": "0",
        "id": "17793124-05d4-b198-2fde-7ededc63b103",
        "detail-type": "Object Created",
        "source": "aws.s3",
        "account": ACCOUNT,
        "time": "2026-11-29T12:00:00Z",
        "region": REGION,
        "resources": [f"arn:aws:s3:::{bucket}"],
        "detail": {
            "version": "0",
            "bucket": {"name": bucket},
            "object": {
                "key": key,
                "size": size,
                "etag": "b1946ac92492d2347c6235b4d2611184",
                "sequencer": "1",
            },
            "request-id": "N4N7GDK58NMKJ12R",
            "requester": ACCOUNT,
            "reason": "PutObject",
        },
    }


class Harness:
    """One moto account with the functions, the DLQ and the two state machines created."""

    def __init__(
        self,
        handlers: Mapping[str, Handler],
        max_concurrency: int = 2,
        documents_bucket: str = DOCUMENTS_BUCKET,
    ) -> None:
        self.handlers = dict(handlers)
        self.calls: list[tuple[str, dict[str, Any]]] = []  # (substitution name, event) in call order
        self.retry_waits: list[float] = []
        self.violations: list[str] = []  # quotas passed by moto executions (see `moto_event_hook`)
        self.largest_payload = 0  # bytes: the largest state input/output/task result seen, moto runs included
        self.sfn = boto3.client("stepfunctions", region_name=REGION)
        self.sqs = boto3.client("sqs", region_name=REGION)
        self.s3 = boto3.client("s3", region_name=REGION)
        self.documents_bucket = documents_bucket
        self.s3.create_bucket(Bucket=documents_bucket)
        self.s3.put_bucket_versioning(Bucket=documents_bucket, VersioningConfiguration={"Status": "Enabled"})
        self.last_rebuild: Interpreter | None = None
        lam = boto3.client("lambda", region_name=REGION)
        iam = boto3.client("iam", region_name=REGION)
        role = iam.create_role(
            RoleName="lectern-test",
            AssumeRolePolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": ["lambda.amazonaws.com", "states.amazonaws.com"]},
                            "Action": "sts:AssumeRole",
                        }
                    ],
                }
            ),
        )["Role"]["Arn"]
        self.function_of: dict[str, str] = {}  # deployed function name -> substitution name
        self.function_arns: dict[str, str] = {}  # function ARN -> substitution name
        subs: dict[str, str | int] = {}
        for name in [*INGEST_FUNCTIONS, *REBUILD_FUNCTIONS]:
            fn = "lectern-" + re.sub(r"(?<!^)(?=[A-Z])", "-", name.removesuffix("FunctionArn")).lower()
            arn = lam.create_function(
                FunctionName=fn,
                Runtime="python3.12",
                Role=role,
                Handler="index.handler",
                Code={"ZipFile": b"stand-in: the harness dispatches to Python"},
            )["FunctionArn"]
            self.function_of[fn] = name
            self.function_arns[arn] = name
            subs[name] = arn
        self.dlq_url = self.sqs.create_queue(QueueName="lectern-ingest-dlq")["QueueUrl"]
        subs |= {
            "DeadLetterQueueUrl": self.dlq_url,
            "EmbedMaxConcurrency": max_concurrency,
            "ReindexMaxConcurrency": max_concurrency,
            "DocumentsBucket": documents_bucket,
        }
        self.substitutions = subs
        self.ingest_arn = self.sfn.create_state_machine(
            name="lectern-ingest",
            definition=json.dumps(render(INGEST_ASL, subs)),
            roleArn=role,
        )["stateMachineArn"]
        self.rebuild_definition = render(REBUILD_ASL, subs)
        self.rebuild_arn = self.sfn.create_state_machine(
            name="lectern-rebuild",
            definition=json.dumps(self.rebuild_definition),
            roleArn=role,
        )["stateMachineArn"]

    # -- the Lambda dispatcher ------------------------------------------------------------------------------

    def invoke(
        self, backend: Any, function_name: str, qualifier: str | None, body: Any, response_headers: dict
    ):
        fn = backend.get_function(function_name, qualifier)
        payload, function_error = self.dispatch(self.function_of[fn.function_name], json.loads(body or "{}"))
        if function_error:
            response_headers["x-amz-function-error"] = "Unhandled"
        return json.dumps(payload).encode()

    def dispatch(self, name: str, event: Any) -> tuple[Any, bool]:
        """Run the function `name` on `event`: (its result, False), or (the Python runtime's error payload
        for an unhandled exception, True)."""
        self.calls.append((name, event))
        try:
            result = self.handlers[name](event, None)
        except Exception as exc:  # what the Python runtime reports for an unhandled exception
            return {"errorType": type(exc).__name__, "errorMessage": str(exc), "stackTrace": []}, True
        return json.loads(json.dumps(result)), False  # what crosses the wire is JSON

    def _invoke_arn(self, function_arn: str, payload: Any) -> tuple[Any, bool]:
        if function_arn not in self.function_arns:
            error = {"errorType": "Lambda.ResourceNotFoundException", "errorMessage": function_arn}
            return error, True
        return self.dispatch(self.function_arns[function_arn], payload)

    # -- quotas on moto executions -----------------------------------------------------------------------

    def moto_event(self, event_id: int, event_details: Mapping[str, Any] | None) -> None:
        """Called for every history event moto records: checks the event count and the payload sizes."""
        if event_id > HISTORY_EVENT_LIMIT:
            self.violations.append(f"history event {event_id:,} (limit {HISTORY_EVENT_LIMIT:,})")
        for details in (event_details or {}).values():
            if not isinstance(details, Mapping):
                continue
            if details.get("error") == "States.DataLimitExceeded":
                # moto measures task results itself, but lets States.ALL catch the error; AWS does not
                self.violations.append(f"States.DataLimitExceeded: {details.get('cause', '')}")
            for field in ("input", "output"):
                text = details.get(field)
                if not isinstance(text, str):
                    continue
                try:
                    size = payload_size(json.loads(text))
                except ValueError:
                    size = len(text.encode())
                self.largest_payload = max(self.largest_payload, size)
                if size > STATE_PAYLOAD_LIMIT:
                    where = details.get("name") or details.get("resource") or "?"
                    self.violations.append(
                        f"{where} {field}: {size:,} bytes (limit {STATE_PAYLOAD_LIMIT:,}): "
                        "States.DataLimitExceeded"
                    )

    def called(self, name: str) -> list[dict[str, Any]]:
        return [event for n, event in self.calls if n == name]

    # -- executions ---------------------------------------------------------------------------------------

    def run(self, state_machine_arn: str, name: str, payload: dict[str, Any], timeout_s: float = 30) -> dict:
        if state_machine_arn == self.rebuild_arn:
            return self.rebuild(name, payload)
        if payload_size(payload) > STATE_PAYLOAD_LIMIT:
            raise QuotaExceeded(f"execution input of {payload_size(payload):,} bytes")
        arn = self.sfn.start_execution(
            stateMachineArn=state_machine_arn, name=name, input=json.dumps(payload)
        )["executionArn"]
        deadline = time.monotonic() + timeout_s
        while True:
            desc = self.sfn.describe_execution(executionArn=arn)
            if desc["status"] != "RUNNING":
                if self.violations:
                    raise QuotaExceeded(f"execution {name}: " + "; ".join(self.violations))
                return desc
            if time.monotonic() > deadline:
                raise TimeoutError(f"execution {name} still running after {timeout_s} s")
            time.sleep(0.02)

    def ingest(self, name: str, event: dict[str, Any]) -> dict:
        return self.run(self.ingest_arn, name, event)

    def rebuild(self, name: str, payload: dict[str, Any] | None = None) -> dict:
        """Run the rebuild machine on the in-repo interpreter (moto cannot run its Distributed Map
        faithfully).

        Returns what DescribeExecution would (status, output or error/cause); `last_rebuild` keeps the
        interpreter, with `largest_payload` and each execution's event count."""
        interpreter = Interpreter(
            self.rebuild_definition,
            state_machine_arn=self.rebuild_arn,
            invoke=self._invoke_arn,
            s3=self.s3,
            retry_waits=self.retry_waits,
        )
        self.last_rebuild = interpreter
        execution: Execution = interpreter.start(name, payload or {})
        return execution.describe()

    def dead_letters(self) -> list[dict[str, Any]]:
        out = []
        while True:
            msgs = self.sqs.receive_message(QueueUrl=self.dlq_url, MaxNumberOfMessages=10).get("Messages", [])
            if not msgs:
                return out
            out += [json.loads(m["Body"]) for m in msgs]

    def history(self, execution_arn: str) -> list[dict[str, Any]]:
        return self.sfn.get_execution_history(executionArn=execution_arn, maxResults=1000)["events"]


@contextmanager
def harness(
    handlers: Mapping[str, Handler],
    monkeypatch: Any,
    max_concurrency: int = 2,
    documents_bucket: str = DOCUMENTS_BUCKET,
) -> Iterator[Harness]:
    from moto.awslambda_simple.models import LambdaSimpleBackend
    from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
    from moto.stepfunctions.parser.asl.eval.event.event_manager import EventManager

    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}):
        h = Harness(handlers, max_concurrency, documents_bucket)

        def invoke(backend, function_name, qualifier, body, headers, response_headers):
            return h.invoke(backend, function_name, qualifier, body, response_headers)

        add_event = EventManager.add_event

        def add_event_checked(self, context, event_type, event_details=None, *args, **kwargs):
            event_id = add_event(self, context, event_type, event_details, *args, **kwargs)
            h.moto_event(event_id, event_details)
            return event_id

        monkeypatch.setattr(LambdaSimpleBackend, "invoke", invoke)
        monkeypatch.setattr(EventManager, "add_event", add_event_checked)
        monkeypatch.setattr(retrier_decl, "time", types.SimpleNamespace(sleep=h.retry_waits.append))
        yield h
