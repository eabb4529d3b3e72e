"""The self-hosted fallback model: a 4-bit 7B model served by Hugging Face TGI on a SageMaker endpoint.

`FallbackModel(scope, id, FallbackModelConfig(model_s3_uri=..., quantize="compressed-tensors"))` creates:

- an execution role that can read only the model's S3 prefix (and decrypt with its KMS key if given), pull
  only the TGI image's repository, and write only this endpoint's logs;
- a `AWS::SageMaker::Model` with the TGI image and the weights from an uncompressed S3 prefix
  (`ModelDataSource.S3DataSource`, `S3Prefix`, `CompressionType: None`), so SageMaker copies the files to
  /opt/ml/model and TGI loads them with `HF_MODEL_ID=/opt/ml/model` (network isolation on, no hub access);
- with `scale_to_zero=True` (default): an endpoint with managed instance scaling (min 0 instances) hosting one
  inference component, a target-tracking policy on invocations per copy (one copy = one GPU = one instance
  here), and a step-scaling policy that a `NoCapacityInvocationFailures` alarm fires to bring the first copy
  back after the endpoint scaled to zero: SageMaker's documented scale-to-zero path. Idle, it costs nothing;
  the first request after that fails (the client reports the model as unavailable) while an instance starts,
  which takes minutes;
- with `scale_to_zero=False`: a classic endpoint (1..N instances) with target tracking on
  `SageMakerVariantInvocationsPerInstance`.

The TGI image comes from a pinned table: the Hugging Face LLM (TGI) deep learning container, TGI 3.3.6, tag
`2.7.0-tgi3.3.6-gpu-py311-cu124-ubuntu22.04` in the `huggingface-pytorch-tgi-inference` repository, with the
per-region registry accounts of the SageMaker Python SDK's `image_uri_config/huggingface-llm.json` (the tag is
the one that SDK's unit tests expect for TGI 3.3.6). `image_uri` overrides it (a private ECR mirror, a newer
tag).

Clients invoke the endpoint with `InferenceComponentName` set when scale_to_zero is on (see
`invoke_target`), and need `grant_invoke`.
"""

from __future__ import annotations

import re
from typing import Literal

from aws_cdk import Acknowledgment, Aws, CfnMapping, Stack, Token, Validations
from aws_cdk import aws_applicationautoscaling as appscaling
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cdk.constructs.release import runbook

TGI_REPOSITORY = "huggingface-pytorch-tgi-inference"
TGI_IMAGE_TAGS = {"3.3.6": "2.7.0-tgi3.3.6-gpu-py311-cu124-ubuntu22.04"}
# Registry account of the Hugging Face DLCs per region
# (sagemaker-python-sdk src/sagemaker/image_uri_config/huggingface-llm.json).
TGI_REGISTRY_ACCOUNTS = {
    "af-south-1": "626614931356",
    "ap-east-1": "871362719292",
    "ap-northeast-1": "763104351884",
    "ap-northeast-2": "763104351884",
    "ap-northeast-3": "364406365360",
    "ap-south-1": "763104351884",
    "ap-south-2": "772153158452",
    "ap-southeast-1": "763104351884",
    "ap-southeast-2": "763104351884",
    "ap-southeast-3": "907027046896",
    "ap-southeast-4": "457447274322",
    "ca-central-1": "763104351884",
    "ca-west-1": "204538143572",
    "cn-north-1": "727897471807",
    "cn-northwest-1": "727897471807",
    "eu-central-1": "763104351884",
    "eu-central-2": "380420809688",
    "eu-north-1": "763104351884",
    "eu-south-1": "692866216735",
    "eu-south-2": "503227376785",
    "eu-west-1": "763104351884",
    "eu-west-2": "763104351884",
    "eu-west-3": "763104351884",
    "il-central-1": "780543022126",
    "me-central-1": "914824155844",
    "me-south-1": "217643126080",
    "sa-east-1": "763104351884",
    "us-east-1": "763104351884",
    "us-east-2": "763104351884",
    "us-gov-east-1": "446045086412",
    "us-gov-west-1": "442386744353",
    "us-west-1": "763104351884",
    "us-west-2": "763104351884",
}
VARIANT_NAME = "AllTraffic"
MODEL_DIR = "/opt/ml/model"
_NAME_RE = re.compile(r"^[a-z0-9](-?[a-z0-9])*$")  # SageMaker ARNs carry endpoint names in lower case
_ECR_URI_RE = re.compile(
    r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(\.cn)?/(?P<repo>[a-z0-9._/-]+)[:@].+$"
)
_MANAGED_ENV = frozenset(
    {
        "HF_MODEL_ID",
        "HF_MODEL_QUANTIZE",
        "MAX_INPUT_TOKENS",
        "MAX_TOTAL_TOKENS",
        "MAX_BATCH_PREFILL_TOKENS",
        "SM_NUM_GPUS",
        "HF_HUB_OFFLINE",
    }
)
_S3_URI_RE = re.compile(r"^s3://(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])/(?P<prefix>\S+/)$")


class FallbackModelConfig(BaseModel):
    """Settings of the fallback endpoint, validated when the app synthesizes."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model_s3_uri: str = Field(description="Uncompressed model prefix, s3://bucket/path/ (ends with '/').")
    quantize: Literal["compressed-tensors", "awq", "gptq"] | None = Field(
        default="compressed-tensors", description="TGI's --quantize for the checkpoint (HF_MODEL_QUANTIZE)."
    )
    name: str = Field(default="lectern-fallback", max_length=48, description="Endpoint name (lower case).")
    instance_type: Literal["ml.g5.xlarge", "ml.g6.xlarge"] = "ml.g5.xlarge"
    tgi_version: Literal["3.3.6"] = "3.3.6"
    image_uri: str | None = Field(
        default=None, description="An ECR image URI instead of the pinned TGI image."
    )
    model_kms_key_arn: str | None = Field(
        default=None, description="KMS key of the model bucket, if SSE-KMS."
    )
    max_input_tokens: int = Field(default=6144, ge=16)
    max_total_tokens: int = Field(default=8192, ge=32)
    max_batch_prefill_tokens: int = Field(default=8192, ge=16)
    num_gpus: int = Field(default=1, ge=1, le=1, description="ml.g5.xlarge and ml.g6.xlarge have one GPU.")
    # A 7B W4A16 model is ~4.5 GB: the copy from S3 takes a minute or two, TGI's start (weights, Marlin
    # repack, CUDA graphs, warm-up) a few more. Both limits sit well above that (SageMaker allows 3600 s).
    model_data_download_timeout_s: int = Field(default=1200, ge=60, le=3600)
    container_startup_health_check_timeout_s: int = Field(default=900, ge=60, le=3600)
    scale_to_zero: bool = True
    max_instances: int = Field(default=2, ge=1, le=20)
    invocations_per_instance_target: float = Field(
        default=10.0, gt=0, description="Target invocations per minute per copy (= per instance)."
    )
    scale_in_cooldown_s: int = Field(default=900, ge=0)
    scale_out_cooldown_s: int = Field(default=120, ge=0)
    min_memory_mb: int = Field(default=8192, ge=1024, description="Host memory reserved for a copy.")
    network_isolation: bool = True
    extra_env: dict[str, str] = Field(default_factory=dict)

    @field_validator("model_s3_uri")
    @classmethod
    def _s3_prefix(cls, value: str) -> str:
        if not _S3_URI_RE.match(value):
            raise ValueError(
                "model_s3_uri must look like s3://bucket/path/to/model/ (a prefix ending with '/')"
            )
        return value

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME_RE.match(value):
            raise ValueError("name must be lower-case letters, digits and single hyphens")
        return value

    @field_validator("image_uri")
    @classmethod
    def _image(cls, value: str | None) -> str | None:
        if value is not None and not _ECR_URI_RE.match(value):
            raise ValueError(
                "image_uri must be an ECR image URI (ACCOUNT.dkr.ecr.REGION.amazonaws.com/REPO:TAG)"
            )
        return value

    @field_validator("extra_env")
    @classmethod
    def _env(cls, value: dict[str, str]) -> dict[str, str]:
        clash = sorted(set(value) & _MANAGED_ENV)
        if clash:
            raise ValueError(f"extra_env may not set {', '.join(clash)}; use the config fields")
        return value

    @model_validator(mode="after")
    def _tokens(self) -> FallbackModelConfig:
        if self.max_input_tokens >= self.max_total_tokens:
            raise ValueError("max_input_tokens must be below max_total_tokens (room for the answer)")
        if self.max_batch_prefill_tokens < self.max_input_tokens:
            raise ValueError(
                "max_batch_prefill_tokens must be at least max_input_tokens (TGI refuses to start)"
            )
        return self

    @property
    def bucket(self) -> str:
        m = _S3_URI_RE.match(self.model_s3_uri)
        assert m is not None
        return m["bucket"]

    @property
    def prefix(self) -> str:
        m = _S3_URI_RE.match(self.model_s3_uri)
        assert m is not None
        return m["prefix"]

    @property
    def inference_component_name(self) -> str:
        return f"{self.name}-ic"

    def environment(self) -> dict[str, str]:
        env = {
            "HF_MODEL_ID": MODEL_DIR,
            "MAX_INPUT_TOKENS": str(self.max_input_tokens),
            "MAX_TOTAL_TOKENS": str(self.max_total_tokens),
            "MAX_BATCH_PREFILL_TOKENS": str(self.max_batch_prefill_tokens),
            "SM_NUM_GPUS": str(self.num_gpus),
            "HF_HUB_OFFLINE": "1",  # the weights are local; never reach for the hub
        }
        if self.quantize:
            env["HF_MODEL_QUANTIZE"] = self.quantize
        return {**env, **self.extra_env}


class FallbackModel(Construct):
    """A TGI endpoint for the fallback model; see the module docstring for what it creates."""

    def __init__(self, scope: Construct, construct_id: str, config: FallbackModelConfig) -> None:
        super().__init__(scope, construct_id)
        self.config = config
        self.endpoint_name = config.name
        self.inference_component_name: str | None = (
            config.inference_component_name if config.scale_to_zero else None
        )
        image, repository_arn = self._image()
        self.role = self._execution_role(repository_arn)
        self.model = sagemaker.CfnModel(
            self,
            "Model",
            execution_role_arn=self.role.role_arn,
            enable_network_isolation=config.network_isolation,
            primary_container=sagemaker.CfnModel.ContainerDefinitionProperty(
                image=image,
                environment=config.environment(),
                model_data_source=sagemaker.CfnModel.ModelDataSourceProperty(
                    s3_data_source=sagemaker.CfnModel.S3DataSourceProperty(
                        s3_uri=config.model_s3_uri, s3_data_type="S3Prefix", compression_type="None"
                    )
                ),
            ),
        )
        self.model.node.add_dependency(self.role)  # the policy must be attached before SageMaker reads S3
        if config.scale_to_zero:
            self._inference_component_endpoint()
        else:
            self._classic_endpoint()

    # -- image and role ------------------------------------------------------------------------------------

    def _image(self) -> tuple[str, str]:
        if self.config.image_uri:
            m = _ECR_URI_RE.match(self.config.image_uri)
            assert m is not None
            arn = f"arn:{Aws.PARTITION}:ecr:{m['region']}:{m['account']}:repository/{m['repo']}"
            return self.config.image_uri, arn
        stack = Stack.of(self)
        region = stack.region
        if not Token.is_unresolved(region) and region not in TGI_REGISTRY_ACCOUNTS:
            raise ValueError(f"no pinned TGI image for region {region}; set image_uri")
        accounts = CfnMapping(
            self,
            "TgiImageAccounts",
            lazy=True,
            mapping={r: {"account": a} for r, a in TGI_REGISTRY_ACCOUNTS.items()},
        )
        account = accounts.find_in_map(region, "account")  # resolved at synth when the region is known
        tag = TGI_IMAGE_TAGS[self.config.tgi_version]
        suffix = stack.url_suffix
        if not Token.is_unresolved(region):  # a plain string in the template when the region is known
            suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
        image = f"{account}.dkr.ecr.{region}.{suffix}/{TGI_REPOSITORY}:{tag}"
        arn = f"arn:{stack.partition}:ecr:{region}:{account}:repository/{TGI_REPOSITORY}"
        return image, arn

    def _execution_role(self, repository_arn: str) -> iam.Role:
        cfg = self.config
        role = iam.Role(
            self,
            "ExecutionRole",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description=f"SageMaker execution role of the {cfg.name} TGI endpoint",
        )
        bucket_arn = f"arn:{Aws.PARTITION}:s3:::{cfg.bucket}"
        role.add_to_policy(
            iam.PolicyStatement(
                sid="ReadModelObjects",
                actions=["s3:GetObject"],
                resources=[f"{bucket_arn}/{cfg.prefix}*"],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="ListModelPrefix",
                actions=["s3:ListBucket"],
                resources=[bucket_arn],
                conditions={"StringLike": {"s3:prefix": [f"{cfg.prefix}*"]}},
            )
        )
        if cfg.model_kms_key_arn:
            role.add_to_policy(
                iam.PolicyStatement(
                    sid="DecryptModelObjects",
                    actions=["kms:Decrypt"],
                    resources=[cfg.model_kms_key_arn],
                    conditions={"StringEquals": {"kms:ViaService": f"s3.{Aws.REGION}.{Aws.URL_SUFFIX}"}},
                )
            )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="PullTgiImage",
                actions=[
                    "ecr:BatchCheckLayerAvailability",
                    "ecr:BatchGetImage",
                    "ecr:GetDownloadUrlForLayer",
                ],
                resources=[repository_arn],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="EcrToken",
                actions=["ecr:GetAuthorizationToken"],
                resources=["*"],
            )
        )
        log_groups = [f"/aws/sagemaker/Endpoints/{cfg.name}"]
        if cfg.scale_to_zero:
            log_groups.append(f"/aws/sagemaker/InferenceComponents/{cfg.inference_component_name}")
        group_arns = [
            f"arn:{Aws.PARTITION}:logs:{Aws.REGION}:{Aws.ACCOUNT_ID}:log-group:{g}" for g in log_groups
        ]
        role.add_to_policy(
            iam.PolicyStatement(
                sid="WriteEndpointLogs",
                actions=[
                    "logs:CreateLogGroup",
                    "logs:CreateLogStream",
                    "logs:DescribeLogStreams",
                    "logs:PutLogEvents",
                ],
                resources=[*group_arns, *(f"{a}:log-stream:*" for a in group_arns)],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="PutSageMakerMetrics",
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringLike": {"cloudwatch:namespace": ["/aws/sagemaker/*", "AWS/SageMaker"]}},
            )
        )
        policy = role.node.try_find_child("DefaultPolicy")
        assert policy is not None
        Validations.of(policy).acknowledge(
            Acknowledgment(
                id="AwsSolutions-IAM5[Resource::*]",
                reason="ecr:GetAuthorizationToken and cloudwatch:PutMetricData have no resource-level "
                "permissions (the latter is limited to SageMaker's namespaces by a condition).",
            ),
            Acknowledgment(
                id=f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::{cfg.bucket}/{cfg.prefix}*]",
                reason="Read access to the objects under this model's own prefix: the weights are several "
                "files whose names depend on the checkpoint.",
            ),
            *(
                Acknowledgment(
                    id="AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:logs:<AWS::Region>:<AWS::AccountId>:"
                    f"log-group:{g}:log-stream:*]",
                    reason="SageMaker names the log streams of this endpoint's own log group per instance.",
                )
                for g in log_groups
            ),
        )
        return role

    # -- endpoints ----------------------------------------------------------------------------------------

    def _endpoint(self, variant: sagemaker.CfnEndpointConfig.ProductionVariantProperty) -> None:
        self.endpoint_config = sagemaker.CfnEndpointConfig(
            self,
            "EndpointConfig",
            production_variants=[variant],
            execution_role_arn=self.role.role_arn if self.config.scale_to_zero else None,
        )
        self.endpoint_config.node.add_dependency(self.role)
        self.endpoint = sagemaker.CfnEndpoint(
            self,
            "Endpoint",
            endpoint_name=self.endpoint_name,
            endpoint_config_name=self.endpoint_config.attr_endpoint_config_name,
        )

    def _inference_component_endpoint(self) -> None:
        cfg = self.config
        self._endpoint(
            sagemaker.CfnEndpointConfig.ProductionVariantProperty(
                variant_name=VARIANT_NAME,
                instance_type=cfg.instance_type,
                initial_instance_count=1,
                managed_instance_scaling=sagemaker.CfnEndpointConfig.ManagedInstanceScalingProperty(
                    status="ENABLED",
                    min_instance_count=0,
                    max_instance_count=cfg.max_instances,
                ),
                routing_config=sagemaker.CfnEndpointConfig.RoutingConfigProperty(
                    routing_strategy="LEAST_OUTSTANDING_REQUESTS"
                ),
            )
        )
        ic_name = cfg.inference_component_name
        self.inference_component = sagemaker.CfnInferenceComponent(
            self,
            "InferenceComponent",
            inference_component_name=ic_name,
            endpoint_name=self.endpoint.attr_endpoint_name,
            variant_name=VARIANT_NAME,
            specification=sagemaker.CfnInferenceComponent.InferenceComponentSpecificationProperty(
                model_name=self.model.attr_model_name,
                compute_resource_requirements=(
                    sagemaker.CfnInferenceComponent.InferenceComponentComputeResourceRequirementsProperty(
                        number_of_accelerator_devices_required=cfg.num_gpus,
                        min_memory_required_in_mb=cfg.min_memory_mb,
                    )
                ),
                startup_parameters=sagemaker.CfnInferenceComponent.InferenceComponentStartupParametersProperty(
                    model_data_download_timeout_in_seconds=cfg.model_data_download_timeout_s,
                    container_startup_health_check_timeout_in_seconds=cfg.container_startup_health_check_timeout_s,
                ),
            ),
            runtime_config=sagemaker.CfnInferenceComponent.InferenceComponentRuntimeConfigProperty(
                copy_count=1
            ),
        )
        resource_id = f"inference-component/{ic_name}"
        dimension = "sagemaker:inference-component:DesiredCopyCount"
        # No RoleARN: Application Auto Scaling uses (and creates if needed) its SageMaker service-linked role.
        self.scalable_target = appscaling.CfnScalableTarget(
            self,
            "CopyScaling",
            service_namespace="sagemaker",
            resource_id=resource_id,
            scalable_dimension=dimension,
            min_capacity=0,
            max_capacity=cfg.max_instances,
        )
        self.scalable_target.add_resource_dependency(self.inference_component)
        self.target_tracking = self._target_tracking(
            cfg, "InvocationsPerCopy", "invocations-per-copy", "SageMakerInferenceComponentInvocationsPerCopy"
        )
        self.scale_out_from_zero = appscaling.CfnScalingPolicy(
            self,
            "ScaleOutFromZero",
            policy_name=f"{cfg.name}-scale-out-from-zero",
            policy_type="StepScaling",
            scaling_target_id=self.scalable_target.ref,
            step_scaling_policy_configuration=appscaling.CfnScalingPolicy.StepScalingPolicyConfigurationProperty(
                adjustment_type="ChangeInCapacity",
                metric_aggregation_type="Maximum",
                cooldown=cfg.scale_out_cooldown_s,
                step_adjustments=[
                    appscaling.CfnScalingPolicy.StepAdjustmentProperty(
                        metric_interval_lower_bound=0,
                        scaling_adjustment=1,
                    )
                ],
            ),
        )
        self.no_capacity_alarm = cloudwatch.CfnAlarm(
            self,
            "NoCapacityAlarm",
            alarm_description=f"{ic_name} has no copy running and refused a request: start one. "
            + runbook("model-throttling"),
            namespace="AWS/SageMaker",
            metric_name="NoCapacityInvocationFailures",
            dimensions=[cloudwatch.CfnAlarm.DimensionProperty(name="InferenceComponentName", value=ic_name)],
            statistic="Maximum",
            period=60,
            evaluation_periods=1,
            datapoints_to_alarm=1,
            threshold=1,
            comparison_operator="GreaterThanOrEqualToThreshold",
            treat_missing_data="missing",
            alarm_actions=[self.scale_out_from_zero.ref],
        )

    def _classic_endpoint(self) -> None:
        cfg = self.config
        self._endpoint(
            sagemaker.CfnEndpointConfig.ProductionVariantProperty(
                variant_name=VARIANT_NAME,
                model_name=self.model.attr_model_name,
                instance_type=cfg.instance_type,
                initial_instance_count=1,
                model_data_download_timeout_in_seconds=cfg.model_data_download_timeout_s,
                container_startup_health_check_timeout_in_seconds=cfg.container_startup_health_check_timeout_s,
                routing_config=sagemaker.CfnEndpointConfig.RoutingConfigProperty(
                    routing_strategy="LEAST_OUTSTANDING_REQUESTS"
                ),
            )
        )
        self.scalable_target = appscaling.CfnScalableTarget(
            self,
            "InstanceScaling",
            service_namespace="sagemaker",
            resource_id=f"endpoint/{cfg.name}/variant/{VARIANT_NAME}",
            scalable_dimension="sagemaker:variant:DesiredInstanceCount",
            min_capacity=1,
            max_capacity=cfg.max_instances,
        )
        self.scalable_target.add_resource_dependency(self.endpoint)
        metric = "SageMakerVariantInvocationsPerInstance"
        self.target_tracking = self._target_tracking(
            cfg, "InvocationsPerInstance", "invocations-per-instance", metric
        )

    def _target_tracking(
        self, cfg: FallbackModelConfig, construct_id: str, suffix: str, metric: str
    ) -> appscaling.CfnScalingPolicy:
        """Target tracking on invocations per instance/copy, on the scalable target made just before."""
        return appscaling.CfnScalingPolicy(
            self,
            construct_id,
            policy_name=f"{cfg.name}-{suffix}",
            policy_type="TargetTrackingScaling",
            scaling_target_id=self.scalable_target.ref,
            target_tracking_scaling_policy_configuration=(
                appscaling.CfnScalingPolicy.TargetTrackingScalingPolicyConfigurationProperty(
                    target_value=cfg.invocations_per_instance_target,
                    predefined_metric_specification=appscaling.CfnScalingPolicy.PredefinedMetricSpecificationProperty(
                        predefined_metric_type=metric
                    ),
                    scale_in_cooldown=cfg.scale_in_cooldown_s,
                    scale_out_cooldown=cfg.scale_out_cooldown_s,
                )
            ),
        )

    # -- for clients --------------------------------------------------------------------------------------

    @property
    def invoke_target(self) -> dict[str, str]:
        """Keyword arguments for sagemaker-runtime invoke_endpoint(_with_response_stream)."""
        target = {"EndpointName": self.endpoint_name}
        if self.inference_component_name:
            target["InferenceComponentName"] = self.inference_component_name
        return target

    def grant_invoke(self, grantee: iam.IGrantable) -> iam.Grant:
        """sagemaker:InvokeEndpoint(WithResponseStream) on this endpoint and its inference component."""
        arn = f"arn:{Aws.PARTITION}:sagemaker:{Aws.REGION}:{Aws.ACCOUNT_ID}"
        resources = [f"{arn}:endpoint/{self.endpoint_name}"]
        if self.inference_component_name:
            resources.append(f"{arn}:inference-component/{self.inference_component_name}")
        return iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["sagemaker:InvokeEndpoint", "sagemaker:InvokeEndpointWithResponseStream"],
            resource_arns=resources,
        )
