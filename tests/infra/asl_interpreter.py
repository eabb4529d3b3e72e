"""A small Amazon States Language interpreter for the states the rebuild uses, with Step Functions' quotas.

Why not moto: moto 5.2's interpreter (the LocalStack port) runs a Distributed Map with an S3 ItemReader, but
  * its ResultWriter writes only an empty manifest (`ResultFiles` all empty, "TODO: generate result files"),
    so the per-document results a rebuild reports would not exist;
  * a failed child execution is swallowed (its output becomes null) and ToleratedFailurePercentage/Count are
    not evaluated, so "a child failed" cannot be tested;
  * each worker recurses once per item (`DistributedItemProcessorWorker._eval_pool` calls itself for the
    next job), so thousands of items per worker run into Python's recursion limit;
  * it checks neither the 256 KiB state payload quota nor the 25,000-event history quota.
So the rebuild runs here, on this interpreter; the ingestion machine still runs on moto (with the quotas
checked by `asl_harness`'s event hook).

What is interpreted, per the ASL specification (https://states-language.net/spec.html) and the Step Functions
developer guide (input/output processing, error handling, Map state in distributed mode, ItemReader,
ResultWriter), JSONPath query language only:
  * Task with Resource `arn:aws:states:::lambda:invoke` (Parameters -> the Invoke request; the result is
    `{ExecutedVersion, Payload, StatusCode, ...}`; a function error becomes the error named by the payload's
    errorType with the payload as Cause), Retry (ErrorEquals, IntervalSeconds, MaxAttempts, BackoffRate,
    MaxDelaySeconds, JitterStrategy FULL/NONE; waits are recorded, not slept) and Catch (ErrorEquals,
    ResultPath, Next); States.ALL matches every error except States.DataLimitExceeded and States.Runtime,
    which are terminal;
  * Pass (Result, Parameters), Fail (Error/Cause, ErrorPath/CausePath), Succeed;
  * Map, INLINE (iterations in the parent history) and DISTRIBUTED (ItemReader `s3:getObject` with
    ReaderConfig InputType JSON and MaxItems, ItemSelector with `$$.Map.Item.Value/Index`, MaxConcurrency
    accepted, ToleratedFailurePercentage/Count, ResultWriter `s3:putObject` writing `manifest.json` and
    `SUCCEEDED_0.json`/`FAILED_0.json` under `{Prefix}/{map run id}/`; each item is a child execution with its
    own history);
  * InputPath, Parameters/ItemSelector/ResultSelector (`.$` keys: JSONPath on the state's data or, with `$$`,
    the context object; intrinsic functions States.Format, States.ArrayLength, States.JsonToString,
    States.StringToJson), ResultPath (including null), OutputPath;
  * JSONPath: `$`, `$.a.b`, `$['a']`, `$.a[0]` (a path that matches nothing is States.Runtime).
Anything else raises NotImplementedError, so the interpreter cannot silently mis-run a definition.

Quotas (https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html):
  * 256 KiB (262,144 bytes of the UTF-8 JSON) for a state's input, its output, a task's result and an
    execution's input: a larger one fails the execution with States.DataLimitExceeded (terminal: no Catch);
  * 25,000 events per execution history: `HistoryLimitExceeded` is raised. Events are counted per state type
    as Step Functions records them: ExecutionStarted/Succeeded|Failed; {Type}StateEntered/Exited;
    TaskScheduled, TaskStarted, TaskSucceeded|Failed per attempt; MapStateStarted, MapStateSucceeded|Failed;
    MapIterationStarted and Succeeded|Failed per inline iteration, whose states' events count in the parent;
    MapRunStarted, MapRunSucceeded|Failed for a distributed map, whose children count in their own histories.
`largest_payload` is the largest state payload seen (bytes), `events` each execution's event count.
"""

from __future__ import annotations

import json
import random
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

STATE_PAYLOAD_LIMIT = 262_144  # bytes
HISTORY_EVENT_LIMIT = 25_000
LAMBDA_INVOKE = "arn:aws:states:::lambda:invoke"
TERMINAL = {"States.DataLimitExceeded", "States.Runtime"}  # not matched by States.ALL


class StatesError(Exception):
    """An error inside an execution, as Step Functions names it (Error) with its Cause."""

    def __init__(self, error: str, cause: str = "") -> None:
        super().__init__(f"{error}: {cause}")
        self.error, self.cause = error, cause


class HistoryLimitExceeded(Exception):
    """An execution's history would pass 25,000 events: on AWS the execution fails."""


def payload_size(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())


# -- JSONPath and intrinsic functions ------------------------------------------------------------------------

_SEGMENT = re.compile(r"\.([A-Za-z_][A-Za-z0-9_-]*)|\[(\d+)\]|\['([^']*)'\]")


def json_path(path: str, data: Any, context: Any) -> Any:
    if path.startswith("$$"):
        data, path = context, path[1:]
    if not path.startswith("$"):
        raise StatesError("States.Runtime", f"not a JSONPath: {path!r}")
    rest, value = path[1:], data
    while rest:
        m = _SEGMENT.match(rest)
        if not m:
            raise NotImplementedError(f"JSONPath syntax not interpreted: {path!r}")
        name, index, quoted = m.groups()
        key: Any = int(index) if index is not None else (name if name is not None else quoted)
        try:
            value = value[key]
        except (KeyError, IndexError, TypeError):
            raise StatesError(
                "States.Runtime", f"The JSONPath {path!r} could not be found in the input"
            ) from None
        rest = rest[m.end() :]
    return value


def _split_args(text: str) -> list[str]:
    args, depth, quoted, start, i = [], 0, False, 0, 0
    while i < len(text):
        c = text[i]
        if quoted:
            if c == "\\":
                i += 1
            elif c == "'":
                quoted = False
        elif c == "'":
            quoted = True
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif c == "," and depth == 0:
            args.append(text[start:i].strip())
            start = i + 1
        i += 1
    if text.strip():
        args.append(text[start:].strip())
    return args


def _arg(arg: str, data: Any, context: Any) -> Any:
    if arg.startswith("'"):
        return re.sub(r"\\(.)", r"\1", arg[1:-1])
    if arg.startswith("$"):
        return json_path(arg, data, context)
    if arg.startswith("States."):
        return evaluate(arg, data, context)
    if arg in ("true", "false", "null"):
        return json.loads(arg)
    return json.loads(arg)  # a number


def evaluate(expression: str, data: Any, context: Any) -> Any:
    """The value of a `.$` field: a JSONPath or an intrinsic function call."""
    m = re.fullmatch(r"(States\.[A-Za-z]+)\((.*)\)", expression.strip(), re.S)
    if not m:
        return json_path(expression, data, context)
    fn, args = m[1], [_arg(a, data, context) for a in _split_args(m[2])]
    if fn == "States.Format":
        template, values = args[0], list(args[1:])
        parts = re.split(r"(?<!\\)\{\}", template)
        if len(parts) - 1 != len(values):
            raise StatesError("States.Runtime", f"States.Format: {len(values)} arguments for {template!r}")
        text = parts[0]
        for value, part in zip(values, parts[1:], strict=True):
            text += (value if isinstance(value, str) else json.dumps(value)) + part
        return text
    if fn == "States.ArrayLength":
        return len(args[0])
    if fn == "States.JsonToString":
        return json.dumps(args[0], separators=(",", ":"))
    if fn == "States.StringToJson":
        return json.loads(args[0])
    raise NotImplementedError(f"intrinsic function not interpreted: {fn}")


def build(template: Any, data: Any, context: Any) -> Any:
    """Parameters / ItemSelector / ResultSelector: `.$` keys are evaluated, everything else is literal."""
    if isinstance(template, dict):
        out = {}
        for key, value in template.items():
            if key.endswith(".$"):
                out[key[:-2]] = evaluate(value, data, context)
            else:
                out[key] = build(value, data, context)
        return out
    if isinstance(template, list):
        return [build(v, data, context) for v in template]
    return template


def put_result(data: Any, result_path: str | None, result: Any) -> Any:
    """ResultPath: `$` replaces, null discards, `$.a.b` sets (creating objects on the way)."""
    if result_path is None:
        return data
    if result_path == "$":
        return result
    keys, rest = [], result_path[1:]
    while rest:
        m = _SEGMENT.match(rest)
        if not m or m[2] is not None:
            raise NotImplementedError(f"ResultPath not interpreted: {result_path!r}")
        keys.append(m[1] if m[1] is not None else m[3])
        rest = rest[m.end() :]
    if not isinstance(data, dict):
        raise StatesError("States.Runtime", f"ResultPath {result_path!r} on a non-object input")
    out = json.loads(json.dumps(data))
    node = out
    for k in keys[:-1]:
        node = node.setdefault(k, {})
    node[keys[-1]] = result
    return out


# -- executions -------------------------------------------------------------------------------------------


@dataclass
class Execution:
    name: str
    arn: str
    input: Any
    status: str = "RUNNING"
    output: Any = None
    error: str | None = None
    cause: str | None = None
    events: int = 0
    event_types: dict[str, int] = field(default_factory=dict)
    children: list[Execution] = field(default_factory=list)

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"executionArn": self.arn, "name": self.name, "status": self.status}
        if self.status == "SUCCEEDED":
            out["output"] = json.dumps(self.output)
        else:
            out["error"], out["cause"] = self.error, self.cause
        return out


# (function ARN, payload) -> (response payload, function error?)
Invoke = Callable[[str, Any], tuple[Any, bool]]


class Interpreter:
    def __init__(
        self,
        definition: dict[str, Any],
        *,
        state_machine_arn: str,
        invoke: Invoke,
        s3: Any,
        retry_waits: list[float] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.definition = definition
        self.state_machine_arn = state_machine_arn
        self.invoke = invoke
        self.s3 = s3
        self.retry_waits = retry_waits if retry_waits is not None else []
        self.rng = rng or random.Random(0)
        self.largest_payload = 0
        self.largest_payload_at = ""
        self.executions: list[Execution] = []

    # -- bookkeeping ------------------------------------------------------------------------------------

    def _event(self, execution: Execution, kind: str, n: int = 1) -> None:
        execution.events += n
        execution.event_types[kind] = execution.event_types.get(kind, 0) + n
        if execution.events > HISTORY_EVENT_LIMIT:
            raise HistoryLimitExceeded(
                f"execution {execution.name}: more than {HISTORY_EVENT_LIMIT:,} history events "
                f"(by type: {execution.event_types})"
            )

    def _check(self, what: str, value: Any) -> None:
        size = payload_size(value)
        if size > self.largest_payload:
            self.largest_payload, self.largest_payload_at = size, what
        if size > STATE_PAYLOAD_LIMIT:
            raise StatesError(
                "States.DataLimitExceeded",
                f"{what}: {size:,} bytes, over the {STATE_PAYLOAD_LIMIT:,}-byte (256 KiB) limit",
            )

    # -- entry points ----------------------------------------------------------------------------------

    def start(self, name: str, payload: Any) -> Execution:
        arn = self.state_machine_arn.replace(":stateMachine:", ":execution:") + f":{name}"
        return self._run(self.definition, Execution(name, arn, payload), self.state_machine_arn)

    def _run(self, machine: dict[str, Any], execution: Execution, machine_arn: str) -> Execution:
        self.executions.append(execution)
        context = {
            "Execution": {"Id": execution.arn, "Name": execution.name, "Input": execution.input},
            "StateMachine": {"Id": machine_arn},
        }
        self._event(execution, "ExecutionStarted")
        try:
            self._check(f"{execution.name}: execution input", execution.input)
            execution.output = self._states(machine, execution.input, context, execution)
            execution.status = "SUCCEEDED"
            self._event(execution, "ExecutionSucceeded")
        except StatesError as err:
            execution.status, execution.error, execution.cause = "FAILED", err.error, err.cause
            self._event(execution, "ExecutionFailed")
        return execution

    # -- states ----------------------------------------------------------------------------------------

    def _states(self, machine: dict[str, Any], data: Any, context: dict, execution: Execution) -> Any:
        name = machine["StartAt"]
        while True:
            state = machine["States"][name]
            kind = state["Type"]
            where = f"{execution.name}/{name}"
            self._event(execution, f"{kind}StateEntered")
            self._check(f"{where} input", data)
            if kind == "Fail":
                error = state.get("Error", "States.Fail")
                cause = state.get("Cause", "")
                if "ErrorPath" in state:
                    error = evaluate(state["ErrorPath"], data, context)
                if "CausePath" in state:
                    cause = evaluate(state["CausePath"], data, context)
                raise StatesError(str(error), str(cause))
            input_path = state.get("InputPath", "$")
            effective = json_path(input_path, data, context) if input_path is not None else {}
            try:
                if kind == "Pass":
                    result = (
                        build(state["Parameters"], effective, context)
                        if "Parameters" in state
                        else (state.get("Result", effective))
                    )
                    output = self._output(state, data, result, context)
                elif kind == "Succeed":
                    output = effective
                elif kind == "Task":
                    result = self._task(state, effective, context, execution, where)
                    output = self._output(state, data, result, context)
                elif kind == "Map":
                    result = self._map(state, effective, context, execution, where)
                    output = self._output(state, data, result, context)
                else:
                    raise NotImplementedError(f"state type not interpreted: {kind}")
            except StatesError as err:
                catcher = next(
                    (c for c in state.get("Catch", []) if _matches(c["ErrorEquals"], err.error)), None
                )
                if catcher is None:
                    raise
                output = put_result(
                    data, catcher.get("ResultPath", "$"), {"Error": err.error, "Cause": err.cause}
                )
                self._check(f"{where} output (caught)", output)
                self._event(execution, f"{kind}StateExited")
                name, data = catcher["Next"], output
                continue
            self._check(f"{where} output", output)
            self._event(execution, f"{kind}StateExited")
            if state.get("End") or kind == "Succeed":
                return output
            name, data = state["Next"], output

    def _output(self, state: dict, data: Any, result: Any, context: dict) -> Any:
        if "ResultSelector" in state:
            result = build(state["ResultSelector"], result, context)
        merged = put_result(data, state.get("ResultPath", "$"), result)
        path = state.get("OutputPath", "$")
        return json_path(path, merged, context) if path is not None else {}

    def _task(self, state: dict, data: Any, context: dict, execution: Execution, where: str) -> Any:
        if state["Resource"] != LAMBDA_INVOKE:
            raise NotImplementedError(f"task resource not interpreted: {state['Resource']}")
        request = build(state.get("Parameters", {}), data, context)
        attempts: dict[int, int] = {}
        while True:
            self._event(execution, "TaskScheduled")
            self._event(execution, "TaskStarted")
            try:
                payload, function_error = self.invoke(request["FunctionName"], request.get("Payload", {}))
                if function_error:
                    raise StatesError(str(payload.get("errorType", "Lambda.Unknown")), json.dumps(payload))
                result = {"ExecutedVersion": "$LATEST", "Payload": payload, "StatusCode": 200}
                self._check(f"{where} task result", result)
                self._event(execution, "TaskSucceeded")
                return result
            except StatesError as err:
                self._event(execution, "TaskFailed")
                if err.error in TERMINAL:
                    raise
                index, retrier = next(
                    (
                        (i, r)
                        for i, r in enumerate(state.get("Retry", []))
                        if _matches(r["ErrorEquals"], err.error)
                    ),
                    (None, None),
                )
                if retrier is None or index is None:
                    raise
                done = attempts.get(index, 0)
                if done >= retrier.get("MaxAttempts", 3):
                    raise
                attempts[index] = done + 1
                wait = retrier.get("IntervalSeconds", 1) * retrier.get("BackoffRate", 2.0) ** done
                if "MaxDelaySeconds" in retrier:
                    wait = min(wait, retrier["MaxDelaySeconds"])
                if retrier.get("JitterStrategy", "NONE") == "FULL":
                    wait = self.rng.uniform(0, wait)
                self.retry_waits.append(wait)

    def _map(self, state: dict, data: Any, context: dict, execution: Execution, where: str) -> Any:
        processor = state.get("ItemProcessor") or state.get("Iterator")
        mode = processor.get("ProcessorConfig", {}).get("Mode", "INLINE")
        self._event(execution, "MapStateStarted")
        if "ItemReader" in state:
            items = self._read_items(state["ItemReader"], data, context)
        else:
            items = json_path(state.get("ItemsPath", "$"), data, context)
        if not isinstance(items, list):
            raise StatesError("States.Runtime", f"{where}: the items are not an array")
        if mode == "INLINE":
            results = []
            for index, item in enumerate(items):
                self._event(execution, "MapIterationStarted")
                child_input = self._item_input(state, data, context, index, item)
                results.append(self._states(processor, child_input, context, execution))
                self._event(execution, "MapIterationSucceeded")
            self._event(execution, "MapStateSucceeded")
            return results
        if mode != "DISTRIBUTED":
            raise NotImplementedError(f"map mode not interpreted: {mode}")
        return self._distributed(state, processor, data, context, execution, items, where)

    def _item_input(self, state: dict, data: Any, context: dict, index: int, item: Any) -> Any:
        selector = state.get("ItemSelector") or state.get("Parameters")
        if selector is None:
            return item
        item_context = context | {"Map": {"Item": {"Index": index, "Value": item}}}
        return build(selector, data, item_context)

    def _read_items(self, reader: dict, data: Any, context: dict) -> list[Any]:
        if reader["Resource"] != "arn:aws:states:::s3:getObject":
            raise NotImplementedError(f"ItemReader not interpreted: {reader['Resource']}")
        config = reader.get("ReaderConfig", {})
        if config.get("InputType") != "JSON":
            raise NotImplementedError(f"ItemReader InputType not interpreted: {config.get('InputType')}")
        params = build(reader["Parameters"], data, context)
        try:
            body = self.s3.get_object(Bucket=params["Bucket"], Key=params["Key"])["Body"].read()
        except Exception as exc:  # what the map run reports when it cannot read the items
            raise StatesError("States.ItemReaderFailed", str(exc)) from exc
        try:
            items = json.loads(body)
        except ValueError as exc:
            raise StatesError("States.ItemReaderFailed", f"not JSON: {exc}") from exc
        if not isinstance(items, list):
            raise StatesError("States.ItemReaderFailed", "the JSON file is not an array")
        if "MaxItems" in config:
            items = items[: config["MaxItems"]]
        return items

    def _distributed(
        self,
        state: dict,
        processor: dict,
        data: Any,
        context: dict,
        execution: Execution,
        items: list[Any],
        where: str,
    ) -> Any:
        run_id = str(uuid.uuid4())
        base = context["StateMachine"]["Id"].replace(":stateMachine:", ":mapRun:")
        map_run = f"{base}/{where.split('/')[-1]}:{run_id}"
        child_machine = f"{context['StateMachine']['Id']}/{where.split('/')[-1]}"
        self._event(execution, "MapRunStarted")
        succeeded, failed = [], []
        for index, item in enumerate(items):
            child_input = self._item_input(state, data, context, index, item)
            child = Execution(
                name=f"{run_id[:8]}-{index}",
                arn=f"{child_machine.replace(':stateMachine:', ':execution:')}:{run_id[:8]}-{index}",
                input=child_input,
            )
            execution.children.append(child)
            self._run(processor, child, child_machine)
            record = {
                "ExecutionArn": child.arn,
                "Input": json.dumps(child.input),
                "InputDetails": {"Included": True},
                "Name": child.name,
                "StateMachineArn": child_machine,
                "Status": child.status,
            }
            if child.status == "SUCCEEDED":
                output = {"Output": json.dumps(child.output), "OutputDetails": {"Included": True}}
                succeeded.append(record | output)
            else:
                failed.append(record | {"Error": child.error, "Cause": child.cause})
        writer = state.get("ResultWriter")
        tolerated = _tolerated(state, len(items), len(failed))
        if writer is not None:
            result = self._write_results(writer, data, context, map_run, succeeded, failed)
        else:
            result = [json.loads(r["Output"]) for r in succeeded]
        if not tolerated:
            self._event(execution, "MapRunFailed")
            self._event(execution, "MapStateFailed")
            raise StatesError(
                "States.ExceedToleratedFailureThreshold",
                f"The specified tolerated failure threshold was exceeded: {len(failed)} of {len(items)} "
                f"child executions failed (first: {failed[0]['Error']}: {failed[0]['Cause']})",
            )
        self._event(execution, "MapRunSucceeded")
        self._event(execution, "MapStateSucceeded")
        return result

    def _write_results(
        self, writer: dict, data: Any, context: dict, map_run: str, succeeded: list, failed: list
    ) -> dict[str, Any]:
        if writer["Resource"] != "arn:aws:states:::s3:putObject":
            raise NotImplementedError(f"ResultWriter not interpreted: {writer['Resource']}")
        params = build(writer["Parameters"], data, context)
        bucket, prefix = params["Bucket"], params.get("Prefix", "")
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        folder = f"{prefix}{map_run.rsplit(':', 1)[-1]}/"
        files: dict[str, list[dict[str, Any]]] = {"FAILED": [], "PENDING": [], "SUCCEEDED": []}
        for status, records in (("SUCCEEDED", succeeded), ("FAILED", failed)):
            if records:
                body = json.dumps(records).encode()
                key = f"{folder}{status}_0.json"
                self.s3.put_object(Bucket=bucket, Key=key, Body=body)
                files[status].append({"Key": key, "Size": len(body)})
        manifest = {"DestinationBucket": bucket, "MapRunArn": map_run, "ResultFiles": files}
        self.s3.put_object(Bucket=bucket, Key=f"{folder}manifest.json", Body=json.dumps(manifest).encode())
        details = {"Bucket": bucket, "Key": f"{folder}manifest.json"}
        return {"MapRunArn": map_run, "ResultWriterDetails": details}


def _matches(error_equals: list[str], error: str) -> bool:
    return error in error_equals or ("States.ALL" in error_equals and error not in TERMINAL)


def _tolerated(state: dict, total: int, failed: int) -> bool:
    if failed == 0:
        return True
    if "ToleratedFailureCount" in state and failed <= state["ToleratedFailureCount"]:
        return True
    percent = state.get("ToleratedFailurePercentage")
    return percent is not None and total > 0 and 100.0 * failed / total <= percent
