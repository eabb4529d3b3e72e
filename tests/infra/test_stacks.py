"""The synthesized templates, asserted property by property (Match/Capture), and cdk-nag's verdict.

Nothing is deployed (no AWS account here): these prove what CloudFormation would be asked to create.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from aws_cdk.assertions import Capture, Match
from cdk.config import LecternConfig, load_config
from cdk.constructs.api import ROUTES
from cdk.constructs.nag import CDK_HELPERS

from tests.infra.asl_harness import INGEST_ASL, REBUILD_ASL, placeholders

pytestmark = pytest.mark.timeout(300)

CONTRACT_ENV = {
    "LECTERN_DOCUMENTS_BUCKET",
    "LECTERN_TABLE_NAME",
    "LECTERN_OPENSEARCH_ENDPOINT",
    "LECTERN_OPENSEARCH_KIND",
    "LECTERN_OPENSEARCH_INDEX",
    "LECTERN_OPENSEARCH_PIPELINE",
    "LECTERN_EMBEDDING_MODEL_ID",
    "LECTERN_EMBEDDING_DIMENSION",
    "LECTERN_GENERATION_MODEL_ID",
    "LECTERN_STRONG_MODEL_ID",
    "LECTERN_GUARDRAIL_ID",
    "LECTERN_GUARDRAIL_VERSION",
    "LECTERN_FALLBACK_ENDPOINT_NAME",
    "LECTERN_RERANK_MODEL_ARN",
    "LECTERN_MAX_UPLOAD_BYTES",
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_METRICS_NAMESPACE",
}
PARTS = ("Data", "Search", "Service", "Web")


def resources(raw: dict, kind: str) -> dict[str, dict]:
    return {k: r for k, r in raw["Resources"].items() if r["Type"] == kind}


def our_functions(raw: dict) -> dict[str, dict]:
    return {
        k: r
        for k, r in resources(raw, "AWS::Lambda::Function").items()
        if k.startswith(("Functions", "Search")) and r["Properties"].get("Handler", "").startswith("lectern.")
    }


# -- cdk-nag -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("env_name", ["dev", "prod"])
def test_cdk_nag_finds_nothing_unacknowledged_and_every_acknowledgment_has_a_reason(env_name, request) -> None:
    synth = request.getfixturevalue(env_name)
    for plugin in synth.report()["pluginReports"]:
        assert plugin["violations"] == [], plugin
    acknowledged = 0
    for part in PARTS:
        for logical_id, res in synth.raw(part)["Resources"].items():
            for rule in res.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", []):
                acknowledged += 1
                assert len(rule["reason"]) >= 40, (logical_id, rule)
                if rule["id"].startswith("AwsSolutions-IAM5[Action::"):
                    path = res["Metadata"].get("aws:cdk:path", logical_id)
                    helper = re.search(CDK_HELPERS, path) or re.search(CDK_HELPERS.replace("::", ""), logical_id)
                    assert helper, f"action wildcard acknowledged outside CDK helpers: {path}"
    assert acknowledged > 10  # the reviewed list is in force (and written to the templates)


def test_no_wildcard_actions_for_s3_dynamodb_bedrock_in_our_policies(dev, prod) -> None:
    checked = 0
    for synth in (dev, prod):
        for part in PARTS:
            for logical_id, policy in resources(synth.raw(part), "AWS::IAM::Policy").items():
                if (
                    re.search(CDK_HELPERS, json.dumps(policy.get("Metadata", {})))
                    or "CDKBucketDeployment" in logical_id
                ):
                    continue
                for st in policy["Properties"]["PolicyDocument"]["Statement"]:
                    actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
                    for action in actions:
                        if action.split(":")[0] in {"s3", "dynamodb", "bedrock"}:
                            checked += 1
                            assert "*" not in action, (logical_id, action)
                    if any(a.startswith("bedrock:Invoke") for a in actions):
                        assert "foundation-model/*" not in json.dumps(st["Resource"]), (logical_id, st)
    assert checked > 30


# -- storage -------------------------------------------------------------------------------------------------


def test_documents_bucket_is_encrypted_versioned_private_tls_only_with_lifecycle_and_retained(dev) -> None:
    t = dev.template("Data")
    t.has_resource(
        "AWS::S3::Bucket",
        {
            "DeletionPolicy": "Retain",
            "UpdateReplacePolicy": "Retain",
            "Properties": Match.object_like(
                {
                    "BucketName": Match.any_value(),
                    "BucketEncryption": {
                        "ServerSideEncryptionConfiguration": [
                            {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
                        ]
                    },
                    "VersioningConfiguration": {"Status": "Enabled"},
                    "PublicAccessBlockConfiguration": {
                        "BlockPublicAcls": True,
                        "BlockPublicPolicy": True,
                        "IgnorePublicAcls": True,
                        "RestrictPublicBuckets": True,
                    },
                    "LoggingConfiguration": Match.object_like({"LogFilePrefix": "documents/"}),
                    "LifecycleConfiguration": {
                        "Rules": Match.array_with(
                            [
                                Match.object_like(
                                    {
                                        "Status": "Enabled",
                                        "NoncurrentVersionTransitions": [
                                            {"StorageClass": "STANDARD_IA", "TransitionInDays": 30},
                                            {"StorageClass": "GLACIER", "TransitionInDays": 90},
                                        ],
                                    }
                                )
                            ]
                        )
                    },
                }
            ),
        },
    )
    deny = Capture()
    t.has_resource_properties("AWS::S3::BucketPolicy", {"PolicyDocument": {"Statement": deny}})
    assert any(
        s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} for s in deny.as_array()
    )
    t.has_resource_properties(
        "Custom::S3BucketNotifications", {"NotificationConfiguration": {"EventBridgeConfiguration": {}}}
    )


def test_table_has_string_keys_pitr_ttl_and_is_retained(dev) -> None:
    dev.template("Data").has_resource(
        "AWS::DynamoDB::GlobalTable",
        {
            "DeletionPolicy": "Retain",
            "Properties": Match.object_like(
                {
                    "KeySchema": [
                        {"AttributeName": "pk", "KeyType": "HASH"},
                        {"AttributeName": "sk", "KeyType": "RANGE"},
                    ],
                    "AttributeDefinitions": Match.array_with([{"AttributeName": "pk", "AttributeType": "S"}]),
                    "BillingMode": "PAY_PER_REQUEST",
                    "TimeToLiveSpecification": {"AttributeName": "ttl", "Enabled": True},
                    "Replicas": [
                        Match.object_like({"PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True}})
                    ],
                }
            ),
        },
    )


def test_storage_is_only_in_the_data_stack_which_pause_keeps(dev) -> None:
    for part in ("Search", "Service", "Web"):
        raw = dev.raw(part)
        assert not resources(raw, "AWS::DynamoDB::GlobalTable") and not resources(raw, "AWS::Cognito::UserPool")
        for bucket in resources(raw, "AWS::S3::Bucket").values():
            assert bucket.get("DeletionPolicy") != "Retain"  # nothing left behind by pause but the Data stack


# -- functions -----------------------------------------------------------------------------------------------


def test_every_function_is_python312_arm64_traced_with_the_contract_environment(dev) -> None:
    fns = our_functions(dev.raw("Service"))
    handlers = {f["Properties"]["Handler"] for f in fns.values()}
    assert handlers == {
        "lectern.aws.handlers.api.handler",
        *(
            f"lectern.aws.handlers.ingest.{s}"
            for s in ("validate", "extract", "chunk", "embed_batch", "index", "mark_indexed", "mark_failed")
        ),
        "lectern.aws.handlers.rebuild.list_documents",
        "lectern.aws.handlers.rebuild.reindex_document",
        "lectern.aws.handlers.sweep.mark_stuck",
        "lectern.aws.handlers.removed.on_removed",
    }
    for fn in fns.values():
        p = fn["Properties"]
        assert p["Runtime"] == "python3.12" and p["Architectures"] == ["arm64"]
        assert p["TracingConfig"] == {"Mode": "Active"}
        env = p["Environment"]["Variables"]
        assert set(env) >= CONTRACT_ENV, CONTRACT_ENV - set(env)
        assert env["LECTERN_OPENSEARCH_KIND"] == "managed" and env["LECTERN_FALLBACK_ENDPOINT_NAME"] == ""
        assert env["LECTERN_GENERATION_MODEL_ID"] == "us.amazon.nova-lite-v1:0"
        assert env["POWERTOOLS_METRICS_NAMESPACE"] == "Lectern"


def test_reserved_concurrency_caps_the_embedder_and_in_prod_the_api(dev, prod) -> None:
    embed = Capture()
    dev.template("Service").has_resource_properties(
        "AWS::Lambda::Function",
        {"Handler": "lectern.aws.handlers.ingest.embed_batch", "ReservedConcurrentExecutions": embed},
    )
    assert embed.as_number() == load_config("dev").ingestion.embed_reserved_concurrency == 4
    prod.template("Service").has_resource_properties(
        "AWS::Lambda::Function",
        {"Handler": "lectern.aws.handlers.api.handler", "ReservedConcurrentExecutions": 50},
    )
    api = next(
        f for f in our_functions(dev.raw("Service")).values() if f["Properties"]["Handler"].endswith("api.handler")
    )
    assert "ReservedConcurrentExecutions" not in api["Properties"]


def test_bedrock_access_names_titan_nova_profiles_and_the_guardrail(dev) -> None:
    statements = [
        s
        for p in resources(dev.raw("Service"), "AWS::IAM::Policy").values()
        for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]
    text = json.dumps([s for s in statements if "bedrock" in json.dumps(s["Action"])])
    assert "foundation-model/amazon.titan-embed-text-v2:0" in text
    assert "inference-profile/us.amazon.nova-lite-v1:0" in text
    for region in ("us-east-1", "us-east-2", "us-west-2"):
        assert f"bedrock:{region}::foundation-model/amazon.nova-pro-v1:0" in text
    assert "bedrock:ApplyGuardrail" in text


# -- ingestion -----------------------------------------------------------------------------------------------


def test_state_machines_load_the_asl_files_with_every_substitution(dev) -> None:
    t = dev.template("Service")
    machines = resources(dev.raw("Service"), "AWS::StepFunctions::StateMachine")
    subs = {frozenset(m["Properties"]["DefinitionSubstitutions"]) for m in machines.values()}
    assert subs == {frozenset(placeholders(INGEST_ASL)), frozenset(placeholders(REBUILD_ASL))}
    for m in machines.values():
        assert "DefinitionS3Location" in m["Properties"] and "DefinitionString" not in m["Properties"]
        assert m["Properties"]["TracingConfiguration"] == {"Enabled": True}
        assert m["Properties"]["LoggingConfiguration"]["Level"] == "ALL"
    t.has_resource_properties(
        "AWS::StepFunctions::StateMachine",
        {
            "DefinitionSubstitutions": Match.object_like(
                {"EmbedMaxConcurrency": "4", "DeadLetterQueueUrl": Match.any_value()}
            )
        },
    )


def _policy_statements(raw: dict, fragment: str) -> list[dict]:
    return [
        s
        for k, p in resources(raw, "AWS::IAM::Policy").items()
        if fragment in k
        for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]


def test_rebuild_is_a_distributed_map_over_s3_with_exactly_the_grants_it_needs(dev, prod) -> None:
    for synth, env_name in ((dev, "dev"), (prod, "prod")):
        raw = synth.raw("Service")
        (rebuild,) = [
            m
            for m in resources(raw, "AWS::StepFunctions::StateMachine").values()
            if "ReindexMaxConcurrency" in m["Properties"]["DefinitionSubstitutions"]
        ]
        props = rebuild["Properties"]
        assert props["StateMachineName"] == f"lectern-{env_name}-rebuild"
        assert "documents" in json.dumps(props["DefinitionSubstitutions"]["DocumentsBucket"])
        text = json.dumps(_policy_statements(raw, "IngestionRebuildRole"))
        assert "lectern.rebuild/*" in text and "lectern.rebuild/results/*" in text
        assert '"states:StartExecution"' in text and f"stateMachine:lectern-{env_name}-rebuild" in text
        assert f"execution:lectern-{env_name}-rebuild/*" in text
        listing = _policy_statements(raw, "FunctionsListDocumentsRole")
        (write,) = [s for s in listing if s.get("Sid") == "WriteRebuildList"]
        assert write["Action"] == "s3:PutObject" and "lectern.rebuild/*" in json.dumps(write["Resource"])
    asl = json.loads(REBUILD_ASL.read_text().replace("${ReindexMaxConcurrency}", "2"))
    (state,) = [s for s in asl["States"].values() if s["Type"] == "Map"]
    assert state["ItemProcessor"]["ProcessorConfig"]["Mode"] == "DISTRIBUTED"
    assert state["ItemReader"]["Resource"] == "arn:aws:states:::s3:getObject"
    assert state["ResultWriter"]["Resource"] == "arn:aws:states:::s3:putObject"


def test_uploads_of_originals_start_ingestion_through_eventbridge(dev) -> None:
    target = Capture()
    dev.template("Service").has_resource_properties(
        "AWS::Events::Rule",
        {
            "EventPattern": {
                "source": ["aws.s3"],
                "detail-type": ["Object Created"],
                "detail": {
                    "bucket": {"name": Match.any_value()},
                    "object": {"key": [{"suffix": "/original"}]},
                },
            },
            "Targets": [Match.object_like({"Arn": target})],
        },
    )
    assert "IngestionIngest" in json.dumps(target.as_object())
    dev.template("Service").has_resource_properties(
        "AWS::SQS::Queue", {"SqsManagedSseEnabled": True, "MessageRetentionPeriod": 1209600}
    )


def test_a_deleted_original_removes_its_document_through_eventbridge_with_the_grants_it_needs(dev) -> None:
    """S3 "Object Deleted" of `*/original` -> on_removed (retried, then dead-lettered at both hops); the function
    may read the key (is it really gone), list and delete the document's objects, get and delete its record."""
    raw = dev.raw("Service")
    (rule,) = [
        r["Properties"]
        for r in resources(raw, "AWS::Events::Rule").values()
        if r["Properties"].get("EventPattern", {}).get("detail-type") == ["Object Deleted"]
    ]
    assert rule["EventPattern"]["source"] == ["aws.s3"]
    assert rule["EventPattern"]["detail"]["object"] == {"key": [{"suffix": "/original"}]}
    (target,) = rule["Targets"]
    fn_ref = target["Arn"]["Fn::GetAtt"][0]
    assert raw["Resources"][fn_ref]["Properties"]["Handler"] == "lectern.aws.handlers.removed.on_removed"
    assert target["RetryPolicy"] == {"MaximumRetryAttempts": 185, "MaximumEventAgeInSeconds": 86400}
    assert "UploadEventDeadLetters" in target["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0]
    (invoke,) = [
        c["Properties"]
        for c in resources(raw, "AWS::Lambda::EventInvokeConfig").values()
        if c["Properties"]["FunctionName"] == {"Ref": fn_ref}
    ]
    assert invoke["MaximumRetryAttempts"] == 2
    assert "UploadEventDeadLetters" in json.dumps(invoke["DestinationConfig"]["OnFailure"])
    actions = {a for st in _policy_statements(raw, "FunctionsRemovedRole") for a in _as_list(st["Action"])}
    assert {"s3:GetObject", "s3:DeleteObject", "s3:ListBucket", "dynamodb:GetItem", "dynamodb:DeleteItem"} <= actions
    assert not {"s3:PutObject", "dynamodb:PutItem", "dynamodb:UpdateItem"} & actions


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def test_versions_are_superseded_by_the_functions_that_mark_documents(dev) -> None:
    """A new version INDEXED (or FAILED) removes the older ones of its source path: the marking functions query
    the tenant's documents and delete a record and its objects (lectern.domain.ingest.IngestionPipeline)."""
    raw = dev.raw("Service")
    for role in ("FunctionsMarkIndexedRole", "FunctionsMarkFailedRole", "FunctionsReindexDocumentRole"):
        actions = {a for st in _policy_statements(raw, role) for a in _as_list(st["Action"])}
        assert {"dynamodb:Query", "dynamodb:DeleteItem", "s3:ListBucket", "s3:DeleteObject"} <= actions, role


def test_a_failed_upload_event_is_retried_then_dead_lettered_with_an_alarm(dev) -> None:
    raw = dev.raw("Service")
    (rule,) = [
        r
        for r in resources(raw, "AWS::Events::Rule").values()
        if r["Properties"].get("EventPattern", {}).get("detail-type") == ["Object Created"]
    ]
    (target,) = rule["Properties"]["Targets"]
    assert target["RetryPolicy"] == {"MaximumRetryAttempts": 185, "MaximumEventAgeInSeconds": 86400}
    dlq_ref = target["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0]
    dlq = raw["Resources"][dlq_ref]
    assert dlq["Type"] == "AWS::SQS::Queue" and "UploadEventDeadLetters" in dlq_ref
    assert dlq["Properties"]["SqsManagedSseEnabled"] is True
    # EventBridge may send to it (the queue policy CDK writes for a rule's DLQ), over TLS only
    policy = next(
        p["Properties"]["PolicyDocument"]["Statement"]
        for p in resources(raw, "AWS::SQS::QueuePolicy").values()
        if {"Ref": dlq_ref} in p["Properties"]["Queues"]
    )
    assert any(s.get("Principal") == {"Service": "events.amazonaws.com"} for s in policy)
    assert any(s["Effect"] == "Deny" and "aws:SecureTransport" in json.dumps(s) for s in policy)
    (alarm,) = [
        a["Properties"] for k, a in resources(raw, "AWS::CloudWatch::Alarm").items() if "UploadEventsNotDelivered" in k
    ]
    assert alarm["MetricName"] == "ApproximateNumberOfMessagesVisible" and alarm["Threshold"] == 1
    assert alarm["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [dlq_ref, "QueueName"]}}]
    assert "MonitoringAlarms" in json.dumps(alarm["AlarmActions"])


def test_a_periodic_sweep_fails_stuck_documents_through_the_status_index(dev) -> None:
    cfg = load_config("dev").ingestion
    raw = dev.raw("Service")
    (sweep_id, sweep) = next(
        (k, f) for k, f in our_functions(raw).items() if f["Properties"]["Handler"].endswith("sweep.mark_stuck")
    )
    env = sweep["Properties"]["Environment"]["Variables"]
    assert env["LECTERN_STUCK_UPLOADING_AFTER_MINUTES"] == str(cfg.stuck_after_minutes) == "180"
    assert env["LECTERN_STUCK_PROCESSING_AFTER_MINUTES"] == "180"
    (schedule,) = [
        r["Properties"] for r in resources(raw, "AWS::Events::Rule").values() if "ScheduleExpression" in r["Properties"]
    ]
    assert schedule["ScheduleExpression"] == f"rate({cfg.sweep_every_minutes} minutes)"
    assert schedule["Targets"][0]["Arn"] == {"Fn::GetAtt": [sweep_id, "Arn"]}
    statements = _policy_statements(raw, "FunctionsSweepStuckRole")
    (query,) = [s for s in statements if s.get("Sid") == "FindStuckDocuments"]
    assert query["Action"] == "dynamodb:Query" and "/index/status-updated" in json.dumps(query["Resource"])
    (mark,) = [s for s in statements if s.get("Sid") == "MarkStuckDocuments"]
    assert mark["Action"] == ["dynamodb:GetItem", "dynamodb:UpdateItem"]
    dev.template("Data").has_resource_properties(
        "AWS::DynamoDB::GlobalTable",
        {
            "GlobalSecondaryIndexes": [
                {
                    "IndexName": "status-updated",
                    "KeySchema": [
                        {"AttributeName": "status", "KeyType": "HASH"},
                        {"AttributeName": "updated_at", "KeyType": "RANGE"},
                    ],
                    "Projection": {"ProjectionType": "KEYS_ONLY"},
                }
            ]
        },
    )
    assert cfg.stuck_after_minutes * 60 > 2 * 3600  # past the ingestion machine's timeout


# -- API -----------------------------------------------------------------------------------------------------


def test_the_gateway_routes_are_the_apis_routes() -> None:
    """A route the app serves but API Gateway does not know is a 403 on AWS (and the reverse a 404): the CDK
    table must equal the committed OpenAPI spec, which tests/unit/test_openapi.py holds to the app's routes."""
    spec = json.loads((Path(__file__).resolve().parents[2] / "docs" / "openapi.json").read_text())
    served = {
        path.lstrip("/").replace("<", "{").replace(">", "}"): sorted(m.upper() for m in ops)
        for path, ops in spec["paths"].items()
    }
    assert {p: sorted(m) for p, m in ROUTES.items()} == served


def test_api_routes_use_the_cognito_authorizer_and_api_keys_except_health(dev) -> None:
    raw = dev.raw("Service")
    t = dev.template("Service")
    t.has_resource_properties(
        "AWS::ApiGateway::Authorizer",
        {"Type": "COGNITO_USER_POOLS", "IdentitySource": "method.request.header.Authorization"},
    )
    methods = [
        m["Properties"]
        for m in resources(raw, "AWS::ApiGateway::Method").values()
        if m["Properties"]["HttpMethod"] != "OPTIONS"
    ]
    assert len(methods) == sum(len(v) for v in ROUTES.values())
    public = [m for m in methods if m["AuthorizationType"] == "NONE"]
    assert len(public) == 1 and public[0].get("ApiKeyRequired") is not True
    for m in methods:
        if m is not public[0]:
            assert m["AuthorizationType"] == "COGNITO_USER_POOLS" and m["ApiKeyRequired"] is True
            assert "RequestValidatorId" in m
    t.has_resource_properties(
        "AWS::ApiGateway::RequestValidator", {"ValidateRequestBody": True, "ValidateRequestParameters": True}
    )
    t.has_resource_properties(
        "AWS::ApiGateway::Model",
        {
            "Schema": Match.object_like(
                {"required": ["question"], "properties": {"question": Match.object_like({"maxLength": 2000})}}
            )
        },
    )


def test_stage_has_access_logs_tracing_throttling_and_usage_plans(dev) -> None:
    t = dev.template("Service")
    t.has_resource_properties(
        "AWS::ApiGateway::Stage",
        {
            "StageName": "v1",
            "TracingEnabled": True,
            "AccessLogSetting": {
                "DestinationArn": Match.any_value(),
                "Format": Match.string_like_regexp("requestId"),
            },
            "MethodSettings": Match.array_with(
                [Match.object_like({"LoggingLevel": "ERROR", "ThrottlingRateLimit": 10, "ThrottlingBurstLimit": 20})]
            ),
        },
    )
    t.has_resource_properties(
        "AWS::ApiGateway::UsagePlan",
        {"Throttle": {"RateLimit": 5, "BurstLimit": 10}, "Quota": {"Limit": 10000, "Period": "DAY"}},
    )


def test_waf_rate_based_rule_protects_the_stage(dev) -> None:
    t = dev.template("Service")
    t.has_resource_properties(
        "AWS::WAFv2::WebACL",
        {
            "Scope": "REGIONAL",
            "DefaultAction": {"Allow": {}},
            "Rules": Match.array_with(
                [
                    Match.object_like(
                        {
                            "Name": "RateLimitPerIp",
                            "Action": {"Block": {}},
                            "Statement": {
                                "RateBasedStatement": {
                                    "Limit": 500,
                                    "AggregateKeyType": "IP",
                                    "EvaluationWindowSec": 300,
                                }
                            },
                        }
                    )
                ]
            ),
        },
    )
    t.resource_count_is("AWS::WAFv2::WebACLAssociation", 1)


# -- models --------------------------------------------------------------------------------------------------


def test_guardrail_blocks_pii_harm_prompt_attacks_a_topic_and_checks_grounding(dev) -> None:
    t = dev.template("Service")
    t.has_resource_properties(
        "AWS::Bedrock::Guardrail",
        {
            "SensitiveInformationPolicyConfig": {
                "PiiEntitiesConfig": Match.array_with(
                    [
                        {"Type": "US_SOCIAL_SECURITY_NUMBER", "Action": "BLOCK"},
                        {"Type": "CREDIT_DEBIT_CARD_NUMBER", "Action": "BLOCK"},
                        {"Type": "EMAIL", "Action": "ANONYMIZE"},
                        {"Type": "PHONE", "Action": "ANONYMIZE"},
                    ]
                )
            },
            "ContentPolicyConfig": {
                "FiltersConfig": Match.array_with(
                    [{"Type": "PROMPT_ATTACK", "InputStrength": "HIGH", "OutputStrength": "NONE"}]
                )
            },
            "TopicPolicyConfig": {"TopicsConfig": [Match.object_like({"Type": "DENY"})]},
            "ContextualGroundingPolicyConfig": {
                "FiltersConfig": Match.array_with([{"Type": "GROUNDING", "Threshold": 0.75}])
            },
        },
    )
    t.resource_count_is("AWS::Bedrock::GuardrailVersion", 1)


def _service_template(config: LecternConfig, outdir) -> dict:
    from aws_cdk import App
    from cdk.app import build

    app = App(context={"lectern:bundle": "none"}, outdir=str(outdir))
    stacks = build(app, config)
    return app.synth().get_stack_by_name(stacks["Service"].stack_name).template


def _guardrail_version(raw: dict) -> tuple[str, set[str]]:
    """(the GuardrailVersion's logical id, what every function's LECTERN_GUARDRAIL_VERSION names)"""
    (version_id,) = resources(raw, "AWS::Bedrock::GuardrailVersion")
    referenced = {
        json.dumps(f["Properties"]["Environment"]["Variables"]["LECTERN_GUARDRAIL_VERSION"])
        for f in our_functions(raw).values()
    }
    return version_id, referenced


def test_a_guardrail_edit_publishes_a_new_version_and_the_functions_follow_it(dev, tmp_path, monkeypatch) -> None:
    base = load_config("dev")
    first_id, first_refs = _guardrail_version(dev.raw("Service"))
    assert first_refs == {json.dumps({"Fn::GetAtt": [first_id, "Version"]})}
    same_id, _ = _guardrail_version(_service_template(base, tmp_path / "same"))
    assert same_id == first_id  # no edit: the same version resource, nothing republished

    data = base.model_dump()
    data["models"]["grounding_threshold"] = 0.8  # a threshold edit
    edited_id, edited_refs = _guardrail_version(
        _service_template(LecternConfig.model_validate(data), tmp_path / "edited")
    )
    assert edited_id != first_id and edited_id.startswith("ModelsGuardrailVersion")
    assert edited_refs == {json.dumps({"Fn::GetAtt": [edited_id, "Version"]})}

    import cdk.constructs.models as models

    monkeypatch.setattr(models, "CONTENT_FILTERS", [*models.CONTENT_FILTERS[:-1]])  # a code-level edit
    code_id, _ = _guardrail_version(_service_template(base, tmp_path / "code"))
    assert code_id not in {first_id, edited_id}


def test_fallback_model_is_off_by_default_and_wired_in_when_enabled(dev, tmp_path) -> None:
    assert not any(r["Type"].startswith("AWS::SageMaker::") for p in PARTS for r in dev.raw(p)["Resources"].values())
    from aws_cdk import App
    from aws_cdk.assertions import Template
    from cdk.app import build

    data = load_config("dev").model_dump()
    data["fallback"] = {"enabled": True, "model": {"model_s3_uri": "s3://lectern-models/qwen/v1/"}}
    app = App(context={"lectern:bundle": "none"}, outdir=str(tmp_path))
    stacks = build(app, LecternConfig.model_validate(data))
    raw = app.synth().get_stack_by_name(stacks["Service"].stack_name).template
    Template.from_json(raw).resource_count_is("AWS::SageMaker::Endpoint", 1)
    api = next(f for f in our_functions(raw).values() if f["Properties"]["Handler"].endswith("api.handler"))
    assert api["Properties"]["Environment"]["Variables"]["LECTERN_FALLBACK_ENDPOINT_NAME"] == "lectern-fallback"
    invoke = [
        s
        for p in resources(raw, "AWS::IAM::Policy").values()
        for s in p["Properties"]["PolicyDocument"]["Statement"]
        if "sagemaker:InvokeEndpoint" in json.dumps(s["Action"])
    ]
    assert len(invoke) == 1


# -- search --------------------------------------------------------------------------------------------------


def test_dev_uses_an_encrypted_https_only_domain_and_an_idempotent_setup_resource(dev) -> None:
    t = dev.template("Search")
    t.has_resource_properties(
        "AWS::OpenSearchService::Domain",
        {
            "EncryptionAtRestOptions": {"Enabled": True},
            "NodeToNodeEncryptionOptions": {"Enabled": True},
            "DomainEndpointOptions": Match.object_like(
                {"EnforceHTTPS": True, "TLSSecurityPolicy": "Policy-Min-TLS-1-2-2019-07"}
            ),
            "ClusterConfig": Match.object_like({"InstanceType": "t3.small.search", "InstanceCount": 1}),
        },
    )
    t.has_resource_properties(
        "Custom::LecternSearchSetup",
        {
            "IndexName": "lectern-chunks",
            "PipelineName": "lectern-hybrid",
            "Dimension": 1024,
            "Kind": "managed",
        },
    )
    t.has_resource_properties("AWS::Lambda::Function", {"Handler": "lectern.aws.handlers.setup.on_event"})


def test_prod_uses_a_serverless_vector_collection_with_policies_for_the_functions(prod) -> None:
    t = prod.template("Search")
    t.has_resource_properties(
        "AWS::OpenSearchServerless::Collection", {"Type": "VECTORSEARCH", "StandbyReplicas": "ENABLED"}
    )
    for kind in ("encryption", "network"):
        t.has_resource_properties("AWS::OpenSearchServerless::SecurityPolicy", {"Type": kind})
    policy = Capture()
    prod.template("Service").has_resource_properties(
        "AWS::OpenSearchServerless::AccessPolicy", {"Type": "data", "Policy": policy}
    )
    assert "aoss:WriteDocument" in json.dumps(policy.as_object()) and "Role" in json.dumps(policy.as_object())


# -- web -----------------------------------------------------------------------------------------------------


def test_frontend_is_private_behind_cloudfront_oac_with_runtime_config(dev) -> None:
    t = dev.template("Web")
    t.resource_count_is("AWS::CloudFront::OriginAccessControl", 1)
    t.has_resource_properties(
        "AWS::CloudFront::Distribution",
        {
            "DistributionConfig": Match.object_like(
                {
                    "Origins": [
                        Match.object_like(
                            {
                                "OriginAccessControlId": Match.any_value(),
                                "S3OriginConfig": {"OriginAccessIdentity": ""},
                            }
                        )
                    ],
                    "DefaultCacheBehavior": Match.object_like({"ViewerProtocolPolicy": "redirect-to-https"}),
                    "DefaultRootObject": "index.html",
                }
            )
        },
    )
    statements = Capture()
    t.has_resource_properties("AWS::S3::BucketPolicy", {"PolicyDocument": {"Statement": statements}})
    deploy = resources(dev.raw("Web"), "Custom::CDKBucketDeployment")
    assert "config.json" in json.dumps(dev.raw("Web")) and deploy
    # index.html links /static/app.js and /static/styles.css: the assets must land under static/, the page at the
    # root, and neither deployment may prune the other's files
    prefixes = sorted(str(d["Properties"].get("DestinationBucketKeyPrefix", "")) for d in deploy.values())
    assert prefixes == ["", "static/"], prefixes
    assert all(d["Properties"].get("Prune") is False for d in deploy.values())


def test_the_page_can_sign_in_and_call_the_api_from_its_origin(dev) -> None:
    # USER_PASSWORD_AUTH: the page has no SDK for SRP; tokens come from InitiateAuth over TLS
    dev.template("Data").has_resource_properties(
        "AWS::Cognito::UserPoolClient",
        {"ExplicitAuthFlows": Match.array_with(["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"])},
    )
    # the Lambda's responses carry CORS headers for the configured origins
    api_fn = [
        r["Properties"]
        for r in resources(dev.raw("Service"), "AWS::Lambda::Function").values()
        if r["Properties"].get("Handler") == "lectern.aws.handlers.api.handler"
    ]
    assert len(api_fn) == 1
    origins = json.loads(api_fn[0]["Environment"]["Variables"]["LECTERN_CORS_ORIGINS"])
    assert origins == load_config("dev").api.cors_allow_origins


# -- observability -------------------------------------------------------------------------------------------


def test_alarms_have_the_configured_thresholds_and_notify_the_topic(dev) -> None:
    cfg = load_config("dev").alarms
    raw = dev.raw("Service")
    alarms = {
        r["Properties"]["AlarmDescription"].split(" ")[0] + k: r["Properties"]
        for k, r in resources(raw, "AWS::CloudWatch::Alarm").items()
    }
    by_id = {k: r["Properties"] for k, r in resources(raw, "AWS::CloudWatch::Alarm").items()}

    def alarm(fragment: str) -> dict:
        (props,) = [p for k, p in by_id.items() if fragment in k]
        assert props["AlarmActions"] and "MonitoringAlarms" in json.dumps(props["AlarmActions"])
        return props

    assert alarm("Api5xxRate")["Threshold"] == cfg.api_5xx_rate_percent == 5
    assert "5XXError" in json.dumps(alarm("Api5xxRate")["Metrics"])
    assert alarm("ApiP95Latency")["Threshold"] == 10000 and alarm("ApiP95Latency")["ExtendedStatistic"] == "p95"
    assert alarm("IngestionFailures")["MetricName"] == "ExecutionsFailed"
    assert alarm("DeadLettersNotEmpty")["Threshold"] == 1
    cost = alarm("DailyCostOverBudget")
    assert cost["Threshold"] == cfg.daily_cost_budget_usd
    assert "QueryCostUSD" in json.dumps(cost["Metrics"]) and "EmbeddingTokens" in json.dumps(cost["Metrics"])
    assert len(alarms) == 11  # + ModelUnavailable, DocumentsStuck and the release alarms (test_release.py)


def test_dashboard_shows_api_lambda_model_ingestion_and_search_health(dev) -> None:
    body = json.dumps(dev.raw("Service")["Resources"])
    dash = next(r for r in resources(dev.raw("Service"), "AWS::CloudWatch::Dashboard").values())
    text = json.dumps(dash)
    for metric in (
        "p99",
        "4XXError",
        "Throttles",
        "InputTokens",
        "QueryCostUSD",
        "GuardrailInterventions",
        "FallbackUsed",
        "CacheHits",
        "ExecutionsSucceeded",
        "ApproximateAgeOfOldestMessage",
        "ClusterStatus.red",
        "FreeStorageSpace",
        # one metric per ingestion stage (lectern.aws.handlers.ingest, EMF), graphed at p95
        "IngestValidateMs",
        "IngestExtractMs",
        "IngestChunkMs",
        "IngestEmbedMs",
        "IngestIndexMs",
    ):
        assert metric in text, metric
    assert "Lectern" in body
    assert "Ingestion stage time p95" in text


# -- tags and config -----------------------------------------------------------------------------------------


def test_cost_allocation_tags_are_on_every_taggable_resource(dev) -> None:
    seen = 0
    for part in PARTS:
        for kind in (
            "AWS::S3::Bucket",
            "AWS::Lambda::Function",
            "AWS::SQS::Queue",
            "AWS::StepFunctions::StateMachine",
        ):
            for logical_id, res in resources(dev.raw(part), kind).items():
                if logical_id.startswith("CustomS3AutoDeleteObjectsCustomResourceProvider"):
                    continue  # CDK writes this provider as a raw CfnResource: the Tags aspect cannot reach it
                tags = res["Properties"].get("Tags")
                tags = (
                    {t["Key"]: t["Value"] for t in tags}
                    if isinstance(tags, list)
                    else {t["Key"]: t["Value"] for t in res["Properties"].get("Tags", [])}
                )
                want = {"project": "lectern", "environment": "dev", "cost-center": "lectern-dev"}
                assert want.items() <= tags.items(), (part, kind, tags)
                seen += 1
    assert seen > 15


def test_config_is_validated_at_synth() -> None:
    from pydantic import ValidationError

    base = load_config("dev").model_dump()
    for bad in (
        {"search": {"kind": "elastic"}},
        {"alarms": {"email": "nope"}},
        {"fallback": {"enabled": True}},
        {"ingestion": {"embed_max_concurrency": 0}},
        {"unknown": 1},
    ):
        with pytest.raises(ValidationError):
            LecternConfig.model_validate(base | bad)


def test_every_handler_the_templates_name_exists_in_the_package(dev) -> None:
    import importlib

    handlers = {f["Properties"]["Handler"] for p in ("Search", "Service") for f in our_functions(dev.raw(p)).values()}
    assert len(handlers) == 13
    for handler in handlers:
        module, name = handler.rsplit(".", 1)
        assert callable(getattr(importlib.import_module(module), name, None)), handler


def test_bedrock_guardrail_pii_policy_is_the_local_default_policy(dev) -> None:
    from lectern.domain.guardrails import GuardrailPolicy

    expected = {e: a for e, a in GuardrailPolicy().pii.items() if a != "NONE"}
    configs = Capture()
    dev.template("Service").has_resource_properties(
        "AWS::Bedrock::Guardrail",
        {"SensitiveInformationPolicyConfig": {"PiiEntitiesConfig": configs}},
    )
    got = {c["Type"]: c["Action"] for c in configs.as_array()}
    assert got == expected and "INTERNATIONAL_BANK_ACCOUNT_NUMBER" in got


def test_conversations_table_has_ttl_and_only_the_api_function_is_granted_it(dev) -> None:
    data = dev.raw("Data")
    tables = resources(data, "AWS::DynamoDB::GlobalTable")
    (conv_id,) = [k for k in tables if k.startswith("StoreConversations")]
    props = tables[conv_id]["Properties"]
    assert tables[conv_id]["DeletionPolicy"] == "Retain"
    assert props["TimeToLiveSpecification"] == {"AttributeName": "ttl", "Enabled": True}
    assert [k["AttributeName"] for k in props["KeySchema"]] == ["pk", "sk"]
    raw = dev.raw("Service")
    granted = {
        k: s
        for k, p in resources(raw, "AWS::IAM::Policy").items()
        for s in p["Properties"]["PolicyDocument"]["Statement"]
        if conv_id in json.dumps(s["Resource"])
    }
    assert list(granted) and all(k.startswith("FunctionsApiRole") for k in granted), list(granted)
    (statement,) = granted.values()
    assert sorted(statement["Action"]) == [
        "dynamodb:DeleteItem",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:Query",
        "dynamodb:UpdateItem",
    ]
    for fid, fn in our_functions(raw).items():
        env = fn["Properties"]["Environment"]["Variables"]
        assert ("LECTERN_CONVERSATIONS_TABLE" in env) == fid.startswith("FunctionsApi"), fid
