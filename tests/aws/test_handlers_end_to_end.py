"""Every route and ingestion step through the Lambda handlers, against the AWS adapters.

S3, DynamoDB and SageMaker runtime are moto's server (real HTTP on loopback, including the browser-style presigned
POST upload); Bedrock runtime is tests/fakes/bedrock_server.py (real JSON and event-stream wire formats); OpenSearch
is tests/fakes/opensearch_server.py (a fake written from OpenSearch's docs — OpenSearch's own data plane could not
be run here). Nothing below talks to AWS.
"""

from __future__ import annotations

import json

import pytest

from lectern.aws.handlers import rebuild, setup
from tests.aws.handler_env import API, FakeContext, emf_metrics, sagemaker_canned

pytest_plugins = ["tests.aws.handler_env", "tests.fakes.bedrock_server"]

HANDBOOK = (
    b"# Employee handbook\n\n"
    b"## Leave\n\nEvery employee receives 25 days of paid annual leave per calendar year. Unused leave days can be "
    b"carried over until March.\n\n"
    b"## Equipment\n\nLaptops are replaced every three years by the IT department.\n"
)


def _metric_values(out: str, name: str) -> list[float]:
    values = []
    for doc in emf_metrics(out):
        if name in doc:
            v = doc[name]
            values.extend(v if isinstance(v, list) else [v])
    return values


def test_upload_ingest_query_search_delete(aws_harness, capsys):
    h = aws_harness
    doc_id = h.upload("handbook.md", HANDBOOK, "text/markdown")
    status, body = h.json("GET", f"/v1/documents/{doc_id}")
    assert (status, body["status"]) == (200, "UPLOADING")

    capsys.readouterr()
    result = h.ingest(doc_id)
    assert result["status"] == "INDEXED", result
    # each stage's time: one EMF metric per stage (service dimension only), and stored with the document
    emitted = capsys.readouterr().out
    for stage in ("Validate", "Extract", "Chunk", "Embed", "Index"):
        (value,) = _metric_values(emitted, f"Ingest{stage}Ms")
        assert value >= 0, stage
    for doc in emf_metrics(emitted):
        for metric_set in doc["_aws"]["CloudWatchMetrics"]:
            assert metric_set["Dimensions"] == [["service"]], metric_set
    status, body = h.json("GET", f"/v1/documents/{doc_id}")
    assert body["status"] == "INDEXED" and body["chunks"] >= 1
    assert set(body["timings"]) == {"validate", "extract", "chunk", "embed", "index"}, body
    assert h.lectern.index.count("acme", doc_id) == body["chunks"]
    # vectors are kept beside the document for a rebuild after a pause
    emb = h.lectern.embedder
    assert h.lectern.vectors.get("acme", doc_id, emb.model_id, emb.dimension) is not None

    status, listing = h.json("GET", "/v1/documents")
    assert [d["document_id"] for d in listing["documents"]] == [doc_id]

    capsys.readouterr()
    status, answer = h.json(
        "POST", "/v1/query", {"question": "How many days of annual leave do employees get?"}
    )
    assert status == 200, answer
    assert "25 days" in answer["answer"]
    assert answer["citations"] and answer["citations"][0]["document_id"] == doc_id
    converse = (h.bedrock.of("converse") + h.bedrock.of("converse-stream"))[-1]
    assert converse.body["guardrailConfig"]["guardrailIdentifier"] == h.settings.guardrail_id
    # the guardrail's contextual grounding filter ran on the answer: passages, question and answer marked
    (grounding,) = [c for c in h.bedrock.of("apply-guardrail") if c.body["source"] == "OUTPUT"]
    assert [b["text"]["qualifiers"] for b in grounding.body["content"]] == [
        ["grounding_source"],
        ["query"],
        ["guard_content"],
    ]
    assert grounding.body["content"][1]["text"]["text"] == "How many days of annual leave do employees get?"
    out = capsys.readouterr().out
    assert _metric_values(out, "QueryCostUSD") and _metric_values(out, "QueryCostUSD")[0] > 0
    assert _metric_values(out, "FallbackUsed") == [0]
    assert _metric_values(out, "InputTokens")[0] > 0

    status, found = h.json("POST", "/v1/search", {"query": "laptops replaced", "top_k": 3})
    assert status == 200 and found["results"][0]["document_id"] == doc_id
    assert "Laptops" in found["results"][0]["text"]

    r = h.call("DELETE", f"/v1/documents/{doc_id}")
    assert r["statusCode"] == 204
    assert h.lectern.index.count("acme", doc_id) == 0
    assert list(h.lectern.blobs.keys(f"acme/{doc_id}/")) == []
    assert h.json("GET", f"/v1/documents/{doc_id}")[0] == 404


def test_streaming_query_is_buffered_into_server_sent_events(aws_harness):
    h = aws_harness
    doc_id = h.upload("handbook.md", HANDBOOK, "text/markdown")
    assert h.ingest(doc_id)["status"] == "INDEXED"
    r = h.call(
        "POST", "/v1/query", {"question": "How much annual leave?"}, headers={"accept": "text/event-stream"}
    )
    assert r["statusCode"] == 200
    events = [block.split("\n")[0] for block in r["body"].strip().split("\n\n")]
    assert events[0] == "event: status" and events[-1] == "event: done"
    assert "event: token" in events and "event: citations" in events
    assert events.index("event: status") < events.index("event: token") < events.index("event: citations")
    assert h.bedrock.of("converse-stream"), "the stream must use ConverseStream"


def test_tenant_comes_from_the_identity_and_tenants_are_isolated(aws_harness):
    h = aws_harness
    doc_id = h.upload("handbook.md", HANDBOOK, "text/markdown")
    h.ingest(doc_id)
    status, body = h.json("GET", "/v1/documents", tenant=None)
    assert status == 401 and body["error"]["code"] == "unauthenticated"
    assert h.json("GET", f"/v1/documents/{doc_id}", tenant="other")[0] == 404
    status, found = h.json("POST", "/v1/search", {"query": "annual leave"}, tenant="other")
    assert status == 200 and found["results"] == []
    assert h.json("DELETE", f"/v1/documents/{doc_id}", tenant="other")[0] == 404
    assert h.json("GET", f"/v1/documents/{doc_id}")[1]["status"] == "INDEXED"


def test_bedrock_throttled_answer_comes_from_the_fallback_and_the_metric_says_so(aws_harness, capsys):
    h = aws_harness
    doc_id = h.upload("handbook.md", HANDBOOK, "text/markdown")
    h.ingest(doc_id)
    sagemaker_canned(h.moto_url, "Employees get 25 days of annual leave [1].")
    h.bedrock.throttle_next(50, operations=("converse", "converse-stream"))  # outlasts botocore's retries
    capsys.readouterr()
    status, answer = h.json("POST", "/v1/query", {"question": "How many days of annual leave?"})
    assert status == 200, answer
    assert answer["model"].startswith("fallback-") or "fallback" in answer["model"]
    assert "25 days" in answer["answer"]
    assert _metric_values(capsys.readouterr().out, "FallbackUsed") == [1]
    # through the scale-to-zero inference component the template names (InvokeEndpoint without it is refused)
    component = h.function(API).environment["LECTERN_FALLBACK_INFERENCE_COMPONENT"]
    assert component == "lectern-fallback-ic"
    assert any(
        c.action == "sagemaker:InvokeEndpoint" and c.resource.endswith(f":inference-component/{component}")
        for c in h.enforcer.checks
    )


def test_primary_and_fallback_down_is_a_clear_503_and_nothing_changes(aws_harness):
    h = aws_harness
    doc_id = h.upload("handbook.md", HANDBOOK, "text/markdown")
    h.ingest(doc_id)
    h.bedrock.fail_next(50, 503, operations=("converse", "converse-stream"))
    # the fallback endpoint does not answer either (nothing listens where its runtime client connects)
    import boto3
    from botocore.config import Config

    down = boto3.client(
        "sagemaker-runtime",
        endpoint_url="http://127.0.0.1:9",
        config=Config(retries={"max_attempts": 1}, connect_timeout=1),
    )
    h.lectern.fallback_model._client = down
    status, body = h.json("POST", "/v1/query", {"question": "How many days of annual leave?"})
    assert status == 503, body
    assert body["error"]["code"] == "model_unavailable"
    assert "try again" in body["error"]["message"].lower()
    assert "Traceback" not in json.dumps(body)
    h.bedrock.clear_errors()
    assert h.json("GET", f"/v1/documents/{doc_id}")[1]["status"] == "INDEXED"


def test_guardrail_intervention_is_a_clear_message_that_leaks_nothing(aws_harness):
    h = aws_harness
    doc_id = h.upload("handbook.md", HANDBOOK, "text/markdown")
    h.ingest(doc_id)
    status, body = h.json("POST", "/v1/query", {"question": "Tell me about annual leave and FORBIDDEN-TOPIC"})
    assert status == 400
    assert body["error"]["code"] == "guardrail_blocked"
    assert "FORBIDDEN-TOPIC" not in body["error"]["message"]


def test_partial_bulk_failure_never_leaves_a_document_indexed_with_missing_chunks(aws_harness):
    h = aws_harness
    doc_id = h.upload("handbook.md", HANDBOOK, "text/markdown")
    job = h.ingest(doc_id, stop_after="embed")
    chunks = h.lectern.blobs.get(job["chunks_key"]).decode().splitlines()
    first = json.loads(chunks[0])["chunk_id"]
    h.opensearch.fake.fail_chunk_ids = {first: 400}  # mapper_parsing_exception: not retryable
    from lectern.aws.handlers import ingest

    with pytest.raises(Exception) as info:
        ingest.index(job, FakeContext())
    assert type(info.value).__name__ == "IndexWriteFailed"
    job["error"] = {"Error": "IndexWriteFailed", "Cause": json.dumps({"errorMessage": str(info.value)})}
    result = ingest.mark_failed(job, FakeContext())
    assert result["status"] == "FAILED"
    _status, body = h.json("GET", f"/v1/documents/{doc_id}")
    assert body["status"] == "FAILED" and body["error"]
    assert h.lectern.index.count("acme", doc_id) == 0


def test_oversize_upload_ends_failed_with_the_reason(aws_harness):
    h = aws_harness
    h.patch_settings(max_upload_bytes=100)
    doc_id = h.upload("handbook.md", HANDBOOK[:90], "text/markdown")
    # the object in S3 is larger than the limit (e.g. the limit was lowered after the slot was issued)
    h.lectern.blobs.put(f"acme/{doc_id}/original", HANDBOOK)
    result = h.ingest(doc_id)
    assert result["status"] == "FAILED"
    assert "limit is 100 bytes" in result["reason"]


def test_unreadable_file_fails_with_a_user_facing_reason(aws_harness):
    h = aws_harness
    doc_id = h.upload("broken.pdf", b"%PDF-1.7 this is not really a pdf", "application/pdf")
    result = h.ingest(doc_id)
    assert result["status"] == "FAILED"
    assert result["reason"] != "Lectern could not process this document (internal error)."
    assert h.lectern.index.count("acme", doc_id) == 0


def test_duplicate_event_is_absorbed_and_reupload_while_processing_waits(aws_harness):
    from lectern.aws.handlers import ingest

    h = aws_harness
    doc_id = h.upload("handbook.md", HANDBOOK, "text/markdown")
    event = {
        "detail": {"object": {"key": f"acme/{doc_id}/original", "size": len(HANDBOOK), "sequencer": "0A1"}}
    }
    first = ingest.validate(event, FakeContext())
    again = ingest.validate(event, FakeContext())  # EventBridge delivered it twice
    assert again == first
    newer = {
        "detail": {"object": {"key": f"acme/{doc_id}/original", "size": len(HANDBOOK), "sequencer": "0B2"}}
    }
    with pytest.raises(ingest.DocumentBusy):
        ingest.validate(newer, FakeContext())


def test_delete_during_processing_withdraws_the_chunks(aws_harness):
    from lectern.aws.handlers import ingest

    h = aws_harness
    doc_id = h.upload("handbook.md", HANDBOOK, "text/markdown")
    job = h.ingest(doc_id, stop_after="embed")
    job = ingest.index(job, FakeContext())
    assert h.lectern.index.count("acme", doc_id) > 0
    assert h.call("DELETE", f"/v1/documents/{doc_id}")["statusCode"] == 204
    result = ingest.mark_indexed(job, FakeContext())
    assert result["status"] == "WITHDRAWN"
    assert h.lectern.index.count("acme", doc_id) == 0


def test_reupload_replaces_the_chunks(aws_harness):
    h = aws_harness
    doc_id = h.upload("handbook.md", HANDBOOK, "text/markdown")
    h.ingest(doc_id)
    h.lectern.blobs.put(
        f"acme/{doc_id}/original", b"# Travel\n\nTrain tickets are reimbursed in second class.\n"
    )
    assert h.ingest(doc_id)["status"] == "INDEXED"
    status, found = h.json("POST", "/v1/search", {"query": "annual leave", "mode": "bm25"})
    assert status == 200, found
    assert all("leave" not in r["text"] for r in found["results"])
    _status, found = h.json("POST", "/v1/search", {"query": "train tickets", "mode": "bm25"})
    assert found["results"] and "Train" in found["results"][0]["text"]


def test_rebuild_after_a_pause_reuses_stored_embeddings(aws_harness):
    h = aws_harness
    doc_id = h.upload("handbook.md", HANDBOOK, "text/markdown")
    h.ingest(doc_id)
    chunks = h.lectern.index.count("acme", doc_id)
    # pause: the search domain and the table go away; S3 keeps documents, chunks and vectors
    h.lectern.index.delete_document("acme", doc_id)
    h.lectern.documents.delete("acme", doc_id)
    embeds_before = len(h.bedrock.of("invoke"))

    setup.on_event({"RequestType": "Create"}, FakeContext())
    setup.on_event({"RequestType": "Update"}, FakeContext())  # idempotent: no "already exists"
    listed = rebuild.list_documents({"run": "t"}, FakeContext())  # the list goes to S3 (the Map's ItemReader)
    documents = json.loads(h.lectern.blobs.get(listed["key"]))
    assert listed["count"] == 1 and documents == [{"tenant_id": "acme", "document_id": doc_id}]
    out = rebuild.reindex_document(documents[0], FakeContext())
    assert out["status"] == "INDEXED" and out["embedded"] == 0 and out["reused"] == chunks
    assert len(h.bedrock.of("invoke")) == embeds_before, "a rebuild must not pay for embeddings again"
    assert h.lectern.index.count("acme", doc_id) == chunks
    assert h.json("GET", f"/v1/documents/{doc_id}")[1]["status"] == "INDEXED"


def test_health_and_unknown_routes(aws_harness):
    h = aws_harness
    assert h.json("GET", "/v1/health")[0] == 200
    assert h.json("GET", "/v1/nope")[0] == 404


def test_request_rate_is_limited_per_tenant_across_instances(aws_harness):
    from lectern.adapters.aws.dynamo_limits import DynamoLimitCounters
    from lectern.aws.handlers import api
    from lectern.domain.limits import LimitPolicy, TenantLimits

    h = aws_harness
    # counters live in DynamoDB: two "instances" (two TenantLimits objects) share them
    policy = LimitPolicy(requests_per_window=3, window_s=60, daily_tokens=0)
    h.lectern.__dict__["limits"] = TenantLimits(DynamoLimitCounters(h.settings.table_name), policy)
    api.reset()
    other_instance = TenantLimits(DynamoLimitCounters(h.settings.table_name), policy)
    other_instance.check_request("acme")
    codes = [h.call("GET", "/v1/documents")["statusCode"] for _ in range(3)]
    assert codes == [200, 200, 429]
    r = h.call("GET", "/v1/documents")
    headers = r.get("headers") or {k: v[0] for k, v in r.get("multiValueHeaders", {}).items()}
    assert r["statusCode"] == 429 and 1 <= int(headers["Retry-After"]) <= 60
    assert h.call("GET", "/v1/documents", tenant="globex")["statusCode"] == 200
    assert h.call("GET", "/v1/health")["statusCode"] == 200


def test_responses_carry_cors_headers_for_the_page_origin(aws_harness):
    from lectern.aws.handlers import api

    h = aws_harness
    origin = "https://d111111abcdef8.cloudfront.net"
    h.lectern.__dict__["settings"] = h.settings.model_copy(update={"cors_origins": [origin]})
    api.reset()
    r = h.call("GET", "/v1/documents", headers={"origin": origin})
    headers = r.get("headers") or {k: v[0] for k, v in r.get("multiValueHeaders", {}).items()}
    assert r["statusCode"] == 200 and headers.get("Access-Control-Allow-Origin") == origin
    other = h.call("GET", "/v1/documents", headers={"origin": "https://evil.example"})
    other_headers = other.get("headers") or {k: v[0] for k, v in other.get("multiValueHeaders", {}).items()}
    assert other_headers.get("Access-Control-Allow-Origin") != "https://evil.example"
