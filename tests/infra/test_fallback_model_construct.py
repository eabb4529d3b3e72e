"""The fallback model construct, synthesized once with cdk-nag's AwsSolutions checks, asserted property by
property.

One app holds three stacks: the default (inference component, scale to zero) in us-east-1 with a grantee role,
the classic always-on endpoint in eu-west-1, and a region-agnostic stack (the image account comes from a
mapping). Nothing is deployed: no AWS account exists here, so whether SageMaker accepts these templates, TGI
starts on the GPU and scale-from-zero fires in time was not run for real.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION", "1")

import pytest
from aws_cdk import App, Environment, Stack, Validations
from aws_cdk import aws_iam as iam
from aws_cdk.assertions import Capture, Match, Template
from cdk.constructs.fallback_model import (
    TGI_REGISTRY_ACCOUNTS,
    FallbackModel,
    FallbackModelConfig,
)
from cdk_nag import AwsSolutionsChecks
from pydantic import ValidationError

pytestmark = pytest.mark.timeout(120)

MODEL_URI = "s3://lectern-models/qwen2.5-7b-instruct-w4a16/v1/"
TAG = "2.7.0-tgi3.3.6-gpu-py311-cu124-ubuntu22.04"
IMAGE = "763104351884.dkr.ecr.{region}.amazonaws.com/huggingface-pytorch-tgi-inference:" + TAG
KEY_ARN = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"


class Synth:
    def __init__(self) -> None:
        app = App()
        Validations.of(app).add_plugins(AwsSolutionsChecks(app, write_suppressions_to_cloud_formation=True))
        zero = Stack(app, "ScaleToZero", env=Environment(account="111122223333", region="us-east-1"))
        self.zero = FallbackModel(
            zero, "Fallback", FallbackModelConfig(model_s3_uri=MODEL_URI, model_kms_key_arn=KEY_ARN)
        )
        caller = iam.Role(zero, "ApiRole", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
        self.zero.grant_invoke(caller)
        classic = Stack(app, "Classic", env=Environment(account="111122223333", region="eu-west-1"))
        self.classic = FallbackModel(
            classic,
            "Fallback",
            FallbackModelConfig(
                model_s3_uri=MODEL_URI,
                scale_to_zero=False,
                instance_type="ml.g6.xlarge",
                quantize="awq",
                name="lectern-fallback-warm",
                max_instances=3,
                invocations_per_instance_target=20,
                extra_env={"MAX_CONCURRENT_REQUESTS": "64"},
            ),
        )
        agnostic = Stack(app, "Agnostic")
        FallbackModel(agnostic, "Fallback", FallbackModelConfig(model_s3_uri=MODEL_URI))
        self.assembly = app.synth()  # raises "Validation failed" on any unacknowledged AwsSolutions finding

    def template(self, name: str) -> Template:
        return Template.from_json(self.assembly.get_stack_by_name(name).template)

    def raw(self, name: str) -> dict:
        return self.assembly.get_stack_by_name(name).template


@pytest.fixture(scope="module")
def synth() -> Synth:
    return Synth()


def test_cdk_nag_reports_nothing_unacknowledged_and_every_acknowledgment_has_a_reason(synth: Synth) -> None:
    report = json.loads(Path(synth.assembly.directory, "validation-report.json").read_text())
    assert report["pluginReports"] == [], report
    raw = synth.raw("ScaleToZero")
    policy = next(
        r for k, r in raw["Resources"].items() if k.startswith("FallbackExecutionRoleDefaultPolicy")
    )
    acknowledged = policy["Metadata"]["cdk_nag"]["rules_to_suppress"]
    assert acknowledged, "the wildcards should be acknowledged, with reasons"
    for rule in acknowledged:
        assert rule["id"].startswith("AwsSolutions-IAM5") and len(rule["reason"]) > 40, rule


def test_model_uses_the_pinned_tgi_image_and_an_uncompressed_s3_prefix(synth: Synth) -> None:
    synth.template("ScaleToZero").has_resource_properties(
        "AWS::SageMaker::Model",
        {
            "EnableNetworkIsolation": True,
            "PrimaryContainer": {
                "Image": IMAGE.format(region="us-east-1"),
                "ModelDataSource": {
                    "S3DataSource": {
                        "S3Uri": MODEL_URI,
                        "S3DataType": "S3Prefix",
                        "CompressionType": "None",
                    }
                },
            },
        },
    )


def test_container_environment_is_what_tgi_reads(synth: Synth) -> None:
    env = Capture()
    synth.template("ScaleToZero").has_resource_properties(
        "AWS::SageMaker::Model", {"PrimaryContainer": {"Environment": env}}
    )
    assert env.as_object() == {
        "HF_MODEL_ID": "/opt/ml/model",
        "HF_MODEL_QUANTIZE": "compressed-tensors",
        "MAX_INPUT_TOKENS": "6144",
        "MAX_TOTAL_TOKENS": "8192",
        "MAX_BATCH_PREFILL_TOKENS": "8192",
        "SM_NUM_GPUS": "1",
        "HF_HUB_OFFLINE": "1",
    }
    synth.template("Classic").has_resource_properties(
        "AWS::SageMaker::Model",
        {
            "PrimaryContainer": {
                "Image": IMAGE.format(region="eu-west-1"),
                "Environment": Match.object_like(
                    {"HF_MODEL_QUANTIZE": "awq", "MAX_CONCURRENT_REQUESTS": "64"}
                ),
            }
        },
    )


def test_region_agnostic_stack_looks_the_image_account_up_in_a_mapping(synth: Synth) -> None:
    raw = synth.raw("Agnostic")
    (mapping,) = raw["Mappings"].values()
    assert {region: row["account"] for region, row in mapping.items()} == TGI_REGISTRY_ACCOUNTS
    image = Capture()
    Template.from_json(raw).has_resource_properties(
        "AWS::SageMaker::Model", {"PrimaryContainer": {"Image": image}}
    )
    joined = json.dumps(image.as_object())
    assert "Fn::FindInMap" in joined and "AWS::Region" in joined and "AWS::URLSuffix" in joined


def test_scale_to_zero_endpoint_hosts_an_inference_component_with_long_startup_timeouts(synth: Synth) -> None:
    t = synth.template("ScaleToZero")
    t.has_resource_properties(
        "AWS::SageMaker::EndpointConfig",
        {
            "ExecutionRoleArn": Match.any_value(),
            "ProductionVariants": [
                {
                    "VariantName": "AllTraffic",
                    "InstanceType": "ml.g5.xlarge",
                    "InitialInstanceCount": 1,
                    "ManagedInstanceScaling": {
                        "Status": "ENABLED",
                        "MinInstanceCount": 0,
                        "MaxInstanceCount": 2,
                    },
                    "RoutingConfig": {"RoutingStrategy": "LEAST_OUTSTANDING_REQUESTS"},
                }
            ],
        },
    )
    t.has_resource_properties("AWS::SageMaker::Endpoint", {"EndpointName": "lectern-fallback"})
    t.has_resource_properties(
        "AWS::SageMaker::InferenceComponent",
        {
            "InferenceComponentName": "lectern-fallback-ic",
            "VariantName": "AllTraffic",
            "RuntimeConfig": {"CopyCount": 1},
            "Specification": {
                "ComputeResourceRequirements": {
                    "NumberOfAcceleratorDevicesRequired": 1,
                    "MinMemoryRequiredInMb": 8192,
                },
                "StartupParameters": {
                    "ModelDataDownloadTimeoutInSeconds": 1200,
                    "ContainerStartupHealthCheckTimeoutInSeconds": 900,
                },
            },
        },
    )


def test_copies_scale_on_invocations_and_out_of_zero_on_refused_requests(synth: Synth) -> None:
    t = synth.template("ScaleToZero")
    t.has_resource_properties(
        "AWS::ApplicationAutoScaling::ScalableTarget",
        {
            "ServiceNamespace": "sagemaker",
            "ResourceId": "inference-component/lectern-fallback-ic",
            "ScalableDimension": "sagemaker:inference-component:DesiredCopyCount",
            "MinCapacity": 0,
            "MaxCapacity": 2,
            "RoleARN": Match.absent(),  # Application Auto Scaling's service-linked role, made if needed
        },
    )
    t.has_resource_properties(
        "AWS::ApplicationAutoScaling::ScalingPolicy",
        {
            "PolicyType": "TargetTrackingScaling",
            "TargetTrackingScalingPolicyConfiguration": {
                "TargetValue": 10,
                "PredefinedMetricSpecification": {
                    "PredefinedMetricType": "SageMakerInferenceComponentInvocationsPerCopy"
                },
                "ScaleInCooldown": 900,
                "ScaleOutCooldown": 120,
            },
        },
    )
    step_policy = Capture()
    t.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "Namespace": "AWS/SageMaker",
            "MetricName": "NoCapacityInvocationFailures",
            "Dimensions": [{"Name": "InferenceComponentName", "Value": "lectern-fallback-ic"}],
            "Statistic": "Maximum",
            "Threshold": 1,
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
            "EvaluationPeriods": 1,
            "AlarmActions": [step_policy],
        },
    )
    (logical_id,) = t.find_resources(
        "AWS::ApplicationAutoScaling::ScalingPolicy",
        {
            "Properties": {
                "PolicyType": "StepScaling",
                "StepScalingPolicyConfiguration": {
                    "AdjustmentType": "ChangeInCapacity",
                    "MetricAggregationType": "Maximum",
                    "StepAdjustments": [{"MetricIntervalLowerBound": 0, "ScalingAdjustment": 1}],
                },
            }
        },
    )
    assert step_policy.as_object() == {"Ref": logical_id}, (
        "the alarm must fire the scale-out-from-zero policy"
    )
    (target_id,) = t.find_resources("AWS::ApplicationAutoScaling::ScalableTarget")
    (ic_id,) = t.find_resources("AWS::SageMaker::InferenceComponent")
    assert ic_id in synth.raw("ScaleToZero")["Resources"][target_id]["DependsOn"]


def test_classic_endpoint_keeps_one_instance_and_scales_on_invocations_per_instance(synth: Synth) -> None:
    t = synth.template("Classic")
    t.resource_count_is("AWS::SageMaker::InferenceComponent", 0)
    t.resource_count_is("AWS::CloudWatch::Alarm", 0)
    t.has_resource_properties(
        "AWS::SageMaker::EndpointConfig",
        {
            "ProductionVariants": [
                {
                    "VariantName": "AllTraffic",
                    "ModelName": Match.any_value(),
                    "InstanceType": "ml.g6.xlarge",
                    "ModelDataDownloadTimeoutInSeconds": 1200,
                    "ContainerStartupHealthCheckTimeoutInSeconds": 900,
                }
            ]
        },
    )
    t.has_resource_properties(
        "AWS::ApplicationAutoScaling::ScalableTarget",
        {
            "ResourceId": "endpoint/lectern-fallback-warm/variant/AllTraffic",
            "ScalableDimension": "sagemaker:variant:DesiredInstanceCount",
            "MinCapacity": 1,
            "MaxCapacity": 3,
        },
    )
    t.has_resource_properties(
        "AWS::ApplicationAutoScaling::ScalingPolicy",
        {
            "TargetTrackingScalingPolicyConfiguration": Match.object_like(
                {
                    "TargetValue": 20,
                    "PredefinedMetricSpecification": {
                        "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"
                    },
                }
            ),
        },
    )


def _statements(template: Template, role_prefix: str) -> dict[str, dict]:
    policies = template.find_resources("AWS::IAM::Policy")
    (policy,) = [p for k, p in policies.items() if k.startswith(role_prefix)]
    return {
        s.get("Sid", str(i)): s for i, s in enumerate(policy["Properties"]["PolicyDocument"]["Statement"])
    }


def test_execution_role_reads_only_its_prefix_and_pulls_only_the_tgi_repository(synth: Synth) -> None:
    s = _statements(synth.template("ScaleToZero"), "FallbackExecutionRoleDefaultPolicy")
    resolved = json.dumps(s)
    assert s["ReadModelObjects"]["Action"] == "s3:GetObject"
    assert ":s3:::lectern-models/qwen2.5-7b-instruct-w4a16/v1/*" in json.dumps(
        s["ReadModelObjects"]["Resource"]
    )
    assert s["ListModelPrefix"]["Condition"] == {
        "StringLike": {"s3:prefix": ["qwen2.5-7b-instruct-w4a16/v1/*"]}
    }
    assert s["DecryptModelObjects"]["Resource"] == KEY_ARN
    assert ":ecr:us-east-1:763104351884:repository/huggingface-pytorch-tgi-inference" in json.dumps(
        s["PullTgiImage"]["Resource"]
    )
    assert s["EcrToken"]["Action"] == "ecr:GetAuthorizationToken"
    assert s["PutSageMakerMetrics"]["Condition"]["StringLike"]["cloudwatch:namespace"]
    assert "/aws/sagemaker/Endpoints/lectern-fallback" in resolved
    assert "/aws/sagemaker/InferenceComponents/lectern-fallback-ic" in resolved
    for statement in s.values():  # no service-wide actions
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert all("*" not in a for a in actions), statement


def test_grant_invoke_allows_only_this_endpoint_and_component(synth: Synth) -> None:
    (statement,) = _statements(synth.template("ScaleToZero"), "ApiRoleDefaultPolicy").values()
    assert statement["Action"] == ["sagemaker:InvokeEndpoint", "sagemaker:InvokeEndpointWithResponseStream"]
    resources = json.dumps(statement["Resource"])
    assert ':endpoint/lectern-fallback"' in resources
    assert ':inference-component/lectern-fallback-ic"' in resources
    assert synth.zero.invoke_target == {
        "EndpointName": "lectern-fallback",
        "InferenceComponentName": "lectern-fallback-ic",
    }
    assert synth.classic.invoke_target == {"EndpointName": "lectern-fallback-warm"}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"model_s3_uri": "s3://bucket/model.tar.gz"}, "prefix ending with '/'"),
        ({"max_input_tokens": 8192, "max_total_tokens": 8192}, "below max_total_tokens"),
        ({"max_batch_prefill_tokens": 1024}, "at least max_input_tokens"),
        ({"instance_type": "ml.p4d.24xlarge"}, "instance_type"),
        ({"extra_env": {"HF_MODEL_ID": "meta-llama/x"}}, "may not set HF_MODEL_ID"),
        ({"name": "Lectern_Fallback"}, "lower-case"),
        ({"model_data_download_timeout_s": 7200}, "3600"),
        ({"image_uri": "docker.io/library/tgi:latest"}, "ECR image URI"),
    ],
)
def test_config_rejects_settings_that_would_fail_at_deploy_time(changes: dict, message: str) -> None:
    with pytest.raises(ValidationError) as err:
        FallbackModelConfig(**{"model_s3_uri": MODEL_URI, **changes})
    assert message in str(err.value)


def test_a_region_without_a_pinned_image_needs_image_uri() -> None:
    stack = Stack(App(), "Far", env=Environment(account="111122223333", region="xx-moon-1"))
    with pytest.raises(ValueError, match="no pinned TGI image for region xx-moon-1"):
        FallbackModel(stack, "Fallback", FallbackModelConfig(model_s3_uri=MODEL_URI))
    mirror = "111122223333.dkr.ecr.xx-moon-1.amazonaws.com/mirror/tgi:3.3.6"
    model = FallbackModel(
        Stack(App(), "Mirror", env=Environment(account="111122223333", region="xx-moon-1")),
        "Fallback",
        FallbackModelConfig(model_s3_uri=MODEL_URI, image_uri=mirror),
    )
    assert model.model.primary_container.image == mirror  # type: ignore[union-attr]
