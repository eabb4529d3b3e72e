"""S3 upload -> EventBridge -> the ingestion state machine; the rebuild state machine; the dead-letter queue.

Both definitions are ASL files in `state_machines/`, loaded with `DefinitionBody.from_file` and filled by
CloudFormation's DefinitionSubstitutions (function ARNs, the DLQ URL, Map concurrency).
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import Acknowledgment, Aws, Duration, RemovalPolicy, Validations
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from cdk.constructs.lint import ignore
from lectern.domain.ingest import INGESTION_STEPS

STATE_MACHINES = Path(__file__).resolve().parents[2] / "state_machines"
# The ingestion steps are the domain's table (lectern.domain.ingest.INGESTION_STEPS, which the local worker runs
# and the ASL follows: tests/infra/test_state_machines.py); here only what a Lambda needs besides: its size, and
# the handler's name where it is not the step's.
STEP_SIZING = {  # step -> (memory MB, timeout s)
    "validate": (256, 30),
    "extract": (1769, 300),
    "chunk": (1024, 120),
    "embed": (512, 120),
    "index": (1024, 300),
    "mark_indexed": (256, 30),
}
STEP_HANDLER = {"embed": "embed_batch"}  # the embed step runs per batch (a Map state) on AWS
if set(STEP_SIZING) != set(INGESTION_STEPS):
    raise RuntimeError(f"cdk/constructs/ingestion.py sizes {sorted(STEP_SIZING)}, the pipeline has {INGESTION_STEPS}")


def _arn_key(handler: str) -> str:
    return "".join(part.capitalize() for part in handler.split("_")) + "FunctionArn"


INGEST_STEPS = {  # ASL substitution -> (handler, memory MB, timeout s), in the pipeline's order
    **{
        _arn_key(STEP_HANDLER.get(step, step)): (
            f"lectern.aws.handlers.ingest.{STEP_HANDLER.get(step, step)}",
            *STEP_SIZING[step],
        )
        for step in INGESTION_STEPS
    },
    "MarkFailedFunctionArn": ("lectern.aws.handlers.ingest.mark_failed", 256, 30),
}
REBUILD_PREFIX = "lectern.rebuild"  # lectern.aws.jobs.REBUILD_PREFIX: the list, and the results (ResultWriter)
REBUILD_STEPS = {
    "ListDocumentsFunctionArn": ("lectern.aws.handlers.rebuild.list_documents", 512, 300),
    "ReindexDocumentFunctionArn": ("lectern.aws.handlers.rebuild.reindex_document", 1024, 900),
}


class Ingestion(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        bucket: s3.IBucket,
        functions: dict[str, lambda_.IFunction],
        embed_max_concurrency: int,
        reindex_max_concurrency: int,
        log_retention: logs.RetentionDays,
        bucket_name: str | None = None,
        state_machine_prefix: str = "lectern",
        on_removed: lambda_.IFunction | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        bucket_name = bucket_name or bucket.bucket_name
        self.dead_letters = sqs.Queue(
            self,
            "DeadLetters",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(14),
        )
        Validations.of(self.dead_letters).acknowledge(
            Acknowledgment(
                id="AwsSolutions-SQS3",
                reason="This queue is itself the dead-letter queue of the "
                "ingestion workflow (Step Functions sends failures to it); it needs no DLQ of its own.",
            )
        )
        self.upload_dead_letters = sqs.Queue(
            self,
            "UploadEventDeadLetters",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(14),
        )
        Validations.of(self.upload_dead_letters).acknowledge(
            Acknowledgment(
                id="AwsSolutions-SQS3",
                reason="This queue is itself the dead-letter queue of the upload rule's target (EventBridge "
                "sends the events it could not deliver to it); it needs no DLQ of its own.",
            )
        )
        for queue in (self.dead_letters, self.upload_dead_letters):
            ignore(
                queue.node.default_child,
                "ES6000",
                "A dead-letter queue has no redrive policy of its own: it is where failures end, "
                "for an operator to inspect and redrive.",
            )
        self.ingest = self._state_machine(
            "Ingest",
            "ingest.asl.json",
            {
                **{k: functions[k].function_arn for k in INGEST_STEPS},
                "DeadLetterQueueUrl": self.dead_letters.queue_url,
                "EmbedMaxConcurrency": str(embed_max_concurrency),
            },
            [functions[k] for k in INGEST_STEPS],
            log_retention,
        )
        self.dead_letters.grant_send_messages(self.ingest)
        # The rebuild is a Distributed Map: ListDocuments writes the document list to S3, the map reads it
        # (ItemReader) and writes the per-document results back (ResultWriter), and runs one child execution
        # per document. A fixed name lets its own policy name it (StartExecution on itself) without a cycle.
        rebuild_name = f"{state_machine_prefix}-rebuild"
        self.rebuild = self._state_machine(
            "Rebuild",
            "rebuild.asl.json",
            {
                **{k: functions[k].function_arn for k in REBUILD_STEPS},
                "ReindexMaxConcurrency": str(reindex_max_concurrency),
                "DocumentsBucket": bucket_name,
            },
            [functions[k] for k in REBUILD_STEPS],
            log_retention,
            name=rebuild_name,
            timeout=Duration.hours(24),  # 10,000 documents at concurrency 2 take hours, not minutes
        )
        objects = f"arn:{Aws.PARTITION}:s3:::{bucket_name}/{REBUILD_PREFIX}"
        functions["ListDocumentsFunctionArn"].add_to_role_policy(
            iam.PolicyStatement(sid="WriteRebuildList", actions=["s3:PutObject"], resources=[f"{objects}/*"])
        )
        machine_arn = f"arn:{Aws.PARTITION}:states:{Aws.REGION}:{Aws.ACCOUNT_ID}:stateMachine:{rebuild_name}"
        execution_arns = f"arn:{Aws.PARTITION}:states:{Aws.REGION}:{Aws.ACCOUNT_ID}:execution:{rebuild_name}/*"
        for statement in (
            iam.PolicyStatement(sid="ReadRebuildList", actions=["s3:GetObject"], resources=[f"{objects}/*"]),
            iam.PolicyStatement(
                sid="WriteRebuildResults",
                actions=[
                    "s3:PutObject",
                    "s3:GetObject",
                    "s3:ListMultipartUploadParts",
                    "s3:AbortMultipartUpload",
                ],
                resources=[f"{objects}/results/*"],
            ),
            iam.PolicyStatement(sid="StartChildExecutions", actions=["states:StartExecution"], resources=[machine_arn]),
            iam.PolicyStatement(
                sid="ManageChildExecutions",
                actions=["states:DescribeExecution", "states:StopExecution"],
                resources=[execution_arns],
            ),
        ):
            self.rebuild.add_to_role_policy(statement)
        self.rule = events.Rule(
            self,
            "OnUpload",
            description="A document's original was uploaded: ingest it",
            event_pattern=events.EventPattern(
                source=["aws.s3"],
                detail_type=["Object Created"],
                detail={
                    "bucket": {"name": [bucket.bucket_name]},
                    "object": {"key": [{"suffix": "/original"}]},
                },
            ),
            targets=[
                targets.SfnStateMachine(
                    self.ingest,
                    # StartExecution throttled or failing: EventBridge retries with backoff for up to a day,
                    # then the event goes to this queue instead of being dropped; the stuck-document sweep
                    # marks the document FAILED meanwhile, and a redriven event still ingests it.
                    dead_letter_queue=self.upload_dead_letters,
                    retry_attempts=185,
                    max_event_age=Duration.hours(24),
                )
            ],
        )

        if on_removed is not None:
            self._on_removed(bucket, on_removed)

    def _on_removed(self, bucket: s3.IBucket, fn: lambda_.IFunction) -> None:
        """S3 "Object Deleted" of a document's original -> lectern.aws.handlers.removed: the document, its chunks
        and its vectors go. A delivery EventBridge cannot make, and an invocation that keeps failing after
        Lambda's own retries, both end in the upload dead-letter queue (nothing is dropped)."""
        assert isinstance(fn, lambda_.Function)
        fn.configure_async_invoke(
            retry_attempts=2,
            max_event_age=Duration.hours(6),
            on_failure=destinations.SqsDestination(self.upload_dead_letters),
        )
        self.removed_rule = events.Rule(
            self,
            "OnRemoved",
            description="A document's original was deleted: remove the document, its chunks and vectors",
            event_pattern=events.EventPattern(
                source=["aws.s3"],
                detail_type=["Object Deleted"],
                detail={
                    "bucket": {"name": [bucket.bucket_name]},
                    "object": {"key": [{"suffix": "/original"}]},
                },
            ),
            targets=[
                targets.LambdaFunction(
                    fn,
                    dead_letter_queue=self.upload_dead_letters,
                    retry_attempts=185,
                    max_event_age=Duration.hours(24),
                )
            ],
        )
        for child in self.removed_rule.node.find_all():
            if isinstance(child, lambda_.CfnPermission):
                ignore(
                    child,
                    "ES1007",
                    "The function has its EventInvokeConfig (2 retries, then the upload dead-letter queue as its "
                    "OnFailure destination, configured above); the rule does not relate it to this permission.",
                )

    def _state_machine(
        self,
        construct_id: str,
        filename: str,
        substitutions: dict[str, str],
        invoked: list[lambda_.IFunction],
        log_retention: logs.RetentionDays,
        name: str | None = None,
        timeout: Duration | None = None,
    ) -> sfn.StateMachine:
        log_group = logs.LogGroup(
            self, f"{construct_id}Logs", retention=log_retention, removal_policy=RemovalPolicy.DESTROY
        )
        machine = sfn.StateMachine(
            self,
            construct_id,
            definition_body=sfn.DefinitionBody.from_file(str(STATE_MACHINES / filename)),
            definition_substitutions=substitutions,
            state_machine_name=name,
            state_machine_type=sfn.StateMachineType.STANDARD,
            tracing_enabled=True,
            logs=sfn.LogOptions(destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=False),
            timeout=timeout or Duration.hours(2),
        )
        for fn in invoked:
            fn.grant_invoke(machine)
        return machine
