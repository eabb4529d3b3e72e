"""Service: the functions, the API, the ingestion and rebuild workflows, the guardrail, the optional fallback
model and the monitoring. Destroyed by `scripts/pause`; `scripts/resume` redeploys it, then starts the
rebuild."""

from __future__ import annotations

import json
from dataclasses import dataclass

from aws_cdk import Aws, CfnOutput, Duration, Stack
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from cdk.config import LecternConfig
from cdk.constructs.api import Api
from cdk.constructs.fallback_model import FallbackModel
from cdk.constructs.functions import Functions
from cdk.constructs.ingestion import INGEST_STEPS, REBUILD_STEPS, Ingestion
from cdk.constructs.lint import ignore
from cdk.constructs.models import Models
from cdk.constructs.observability import Observability
from cdk.constructs.release import Release, cost_anomaly_alarm
from cdk.stacks.data import DataStack
from cdk.stacks.search import SearchStack
from lectern.adapters.aws.table import STATUS_INDEX

# Per-function access (explicit actions only: no s3:*, dynamodb:*, bedrock:*). Each entry is what the
# function's code calls, traced by tests/aws (every handler runs there with exactly this policy enforced, and
# a grant no call uses fails tests/aws/test_iam_least_privilege.py).
OBJ_R = ["s3:GetObject"]
OBJ_RW = ["s3:GetObject", "s3:PutObject"]
ITEM_UPDATE = ["dynamodb:GetItem", "dynamodb:UpdateItem"]
SUPERSEDE_ITEMS = ["dynamodb:Query", "dynamodb:DeleteItem"]


@dataclass(frozen=True)
class Access:
    objects: list[str]  # on the documents bucket's objects
    list_bucket: bool  # s3:ListBucket: prefix listings, and a missing key reads as 404 (not 403) with it
    table: list[str]
    search: bool = False
    embed: bool = False
    generate: bool = False
    ocr: bool = False  # Amazon Textract text detection (lectern.adapters.aws.textract_ocr)
    conversations: tuple[str, ...] = ()  # on the conversations table (lectern.adapters.aws.dynamo_conversations)


# Textract's text detection has no resource types in IAM (Service Authorization Reference: "*" only); it reads
# an asynchronous job's PDF from the documents bucket with the caller's own s3:GetObject.
TEXTRACT_ACTIONS = [
    "textract:DetectDocumentText",
    "textract:StartDocumentTextDetection",
    "textract:GetDocumentTextDetection",
]

ACCESS = {
    # presigned POST (PutObject by the signer), document reads, delete of a document's objects; the query
    # trace is one BatchWriteItem of the question and its passages (lectern.adapters.aws.dynamo_queries)
    "Api": Access(
        ["s3:PutObject", "s3:DeleteObject"],
        True,
        [
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
            "dynamodb:DeleteItem",
            "dynamodb:Query",
            "dynamodb:BatchWriteItem",
        ],
        search=True,
        embed=True,
        generate=True,
        # create (conditional PutItem), read (GetItem), append a turn (UpdateItem), list (Query), delete
        conversations=(
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
            "dynamodb:Query",
            "dynamodb:DeleteItem",
        ),
    ),
    # Powertools idempotency: PutItem (in progress), UpdateItem (completed), DeleteItem (failed), GetItem
    "ValidateFunctionArn": Access(
        [], False, ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"]
    ),
    # OCR by Textract; its results and job id are objects next to the document (textract/*.json): a missing
    # one must read as missing (ListBucket), so a retry finds the job it started
    "ExtractFunctionArn": Access(OBJ_RW, True, ["dynamodb:GetItem"], ocr=True),
    "ChunkFunctionArn": Access(OBJ_RW, False, ["dynamodb:GetItem"]),
    # looks for the batch's stored vectors first: a missing key must read as missing (ListBucket)
    "EmbedBatchFunctionArn": Access(OBJ_RW, True, [], embed=True),
    "IndexFunctionArn": Access(OBJ_RW, False, [], search=True),
    # a version INDEXED (or FAILED) removes the older ones of its source path (IngestionPipeline.supersede): the
    # tenant's documents are queried, an older one's record deleted, its chunks withdrawn and its objects deleted
    # (prefix listing + DeleteObjects)
    "MarkIndexedFunctionArn": Access([*OBJ_RW, "s3:DeleteObject"], True, [*ITEM_UPDATE, *SUPERSEDE_ITEMS], search=True),
    "MarkFailedFunctionArn": Access(["s3:DeleteObject"], True, [*ITEM_UPDATE, *SUPERSEDE_ITEMS], search=True),
    # an original deleted in S3 (EventBridge "Object Deleted"): is it really gone (HeadObject), the record,
    # the chunks, the derived objects (lectern.aws.handlers.removed)
    "Removed": Access(
        ["s3:GetObject", "s3:DeleteObject"], True, ["dynamodb:GetItem", "dynamodb:DeleteItem"], search=True
    ),
    "ListDocumentsFunctionArn": Access([], True, []),
    # a document that never finished runs the whole pipeline here, whose mark_indexed supersedes older versions
    "ReindexDocumentFunctionArn": Access(
        [*OBJ_RW, "s3:DeleteObject"],
        True,
        ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", *SUPERSEDE_ITEMS],
        search=True,
        embed=True,
        ocr=True,  # a rebuild reads the stored Textract results; one never OCRed before is OCRed here
    ),
}


class ServiceStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: LecternConfig,
        data: DataStack,
        search: SearchStack,
        **kwargs,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.config = config
        bucket, table, backend = data.store.bucket, data.store.table, search.search
        self.models = Models(self, "Models", config=config)
        self.fallback = None
        if config.fallback.enabled:
            assert config.fallback.model is not None
            self.fallback = FallbackModel(self, "Fallback", config.fallback.model)
        env = {
            "LECTERN_DOCUMENTS_BUCKET": bucket.bucket_name,
            "LECTERN_TABLE_NAME": table.table_name,
            "LECTERN_OPENSEARCH_ENDPOINT": backend.endpoint,
            "LECTERN_OPENSEARCH_KIND": backend.kind,
            "LECTERN_OPENSEARCH_INDEX": config.search.index_name,
            "LECTERN_OPENSEARCH_PIPELINE": config.search.pipeline_name,
            **self.models.environment(),
            "LECTERN_FALLBACK_ENDPOINT_NAME": self.fallback.endpoint_name if self.fallback else "",
            # scale-to-zero hosts the model in an inference component: InvokeEndpoint must name it
            "LECTERN_FALLBACK_INFERENCE_COMPONENT": (
                (self.fallback.inference_component_name or "") if self.fallback else ""
            ),
            "LECTERN_MAX_UPLOAD_BYTES": str(config.ingestion.max_upload_bytes),
            # the Lambda's own responses carry the CORS headers (API Gateway answers only the preflight)
            "LECTERN_CORS_ORIGINS": json.dumps(config.api.cors_allow_origins),
            "POWERTOOLS_SERVICE_NAME": "lectern",
            "POWERTOOLS_METRICS_NAMESPACE": "Lectern",
        }
        self.functions = Functions(self, "Functions", environment=env, log_retention_days=config.log_retention_days)
        fns: dict[str, lambda_.Function] = {
            "Api": self.functions.make(
                "Api",
                "lectern.aws.handlers.api.handler",
                description="Lectern REST API",
                memory_mb=1769,
                timeout=Duration.seconds(29),
                reserved_concurrency=config.api.api_reserved_concurrency,
                # only the API function has the conversations table (history is question and answer text)
                environment={"LECTERN_CONVERSATIONS_TABLE": data.store.conversations.table_name},
            )
        }
        for key, (handler, memory, timeout) in {**INGEST_STEPS, **REBUILD_STEPS}.items():
            fns[key] = self.functions.make(
                key.removesuffix("FunctionArn"),
                handler,
                description=f"Lectern {handler.rsplit('.', 1)[-1]}",
                memory_mb=memory,
                timeout=Duration.seconds(timeout),
                # A ceiling on parallel Titan calls protects Bedrock's quota (and the rest of the account).
                reserved_concurrency=(
                    config.ingestion.embed_reserved_concurrency if key == "EmbedBatchFunctionArn" else None
                ),
            )
        fns["Removed"] = self.functions.make(
            "Removed",
            "lectern.aws.handlers.removed.on_removed",
            description="Lectern on_removed: a document original deleted in S3 takes its document out",
            memory_mb=256,
            timeout=Duration.seconds(60),
        )
        self.fns = fns
        # the API serves through the alias `live`, moved by a CodeDeploy canary (cdk/constructs/release.py)
        self.release = Release(self, "Release", function=fns["Api"], config=config.release)
        self._grant(fns, data, table, backend)
        self.ingestion = Ingestion(
            self,
            "Ingestion",
            bucket=bucket,
            functions=fns,
            embed_max_concurrency=config.ingestion.embed_max_concurrency,
            reindex_max_concurrency=config.ingestion.reindex_max_concurrency,
            log_retention=self.functions.retention,
            bucket_name=data.store.bucket_name,
            state_machine_prefix=f"{config.prefix.lower()}-{config.env_name}",
            on_removed=fns["Removed"],
        )
        self._sweep(fns, table, config)
        name = f"{config.prefix.lower()}-{config.env_name}"
        self.api = Api(
            self,
            "Api",
            handler=self.release.alias,
            user_pool=data.users.pool,
            config=config.api,
            log_retention=self.functions.retention,
            name=name,
        )
        search_metrics: list[cw.IMetric] = []
        if backend.kind == "managed":
            search_metrics = [
                backend.domain.metric_cluster_status_red(),
                backend.domain.metric_cluster_status_yellow(),
                backend.domain.metric_free_storage_space(),
                backend.domain.metric_search_latency(),
            ]
        else:
            search_metrics = [
                cw.Metric(
                    namespace="AWS/AOSS",
                    metric_name=m,
                    statistic="Average",
                    dimensions_map={"CollectionName": backend.name, "ClientId": self.account},
                )
                for m in ("SearchLatency", "IngestionRequestErrors", "SearchRequestErrors")
            ]
        self.observability = Observability(
            self,
            "Monitoring",
            name=name,
            config=config.alarms,
            api=self.api.rest_api,
            functions=fns,
            ingest=self.ingestion.ingest,
            dead_letters=self.ingestion.dead_letters,
            search_metrics=search_metrics,
            upload_dead_letters=self.ingestion.upload_dead_letters,
        )
        self._release_alarms(config)
        CfnOutput(self, "ApiUrl", value=self.api.rest_api.url)
        CfnOutput(self, "IngestStateMachineArn", value=self.ingestion.ingest.state_machine_arn)
        CfnOutput(self, "RebuildStateMachineArn", value=self.ingestion.rebuild.state_machine_arn)
        CfnOutput(self, "DeadLetterQueueUrl", value=self.ingestion.dead_letters.queue_url)
        CfnOutput(self, "UploadDeadLetterQueueUrl", value=self.ingestion.upload_dead_letters.queue_url)

    def _release_alarms(self, config: LecternConfig) -> None:
        """The canary's rollback alarms (5xx rate, p95 latency, guardrail intervention and thumbs-down rates),
        the cost-per-query anomaly alarm and the prompt A/B widgets, beside the other alarms."""
        mon = self.observability
        extra = self.release.release_alarms(config.alarms)
        action = cw_actions.SnsAction(mon.topic)
        for key, alarm in extra.items():
            alarm.add_alarm_action(action)
            mon.alarms[key] = alarm
        self.release.watch(
            [mon.alarms["Api5xxRate"], mon.alarms["ApiP95Latency"], *extra.values()]
        )
        self.cost_anomaly = cost_anomaly_alarm(self.release, config.alarms.cost_anomaly_band_stddevs)
        self.cost_anomaly.alarm_actions = [mon.topic.topic_arn]
        mon.dashboard.add_widgets(*Release.dashboard_widgets())
        mon.dashboard.add_widgets(
            cw.AlarmStatusWidget(
                title="Release alarms (roll the canary back)", width=24, alarms=list(extra.values())
            )
        )

    def _sweep(self, fns: dict[str, lambda_.Function], table, config: LecternConfig) -> None:
        """Every sweep_every_minutes, documents UPLOADING/PROCESSING past stuck_after_minutes become FAILED
        (lectern.aws.handlers.sweep): a Query on the table's status index, then a conditional update each."""
        minutes = str(config.ingestion.stuck_after_minutes)
        fn = self.functions.make(
            "SweepStuck",
            "lectern.aws.handlers.sweep.mark_stuck",
            description="Lectern mark_stuck: fail documents stuck uploading or processing",
            memory_mb=256,
            timeout=Duration.seconds(300),
            reserved_concurrency=1,  # one sweep at a time
            environment={
                "LECTERN_STUCK_UPLOADING_AFTER_MINUTES": minutes,
                "LECTERN_STUCK_PROCESSING_AFTER_MINUTES": minutes,
            },
        )
        role = fn.role
        assert role is not None
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="FindStuckDocuments",
                actions=["dynamodb:Query"],
                resources=[f"{table.table_arn}/index/{STATUS_INDEX}"],
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="MarkStuckDocuments",
                actions=["dynamodb:GetItem", "dynamodb:UpdateItem"],
                resources=[table.table_arn],
            )
        )
        # EventBridge invokes asynchronously: no Lambda-side retries (the next sweep is minutes away)
        fn.configure_async_invoke(retry_attempts=0, max_event_age=Duration.minutes(10))
        rule = events.Rule(
            self,
            "SweepSchedule",
            description="Fail documents stuck uploading or processing",
            schedule=events.Schedule.rate(Duration.minutes(config.ingestion.sweep_every_minutes)),
            targets=[targets.LambdaFunction(fn, retry_attempts=2, max_event_age=Duration.minutes(10))],
        )
        for child in rule.node.find_all():
            if isinstance(child, lambda_.CfnPermission):
                ignore(
                    child,
                    "ES1007",
                    "A failed sweep needs no async failure destination: EventBridge retries it, the next "
                    "scheduled run sweeps everything still stuck, and its errors show on the dashboard.",
                )
        ignore(
            rule.node.default_child,
            "ES4000",
            "A missed sweep needs no dead-letter queue: the schedule fires again within "
            "sweep_every_minutes and sweeps everything still stuck.",
        )
        fns["SweepStuck"] = fn

    def _grant(self, fns, data, table, backend) -> None:
        roles: list[iam.IRole] = []
        for key, access in ACCESS.items():
            fn = fns[key]
            role = fn.role
            assert role is not None
            for statement in _statements(access, data, table):
                role.add_to_principal_policy(statement)
            if access.search:
                backend.grant_http(role)
                roles.append(role)
            if access.embed:
                self.models.grant_embed(role)
            if access.generate:
                self.models.grant_generate(role)
                if self.fallback:
                    self.fallback.grant_invoke(fn)
        backend.data_access_policy(self, "FunctionsDataAccess", f"{backend.name}-fns", roles)


def _statements(access: Access, data, table) -> list[iam.PolicyStatement]:
    """The policy statements of one function's Access on the bucket, the tables and Textract."""
    out: list[iam.PolicyStatement] = []
    if access.objects:
        out.append(
            iam.PolicyStatement(
                sid="DocumentObjects",
                actions=access.objects,
                resources=[f"arn:{Aws.PARTITION}:s3:::{data.store.bucket_name}/*"],
            )
        )
    if access.list_bucket:
        out.append(
            iam.PolicyStatement(
                sid="ListDocumentPrefixes", actions=["s3:ListBucket"], resources=[data.store.bucket.bucket_arn]
            )
        )
    if access.table:
        out.append(iam.PolicyStatement(sid="Table", actions=access.table, resources=[table.table_arn]))
    if access.conversations:
        out.append(
            iam.PolicyStatement(
                sid="Conversations",
                actions=list(access.conversations),
                resources=[data.store.conversations.table_arn],
            )
        )
    if access.ocr:
        out.append(iam.PolicyStatement(sid="TextractOcr", actions=TEXTRACT_ACTIONS, resources=["*"]))
    return out
