"""Each function's synthesized policy is exactly what its code needs: every call the handlers make is allowed
(tests/aws/handler_env.py enforces the policies in every handler test and fails a test on any denied call),
and every grant is used by some call here or is on the allowlist below with its reason.

The scenario drives every function the way production does (API Gateway events, the ingestion states in order,
the rebuild, the search setup custom resource), then compares the grants with the authorizations recorded by
tests/aws/iam_enforcement.py. Nothing is deployed: the policies are the CDK templates', resolved for a test
account; IAM itself (and cross-region inference-profile routing) can only be checked in an AWS account.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest

from tests.aws.deployment import handler_test_stacks
from tests.aws.handler_env import FakeContext, s3_deleted_event, sagemaker_canned
from tests.aws.iam_enforcement import _matches

pytest_plugins = ["tests.aws.handler_env", "tests.fakes.bedrock_server"]

DOC = (
    b"# Employee handbook\n\n## Leave\n\n"
    b"Every employee receives 25 days of paid annual leave per calendar year.\n\n"
    b"## Equipment\n\nLaptops are replaced every three years by the IT department.\n"
)

# (action glob, resource regex) -> why a grant no test call exercises is still needed
ALLOWED_UNUSED = {
    (
        "logs:*",
        r".*",
    ): "written by the Lambda runtime (the function's own log group), not by the handler code",
    ("sqs:*", r":IngestionUploadEventDeadLetters[0-9A-F]+$"): (
        "on_removed's async failure destination: Lambda itself sends an event that failed every retry to the "
        "upload dead-letter queue (CDK's SqsDestination grant), the handler code never calls SQS"
    ),
    ("xray:*", r"^\*$"): "sent by Lambda's active tracing; X-Ray has no resource-level permissions",
    ("textract:*", r"^\*$"): (
        "reindex_document OCRs a scanned document whose stored Textract result is missing (a rebuild of one "
        "ingested before Textract); the scenario's rebuilt documents are text. The extract function's Textract "
        "calls are exercised above (scan.png, scan.pdf)"
    ),
    ("bedrock:InvokeModel*", r":bedrock:us-(east-2|west-2)::foundation-model/"): (
        "a us.* cross-region inference profile may route to these regions; IAM asks for the foundation model "
        "in the region that serves the request (the tests run in us-east-1)"
    ),
}
WILDCARD_RESOURCE_ACTIONS = {
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "bedrock:Rerank",
    "textract:DetectDocumentText",
    "textract:StartDocumentTextDetection",
    "textract:GetDocumentTextDetection",
}


def _blank_scan_png() -> bytes:
    import io

    from PIL import Image, ImageDraw

    img = Image.new("L", (300, 120), 255)
    ImageDraw.Draw(img).rectangle((20, 40, 260, 60), fill=0)  # not blank: the engine is called
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def _image_only_pdf() -> bytes:
    from pathlib import Path

    return (Path(__file__).resolve().parents[1] / "fixtures" / "ocr" / "notice.pdf").read_bytes()


def _routing(h, on: bool) -> None:
    h.patch_settings(routing=on)
    for cached in ("router", "core_answerer", "answerer", "strong_model"):  # rebuilt from the new settings
        h.lectern.__dict__.pop(cached, None)


def _run_every_function(h) -> None:
    from lectern.aws.handlers import ingest, rebuild, setup, sweep

    setup.on_event({"RequestType": "Create"}, FakeContext())
    doc_id = h.upload("handbook.md", DOC, "text/markdown")
    assert h.ingest(doc_id)["status"] == "INDEXED"
    assert h.json("GET", "/v1/documents")[0] == 200
    assert h.json("GET", f"/v1/documents/{doc_id}")[1]["status"] == "INDEXED"
    _routing(h, False)  # every question to the cheap model (Nova Lite), answered and streamed
    status, answer = h.json("POST", "/v1/query", {"question": "How many days of annual leave do employees get?"})
    assert status == 200 and "25" in answer["answer"], answer
    assert answer["route"].startswith("cheap"), answer
    status, fb = h.json("POST", "/v1/feedback", {"query_id": answer["query_id"], "rating": "up"})
    assert status == 200, fb  # the query trace was written (BatchWriteItem) and is found again
    # conversations (their own table): the answer started one (PutItem); a follow-up reads it (GetItem) and
    # appends a turn (UpdateItem); list (Query), get, delete (DeleteItem)
    cid = answer["conversation_id"]
    status, follow = h.json("POST", "/v1/query", {"question": "And how many days is that?", "conversation_id": cid})
    assert status == 200 and follow["conversation_id"] == cid and follow["standalone_question"], follow
    status, listed = h.json("GET", "/v1/conversations")
    assert status == 200 and [c["turns"] for c in listed["conversations"] if c["conversation_id"] == cid] == [2]
    assert h.json("GET", f"/v1/conversations/{cid}")[0] == 200
    assert h.call("DELETE", f"/v1/conversations/{cid}")["statusCode"] == 204
    assert h.json("GET", f"/v1/conversations/{cid}")[0] == 404
    r = h.call("POST", "/v1/query", {"question": "Annual leave, how much?"}, headers={"accept": "text/event-stream"})
    assert r["statusCode"] == 200
    _routing(h, True)  # a comparison goes to the strong model (Nova Pro)
    status, strong = h.json("POST", "/v1/query", {"question": "Compare the leave policy with the laptop policy"})
    assert status == 200 and strong["route"].startswith("strong"), strong
    r = h.call(
        "POST",
        "/v1/query",
        {"question": "Compare laptops versus leave"},
        headers={"accept": "text/event-stream"},
    )
    assert r["statusCode"] == 200
    # Bedrock throttled: the fallback answers, through its inference component, streamed and not
    h.bedrock.throttle_next(200, operations=("converse", "converse-stream"))
    sagemaker_canned(h.moto_url, "Employees get 25 days of annual leave [1].")
    assert h.json("POST", "/v1/query", {"question": "How many leave days do I get per year?"})[0] == 200
    h.call("POST", "/v1/query", {"question": "Leave days per year?"}, headers={"accept": "text/event-stream"})
    h.bedrock.clear_errors()
    assert h.json("POST", "/v1/search", {"query": "laptops", "top_k": 3})[0] == 200
    # scans go to Textract (moto answers with no words, so both end FAILED "no text"): an image by the
    # synchronous DetectDocumentText, an image-only PDF by an asynchronous job read from its S3 object
    scan = h.upload("scan.png", _blank_scan_png(), "image/png")
    assert h.ingest(scan)["status"] == "FAILED"
    pdf = h.upload("scan.pdf", _image_only_pdf(), "application/pdf")
    assert h.ingest(pdf)["status"] == "FAILED"
    # a failed ingestion, and a delete while a document is being ingested
    broken = h.upload("broken.pdf", b"%PDF-1.7 not a pdf", "application/pdf")
    assert h.ingest(broken)["status"] == "FAILED"
    busy = h.upload("busy.md", DOC, "text/markdown")
    job = ingest.index(h.ingest(busy, stop_after="embed"), FakeContext())
    again = {"detail": {"object": {"key": f"acme/{busy}/original", "size": len(DOC), "sequencer": "0FF"}}}
    with pytest.raises(ingest.DocumentBusy):  # Powertools deletes its in-progress record (DeleteItem)
        ingest.validate(again, FakeContext())
    assert h.call("DELETE", f"/v1/documents/{busy}")["statusCode"] == 204
    assert ingest.mark_indexed(job, FakeContext())["status"] == "WITHDRAWN"
    gone = h.upload("gone.md", DOC, "text/markdown")
    job = h.ingest(gone, stop_after="embed")
    assert h.call("DELETE", f"/v1/documents/{gone}")["statusCode"] == 204
    job["error"] = {"Error": "IndexWriteFailed", "Cause": "{}"}
    assert ingest.mark_failed(job, FakeContext())["status"] == "WITHDRAWN"
    # a new version of a source path replaces the old one once INDEXED (mark_indexed: Query, DeleteItem, the old
    # objects' prefix delete, its chunks withdrawn); a second failure of a source leaves one FAILED row (mark_failed)
    first = h.upload("policy.md", DOC, "text/markdown")
    assert h.ingest(first)["status"] == "INDEXED"
    second = h.upload("policy.md", DOC + b"\nUpdated.\n", "text/markdown")
    assert h.ingest(second)["status"] == "INDEXED"
    assert h.lectern.documents.get("acme", first) is None
    again_broken = h.upload("broken.pdf", b"%PDF-1.7 still not a pdf", "application/pdf")
    assert h.ingest(again_broken)["status"] == "FAILED"
    assert h.lectern.documents.get("acme", broken) is None
    # the original deleted straight in S3: the "Object Deleted" event takes the document out
    from lectern.aws.handlers import removed

    key = f"acme/{second}/original"
    h.lectern.blobs.client.delete_object(Bucket=h.settings.documents_bucket, Key=key)
    assert removed.on_removed(s3_deleted_event(h.settings.documents_bucket, key), FakeContext())["status"] == "REMOVED"
    assert h.lectern.documents.get("acme", second) is None
    # uploaded but never ingested (the pause came first): the rebuild runs the whole pipeline for it
    # (and, being a new version of late.md, replaces the indexed one: reindex_document's supersede grants)
    late_v1 = h.upload("late.md", b"# Travel\n\nTrain tickets are reimbursed in first class.\n", "text/markdown")
    assert h.ingest(late_v1)["status"] == "INDEXED"
    h.upload("late.md", b"# Travel\n\nTrain tickets are reimbursed in second class.\n", "text/markdown")
    # pause + resume: the table record and the index are gone; the rebuild restores both from S3
    h.lectern.index.delete_document("acme", doc_id)
    h.lectern.documents.delete("acme", doc_id)
    h.lectern.blobs.delete_prefix(f"acme/{doc_id}/embeddings/")  # lost vectors: embedded again, and stored
    listed = rebuild.list_documents({"run": "least-privilege"}, FakeContext())  # the Map's ItemReader list in S3
    for item in json.loads(h.lectern.blobs.get(listed["key"])):
        # SKIPPED: late.md's first version, when the second (rebuilt before it) already replaced it
        assert rebuild.reindex_document(item, FakeContext())["status"] in ("INDEXED", "FAILED", "SKIPPED")
    assert h.lectern.documents.get("acme", late_v1) is None
    assert h.call("DELETE", f"/v1/documents/{doc_id}")["statusCode"] == 204
    # the periodic sweep, run a day later: an upload slot never used is found through the status index, read
    # again and failed with the reason
    status, slot = h.json("POST", "/v1/documents", {"filename": "never.md", "size_bytes": 10})
    assert status == 201, slot
    from lectern.domain.sweep import StuckDocumentSweeper

    later = datetime.now(UTC) + timedelta(days=1)
    sweep_now = StuckDocumentSweeper.sweep
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(StuckDocumentSweeper, "sweep", lambda self, now=None: sweep_now(self, now or later))
        failed = sweep.mark_stuck({}, FakeContext())["failed"]
    assert [f["document_id"] for f in failed] == [slot["document_id"]], failed


def _used(h) -> dict[str, set[tuple[str, str]]]:
    """function -> (action, granted resource pattern) for every allowed authorization recorded."""
    used: dict[str, set[tuple[str, str]]] = {}
    for check in h.enforcer.checks:
        if not check.allowed:
            continue
        for st in h.function(check.function).statements:
            if st["Effect"] == "Allow" and _matches(st["Action"], check.action, ignore_case=True):
                grant = _matches(st["Resource"], check.resource, ignore_case=False)
                if grant:
                    used.setdefault(check.function, set()).add((check.action.lower(), grant))
    return used


def _allowlisted(action: str, resource: str) -> bool:
    return any(_matches([a], action, ignore_case=True) and re.search(r, resource) for a, r in ALLOWED_UNUSED)


def test_every_grant_is_used_by_some_call_or_allowlisted(aws_harness) -> None:
    h = aws_harness
    _run_every_function(h)
    assert h.enforcer.denied() == []
    used = _used(h)
    unused = [
        f"{fn.name}: {action} on {resource}"
        for handler, fn in h.enforcer.functions.items()
        for st in fn.statements
        for action in st["Action"]
        for resource in st["Resource"]
        if (action.lower(), resource) not in used.get(handler, set()) and not _allowlisted(action, resource)
    ]
    assert unused == [], "granted but never used (remove, or allowlist with a reason):\n" + "\n".join(unused)
    assert len(used) == len(h.enforcer.functions)  # every function ran and made authorized calls


def test_no_wildcard_actions_and_star_resources_only_where_iam_has_no_resource_types() -> None:
    for handler, fn in handler_test_stacks().functions().items():
        for st in fn.statements:
            assert st["Effect"] == "Allow" and not st.get("Condition"), (handler, st)
            for action in st["Action"]:
                assert "*" not in action, (handler, action)
                if "*" in st["Resource"]:
                    assert action in WILDCARD_RESOURCE_ACTIONS, (handler, action, "Resource *")
            for resource in st["Resource"]:
                # object wildcards stay inside the documents bucket; nothing spans a service or an account
                assert not re.fullmatch(r"arn:aws:[a-z0-9-]+:[^:]*:[^:]*:\*", resource), (handler, resource)


def test_the_evaluator_denies_what_the_policy_does_not_name() -> None:
    """The enforcement itself: resources and wildcards are evaluated, a Deny wins."""
    from tests.aws.iam_enforcement import evaluate

    statements = [
        {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": ["arn:aws:s3:::docs/*"]},
        {
            "Effect": "Allow",
            "Action": ["dynamodb:Get*"],
            "Resource": ["arn:aws:dynamodb:us-east-1:1:table/t"],
        },
        {"Effect": "Deny", "Action": ["s3:GetObject"], "Resource": ["arn:aws:s3:::docs/secret"]},
    ]
    assert evaluate(statements, "s3:GetObject", "arn:aws:s3:::docs/a/original")[0]
    assert not evaluate(statements, "s3:GetObject", "arn:aws:s3:::other/a")[0]
    assert not evaluate(statements, "s3:PutObject", "arn:aws:s3:::docs/a")[0]
    assert not evaluate(statements, "s3:GetObject", "arn:aws:s3:::docs/secret")[0]
    assert evaluate(statements, "DynamoDB:GetItem", "arn:aws:dynamodb:us-east-1:1:table/t")[0]
    assert not evaluate(statements, "dynamodb:GetItem", "arn:aws:dynamodb:us-east-1:1:table/t2")[0]
    assert not evaluate(statements, "dynamodb:PutItem", "arn:aws:dynamodb:us-east-1:1:table/t")[0]


def test_a_missing_grant_fails_the_handler_the_way_aws_would(aws_harness) -> None:
    """Take s3:ListBucket away from EmbedBatch: its look-up of stored vectors reads a missing key as 403
    AccessDenied (S3's answer without ListBucket), which the blob store does not take for "missing", so the
    document ends FAILED — what a deployment without the grant did."""
    h = aws_harness
    fn = h.function("lectern.aws.handlers.ingest.embed_batch")
    fn.statements[:] = [st for st in fn.statements if "s3:ListBucket" not in st["Action"]]
    doc_id = h.upload("handbook.md", DOC, "text/markdown")
    assert h.ingest(doc_id)["status"] == "FAILED"
    (denied,) = h.enforcer.denied()
    assert (denied.function, denied.action) == (fn.handler, "s3:ListBucket")
    h.enforcer.checks.clear()  # the denial was the point (the harness fails a test on any other)


def test_handler_environment_is_the_templates(aws_harness) -> None:
    """The harness gives each function its template's variables and nothing else: a variable CDK does not set
    is absent in the test too."""
    import os

    h = aws_harness
    seen = {}

    def capture(event, context):
        seen.update({k: v for k, v in os.environ.items() if k.startswith(("LECTERN_", "POWERTOOLS_"))})
        return {}

    run = h.deployed("lectern.aws.handlers.ingest.chunk", capture)
    run({}, None)
    expected = h.function("lectern.aws.handlers.ingest.chunk").environment
    assert seen == expected
    assert json.loads(expected["LECTERN_CORS_ORIGINS"]) is not None
    assert expected["LECTERN_TABLE_NAME"] == h.settings.table_name  # deployed name swapped for the moto one
