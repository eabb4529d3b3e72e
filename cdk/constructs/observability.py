"""The dashboard and the alarms (-> one SNS topic, with an email subscription from config).

Application metrics are the handlers' EMF metrics: namespace `Lectern`, dimension `service=lectern`.
The daily cost estimate adds the handlers' QueryCostUSD (generation) to EmbeddingTokens priced from
`cdk/pricing.json`, so the alarm and `scripts/cost_estimate.py` read the same published price.
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, Duration, Validations
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subs
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from cdk.config import AlarmsConfig, load_pricing
from cdk.constructs.api import STAGE_NAME
from cdk.constructs.lint import ignore
from cdk.constructs.release import describe
from lectern.aws.jobs import stage_metric
from lectern.domain.ingest import TIMED_STEPS

NAMESPACE = "Lectern"
DIMENSIONS = {"service": "lectern"}
FIVE_MIN = Duration.minutes(5)


def app_metric(name: str, statistic: str = "Sum", period: Duration = FIVE_MIN) -> cw.Metric:
    return cw.Metric(
        namespace=NAMESPACE, metric_name=name, dimensions_map=DIMENSIONS, statistic=statistic, period=period
    )


class Observability(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        name: str,
        config: AlarmsConfig,
        api: apigw.RestApi,
        functions: dict[str, lambda_.Function],
        ingest: sfn.StateMachine,
        dead_letters: sqs.Queue,
        search_metrics: list[cw.IMetric],
        upload_dead_letters: sqs.Queue | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.topic = sns.Topic(self, "Alarms", display_name=f"{name} alarms", enforce_ssl=True)
        Validations.of(self.topic).acknowledge(
            Acknowledgment(
                id="AwsSolutions-SNS2",
                reason="Alarm notifications carry no document data, and "
                "CloudWatch cannot publish to a topic encrypted with the AWS-managed SNS key; a "
                "customer key would add a fixed monthly cost for no protected content.",
            )
        )
        if config.email:
            email = self.topic.add_subscription(subs.EmailSubscription(config.email))
            ignore(
                email.node.default_child,
                "ES7000",
                "An email subscription has nothing to redrive to: SNS retries email deliveries itself, and "
                "the alarm state stays visible in CloudWatch and on the dashboard.",
            )
        action = cw_actions.SnsAction(self.topic)

        api_name = api.rest_api_name

        def api_metric(metric: str, statistic: str = "Sum") -> cw.Metric:
            return cw.Metric(
                namespace="AWS/ApiGateway",
                metric_name=metric,
                statistic=statistic,
                period=FIVE_MIN,
                dimensions_map={"ApiName": api_name, "Stage": STAGE_NAME},
            )

        error_rate = cw.MathExpression(
            expression="100 * errors / MAX([requests, 1])",
            using_metrics={"errors": api_metric("5XXError"), "requests": api_metric("Count")},
            label="5xx rate (%)",
            period=FIVE_MIN,
        )
        p95 = api_metric("Latency", "p95")
        titan_per_token = load_pricing().embedding_usd_per_token()
        daily_cost = cw.MathExpression(
            expression=f"queries + tokens * {titan_per_token:.12f}",
            using_metrics={
                "queries": app_metric("QueryCostUSD", period=Duration.days(1)),
                "tokens": app_metric("EmbeddingTokens", period=Duration.days(1)),
            },
            label="Estimated model cost per day (USD)",
            period=Duration.days(1),
        )
        self.alarms = {
            "Api5xxRate": error_rate.create_alarm(
                self,
                "Api5xxRate",
                alarm_description=describe(f"API 5xx over {config.api_5xx_rate_percent}% of requests", "api-errors"),
                threshold=config.api_5xx_rate_percent,
                evaluation_periods=3,
                datapoints_to_alarm=2,
                comparison_operator=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
                treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
            ),
            "ApiP95Latency": p95.create_alarm(
                self,
                "ApiP95Latency",
                alarm_description=describe(f"API p95 latency over {config.api_p95_latency_ms} ms", "latency"),
                threshold=config.api_p95_latency_ms,
                evaluation_periods=3,
                datapoints_to_alarm=2,
                comparison_operator=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
                treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
            ),
            "IngestionFailures": ingest.metric_failed(period=Duration.hours(1), statistic="Sum").create_alarm(
                self,
                "IngestionFailures",
                alarm_description=describe("Documents failed ingestion", "ingestion"),
                threshold=config.ingestion_failures_per_hour,
                evaluation_periods=1,
                comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
            ),
            "DeadLettersNotEmpty": dead_letters.metric_approximate_number_of_messages_visible(
                period=FIVE_MIN, statistic="Maximum"
            ).create_alarm(
                self,
                "DeadLettersNotEmpty",
                alarm_description=describe("Failed ingestions wait in the dead-letter queue", "dead-letters"),
                threshold=1,
                evaluation_periods=1,
                comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
            ),
            "DailyCostOverBudget": daily_cost.create_alarm(
                self,
                "DailyCostOverBudget",
                alarm_description=describe(
                    f"Estimated model cost over {config.daily_cost_budget_usd} USD per day", "cost-spike"
                ),
                threshold=config.daily_cost_budget_usd,
                evaluation_periods=1,
                comparison_operator=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
                treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
            ),
        }
        self.alarms["ModelUnavailable"] = app_metric("ModelUnavailable").create_alarm(
            self,
            "ModelUnavailable",
            alarm_description=describe(
                "Questions failed because no model answered (Bedrock throttling or an outage, and the fallback "
                "model absent or down too)",
                "model-throttling",
            ),
            threshold=config.model_unavailable_per_5min,
            evaluation_periods=2,
            datapoints_to_alarm=1,
            comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
        )
        self.alarms["DocumentsStuck"] = app_metric("StuckDocumentsFailed", period=Duration.hours(1)).create_alarm(
            self,
            "DocumentsStuck",
            alarm_description=describe(
                "The sweep failed documents stuck uploading or processing (an ingestion that never finished)",
                "ingestion",
            ),
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
        )
        if upload_dead_letters is not None:
            undelivered = upload_dead_letters.metric_approximate_number_of_messages_visible(
                period=FIVE_MIN, statistic="Maximum"
            )
            self.alarms["UploadEventsNotDelivered"] = undelivered.create_alarm(
                self,
                "UploadEventsNotDelivered",
                alarm_description=describe(
                    "Upload events EventBridge could not deliver to the ingestion workflow "
                    "wait in the upload dead-letter queue: redrive them (the sweep marks the documents FAILED)",
                    "dead-letters",
                ),
                threshold=1,
                evaluation_periods=1,
                comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
            )
        for alarm in self.alarms.values():
            alarm.add_alarm_action(action)

        fns = list(functions.values())

        def per_function(metric: str, statistic: str) -> list[cw.IMetric]:
            return [f.metric(metric, statistic=statistic, period=FIVE_MIN, label=f.node.id) for f in fns]

        ratio = lambda a, b, label: cw.MathExpression(  # noqa: E731
            expression="100 * a / MAX([a + b, 1])" if b else "a",
            using_metrics={"a": app_metric(a), "b": app_metric(b)},
            label=label,
            period=FIVE_MIN,
        )
        self.dashboard = cw.Dashboard(self, "Dashboard", dashboard_name=f"{name}")
        self.dashboard.add_widgets(
            cw.GraphWidget(
                title="API latency (ms)",
                width=8,
                left=[
                    api_metric("Latency", "p50"),
                    api_metric("Latency", "p95"),
                    api_metric("Latency", "p99"),
                ],
            ),
            cw.GraphWidget(
                title="API errors",
                width=8,
                left=[api_metric("4XXError"), api_metric("5XXError")],
                right=[error_rate],
            ),
            cw.GraphWidget(
                title="Query latency (handler, ms)",
                width=8,
                left=[app_metric("QueryLatencyMs", "p50"), app_metric("QueryLatencyMs", "p95")],
            ),
        )
        self.dashboard.add_widgets(
            cw.GraphWidget(title="Lambda errors", width=8, left=per_function("Errors", "Sum")),
            cw.GraphWidget(title="Lambda throttles", width=8, left=per_function("Throttles", "Sum")),
            cw.GraphWidget(title="Lambda duration p95 (ms)", width=8, left=per_function("Duration", "p95")),
        )
        self.dashboard.add_widgets(
            cw.GraphWidget(
                title="Tokens",
                width=8,
                left=[app_metric("InputTokens"), app_metric("OutputTokens"), app_metric("EmbeddingTokens")],
            ),
            cw.GraphWidget(
                title="Cost per query (USD)",
                width=8,
                left=[app_metric("QueryCostUSD", "Average")],
                right=[daily_cost],
            ),
            cw.GraphWidget(
                title="Guardrail, fallback, cache",
                width=8,
                left=[app_metric("GuardrailInterventions"), app_metric("FallbackUsed")],
                right=[ratio("CacheHits", "CacheMisses", "Cache hit rate (%)")],
            ),
        )
        self.dashboard.add_widgets(
            cw.GraphWidget(
                title="Ingestion",
                width=8,
                left=[
                    ingest.metric_succeeded(period=FIVE_MIN),
                    ingest.metric_failed(period=FIVE_MIN),
                    app_metric("DocumentsIndexed"),
                    app_metric("DocumentsFailed"),
                ],
            ),
            cw.GraphWidget(
                title="Dead-letter queue",
                width=8,
                left=[dead_letters.metric_approximate_number_of_messages_visible(period=FIVE_MIN)],
                right=[dead_letters.metric_approximate_age_of_oldest_message(period=FIVE_MIN)],
            ),
            cw.GraphWidget(title="OpenSearch health", width=8, left=search_metrics),
            cw.GraphWidget(
                title="Ingestion stage time p95 (ms, per document)",
                width=8,
                left=[app_metric(stage_metric(step), "p95") for step in TIMED_STEPS],
            ),
            cw.AlarmStatusWidget(title="Alarms", width=24, alarms=list(self.alarms.values())),
        )
