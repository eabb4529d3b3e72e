"""The search backend: a small managed OpenSearch domain (dev) or an OpenSearch Serverless vector collection,
chosen by config, plus a custom resource that creates the index and (on a domain) the hybrid search pipeline.

The custom resource's handler (`lectern.aws.handlers.setup.on_event`) is idempotent: "already exists" is
success, so a redeploy after `scripts/pause` + `scripts/resume` (a fresh domain) or onto a live one both work.
Its Delete
does nothing (the index goes with the domain).

Access is IAM (SigV4) only: the managed domain's resource policy trusts this account's principals, and each
function's role names the domain in an identity policy; on Serverless, data-access policies list the roles.
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, Aws, CustomResource, Duration, RemovalPolicy, Stack, Validations
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_opensearchserverless as aoss
from aws_cdk import aws_opensearchservice as opensearch
from aws_cdk import custom_resources as cr
from constructs import Construct

from cdk.config import LecternConfig
from cdk.constructs.functions import Functions

HTTP_ACTIONS = ["es:ESHttpGet", "es:ESHttpHead", "es:ESHttpPost", "es:ESHttpPut", "es:ESHttpDelete"]
# What the functions send (traced in tests/aws/test_iam_least_privilege.py): the setup creates the index and
# the pipeline (HEAD/GET/PUT); everything else is POST (_bulk, _msearch, _search, _delete_by_query, _count).
SETUP_HTTP = ["es:ESHttpGet", "es:ESHttpHead", "es:ESHttpPut"]
DATA_HTTP = ["es:ESHttpPost"]


class SearchBackend(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, config: LecternConfig) -> None:
        super().__init__(scope, construct_id)
        self.config = config
        self.kind = config.search.kind
        self.name = f"{config.prefix.lower()}-{config.env_name}"  # domain / collection name (<= 28 chars)
        # From the name (not the domain's attribute): policies in other stacks need no cross-stack import.
        self.domain_arn = f"arn:{Aws.PARTITION}:es:{Aws.REGION}:{Aws.ACCOUNT_ID}:domain/{self.name}"
        if self.kind == "managed":
            self._managed()
        else:
            self._serverless()
        self._setup()

    # -- managed domain -------------------------------------------------------------------------------------

    def _managed(self) -> None:
        s = self.config.search
        slow = logs.LogGroup(
            self, "SlowLogs", retention=logs.RetentionDays.TWO_WEEKS, removal_policy=RemovalPolicy.DESTROY
        )
        app = logs.LogGroup(
            self, "AppLogs", retention=logs.RetentionDays.TWO_WEEKS, removal_policy=RemovalPolicy.DESTROY
        )
        self.domain = opensearch.Domain(
            self,
            "Domain",
            domain_name=self.name,
            version=opensearch.EngineVersion.open_search(s.engine_version),
            capacity=opensearch.CapacityConfig(
                data_nodes=s.instance_count,
                data_node_instance_type=s.instance_type,
                multi_az_with_standby_enabled=False,
            ),
            ebs=opensearch.EbsOptions(volume_size=s.volume_gb, volume_type=ec2.EbsDeviceVolumeType.GP3),
            zone_awareness=opensearch.ZoneAwarenessConfig(enabled=s.instance_count > 1),
            encryption_at_rest=opensearch.EncryptionAtRestOptions(enabled=True),
            node_to_node_encryption=True,
            enforce_https=True,
            tls_security_policy=opensearch.TLSSecurityPolicy.TLS_1_2,
            logging=opensearch.LoggingOptions(
                slow_search_log_enabled=True,
                slow_search_log_group=slow,
                slow_index_log_enabled=True,
                slow_index_log_group=slow,
                app_log_enabled=True,
                app_log_group=app,
            ),
            removal_policy=RemovalPolicy.DESTROY,  # rebuilt from S3 by the rebuild workflow
            access_policies=[
                iam.PolicyStatement(
                    actions=HTTP_ACTIONS,
                    principals=[iam.AccountRootPrincipal()],
                    resources=[f"arn:{Aws.PARTITION}:es:{Aws.REGION}:{Aws.ACCOUNT_ID}:domain/{self.name}/*"],
                )
            ],
        )
        self.endpoint = f"https://{self.domain.domain_endpoint}"
        Validations.of(self.domain).acknowledge(
            Acknowledgment(
                id="AwsSolutions-OS1",
                reason="No VPC: a VPC domain needs NAT or endpoints for the "
                "Lambdas (a fixed monthly cost larger than the dev domain). Access is SigV4-signed IAM only.",
            ),
            Acknowledgment(
                id="AwsSolutions-OS3",
                reason="No IP allow-list: the resource policy admits only this "
                "account's IAM principals, and each function's role names the domain explicitly.",
            ),
            Acknowledgment(
                id="AwsSolutions-OS4",
                reason="Dedicated master nodes triple the cost of a one- or "
                "two-node domain; the index is rebuilt from S3 if the domain is lost.",
            ),
            Acknowledgment(
                id="AwsSolutions-OS5",
                reason="Anonymous access is not allowed: the policy's principal "
                "is the account root (IAM), which nag cannot tell from '*' without fine-grained access.",
            ),
            Acknowledgment(
                id="AwsSolutions-OS7",
                reason="Zone awareness is on when the config asks for more than "
                "one data node; a single-node dev domain cannot span zones.",
            ),
        )

    # -- serverless collection ------------------------------------------------------------------------------

    def _serverless(self) -> None:
        s = self.config.search
        encryption = aoss.CfnSecurityPolicy(
            self,
            "EncryptionPolicy",
            name=f"{self.name}-enc",
            type="encryption",
            policy=f'{{"Rules":[{{"ResourceType":"collection","Resource":["collection/{self.name}"]}}],'
            '"AWSOwnedKey":true}',
        )
        network = aoss.CfnSecurityPolicy(
            self,
            "NetworkPolicy",
            name=f"{self.name}-net",
            type="network",
            policy=f'[{{"Rules":[{{"ResourceType":"collection","Resource":["collection/{self.name}"]}}],'
            '"AllowFromPublic":true}]',
        )
        self.collection = aoss.CfnCollection(
            self,
            "Collection",
            name=self.name,
            type="VECTORSEARCH",
            standby_replicas="ENABLED" if s.standby_replicas else "DISABLED",
        )
        self.collection.add_dependency(encryption)
        self.collection.add_dependency(network)
        self.endpoint = self.collection.attr_collection_endpoint

    # -- grants ---------------------------------------------------------------------------------------------

    def grant_http(self, role: iam.IRole, actions: list[str] | None = None) -> None:
        """Read/write the index over HTTP (SigV4): on a domain the HTTP methods given (default POST, all a
        Service function sends), on paths under the domain; on Serverless the collection's API."""
        if self.kind == "managed":
            role.add_to_principal_policy(
                iam.PolicyStatement(
                    sid="OpenSearchHttp",
                    actions=actions or DATA_HTTP,
                    resources=[f"{self.domain_arn}/*"],
                )
            )
            return
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="OpenSearchServerless",
                actions=["aoss:APIAccessAll"],
                resources=[self.collection.attr_arn],
            )
        )

    def data_access_policy(
        self, scope: Construct, construct_id: str, name: str, roles: list[iam.IRole]
    ) -> aoss.CfnAccessPolicy | None:
        """Serverless only: the collection's data-access policy for these roles (None for a domain)."""
        if self.kind != "serverless":
            return None
        arns = ",".join(f'"{r.role_arn}"' for r in roles)
        idx = self.config.search.index_name
        return aoss.CfnAccessPolicy(
            scope,
            construct_id,
            name=name,
            type="data",
            policy=(
                f'[{{"Rules":[{{"ResourceType":"index","Resource":["index/{self.name}/{idx}*"],'
                '"Permission":["aoss:CreateIndex","aoss:DescribeIndex","aoss:UpdateIndex","aoss:ReadDocument",'
                '"aoss:WriteDocument"]},'
                f'{{"ResourceType":"collection","Resource":["collection/{self.name}"],'
                '"Permission":["aoss:DescribeCollectionItems"]}],'
                f'"Principal":[{arns}]}}]'
            ),
        )

    # -- index + pipeline -----------------------------------------------------------------------------------

    def _setup(self) -> None:
        cfg = self.config
        env = {
            "LECTERN_OPENSEARCH_ENDPOINT": self.endpoint,
            "LECTERN_OPENSEARCH_KIND": self.kind,
            "LECTERN_OPENSEARCH_INDEX": cfg.search.index_name,
            "LECTERN_OPENSEARCH_PIPELINE": cfg.search.pipeline_name,
            "LECTERN_EMBEDDING_DIMENSION": str(cfg.models.embedding_dimension),
            "POWERTOOLS_SERVICE_NAME": "lectern",
            "POWERTOOLS_METRICS_NAMESPACE": "Lectern",
        }
        functions = Functions(self, "Functions", environment=env, log_retention_days=cfg.log_retention_days)
        self.setup_function = functions.make(
            "SetupIndex",
            "lectern.aws.handlers.setup.on_event",
            description="Creates the OpenSearch index and hybrid search pipeline (idempotent)",
            timeout=Duration.minutes(5),
        )
        assert self.setup_function.role is not None
        self.grant_http(self.setup_function.role, SETUP_HTTP)
        setup_access = self.data_access_policy(
            self, "SetupDataAccess", f"{self.name}-setup", [self.setup_function.role]
        )
        provider = cr.Provider(
            self,
            "Provider",
            on_event_handler=self.setup_function,
            log_group=logs.LogGroup(
                self,
                "ProviderLogs",
                retention=logs.RetentionDays.TWO_WEEKS,
                removal_policy=RemovalPolicy.DESTROY,
            ),
        )
        self.setup = CustomResource(
            self,
            "IndexAndPipeline",
            service_token=provider.service_token,
            resource_type="Custom::LecternSearchSetup",
            properties={
                "Endpoint": self.endpoint,
                "Kind": self.kind,
                "IndexName": cfg.search.index_name,
                "PipelineName": cfg.search.pipeline_name,
                "Dimension": cfg.models.embedding_dimension,
                "SchemaVersion": "1",  # bump to make CloudFormation call Update (the handler re-applies)
            },
        )
        if self.kind == "managed":
            self.setup.node.add_dependency(self.domain)
        else:
            self.setup.node.add_dependency(self.collection)
            # the setup's first request must find its data-access policy in force (else a 403 race)
            assert setup_access is not None
            self.setup.node.add_dependency(setup_access)

    @property
    def stack(self) -> Stack:
        return Stack.of(self)
