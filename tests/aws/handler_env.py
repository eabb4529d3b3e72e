"""A whole Lectern on "AWS" for handler tests: moto's server (S3, DynamoDB, SageMaker runtime) on loopback, the
in-repo fake Bedrock and fake OpenSearch on loopback, all reached through boto3's endpoint variables. Each
handler runs with the environment and the IAM policy its synthesized template gives its function
(tests/aws/deployment.py, tests/aws/iam_enforcement.py): a variable or a grant CDK forgets fails here. The
handlers run unchanged; only the endpoints are fakes.

Helpers here drive the handlers the way API Gateway and the ingestion state machine do.
"""

from __future__ import annotations

import base64
import functools
import importlib
import json
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from lectern.adapters.aws import clients
from lectern.adapters.aws.dynamo_conversations import create_conversations_table
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


def api_event(method: str, path: str, tenant: str | None, body: Any = None, headers: dict | None = None) -> dict:
    headers = {"content-type": "application/json", **(headers or {})}
    claims = {"sub": "user-1", "custom:tenant_id": tenant} if tenant else {}
    parts = path.strip("/").split("/")
    names = {"documents": "document_id", "conversations": "conversation_id"}
    params = {names[parts[1]]: parts[2]} if len(parts) == 3 and parts[1] in names else None
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


def s3_deleted_event(bucket: str, key: str, deletion_type: str = "Delete Marker Created") -> dict:
    """EventBridge's "Object Deleted" event from S3 (same page): a DeleteObject on the versioned bucket."""
    return {
        "version": "0",
        "id": uuid.uuid4().hex,
        "detail-type": "Object Deleted",
        "source": "aws.s3",
        "account": "123456789012",
        "time": "2026-11-29T12:00:00Z",
        "region": "us-east-1",
        "resources": [f"arn:aws:s3:::{bucket}"],
        "detail": {
            "version": "0",
            "bucket": {"name": bucket},
            "object": {"key": key, "sequencer": uuid.uuid4().hex},
            "request-id": "r",
            "requester": "123456789012",
            "reason": "DeleteObject",
            "deletion-type": deletion_type,
        },
    }


@dataclass
class AwsHarness:
    enforcer: Any  # tests.aws.iam_enforcement.Enforcer
    moto_url: str
    bedrock: Any
    opensearch: Any
    tenant: str = "acme"
    emitted: list[str] = field(default_factory=list)
    containers: dict[str, AwsLectern] = field(default_factory=dict)  # handler path -> its container

    # -- the deployed functions ------------------------------------------------------------------------------
    @property
    def lectern(self) -> AwsLectern:
        """The API function's container (tests read and write through it, unchecked, outside a handler)."""
        return self.containers[API]

    @property
    def settings(self) -> AwsSettings:
        return self.lectern.settings

    def function(self, handler: str) -> Any:
        return self.enforcer.functions[handler]

    @contextmanager
    def environment(self, handler: str) -> Iterator[None]:
        """os.environ holds exactly the function's template variables (LECTERN_*, POWERTOOLS_*) meanwhile."""
        saved = {k: v for k, v in os.environ.items() if k.startswith(_ENV_PREFIXES)}
        for k in saved:
            del os.environ[k]
        os.environ.update(self.function(handler).environment)
        try:
            yield
        finally:
            for k in [k for k in os.environ if k.startswith(_ENV_PREFIXES)]:
                del os.environ[k]
            os.environ.update(saved)

    @contextmanager
    def as_function(self, handler: str) -> Iterator[None]:
        """Run as the deployed function: its environment, its container, its IAM policy."""
        previous = container._current
        container.install(self.containers.get(handler))
        try:
            with self.environment(handler), self.enforcer.acting_as(handler):
                yield
        finally:
            if container._current is not None and handler not in self.containers:
                self.containers[handler] = container._current
            container.install(previous)

    def deployed(self, handler: str, original: Any) -> Any:
        @functools.wraps(original)
        def run(event: Any, context: Any) -> Any:
            with self.as_function(handler):
                return original(event, context)

        run.__wrapped_handler__ = handler  # type: ignore[attr-defined]
        return run

    def patch(self, name: str, value: Any) -> None:
        """Swap one component in every function's container (e.g. an embedder without client retries)."""
        for c in self.containers.values():
            c.__dict__[name] = value

    def patch_settings(self, **update: Any) -> None:
        for c in self.containers.values():
            c.__dict__["settings"] = c.settings.model_copy(update=update)
        api.reset()

    # -- API Gateway ---------------------------------------------------------------------------------------
    def call(self, method: str, path: str, body: Any = None, *, tenant: str | None = "", headers=None) -> dict:
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
        # S3 authorizes a presigned POST as a PutObject by whoever signed it: the API function
        key_arn = f"arn:aws:s3:::{self.settings.documents_bucket}/{up['fields']['key']}"
        self.enforcer.authorize(self.function(API), "s3", "PostObject", "s3:PutObject", key_arn)
        r = httpx.post(up["url"], data=up["fields"], files={"file": (filename, data, content_type)}, timeout=10)
        assert r.status_code in (200, 201, 204), r.text
        return body["document_id"]

    # -- the ingestion state machine, step by step ---------------------------------------------------------
    def ingest(self, document_id: str, *, sequencer: str | None = None, stop_after: str | None = None) -> dict:
        """Run the states of state_machines/ingest.asl.json in order, with its Catch -> mark_failed."""
        key = f"{self.tenant}/{document_id}/original"
        size = self.lectern.blobs.client.head_object(Bucket=self.settings.documents_bucket, Key=key)["ContentLength"]
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


API = "lectern.aws.handlers.api.handler"
_ENV_PREFIXES = ("LECTERN_", "POWERTOOLS_")


@pytest.fixture
def aws_harness(
    moto_server: str, fake_bedrock: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> Iterator[AwsHarness]:
    """Every function of the synthesized stacks (tests/aws/deployment.py), each run with exactly its
    template's environment (deployed names swapped for this test's moto names) and its own IAM policy enforced
    (tests/aws/iam_enforcement.py); any denied call fails the test. Calls the test makes itself (setup,
    assertions) are not checked."""
    from tests.aws.deployment import handler_test_stacks
    from tests.aws.iam_enforcement import Enforcer
    from tests.fakes.opensearch_server import running_fake_opensearch

    for service in ("S3", "DYNAMODB", "SAGEMAKER_RUNTIME", "TEXTRACT"):
        monkeypatch.setenv(f"AWS_ENDPOINT_URL_{service}", moto_server)
    for key in [k for k in os.environ if k.startswith(_ENV_PREFIXES)]:
        monkeypatch.delenv(key)
    suffix = uuid.uuid4().hex[:10]
    with running_fake_opensearch() as search:
        stacks = handler_test_stacks()
        deployed = stacks.functions()[API].environment
        stacks.rename = {
            deployed["LECTERN_DOCUMENTS_BUCKET"]: f"lectern-docs-{suffix}",
            deployed["LECTERN_TABLE_NAME"]: f"lectern-{suffix}",
            deployed["LECTERN_CONVERSATIONS_TABLE"]: f"lectern-conversations-{suffix}",
            deployed["LECTERN_OPENSEARCH_ENDPOINT"]: search.url,
        }
        functions = stacks.functions()
        ((domain, _),) = stacks.resources("Search", "AWS::OpenSearchService::Domain").items()
        enforcer = Enforcer(
            functions,
            {urlsplit(search.url).netloc: stacks.resolve("Search", {"Fn::GetAtt": [domain, "Arn"]})},
        )
        enforcer.install(monkeypatch)
        h = AwsHarness(enforcer=enforcer, moto_url=moto_server, bedrock=fake_bedrock, opensearch=search)
        for handler in functions:  # the handler modules' entry points now run "as deployed"
            module, name = handler.rsplit(".", 1)
            mod = importlib.import_module(module)
            monkeypatch.setattr(mod, name, h.deployed(handler, getattr(mod, name)))
        for handler in functions:  # each function's cold start, from its own environment
            if handler.startswith(_CONTAINER_FREE):
                continue
            with h.environment(handler):
                h.containers[handler] = AwsLectern(AwsSettings.from_env())
        settings = h.settings
        clients.reset()
        s3 = clients.client("s3")
        s3.create_bucket(Bucket=settings.documents_bucket)
        s3.put_bucket_versioning(Bucket=settings.documents_bucket, VersioningConfiguration={"Status": "Enabled"})
        create_table(clients.client("dynamodb"), settings.table_name)
        assert settings.conversations_table  # the API function's own table
        create_conversations_table(clients.client("dynamodb"), settings.conversations_table)
        h.lectern.index.ensure_index()
        h.lectern.index.ensure_pipeline()
        container.install(h.lectern)
        api.reset()
        ingest._persistence = None
        try:
            yield h
            denied = [f"{c.function}: {c.action} on {c.resource}" for c in enforcer.denied()]
            assert not denied, "calls the deployed policies deny:\n" + "\n".join(denied)
        finally:
            container.install(None)
            api.reset()
            ingest._persistence = None


# handlers that build no AwsLectern (the search setup custom resource reads only the search settings)
_CONTAINER_FREE = ("lectern.aws.handlers.setup.",)


def sagemaker_canned(moto_url: str, *texts: str) -> None:
    """Queue canned responses for sagemaker-runtime invoke_endpoint in moto (TGI Messages API bodies)."""
    results = []
    for text in texts:
        completion = {
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 50, "completion_tokens": 7},
        }
        results.append({"Body": json.dumps(completion), "ContentType": "application/json"})
    r = httpx.post(f"{moto_url}/moto-api/static/sagemaker/endpoint-results", json={"results": results}, timeout=10)
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
