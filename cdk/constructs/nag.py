"""cdk-nag AwsSolutions findings that were reviewed, each with the reason it is accepted.

Granular findings name the exact resource (`AwsSolutions-IAM5[Resource::<FunctionsValidateCFCD81C0.Arn>:*]`),
with hashed logical ids and cross-stack import names that change with the tree. Rather than hard-coding those
strings, each reviewed case is a rule: a pattern on the finding id, a pattern on the construct path, and the
reason. `acknowledge_reviewed(app)` runs the AwsSolutions pack once before synthesis and acknowledges (with
`Validations.of(construct).acknowledge`, so the reason lands in the template metadata) only the findings some
rule covers. Everything else stays a finding and fails `cdk synth` and the infra tests.

Action wildcards (`s3:GetObject*`...) are accepted only inside CDK's own helper functions; our roles list
every action (a test checks the templates for that, too).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from aws_cdk import Acknowledgment, App, Stage, Validations
from cdk_nag import AwsSolutionsChecks
from constructs import IConstruct

# CDK-managed helper functions: their code, runtime and policies are written by aws-cdk-lib.
CDK_HELPERS = (
    r"(Custom::CDKBucketDeployment[0-9A-Fa-f]+|BucketNotificationsHandler[0-9a-f]+|AWS679f53fac002430cb0da5b7982bd2287"
    r"|/Provider/framework-onEvent|/ESLogGroupPolicy[0-9a-f]+|Custom::S3AutoDeleteObjectsCustomResourceProvider)"
)
OUR_ROLES = r"/Functions/\w+Role/DefaultPolicy/Resource$"
STATE_MACHINE_ROLES = r"/Ingestion/(Ingest|Rebuild)/Role/DefaultPolicy/Resource$"


@dataclass(frozen=True)
class Reviewed:
    finding: str  # regex on the finding id
    path: str  # regex searched in the construct path
    reason: str


REVIEWED: tuple[Reviewed, ...] = (
    Reviewed(
        r"^AwsSolutions-(IAM4|IAM5|L1)(\[.*\])?$",
        CDK_HELPERS,
        "A helper function that aws-cdk-lib itself creates (bucket deployment, bucket notifications, custom "
        "resource provider framework, log-group resource policy): its runtime and its policy are CDK's.",
    ),
    Reviewed(
        r"^AwsSolutions-IAM5\[Resource::arn:<AWS::Partition>:s3:::[a-z0-9-]+-documents-<AWS::AccountId>-<AWS::Region>/\*\]$",
        OUR_ROLES,
        "Objects in the documents bucket are keyed {tenant}/{document}/... at runtime; the tenant is checked "
        "by the handler. The actions are named one by one (no s3:* or s3:Get*).",
    ),
    Reviewed(
        r"^AwsSolutions-IAM5\[Resource::arn:<AWS::Partition>:es:<AWS::Region>:<AWS::AccountId>:domain/[a-z0-9-]+/\*\]$",
        OUR_ROLES,
        "OpenSearch HTTP paths (index, _bulk, _search, _search/pipeline) under this one domain; es:ESHttp* "
        "verbs are listed one by one.",
    ),
    Reviewed(
        r"^AwsSolutions-IAM5\[Resource::\*\]$",
        OUR_ROLES,
        "X-Ray's PutTraceSegments and PutTelemetryRecords (active tracing) have no resource-level ARNs.",
    ),
    Reviewed(
        r"^AwsSolutions-IAM5\[Resource::<Functions\w+\.Arn>:\*\]$",
        STATE_MACHINE_ROLES,
        "grant_invoke adds each task function's versions and aliases (<arn>:*); only lambda:InvokeFunction.",
    ),
    Reviewed(
        r"^AwsSolutions-IAM5\[Resource::\*\]$",
        STATE_MACHINE_ROLES,
        "X-Ray and CloudWatch Logs vended delivery (logs:CreateLogDelivery...) have no resource-level "
        "permissions; the state machine's own actions are scoped.",
    ),
    Reviewed(
        r"^AwsSolutions-IAM5\[Resource::arn:<AWS::Partition>:s3:::[a-z0-9-]+-documents-<AWS::AccountId>-"
        r"<AWS::Region>/lectern\.rebuild/(results/)?\*\]$",
        rf"({STATE_MACHINE_ROLES}|/Functions/ListDocumentsRole/DefaultPolicy/Resource$)",
        "The rebuild's document list and its Distributed Map results are named per run "
        "(lectern.rebuild/{run}/, lectern.rebuild/results/{map run}/), under a prefix no tenant can have.",
    ),
    Reviewed(
        r"^AwsSolutions-IAM5\[Resource::arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:"
        r"execution:[a-z0-9-]+-rebuild/\*\]$",
        STATE_MACHINE_ROLES,
        "A Distributed Map's child executions are named when they start: the rebuild may describe and stop "
        "the executions of its own state machine, and no other.",
    ),
    Reviewed(
        r"^AwsSolutions-IAM4\[Policy::.*AmazonAPIGatewayPushToCloudWatchLogs\]$",
        r"/Api/RestApi/CloudWatchRole/Resource$",
        "API Gateway's account-level logging role uses the AWS-managed policy AWS documents for it.",
    ),
    Reviewed(
        r"^AwsSolutions-COG8$",
        r"/Users/Pool/Resource$",
        "The Cognito Plus plan is a per-user monthly cost; self sign-up is off, users are invited, and the "
        "API is rate-limited by WAF and usage plans.",
    ),
)


def _covering(finding: str, path: str) -> Reviewed | None:
    for rule in REVIEWED:
        if re.search(rule.finding, finding) and re.search(rule.path, path):
            return rule
    return None


def acknowledge_reviewed(app: App | Stage) -> list[tuple[str, str]]:
    """Acknowledge the reviewed findings; return the (finding, path) pairs acknowledged."""
    report = AwsSolutionsChecks().validate_scope(app)
    by_path: dict[str, IConstruct] = {c.node.path: c for c in app.node.find_all()}
    done: list[tuple[str, str]] = []
    for violation in report.violations:
        for resource in violation.violating_resources:
            rule = _covering(violation.rule_name, resource.construct_path)
            if rule is None:
                continue
            construct = by_path[resource.construct_path]
            Validations.of(construct).acknowledge(Acknowledgment(id=violation.rule_name, reason=rule.reason))
            done.append((violation.rule_name, resource.construct_path))
    return done
