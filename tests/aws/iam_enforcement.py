"""IAM enforced in the handler tests: every AWS call a handler makes is authorized against that function's
synthesized policy (tests/aws/deployment.py), before it is sent.

Why an evaluator here and not moto's own IAM access control (INITIAL_NO_AUTH_ACTION_COUNT): moto authorizes
only what moto serves (Bedrock runtime and OpenSearch are in-repo fakes here), and it evaluates resources only
for S3, SQS, IAM and STS — every other service is checked against `"Resource": "*"`
(moto/core/responses.py `call_action`), so a DynamoDB grant on the wrong table would pass. The decision is in
docs/decisions.md (2026-12-03).

How: `botocore.client.BaseClient._make_api_call` (every boto3 client, Powertools' own included) and
opensearch-py's `RequestsHttpConnection.perform_request` are wrapped. While a handler runs as a function
(`Enforcer.acting_as`, a context variable that thread pools started inside the handler inherit), each call is
turned into the IAM actions and resource ARNs AWS would authorize (the table below, from the Service
Authorization Reference), evaluated against the function's statements (Allow/Deny, `*` and `?` wildcards in
actions and resources; a Condition is not evaluated and makes the statement not match) and, if not allowed,
fails the way AWS does: a 403 `AccessDenied`/`AccessDeniedException` ClientError before anything is sent. An
operation with no entry in the table fails the test (so a new call cannot slip past).

S3 detail reproduced: GetObject/HeadObject of a missing key answer 403, not 404, to a caller without
s3:ListBucket on the bucket (https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html,
"Permissions").

Calls made outside any function (the test's own setup and assertions) are not checked. Every authorization is
recorded (function, action, resource, allowed) for the "no unused grant" test.
"""

from __future__ import annotations

import contextvars
import re
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from botocore.exceptions import ClientError

from tests.aws.deployment import ACCOUNT, PARTITION, REGION, DeployedFunction

_GEO = ("us.", "eu.", "apac.", "us-gov.", "global.")


def _pattern(glob: str, *, ignore_case: bool) -> re.Pattern[str]:
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in glob)
    return re.compile(f"^{body}$", re.I if ignore_case else 0)


def _matches(globs: list[str], value: str, *, ignore_case: bool) -> str | None:
    for g in globs:
        if _pattern(g, ignore_case=ignore_case).match(value):
            return g
    return None


@dataclass(frozen=True)
class Check:
    function: str
    action: str
    resource: str
    allowed: bool
    statement: int | None  # index of the Allow statement that matched
    grant: str | None  # the resource pattern of that statement that matched


def evaluate(
    statements: list[dict[str, Any]], action: str, resource: str
) -> tuple[bool, int | None, str | None]:
    """IAM's identity-policy logic for one request: an explicit Deny wins, else an Allow must match."""
    allow: tuple[int, str] | None = None
    for i, st in enumerate(statements):
        if "NotAction" in st or "NotResource" in st:
            raise NotImplementedError("NotAction/NotResource are not evaluated here")
        if st.get("Condition"):
            continue  # not evaluated: the statement does not grant
        if not _matches(st["Action"], action, ignore_case=True):
            continue
        grant = _matches(st["Resource"], resource, ignore_case=False)
        if grant is None:
            continue
        if st["Effect"] == "Deny":
            return False, None, None
        allow = allow or (i, grant)
    return (True, *allow) if allow else (False, None, None)


# -- requests -> (action, resource) -----------------------------------------------------------------------


def _table(name: str) -> str:
    return name if name.startswith("arn:") else f"arn:{PARTITION}:dynamodb:{REGION}:{ACCOUNT}:table/{name}"


def model_arns(model_id: str) -> list[str]:
    """What InvokeModel/Converse on `model_id` is authorized on: the model, or the inference profile and
    the foundation model it routes to (checked in this region; the grant names the other regions too)."""
    if model_id.startswith("arn:"):
        return [model_id]
    if model_id.startswith(_GEO):
        base = model_id.split(".", 1)[1]
        return [
            f"arn:{PARTITION}:bedrock:{REGION}:{ACCOUNT}:inference-profile/{model_id}",
            f"arn:{PARTITION}:bedrock:{REGION}::foundation-model/{base}",
        ]
    return [f"arn:{PARTITION}:bedrock:{REGION}::foundation-model/{model_id}"]


def _guardrail(identifier: str) -> str:
    if identifier.startswith("arn:"):
        return identifier
    return f"arn:{PARTITION}:bedrock:{REGION}:{ACCOUNT}:guardrail/{identifier}"


def authorizations(service: str, operation: str, params: dict[str, Any]) -> list[tuple[str, str]]:
    """The (IAM action, resource ARN) pairs AWS authorizes for one API call; all must be allowed."""
    if service == "s3":
        bucket = params.get("Bucket", "")
        obj = f"arn:{PARTITION}:s3:::{bucket}/{params.get('Key', '')}"
        versioned = "Version" if params.get("VersionId") else ""
        simple = {
            "GetObject": [(f"s3:GetObject{versioned}", obj)],
            "HeadObject": [(f"s3:GetObject{versioned}", obj)],
            "PutObject": [("s3:PutObject", obj)],
            "DeleteObject": [(f"s3:DeleteObject{versioned}", obj)],
            "ListObjectsV2": [("s3:ListBucket", f"arn:{PARTITION}:s3:::{bucket}")],
            "ListObjects": [("s3:ListBucket", f"arn:{PARTITION}:s3:::{bucket}")],
            "ListObjectVersions": [("s3:ListBucketVersions", f"arn:{PARTITION}:s3:::{bucket}")],
        }
        if operation in simple:
            return simple[operation]
        if operation == "DeleteObjects":
            return [
                (
                    f"s3:DeleteObject{'Version' if o.get('VersionId') else ''}",
                    f"arn:{PARTITION}:s3:::{bucket}/{o['Key']}",
                )
                for o in params["Delete"]["Objects"]
            ]
    if service == "dynamodb":
        if operation in {"GetItem", "PutItem", "UpdateItem", "DeleteItem", "Scan", "Query", "DescribeTable"}:
            arn = _table(params["TableName"])
            if params.get("IndexName"):
                arn += f"/index/{params['IndexName']}"
            return [(f"dynamodb:{operation}", arn)]
        if operation in {"BatchWriteItem", "BatchGetItem"}:
            return [(f"dynamodb:{operation}", _table(t)) for t in params["RequestItems"]]
        if operation in {"TransactWriteItems", "TransactGetItems"}:
            kinds = {
                "Put": "PutItem",
                "Update": "UpdateItem",
                "Delete": "DeleteItem",
                "ConditionCheck": "ConditionCheckItem",
                "Get": "GetItem",
            }
            return [
                (f"dynamodb:{kinds[k]}", _table(v["TableName"]))
                for item in params["TransactItems"]
                for k, v in item.items()
            ]
    if service == "bedrock-runtime":
        if operation == "ApplyGuardrail":
            return [("bedrock:ApplyGuardrail", _guardrail(params["guardrailIdentifier"]))]
        action = {
            "InvokeModel": "bedrock:InvokeModel",
            "Converse": "bedrock:InvokeModel",
            "InvokeModelWithResponseStream": "bedrock:InvokeModelWithResponseStream",
            "ConverseStream": "bedrock:InvokeModelWithResponseStream",
        }.get(operation)
        if action:
            out = [(action, arn) for arn in model_arns(params["modelId"])]
            guardrail = params.get("guardrailConfig") or (
                {"guardrailIdentifier": params["guardrailIdentifier"]}
                if params.get("guardrailIdentifier")
                else None
            )
            if guardrail:
                out.append(("bedrock:ApplyGuardrail", _guardrail(guardrail["guardrailIdentifier"])))
            return out
    if service == "textract" and operation in {
        "DetectDocumentText",
        "StartDocumentTextDetection",
        "GetDocumentTextDetection",
    }:
        out = [(f"textract:{operation}", "*")]  # Textract's text detection has no resource types
        location = params.get("DocumentLocation", {}).get("S3Object")
        if location:  # Textract reads the object with the caller's permissions
            out.append(("s3:GetObject", f"arn:{PARTITION}:s3:::{location['Bucket']}/{location['Name']}"))
        return out
    if service == "bedrock-agent-runtime" and operation == "Rerank":
        config = params["rerankingConfiguration"]["bedrockRerankingConfiguration"]["modelConfiguration"]
        return [("bedrock:Rerank", "*"), ("bedrock:InvokeModel", config["modelArn"])]
    if service == "sagemaker-runtime" and operation in {"InvokeEndpoint", "InvokeEndpointWithResponseStream"}:
        base = f"arn:{PARTITION}:sagemaker:{REGION}:{ACCOUNT}"
        out = [(f"sagemaker:{operation}", f"{base}:endpoint/{params['EndpointName'].lower()}")]
        if params.get("InferenceComponentName"):
            out.append(
                (
                    f"sagemaker:{operation}",
                    f"{base}:inference-component/{params['InferenceComponentName'].lower()}",
                )
            )
        return out
    raise AssertionError(
        f"tests/aws/iam_enforcement.py has no IAM mapping for {service}.{operation}: add the actions and "
        "resources AWS authorizes for it (Service Authorization Reference)"
    )


def _denied(
    service: str, operation: str, function: DeployedFunction, action: str, resource: str
) -> ClientError:
    code = {"s3": "AccessDenied"}.get(service, "AccessDeniedException")
    if service == "s3" and operation == "HeadObject":
        code = "403"  # a HEAD response has no body: botocore reports the status code
    message = (
        f"User: arn:{PARTITION}:sts::{ACCOUNT}:assumed-role/{function.role}/{function.name} is not "
        f"authorized to perform: {action} on resource: {resource} because no identity-based policy allows "
        f"the {action} action"
    )
    return ClientError(
        {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": 403}}, operation
    )


# -- the enforcer -------------------------------------------------------------------------------------------

_acting: contextvars.ContextVar[DeployedFunction | None] = contextvars.ContextVar("lectern_iam", default=None)


@dataclass
class Enforcer:
    functions: dict[str, DeployedFunction]
    opensearch: dict[str, str] = field(default_factory=dict)  # "host:port" -> domain/collection ARN
    checks: list[Check] = field(default_factory=list)

    @contextmanager
    def acting_as(self, handler: str) -> Iterator[DeployedFunction]:
        fn = self.functions[handler]
        token = _acting.set(fn)
        try:
            yield fn
        finally:
            _acting.reset(token)

    @staticmethod
    def current() -> DeployedFunction | None:
        return _acting.get()

    def authorize(
        self, fn: DeployedFunction, service: str, operation: str, action: str, resource: str
    ) -> None:
        allowed, statement, grant = evaluate(fn.statements, action, resource)
        self.checks.append(Check(fn.handler, action, resource, allowed, statement, grant))
        if not allowed:
            raise _denied(service, operation, fn, action, resource)

    def allowed(self, fn: DeployedFunction, action: str, resource: str) -> bool:
        return evaluate(fn.statements, action, resource)[0]

    def denied(self) -> list[Check]:
        return [c for c in self.checks if not c.allowed]

    # -- hooks --------------------------------------------------------------------------------------------
    def install(self, monkeypatch: Any) -> None:
        from botocore.client import BaseClient
        from opensearchpy.connection import RequestsHttpConnection

        enforcer = self
        make_api_call = BaseClient._make_api_call

        def _make_api_call(client: Any, operation: str, params: dict[str, Any]) -> Any:
            fn = _acting.get()
            if fn is None:
                return make_api_call(client, operation, params)
            service = client.meta.service_model.service_name
            for action, resource in authorizations(service, operation, params):
                enforcer.authorize(fn, service, operation, action, resource)
            try:
                return make_api_call(client, operation, params)
            except ClientError as exc:
                missing = exc.response.get("Error", {}).get("Code") in {"NoSuchKey", "404", "NotFound"}
                if service == "s3" and operation in {"GetObject", "HeadObject"} and missing:
                    bucket = f"arn:{PARTITION}:s3:::{params['Bucket']}"
                    allowed, statement, grant = evaluate(fn.statements, "s3:ListBucket", bucket)
                    enforcer.checks.append(
                        Check(fn.handler, "s3:ListBucket", bucket, allowed, statement, grant)
                    )
                    if not allowed:
                        raise _denied(service, operation, fn, "s3:ListBucket", bucket) from None
                raise

        perform_request = RequestsHttpConnection.perform_request

        def _perform_request(conn: Any, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            fn = _acting.get()
            if fn is not None:
                host = urlsplit(conn.host).netloc
                arn = enforcer.opensearch.get(host)
                assert arn, f"OpenSearch host {host} is not one the deployment names"
                path = urlsplit(url).path
                if ":aoss:" in arn:
                    action, resource = "aoss:APIAccessAll", arn
                else:
                    action, resource = f"es:ESHttp{method.capitalize()}", f"{arn}/{path.lstrip('/')}"
                allowed, statement, grant = evaluate(fn.statements, action, resource)
                enforcer.checks.append(Check(fn.handler, action, resource, allowed, statement, grant))
                if not allowed:
                    from opensearchpy.exceptions import AuthorizationException

                    raise AuthorizationException(
                        403, "security_exception", {"message": f"no {action} on {resource}"}
                    )
            return perform_request(conn, method, url, *args, **kwargs)

        submit = ThreadPoolExecutor.submit

        def _submit(pool: ThreadPoolExecutor, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
            ctx = contextvars.copy_context()  # work started inside a handler runs as that handler
            return submit(pool, ctx.run, fn, *args, **kwargs)

        monkeypatch.setattr(BaseClient, "_make_api_call", _make_api_call)
        monkeypatch.setattr(RequestsHttpConnection, "perform_request", _perform_request)
        monkeypatch.setattr(ThreadPoolExecutor, "submit", _submit)
