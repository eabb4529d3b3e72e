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
RETRYABLE = {
    "ModelUnavailable",
    "IndexWriteFailed",
    "Lambda.TooManyRequestsException",
    "Lambda.ServiceException",
    "Lambda.SdkClientException",
    "Lambda.AWSLambdaException",
}


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
    assert placeholders(REBUILD_ASL) == {*REBUILD_FUNCTIONS, "ReindexMaxConcurrency"}
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
    statuses = sorted(r["status"] for r in out["results"])
    assert statuses == ["FAILED", "INDEXED", "INDEXED"]
    assert len(world.search_index) == 2
    assert len(sfn.called("EmbedBatchFunctionArn")) == embeds_before  # stored embeddings reused
