"""What CloudFormation would deploy, read from the synthesized CDK templates: each function's environment and
its IAM policy, with the intrinsic functions resolved the way CloudFormation would resolve them in a test
account (123456789012, us-east-1).

The handler tests (tests/aws/handler_env.py) run every handler with exactly the environment its template gives
it and with its own policy enforced (tests/aws/iam_enforcement.py), so a variable or a grant that CDK forgets
fails a test instead of a deployment. Nothing here calls AWS: `Ref`/`Fn::GetAtt` of a resource become the
names and ARNs CloudFormation would produce (the physical name from the resource's own name property, else its
logical id), and `rename` swaps deployed names for the unique names the tests create in moto.
"""

from __future__ import annotations

import functools
import json
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

ACCOUNT = "123456789012"  # moto's default account
REGION = "us-east-1"
PARTITION = "aws"

PSEUDO = {
    "AWS::AccountId": ACCOUNT,
    "AWS::Region": REGION,
    "AWS::Partition": PARTITION,
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::StackName": "stack",
    "AWS::NoValue": None,
}

# resource type -> the property that names it (CloudFormation's physical id when set)
NAME_PROPERTY = {
    "AWS::S3::Bucket": "BucketName",
    "AWS::DynamoDB::Table": "TableName",
    "AWS::DynamoDB::GlobalTable": "TableName",
    "AWS::OpenSearchService::Domain": "DomainName",
    "AWS::OpenSearchServerless::Collection": "Name",
    "AWS::Logs::LogGroup": "LogGroupName",
    "AWS::IAM::Role": "RoleName",
    "AWS::Lambda::Function": "FunctionName",
    "AWS::SQS::Queue": "QueueName",
    "AWS::SageMaker::Endpoint": "EndpointName",
    "AWS::SageMaker::InferenceComponent": "InferenceComponentName",
    "AWS::Bedrock::Guardrail": "Name",
}


def _arn(service: str, resource: str, *, region: str = REGION, account: str = ACCOUNT) -> str:
    return f"arn:{PARTITION}:{service}:{region}:{account}:{resource}"


@dataclass
class Stacks:
    """The synthesized templates of one app (stack part -> template) and a resolver over them."""

    raw: dict[str, dict[str, Any]]
    rename: dict[str, str] = field(default_factory=dict)
    attributes: dict[tuple[str, str], str] = field(default_factory=dict)  # (logical id, attribute) -> value

    # -- lookups ---------------------------------------------------------------------------------------------
    def resources(self, part: str, kind: str | None = None) -> dict[str, dict[str, Any]]:
        res = self.raw[part]["Resources"]
        return {k: r for k, r in res.items() if kind is None or r["Type"] == kind}

    def one(self, part: str, kind: str) -> tuple[str, dict[str, Any]]:
        (item,) = self.resources(part, kind).items()
        return item

    def physical_name(self, part: str, logical_id: str) -> str:
        res = self.raw[part]["Resources"][logical_id]
        prop = NAME_PROPERTY.get(res["Type"])
        value = res.get("Properties", {}).get(prop) if prop else None
        name = self._resolve(part, value) if value is not None else logical_id
        return self._renamed(str(name))

    def _renamed(self, text: str) -> str:
        for old, new in self.rename.items():
            text = text.replace(old, new)
        return text

    def _export(self, name: str) -> tuple[str, Any]:
        for part, template in self.raw.items():
            for output in template.get("Outputs", {}).values():
                if output.get("Export", {}).get("Name") == name:
                    return part, output["Value"]
        raise KeyError(f"no stack exports {name!r}")

    # -- intrinsic functions ---------------------------------------------------------------------------------
    def resolve(self, part: str, value: Any) -> Any:
        return self._renamed_all(self._resolve(part, value))

    def _renamed_all(self, value: Any) -> Any:
        if isinstance(value, str):
            return self._renamed(value)
        if isinstance(value, list):
            return [self._renamed_all(v) for v in value]
        if isinstance(value, dict):
            return {k: self._renamed_all(v) for k, v in value.items()}
        return value

    def _resolve(self, part: str, value: Any) -> Any:
        if isinstance(value, list):
            return [self._resolve(part, v) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) != 1 or not next(iter(value)).startswith(("Ref", "Fn::")):
            return {k: self._resolve(part, v) for k, v in value.items()}
        ((fn, arg),) = value.items()
        if fn == "Ref":
            if arg in PSEUDO:
                return PSEUDO[arg]
            return self._ref(part, arg)
        if fn == "Fn::GetAtt":
            logical, attr = arg if isinstance(arg, list) else arg.split(".", 1)
            return self._getatt(part, logical, attr)
        if fn == "Fn::Join":
            sep, items = arg
            return sep.join(str(self._resolve(part, i)) for i in self._resolve(part, items))
        if fn == "Fn::Sub":
            text, variables = (arg, {}) if isinstance(arg, str) else arg
            local = {k: self._resolve(part, v) for k, v in variables.items()}

            def sub(m: re.Match[str]) -> str:
                name = m[1]
                if name in local:
                    return str(local[name])
                if name in PSEUDO:
                    return str(PSEUDO[name])
                if "." in name:
                    return str(self._getatt(part, *name.split(".", 1)))
                return str(self._ref(part, name))

            return re.sub(r"\$\{([^}!]+)\}", sub, text)
        if fn == "Fn::ImportValue":
            other, expr = self._export(self._resolve(part, arg))
            return self._resolve(other, expr)
        if fn == "Fn::Select":
            index, items = arg
            return self._resolve(part, items)[int(self._resolve(part, index))]
        if fn == "Fn::Split":
            sep, text = arg
            return str(self._resolve(part, text)).split(sep)
        raise NotImplementedError(f"intrinsic {fn} is not resolved by tests/aws/deployment.py")

    def _ref(self, part: str, logical: str) -> str:
        res = self.raw[part]["Resources"][logical]
        kind = res["Type"]
        name = self.physical_name(part, logical)
        if kind in ("AWS::SQS::Queue",):
            return f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{name}"
        if kind in ("AWS::Bedrock::Guardrail", "AWS::SageMaker::InferenceComponent"):
            return self._getatt(
                part, logical, "GuardrailArn" if "Guardrail" in kind else "InferenceComponentArn"
            )
        return name

    def _getatt(self, part: str, logical: str, attr: str) -> str:
        if (logical, attr) in self.attributes:
            return self.attributes[(logical, attr)]
        res = self.raw[part]["Resources"][logical]
        kind, name = res["Type"], self.physical_name(part, logical)
        table = {
            ("AWS::S3::Bucket", "Arn"): f"arn:{PARTITION}:s3:::{name}",
            ("AWS::DynamoDB::Table", "Arn"): _arn("dynamodb", f"table/{name}"),
            ("AWS::DynamoDB::GlobalTable", "Arn"): _arn("dynamodb", f"table/{name}"),
            ("AWS::OpenSearchService::Domain", "Arn"): _arn("es", f"domain/{name}"),
            ("AWS::OpenSearchService::Domain", "DomainArn"): _arn("es", f"domain/{name}"),
            ("AWS::OpenSearchService::Domain", "DomainEndpoint"): f"search-{name}.{REGION}.es.amazonaws.com",
            ("AWS::OpenSearchServerless::Collection", "Arn"): _arn("aoss", f"collection/{name}"),
            ("AWS::OpenSearchServerless::Collection", "Id"): name,
            ("AWS::OpenSearchServerless::Collection", "CollectionEndpoint"): (
                f"https://{name}.{REGION}.aoss.amazonaws.com"
            ),
            ("AWS::Logs::LogGroup", "Arn"): _arn("logs", f"log-group:{name}:*"),
            ("AWS::IAM::Role", "Arn"): f"arn:{PARTITION}:iam::{ACCOUNT}:role/{name}",
            ("AWS::Lambda::Function", "Arn"): _arn("lambda", f"function:{name}"),
            ("AWS::SQS::Queue", "Arn"): _arn("sqs", name),
            ("AWS::SQS::Queue", "QueueName"): name,
            ("AWS::StepFunctions::StateMachine", "Arn"): _arn("states", f"stateMachine:{name}"),
            ("AWS::StepFunctions::StateMachine", "Name"): name,
            ("AWS::SageMaker::Endpoint", "EndpointName"): name,
            ("AWS::SageMaker::InferenceComponent", "InferenceComponentName"): name,
            ("AWS::SageMaker::InferenceComponent", "InferenceComponentArn"): _arn(
                "sagemaker", f"inference-component/{name}"
            ),
            ("AWS::Bedrock::Guardrail", "GuardrailId"): name,
            ("AWS::Bedrock::Guardrail", "GuardrailArn"): _arn("bedrock", f"guardrail/{name}"),
            ("AWS::Bedrock::Guardrail", "Version"): "DRAFT",
            ("AWS::Bedrock::GuardrailVersion", "Version"): "1",
        }
        if (kind, attr) in table:
            return table[(kind, attr)]
        if kind.startswith("Custom::"):  # a custom resource's Data: whatever its handler returns
            return f"{name}.{attr}"
        raise NotImplementedError(f"Fn::GetAtt {kind}.{attr} is not resolved by tests/aws/deployment.py")

    # -- functions -------------------------------------------------------------------------------------------
    def functions(self) -> dict[str, DeployedFunction]:
        """Our functions (handler `lectern.*`), keyed by handler path."""
        out: dict[str, DeployedFunction] = {}
        for part in self.raw:
            for logical, res in self.resources(part, "AWS::Lambda::Function").items():
                props = res["Properties"]
                handler = props.get("Handler", "")
                if not handler.startswith("lectern."):
                    continue
                assert handler not in out, f"two functions run {handler}"
                env = self.resolve(part, props.get("Environment", {}).get("Variables", {}))
                role = props["Role"]["Fn::GetAtt"][0]
                out[handler] = DeployedFunction(
                    handler=handler,
                    part=part,
                    logical_id=logical,
                    role=self.physical_name(part, role),
                    environment={k: str(v) for k, v in env.items()},
                    statements=self._statements(part, role),
                )
        return out

    def _statements(self, part: str, role: str) -> list[dict[str, Any]]:
        role_res = self.raw[part]["Resources"][role]
        assert not role_res["Properties"].get("ManagedPolicyArns"), (
            f"{role} has managed policies; their documents are not in the template to enforce"
        )
        docs = [p["PolicyDocument"] for p in role_res["Properties"].get("Policies", [])]
        for res in self.resources(part, "AWS::IAM::Policy").values():
            if {"Ref": role} in res["Properties"].get("Roles", []):
                docs.append(res["Properties"]["PolicyDocument"])
        statements = []
        for doc in docs:
            for st in self.resolve(part, doc)["Statement"]:
                st = dict(st)
                for key in ("Action", "Resource"):
                    if key in st and not isinstance(st[key], list):
                        st[key] = [st[key]]
                statements.append(st)
        return statements


@dataclass
class DeployedFunction:
    handler: str
    part: str
    logical_id: str
    role: str
    environment: dict[str, str]
    statements: list[dict[str, Any]]

    @property
    def name(self) -> str:
        return self.handler.rsplit(".", 1)[-1]


def synth(env_name: str = "dev", overrides: Mapping[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """The app's templates (bundling off) for `env_name` with config `overrides` merged in (cached)."""
    return json.loads(_synth(env_name, json.dumps(overrides or {}, sort_keys=True)))


@functools.lru_cache(maxsize=8)
def _synth(env_name: str, overrides_json: str) -> str:
    os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
    os.environ.setdefault("JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION", "1")
    from aws_cdk import App
    from cdk.app import build
    from cdk.config import LecternConfig, load_config

    data = load_config(env_name).model_dump()
    data.update(json.loads(overrides_json))
    outdir = tempfile.mkdtemp(prefix=f"lectern-cdk-{env_name}-")
    app = App(context={"lectern:bundle": "none"}, outdir=outdir)
    stacks = build(app, LecternConfig.model_validate(data))
    assembly = app.synth()
    return json.dumps({part: assembly.get_stack_by_name(s.stack_name).template for part, s in stacks.items()})


# The deployment the handler tests run: dev with the fallback model on (scale-to-zero inference component).
HANDLER_TEST_CONFIG = {
    "fallback": {"enabled": True, "model": {"model_s3_uri": "s3://lectern-models/qwen/v1/"}}
}


def handler_test_stacks() -> Stacks:
    return Stacks(synth("dev", HANDLER_TEST_CONFIG))
