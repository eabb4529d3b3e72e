"""The documents bucket, the table and the conversations table: everything that must survive `scripts/pause`
(RETAIN on destroy).

Bucket layout (the handler contract): `{tenant}/{doc}/original` (the upload; EventBridge starts ingestion on
keys ending `/original`), `{tenant}/{doc}/extracted.json`, `{tenant}/{doc}/chunks.jsonl`,
`{tenant}/{doc}/embeddings/...` (stored vectors: the rebuild after a resume re-uses them, no Titan calls).
"""

from __future__ import annotations

from aws_cdk import Aws, Duration, RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_s3 as s3
from constructs import Construct

from lectern.adapters.aws.table import STATUS_INDEX, STATUS_INDEX_PK, STATUS_INDEX_SK


class DocumentStore(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, name: str, cors_allow_origins: list[str]
    ) -> None:
        super().__init__(scope, construct_id)
        self.access_logs = s3.Bucket(
            self,
            "AccessLogs",
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_PREFERRED,
            versioned=True,
            removal_policy=RemovalPolicy.RETAIN,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-access-logs",
                    expiration=Duration.days(365),
                    noncurrent_version_expiration=Duration.days(30),
                )
            ],
        )
        # A fixed name: the functions' policies name it without a cross-stack reference.
        self.bucket_name = f"{name}-documents-{Aws.ACCOUNT_ID}-{Aws.REGION}"
        self.bucket = s3.Bucket(
            self,
            "Documents",
            bucket_name=self.bucket_name,
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            minimum_tls_version=1.2,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            versioned=True,
            event_bridge_enabled=True,
            server_access_logs_bucket=self.access_logs,
            server_access_logs_prefix="documents/",
            removal_policy=RemovalPolicy.RETAIN,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="old-versions-to-ia-then-glacier",
                    noncurrent_version_transitions=[
                        s3.NoncurrentVersionTransition(
                            storage_class=s3.StorageClass.INFREQUENT_ACCESS,
                            transition_after=Duration.days(30),
                        ),
                        s3.NoncurrentVersionTransition(
                            storage_class=s3.StorageClass.GLACIER, transition_after=Duration.days(90)
                        ),
                    ],
                ),
                s3.LifecycleRule(
                    id="abort-incomplete-uploads", abort_incomplete_multipart_upload_after=Duration.days(1)
                ),
            ],
            # Browsers post the presigned upload form straight to S3.
            cors=[
                s3.CorsRule(
                    allowed_methods=[s3.HttpMethods.POST],
                    allowed_origins=cors_allow_origins,
                    allowed_headers=["*"],
                    max_age=3000,
                )
            ],
        )
        self.table = dynamodb.TableV2(
            self,
            "Table",
            partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name="sk", type=dynamodb.AttributeType.STRING),
            billing=dynamodb.Billing.on_demand(),
            time_to_live_attribute="ttl",  # cache and idempotency items expire
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            encryption=dynamodb.TableEncryptionV2.dynamo_owned_key(),
            deletion_protection=False,
            removal_policy=RemovalPolicy.RETAIN,
            # documents by status and age, for the stuck-document sweep (lectern.adapters.aws.table)
            global_secondary_indexes=[
                dynamodb.GlobalSecondaryIndexPropsV2(
                    index_name=STATUS_INDEX,
                    partition_key=dynamodb.Attribute(
                        name=STATUS_INDEX_PK, type=dynamodb.AttributeType.STRING
                    ),
                    sort_key=dynamodb.Attribute(name=STATUS_INDEX_SK, type=dynamodb.AttributeType.STRING),
                    projection_type=dynamodb.ProjectionType.KEYS_ONLY,
                )
            ],
        )
        # Conversation history (question and answer text): a table of its own, so only the API function is
        # granted it (the main table is read by the ingestion functions too). One item per conversation
        # (lectern.adapters.aws.dynamo_conversations); ttl moves past the last turn.
        self.conversations = dynamodb.TableV2(
            self,
            "Conversations",
            partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name="sk", type=dynamodb.AttributeType.STRING),
            billing=dynamodb.Billing.on_demand(),
            time_to_live_attribute="ttl",
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            encryption=dynamodb.TableEncryptionV2.dynamo_owned_key(),
            deletion_protection=False,
            removal_policy=RemovalPolicy.RETAIN,
        )
