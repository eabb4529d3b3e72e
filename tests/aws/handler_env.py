"""A whole Lectern on "AWS" for handler tests: moto's server (S3, DynamoDB, SageMaker runtime) on loopback, the
in-repo fake Bedrock and fake OpenSearch on loopback, all reached through boto3's endpoint variables and the
Lambda settings the CDK stacks set. The handlers run unchanged; only the endpoints are fakes.

Helpers here drive the handlers the way API Gateway and the ingestion state machine do.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from lectern.adapters.aws import clients
from lectern.adapters.aws.table import create_table
from lectern.aws import container
from lectern.aws.container import AwsLectern
from lectern.aws.handlers import api, ingest
from lectern.aws.settings import AwsSettings


class FakeContext:
    """The parts of a Lambda context Powertools reads."""

    function_name = "lectern-test"
    function_version = "$LATEST"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:lectern-test"
    log_stream_name = "test"

    def __init__(self) -> None:
        self.aws_request_id = uuid.uuid4().hex

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


def api_event(
    method: str, path: str, tenant: str | None, body: Any = None, headers: dict | None = None
) -> dict:
    headers = {"content-type": "application/json", **(headers or {})}
    claims = {"sub": "user-1", "custom:tenant_id": tenant} if tenant else {}
    parts = path.strip("/").split("/")
    params = {"document_id": parts[2]} if len(parts) == 3 and parts[1] == "documents" else None
    return {
        "resource": path,
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": params,
        "stageVariables": None,
        "requestContext": {
            "requestId": uuid.uuid4().hex,
            "stage": "prod",
            "httpMethod": method,
            "path": f"/prod{path}",
            "resourcePath": path,
            "identity": {"sourceIp": "127.0.0.1"},
            "authorizer": {"claims": claims} if claims else None,
        },
        "body": json.dumps(body) if body is not None else None,
        "isBase64Encoded": False,
    }


def s3_created_event(bucket: str, key: str, size: int, sequencer: str | None = None) -> dict:
    """EventBridge's "Object Created" event from S3 (https://docs.aws.amazon.com/AmazonS3/latest/userguide/ev-events.html)."""
    return {
        "version": "0",
        "id": uuid.uuid4().hex,
        "detail-type": "Object Created",
        "source": "aws.s3",
        "account": "123456789012",
        "time": "2026-11-29T12:00:00Z",
        "region": "us-east-1",
        "resources": [f"arn:aws:s3:::{bucket}"],
        "detail": {
            "version": "0",
            "bucket": {"name": bucket},
            "object": {"key": key, "size": size, "etag": "e", "sequencer": sequencer or uuid.uuid4().hex},
            "request-id": "r",
            "requester": "123456789012",
            "reason": "PostObject",
        },
    }


@dataclass
class AwsHarness:
    settings: AwsSettings
    lectern: AwsLectern
    moto_url: str
    bedrock: Any
    opensearch: Any
    tenant: str = "acme"
    emitted: list[str] = field(default_factory=list)

    # -- API Gateway ---------------------------------------------------------------------------------------
    def call(
        self, method: str, path: str, body: Any = None, *, tenant: str | None = "", headers=None
    ) -> dict:
        event = api_event(method, path, self.tenant if tenant == "" else tenant, body, headers)
        response = api.handler(event, FakeContext())
        if response.get("isBase64Encoded"):
            response["body"] = base64.b64decode(response["body"]).decode()
        return response

    def json(self, method: str, path: str, body: Any = None, **kw: Any) -> tuple[int, Any]:
        r = self.call(method, path, body, **kw)
        return r["statusCode"], (json.loads(r["body"]) if r.get("body") else None)

    # -- uploads -------------------------------------------------------------------------------------------
    def upload(self, filename: str, data: bytes, content_type: str = "text/plain") -> str:
        """POST /v1/documents, then a real multipart POST of the file to the presigned S3 URL (moto)."""
        status, body = self.json(
            "POST",
            "/v1/documents",
            {"filename": filename, "content_type": content_type, "size_bytes": len(data)},
        )
        assert status == 201, body
        up = body["upload"]
        r = httpx.post(
            up["url"], data=up["fields"], files={"file": (filename, data, content_type)}, timeout=10
        )
        assert r.status_code in (200, 201, 204), r.text
        return body["document_id"]

    # -- the ingestion state machine, step by step ---------------------------------------------------------
    def ingest(
        self, document_id: str, *, sequencer: str | None = None, stop_after: str | None = None
    ) -> dict:
        """Run the states of state_machines/ingest.asl.json in order, with its Catch -> mark_failed."""
        key = f"{self.tenant}/{document_id}/original"
        size = self.lectern.blobs.client.head_object(Bucket=self.settings.documents_bucket, Key=key)[
            "ContentLength"
        ]
        job: dict[str, Any] = s3_created_event(self.settings.documents_bucket, key, size, sequencer)
        try:
            job = ingest.validate(job, FakeContext())
            job = ingest.extract(job, FakeContext())
            job = ingest.chunk(job, FakeContext())
            items = [
                {
                    "tenant_id": job["tenant_id"],
                    "document_id": job["document_id"],
                    "chunks_key": job["chunks_key"],
                    "batch": b,
                }
                for b in job["batches"]
            ]
            job["embedded"] = [ingest.embed_batch(item, FakeContext()) for item in items]
            if stop_after == "embed":
                return job
            job = ingest.index(job, FakeContext())
            return ingest.mark_indexed(job, FakeContext())
        except Exception as exc:  # the ASL's Catch: States.ALL -> MarkFailed with ResultPath $.error
            job["error"] = {"Error": type(exc).__name__, "Cause": json.dumps({"errorMessage": str(exc)})}
            return ingest.mark_failed(job, FakeContext())


@pytest.fixture
def aws_harness(
    moto_server: str, fake_bedrock: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> Iterator[AwsHarness]:
    from tests.fakes.opensearch_server import running_fake_opensearch

    for service in ("S3", "DYNAMODB", "SAGEMAKER_RUNTIME"):
        monkeypatch.setenv(f"AWS_ENDPOINT_URL_{service}", moto_server)
    suffix = uuid.uuid4().hex[:10]
    with running_fake_opensearch() as search:
        env = {
            "LECTERN_DOCUMENTS_BUCKET": f"lectern-docs-{suffix}",
            "LECTERN_TABLE_NAME": f"lectern-{suffix}",
            "LECTERN_OPENSEARCH_ENDPOINT": search.url,
            "LECTERN_OPENSEARCH_INDEX": f"chunks-{suffix}",
            "LECTERN_EMBEDDING_DIMENSION": "256",
            "LECTERN_GUARDRAIL_ID": "gr-lectern",
            "LECTERN_GUARDRAIL_VERSION": "1",
            "LECTERN_FALLBACK_ENDPOINT_NAME": f"fallback-{suffix}",
            "POWERTOOLS_METRICS_NAMESPACE": "Lectern",
            "POWERTOOLS_SERVICE_NAME": "lectern",
        }
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        clients.reset()
        settings = AwsSettings.from_env()
        s3 = clients.client("s3")
        s3.create_bucket(Bucket=settings.documents_bucket)
        s3.put_bucket_versioning(
            Bucket=settings.documents_bucket, VersioningConfiguration={"Status": "Enabled"}
        )
        create_table(clients.client("dynamodb"), settings.table_name)
        lectern = AwsLectern(settings)
        lectern.index.ensure_index()
        lectern.index.ensure_pipeline()
        container.install(lectern)
        api.reset()
        ingest._persistence = None
        try:
            yield AwsHarness(settings, lectern, moto_server, fake_bedrock, search)
        finally:
            container.install(None)
            api.reset()
            ingest._persistence = None


def sagemaker_canned(moto_url: str, *texts: str) -> None:
    """Queue canned responses for sagemaker-runtime invoke_endpoint in moto (TGI Messages API bodies)."""
    results = []
    for text in texts:
        completion = {
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": 50, "completion_tokens": 7},
        }
        results.append({"Body": json.dumps(completion), "ContentType": "application/json"})
    r = httpx.post(
        f"{moto_url}/moto-api/static/sagemaker/endpoint-results", json={"results": results}, timeout=10
    )
    r.raise_for_status()


def emf_metrics(captured: str) -> list[dict]:
    """The EMF documents Powertools printed (one JSON object per line with an `_aws` key)."""
    docs = []
    for line in captured.splitlines():
        line = line.strip()
        if line.startswith("{") and '"_aws"' in line:
            docs.append(json.loads(line))
    return docs


def wait_for(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)
