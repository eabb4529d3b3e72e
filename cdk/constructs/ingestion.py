"""S3 upload -> EventBridge -> the ingestion state machine; the rebuild state machine; the dead-letter queue.

Both definitions are ASL files in `state_machines/`, loaded with `DefinitionBody.from_file` and filled by
CloudFormation's DefinitionSubstitutions (function ARNs, the DLQ URL, Map concurrency).
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import Acknowledgment, Duration, RemovalPolicy, Validations
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

STATE_MACHINES = Path(__file__).resolve().parents[2] / "state_machines"
INGEST_STEPS = {  # substitution -> (handler, memory MB, timeout s)
    "ValidateFunctionArn": ("lectern.aws.handlers.ingest.validate", 256, 30),
    "ExtractFunctionArn": ("lectern.aws.handlers.ingest.extract", 1769, 300),
    "ChunkFunctionArn": ("lectern.aws.handlers.ingest.chunk", 1024, 120),
    "EmbedBatchFunctionArn": ("lectern.aws.handlers.ingest.embed_batch", 512, 120),
    "IndexFunctionArn": ("lectern.aws.handlers.ingest.index", 1024, 300),
    "MarkIndexedFunctionArn": ("lectern.aws.handlers.ingest.mark_indexed", 256, 30),
    "MarkFailedFunctionArn": ("lectern.aws.handlers.ingest.mark_failed", 256, 30),
}
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
    ) -> None:
        super().__init__(scope, construct_id)
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
        self.rebuild = self._state_machine(
            "Rebuild",
            "rebuild.asl.json",
            {
                **{k: functions[k].function_arn for k in REBUILD_STEPS},
                "ReindexMaxConcurrency": str(reindex_max_concurrency),
            },
            [functions[k] for k in REBUILD_STEPS],
            log_retention,
        )
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
            targets=[targets.SfnStateMachine(self.ingest)],
        )

    def _state_machine(
        self,
        construct_id: str,
        filename: str,
        substitutions: dict[str, str],
        invoked: list[lambda_.IFunction],
        log_retention: logs.RetentionDays,
    ) -> sfn.StateMachine:
        log_group = logs.LogGroup(
            self, f"{construct_id}Logs", retention=log_retention, removal_policy=RemovalPolicy.DESTROY
        )
        machine = sfn.StateMachine(
            self,
            construct_id,
            definition_body=sfn.DefinitionBody.from_file(str(STATE_MACHINES / filename)),
            definition_substitutions=substitutions,
            state_machine_type=sfn.StateMachineType.STANDARD,
            tracing_enabled=True,
            logs=sfn.LogOptions(destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=False),
            timeout=Duration.hours(2),
        )
        for fn in invoked:
            fn.grant_invoke(machine)
        return machine
