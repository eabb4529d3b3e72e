"""The ASL files of `state_machines/`, executed by moto's Step Functions interpreter.

Each Lambda task is dispatched in-process to a Python callable (see `asl_harness`); here those are the
stand-ins of `ingest_standins.World`, which honour the handler contract. To run the real handlers, pass a
mapping from `asl_harness.INGEST_FUNCTIONS` / `REBUILD_FUNCTIONS` to the imported functions instead of
`world.handlers()`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from lectern.domain.errors import IndexWriteFailed, ModelUnavailable
from lectern.domain.ingest import INGESTION_STEPS
from tests.infra.asl_harness import (
    INGEST_ASL,
    INGEST_FUNCTIONS,
    REBUILD_ASL,
    REBUILD_FUNCTIONS,
    harness,
    placeholders,
    render,
    s3_object_created,
)
from tests.infra.ingest_standins import World

pytestmark = pytest.mark.timeout(60)

BUCKET = "lectern-documents"
TEXT = "alpha beta gamma delta epsilon"  # five chunks -> batches [0,2) [2,4) [4,5)
LAMBDA_TRANSIENT = {  # what Lambda's Invoke can fail with transiently (Step Functions' Lambda integration)
    "Lambda.TooManyRequestsException",
    "Lambda.ServiceException",
    "Lambda.SdkClientException",
    "Lambda.AWSLambdaException",
    "Lambda.ClientExecutionTimeoutException",
}
RETRYABLE = {"ModelUnavailable", "IndexWriteFailed", *LAMBDA_TRANSIENT}


@pytest.fixture
def world() -> World:
    return World(max_bytes=1000)


@pytest.fixture
def sfn(world: World, monkeypatch: pytest.MonkeyPatch):
    with harness(world.handlers(), monkeypatch) as h:
        yield h


def upload(world: World, doc: str, text: str = TEXT, size: int | None = None) -> dict:
    key = world.upload("t1", doc, text)
    return s3_object_created(BUCKET, key, len(text.encode()) if size is None else size)


def main_path(asl: dict) -> list[str]:
    """The state names from StartAt along `Next` (the success path; Catch branches are not followed)."""
    names, name = [], asl["StartAt"]
    while name:
        names.append(name)
        name = asl["States"][name].get("Next")
    return names


def snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def rendered(path: Path) -> dict:
    return render(path, {p: 1 for p in placeholders(path)})


# -- the definition itself ----------------------------------------------------------------------------------


def test_placeholders_are_exactly_the_substitutions_the_stack_provides() -> None:
    assert placeholders(INGEST_ASL) == {*INGEST_FUNCTIONS, "DeadLetterQueueUrl", "EmbedMaxConcurrency"}
    assert placeholders(REBUILD_ASL) == {*REBUILD_FUNCTIONS, "ReindexMaxConcurrency", "DocumentsBucket"}
    with pytest.raises(json.JSONDecodeError):  # numeric placeholders are unquoted: a template, not JSON
        json.loads(INGEST_ASL.read_text())


def test_the_asl_has_the_local_pipelines_steps_in_the_same_order_and_local_mode_runs_them_so(
    tmp_path,
) -> None:
    asl_steps = [snake(n) for n in main_path(rendered(INGEST_ASL))]
    assert asl_steps == list(INGESTION_STEPS)

    # Local mode: the real pipeline (SQLite, files, a hashing embedder), each step method spied on.
    from lectern.domain.documents import blob_key
    from lectern.domain.models import DocumentStatus
    from lectern.local.container import build_local
    from lectern.settings import LocalSettings
    from tests.fakes.embedder import HashEmbedder

    lectern = build_local(LocalSettings(data_dir=tmp_path / "d", llm="fake"), embedder=HashEmbedder())
    try:
        doc, _ = lectern.document_service.create_upload("t1", "notes.txt", "text/plain", len(TEXT))
        lectern.blobs.put(blob_key("t1", doc.document_id), TEXT.encode())
        lectern.documents.update(
            "t1", doc.document_id, status=DocumentStatus.PROCESSING, allowed_from=[DocumentStatus.UPLOADING]
        )
        ran: list[str] = []
        pipeline = lectern.pipeline
        for step, method in [
            ("validate", "validate"),
            ("extract", "extract"),
            ("chunk", "chunk"),
            ("embed", "embed"),
            ("index", "index_chunks"),
            ("mark_indexed", "mark_indexed"),
        ]:
            original = getattr(pipeline, method)

            def spy(*args, _step=step, _original=original, **kwargs):
                ran.append(_step)
                return _original(*args, **kwargs)

            setattr(pipeline, method, spy)
        result = pipeline.run("t1", doc.document_id)
    finally:
        lectern.close()
    assert result.status is DocumentStatus.INDEXED
    assert ran == asl_steps


def test_every_task_retries_throttling_with_jittered_backoff_never_extraction_errors_and_catches_all() -> (
    None
):
    asl = rendered(INGEST_ASL)
    tasks = {n: s for n, s in asl["States"].items() if n in main_path(asl)}
    tasks["EmbedBatch"] = asl["States"]["Embed"]["ItemProcessor"]["States"]["EmbedBatch"]
    for name, state in tasks.items():
        if state["Type"] == "Task":
            retriers = state["Retry"]
            transient = next(r for r in retriers if "ModelUnavailable" in r["ErrorEquals"])
            assert set(transient["ErrorEquals"]) == RETRYABLE, name
            assert (transient["IntervalSeconds"], transient["BackoffRate"], transient["MaxAttempts"]) == (
                2,
                2,
                5,
            )
            assert transient["JitterStrategy"] == "FULL"
            assert all("ExtractionError" not in r["ErrorEquals"] or r["MaxAttempts"] == 0 for r in retriers)
        if name != "EmbedBatch":
            assert state["Catch"] == [
                {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "MarkFailed"}
            ]
    embed = asl["States"]["Embed"]
    assert embed["ItemsPath"] == "$.batches" and embed["ResultPath"] == "$.embedded"
    assert embed["ItemSelector"]["batch.$"] == "$$.Map.Item.Value"
    assert (
        render(INGEST_ASL, {p: 7 for p in placeholders(INGEST_ASL)})["States"]["Embed"]["MaxConcurrency"] == 7
    )


# -- executions in moto -------------------------------------------------------------------------------------


def test_happy_path_indexes_every_chunk_and_marks_the_document_indexed(sfn, world: World) -> None:
    run = sfn.ingest("happy", upload(world, "d1"))
    assert run["status"] == "SUCCEEDED", run
    assert json.loads(run["output"]) == {"tenant_id": "t1", "document_id": "d1", "status": "INDEXED"}
    assert world.status[("t1", "d1")] == {"status": "INDEXED", "chunks": 5}
    assert world.search_index[("t1", "d1")] == [f"d1#{i}" for i in range(5)]
    batches = sorted(e["batch"]["start"] for e in sfn.called("EmbedBatchFunctionArn"))
    assert batches == [0, 2, 4]
    assert sfn.called("IndexFunctionArn")[0]["embedded"][0]["vectors_key"].startswith("t1/d1/embeddings/")
    order = [n for n, _ in sfn.calls if n != "EmbedBatchFunctionArn"]
    assert order == [
        "ValidateFunctionArn",
        "ExtractFunctionArn",
        "ChunkFunctionArn",
        "IndexFunctionArn",
        "MarkIndexedFunctionArn",
    ]
    assert sfn.dead_letters() == [] and sfn.retry_waits == []


def test_throttled_model_and_partial_bulk_failure_are_retried_then_succeed(sfn, world: World) -> None:
    world.failures["EmbedBatchFunctionArn"] += [ModelUnavailable("throttled", retryable=True)] * 2
    world.failures["IndexFunctionArn"].append(IndexWriteFailed("2 of 5 failed", failed=2, total=5))
    run = sfn.ingest("retry-then-success", upload(world, "d2"))
    assert run["status"] == "SUCCEEDED", run
    assert json.loads(run["output"])["status"] == "INDEXED"
    assert len(sfn.called("EmbedBatchFunctionArn")) == 3 + 2
    assert len(sfn.called("IndexFunctionArn")) == 2
    # FULL jitter: each wait is uniform in [0, 2 * 2**(attempt-1)]
    assert len(sfn.retry_waits) == 3 and all(0 <= w <= 4 for w in sfn.retry_waits), sfn.retry_waits
    assert sfn.dead_letters() == []


def test_persistent_throttling_gives_up_after_five_retries_and_fails_the_document(sfn, world: World) -> None:
    world.failures["EmbedBatchFunctionArn"] += [ModelUnavailable("throttled", retryable=True)] * 50
    run = sfn.ingest("gives-up", upload(world, "d3", "one"))
    assert run["status"] == "FAILED"
    assert len(sfn.called("EmbedBatchFunctionArn")) == 1 + 5
    assert world.status[("t1", "d3")]["status"] == "FAILED"
    (message,) = sfn.dead_letters()
    assert message["error"]["Error"] == "ModelUnavailable"


def test_extraction_error_is_not_retried_marks_failed_with_the_reason_and_reaches_the_dlq(
    sfn, world: World
) -> None:
    from lectern.domain.errors import ExtractionError

    world.failures["ExtractFunctionArn"].append(ExtractionError("The PDF is encrypted."))
    run = sfn.ingest("catch", upload(world, "d4"))
    assert run["status"] == "FAILED" and run["error"] == "IngestionFailed"
    assert len(sfn.called("ExtractFunctionArn")) == 1 and sfn.retry_waits == []
    assert sfn.called("ChunkFunctionArn") == []
    (failed_input,) = sfn.called("MarkFailedFunctionArn")
    assert failed_input["error"]["Error"] == "ExtractionError" and failed_input["document_id"] == "d4"
    assert world.status[("t1", "d4")] == {"status": "FAILED", "reason": "The PDF is encrypted."}
    (message,) = sfn.dead_letters()
    assert message["failure"] == {
        "tenant_id": "t1",
        "document_id": "d4",
        "status": "FAILED",
        "reason": "The PDF is encrypted.",
    }
    assert message["input"]["detail"]["object"]["key"] == "t1/d4/original"
    assert message["execution"].endswith(":catch")


def test_oversize_document_fails_in_validate_without_extracting(sfn, world: World) -> None:
    run = sfn.ingest("oversize", upload(world, "d5", size=5000))
    assert run["status"] == "FAILED"
    assert len(sfn.called("ValidateFunctionArn")) == 1
    assert sfn.called("ExtractFunctionArn") == []
    assert world.status[("t1", "d5")]["status"] == "FAILED"
    assert "limit is 1,000 bytes" in world.status[("t1", "d5")]["reason"]
    (message,) = sfn.dead_letters()
    assert message["failure"]["document_id"] == "d5" and message["error"]["Error"] == "ExtractionError"


def test_delete_during_processing_withdraws_the_chunks_and_is_not_a_failure(sfn, world: World) -> None:
    world.on_step["IndexFunctionArn"] = lambda job: world.delete("t1", "d6")  # DELETE lands mid-run
    run = sfn.ingest("deleted-meanwhile", upload(world, "d6"))
    assert run["status"] == "SUCCEEDED", run
    assert json.loads(run["output"]) == {"tenant_id": "t1", "document_id": "d6", "status": "WITHDRAWN"}
    assert ("t1", "d6") not in world.search_index and ("t1", "d6") not in world.status
    assert sfn.dead_letters() == []


def test_when_marking_failed_fails_too_the_dlq_still_gets_the_message(sfn, world: World) -> None:
    from lectern.domain.errors import ExtractionError

    world.failures["ChunkFunctionArn"].append(ExtractionError("The document contains no text to index."))
    world.failures["MarkFailedFunctionArn"].append(RuntimeError("table unavailable"))
    run = sfn.ingest("mark-failed-fails", upload(world, "d7"))
    assert run["status"] == "FAILED"
    (message,) = sfn.dead_letters()
    assert message["failure"]["status"] == "FAILED" and message["error"]["Error"] == "ExtractionError"


def rebuild_results(sfn, run: dict) -> list[dict]:
    """The per-document results the ResultWriter wrote: manifest.json -> SUCCEEDED_n.json -> each Output."""
    out = json.loads(run["output"])
    where = out["results"]
    manifest = json.loads(sfn.s3.get_object(Bucket=where["Bucket"], Key=where["Key"])["Body"].read())
    results = []
    for f in manifest["ResultFiles"]["SUCCEEDED"]:
        records = json.loads(sfn.s3.get_object(Bucket=where["Bucket"], Key=f["Key"])["Body"].read())
        results += [json.loads(r["Output"]) for r in records]
    return results


def test_rebuild_reindexes_every_document_and_reports_the_one_that_failed(sfn, world: World) -> None:
    for doc in ("r1", "r2", "r3"):
        assert sfn.ingest(f"ingest-{doc}", upload(world, doc))["status"] == "SUCCEEDED"
    world.search_index.clear()  # resumed: a fresh, empty search index
    embeds_before = len(sfn.called("EmbedBatchFunctionArn"))
    world.failures["ReindexDocumentFunctionArn"].append(RuntimeError("corrupt chunks file"))
    run = sfn.rebuild("rebuild-after-resume")
    assert run["status"] == "SUCCEEDED", run
    out = json.loads(run["output"])
    assert out["documents"] == 3
    assert out["documents_list"] == f"s3://{BUCKET}/lectern.rebuild/rebuild-after-resume/documents.json"
    results = rebuild_results(sfn, run)
    assert sorted(r["status"] for r in results) == ["FAILED", "INDEXED", "INDEXED"]
    (failed,) = [r for r in results if r["status"] == "FAILED"]
    assert failed["error"]["Error"] == "RuntimeError" and "corrupt chunks" in failed["error"]["Cause"]
    assert len(world.search_index) == 2
    assert len(sfn.called("EmbedBatchFunctionArn")) == embeds_before  # stored embeddings reused
    assert sfn.called("ListDocumentsFunctionArn") == [{"run": "rebuild-after-resume"}]
    # what scripts/resume prints comes from the same files
    from lectern.aws.jobs import rebuild_summary

    summary = rebuild_summary(sfn.s3, out)
    assert summary["documents"] == 3 and summary["counts"] == {"INDEXED": 2, "FAILED": 1}
    assert [f["error"]["Error"] for f in summary["failed"]] == ["RuntimeError"]


def test_rebuild_of_10000_documents_stays_within_the_step_functions_quotas(sfn, world: World) -> None:
    """The rebuild at 10,000 documents, on the in-repo interpreter (moto cannot run a Distributed Map with a
    ResultWriter faithfully: see `asl_interpreter`), with the 256 KiB state payload and the 25,000-event
    history quotas enforced. Before the Distributed Map, the document list and the results sat in one state:
    208 KiB at 1,000 documents, past the quota at ~1,250. The largest payload is printed (run with -s)."""
    n = 10_000
    for i in range(n):
        world.status[(f"tenant-{i % 37:03d}", f"{i:032x}")] = {"status": "INDEXED", "chunks": 3}
    run = sfn.rebuild("rebuild-10000")
    assert run["status"] == "SUCCEEDED", run
    interpreter = sfn.last_rebuild
    parent, *children = interpreter.executions
    assert json.loads(run["output"])["documents"] == n and len(children) == n
    assert all(c.status == "SUCCEEDED" for c in children)
    assert len(world.search_index) == n
    results = rebuild_results(sfn, run)
    assert len(results) == n and {r["status"] for r in results} == {"INDEXED"}
    largest_child_history = max(c.events for c in children)
    print(
        f"\nrebuild of {n:,} documents: largest state payload {interpreter.largest_payload:,} bytes "
        f"({interpreter.largest_payload_at}); parent history {parent.events} events {parent.event_types}; "
        f"largest child history {largest_child_history} events"
    )
    assert interpreter.largest_payload < 2_048  # a few hundred bytes, whatever the number of documents
    assert parent.events < 25 and largest_child_history < 25


def test_a_child_execution_that_fails_outright_fails_the_rebuild_with_a_reason(sfn, world: World) -> None:
    """The children catch every error of their document, except the terminal ones States.ALL does not match:
    here a reindex result over 256 KiB (States.DataLimitExceeded). That child fails, the map run exceeds its
    tolerated failures (0) and the top-level Catch ends the run FAILED with the error and its cause."""
    for doc in ("a", "b"):
        world.status[("t1", doc)] = {"status": "INDEXED", "chunks": 1}

    def oversized(event, context):
        return {**event, "status": "INDEXED", "log": "x" * 300_000}

    sfn.handlers["ReindexDocumentFunctionArn"] = oversized
    run = sfn.rebuild("child-fails")
    assert run["status"] == "FAILED"
    assert run["error"] == "States.ExceedToleratedFailureThreshold"
    assert "2 of 2 child executions failed" in run["cause"] and "States.DataLimitExceeded" in run["cause"]
    assert "over the 262,144-byte (256 KiB) limit" in run["cause"]


def test_a_failure_before_the_map_fails_the_rebuild_with_the_error_and_its_cause(sfn, world: World) -> None:
    world.failures["ListDocumentsFunctionArn"].append(PermissionError("AccessDenied on s3:ListBucket"))
    run = sfn.rebuild("cannot-list")
    assert run["status"] == "FAILED"
    assert run["error"] == "PermissionError" and "AccessDenied on s3:ListBucket" in run["cause"]
    assert sfn.called("ReindexDocumentFunctionArn") == []


def test_every_lambda_task_in_every_state_machine_retries_the_transient_lambda_errors() -> None:
    checked = []

    def walk(states: dict, where: str) -> None:
        for name, state in states.items():
            if state["Type"] == "Task" and state["Resource"] == "arn:aws:states:::lambda:invoke":
                caught = set().union(*(set(r["ErrorEquals"]) for r in state.get("Retry", [])))
                assert caught >= LAMBDA_TRANSIENT, (where, name, LAMBDA_TRANSIENT - caught)
                transient = next(r for r in state["Retry"] if "Lambda.ServiceException" in r["ErrorEquals"])
                assert transient["MaxAttempts"] >= 3 and transient["JitterStrategy"] == "FULL"
                checked.append(f"{where}/{name}")
            for key in ("ItemProcessor", "Iterator"):
                if key in state:
                    walk(state[key]["States"], f"{where}/{name}")
            for i, branch in enumerate(state.get("Branches", [])):
                walk(branch["States"], f"{where}/{name}[{i}]")

    asl_files = sorted(INGEST_ASL.parent.glob("*.asl.json"))
    assert {p.name for p in asl_files} == {"ingest.asl.json", "rebuild.asl.json"}
    for path in asl_files:
        walk(rendered(path)["States"], path.name)
    assert len(checked) == 7 + 2, checked
