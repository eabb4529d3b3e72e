"""What cfn-lint (with the cfn-lint-serverless rules) asks of every template that CDK's own helpers miss.

CDK's helper functions (bucket notifications, the custom-resource provider framework, AwsCustomResource)
leave MemorySize out; Lambda then runs them with 128 MB. `ExplicitMemorySize` writes that 128 MB into the
template (no change in behaviour), so rule ES1005 holds for every function, ours included (ours set theirs).

`ignore(resource, rule, reason)` records a cfn-lint rule that does not apply to one resource in the resource's
Metadata (`cfn-lint: config: ignore_checks`, which cfn-lint honours) and the reason next to it
(`lectern:lint-reasons`), so the template itself says why.
"""

from __future__ import annotations

import jsii
from aws_cdk import CfnResource, IAspect
from aws_cdk import aws_lambda as lambda_
from constructs import IConstruct

HELPER_MEMORY_MB = 128  # Lambda's default: what the helpers already run with


@jsii.implements(IAspect)
class ExplicitMemorySize:
    def visit(self, node: IConstruct) -> None:
        if isinstance(node, lambda_.CfnFunction):
            if node.memory_size is None:
                node.memory_size = HELPER_MEMORY_MB
        elif isinstance(node, CfnResource) and node.cfn_resource_type == "AWS::Lambda::Function":
            node.add_property_override("MemorySize", HELPER_MEMORY_MB)  # a raw CfnResource (CDK helper)


def ignore(resource: CfnResource, rule: str, reason: str) -> None:
    if len(reason) < 40:
        raise ValueError("say why the rule does not apply")
    lint = dict(resource.get_metadata("cfn-lint") or {})
    checks = [*lint.get("config", {}).get("ignore_checks", []), rule]
    resource.add_metadata("cfn-lint", {"config": {"ignore_checks": checks}})
    reasons = dict(resource.get_metadata("lectern:lint-reasons") or {})
    reasons[rule] = reason
    resource.add_metadata("lectern:lint-reasons", reasons)
