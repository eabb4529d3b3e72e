"""The ingestion and rebuild ASL files executed by moto's Step Functions interpreter, with every Lambda task
dispatched in-process to the REAL handlers (lectern.aws.handlers.*), which in turn use the AWS adapters against
moto (S3, DynamoDB, SQS — in-process here, since the interpreter needs `mock_aws`), the fake Bedrock and the fake
OpenSearch on loopback. Retry waits are recorded, not slept.
"""

from __future__ import annotations

import importlib
import json
from contextlib import contextmanager

from lectern.adapters.aws import clients
from lectern.adapters.aws.table import create_table
from tests.aws.handler_env import FakeContext, s3_created_event
from tests.infra.asl_harness import INGEST_FUNCTIONS, REBUILD_FUNCTIONS, harness

pytest_plugins = ["tests.aws.handler_env", "tests.fakes.bedrock_server"]

TEXT = b"# Leave\n\nEvery employee receives 25 days of paid annual leave per calendar year.\n"


def _real_handlers() -> dict:
    out = {}
    for name, dotted in {**INGEST_FUNCTIONS, **REBUILD_FUNCTIONS}.items():
        module, func = dotted.rsplit(".", 1)
        fn = getattr(importlib.import_module(module), func)
        out[name] = lambda event, context, fn=fn: fn(event, FakeContext())
    return out


@contextmanager
def machine(h, monkeypatch):
    """moto's in-process account, with the documents bucket and the table created in it."""
    with harness(_real_handlers(), monkeypatch, documents_bucket=h.settings.documents_bucket) as sfn:
        create_table(clients.client("dynamodb"), h.settings.table_name)
        yield sfn


def _upload(h, filename: str, data: bytes, content_type: str) -> str:
    status, body = h.json(
        "POST", "/v1/documents", {"filename": filename, "content_type": content_type, "size_bytes": len(data)}
    )
    assert status == 201, body
    h.lectern.blobs.put(
        f"acme/{body['document_id']}/original", data
    )  # what the browser's presigned POST does
    return body["document_id"]


def _event(h, doc_id: str) -> dict:
    key = f"acme/{doc_id}/original"
    size = h.lectern.blobs.client.head_object(Bucket=h.settings.documents_bucket, Key=key)["ContentLength"]
    return s3_created_event(h.settings.documents_bucket, key, size)


def test_ingestion_state_machine_runs_the_real_handlers(aws_harness, monkeypatch):
    h = aws_harness
    with machine(h, monkeypatch) as sfn:
        doc_id = _upload(h, "leave.md", TEXT, "text/markdown")
        run = sfn.ingest("real-happy", _event(h, doc_id))
        assert run["status"] == "SUCCEEDED", run
        assert json.loads(run["output"]) == {"tenant_id": "acme", "document_id": doc_id, "status": "INDEXED"}
        assert sfn.dead_letters() == []
        doc = h.json("GET", f"/v1/documents/{doc_id}")[1]
        assert doc["status"] == "INDEXED"
        assert h.lectern.index.count("acme", doc_id) == doc["chunks"]


def test_throttled_embeddings_are_retried_by_the_state_machine(aws_harness, monkeypatch):
    h = aws_harness
    with machine(h, monkeypatch) as sfn:
        doc_id = _upload(h, "leave.md", TEXT, "text/markdown")
        # no client-side retries: the first throttle reaches the state machine, whose Retry waits (recorded)
        from lectern.adapters.aws.bedrock import TitanEmbedder

        no_retry = clients.client("bedrock-runtime", config=clients.client_config(max_attempts=0))
        h.patch("embedder", TitanEmbedder(dimension=h.settings.embedding_dimension, client=no_retry))
        h.bedrock.throttle_next(2, operations=("invoke",))
        run = sfn.ingest("real-throttled", _event(h, doc_id))
        assert run["status"] == "SUCCEEDED", run
        assert sfn.retry_waits, "the Map's Retry on ModelUnavailable must have waited"
        assert h.json("GET", f"/v1/documents/{doc_id}")[1]["status"] == "INDEXED"


def test_unreadable_file_ends_failed_with_its_reason_and_a_dead_letter(aws_harness, monkeypatch):
    h = aws_harness
    with machine(h, monkeypatch) as sfn:
        doc_id = _upload(h, "broken.pdf", b"%PDF-1.4 not a real pdf at all", "application/pdf")
        run = sfn.ingest("real-broken", _event(h, doc_id))
        assert run["status"] == "FAILED"
        assert len(sfn.dead_letters()) == 1
        doc = h.json("GET", f"/v1/documents/{doc_id}")[1]
        assert doc["status"] == "FAILED" and "internal error" not in doc["error"]
        assert h.lectern.index.count("acme", doc_id) == 0


def test_rebuild_state_machine_restores_the_index_without_embedding_again(aws_harness, monkeypatch):
    h = aws_harness
    with machine(h, monkeypatch) as sfn:
        doc_id = _upload(h, "leave.md", TEXT, "text/markdown")
        assert sfn.ingest("real-first", _event(h, doc_id))["status"] == "SUCCEEDED"
        chunks = h.lectern.index.count("acme", doc_id)
        h.lectern.index.delete_document("acme", doc_id)  # the paused domain is gone
        embeds = len(h.bedrock.of("invoke"))
        run = sfn.rebuild("real-rebuild")
        assert run["status"] == "SUCCEEDED", run
        assert len(h.bedrock.of("invoke")) == embeds
        assert h.lectern.index.count("acme", doc_id) == chunks
        # the list went through S3 (Distributed Map ItemReader), the result too (ResultWriter)
        out = json.loads(run["output"])
        assert out["documents"] == 1
        assert (
            out["documents_list"]
            == f"s3://{h.settings.documents_bucket}/lectern.rebuild/real-rebuild/documents.json"
        )
        manifest = json.loads(h.lectern.blobs.get(out["results"]["Key"]))
        (part,) = manifest["ResultFiles"]["SUCCEEDED"]
        (record,) = json.loads(h.lectern.blobs.get(part["Key"]))
        assert json.loads(record["Output"])["status"] == "INDEXED"
