"""Release safety: the API function serves through an alias that CodeDeploy shifts by canary, rolled back
automatically when a release alarm fires; the cost anomaly alarm; the runbook link of every alarm.

- `Release(...)` publishes a version of the API function on every code or configuration change
  (`current_version`) and points the alias `live` at it through a CodeDeploy deployment group: `canary_percent`
  of the traffic for `canary_minutes`, then all of it (config `release`). The API Gateway integration calls the
  alias, never `$LATEST`.
- `watch(alarms)` adds the rollback alarms: the API's 5xx rate and p95 latency, the guardrail intervention
  rate and the thumbs-down rate (the last two from the handlers' EMF metrics). Any of them in ALARM during the
  canary stops the deployment and moves the traffic back (auto rollback on failure, stop and alarm).
- `cost_anomaly_alarm(...)`: a CloudWatch anomaly-detection band on the cost per query (docs/decisions.md,
  2026-12-03, says why this and not Cost Anomaly Detection).
- `runbook(name)`: the URL of docs/runbooks/<name>.md that each alarm's description ends with (a test checks
  that every alarm in the synthesized templates links a runbook that exists).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_cdk import Acknowledgment, Duration, Validations
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_codedeploy as codedeploy
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

if TYPE_CHECKING:  # cdk.config imports the fallback construct, which links its alarm's runbook from here
    from cdk.config import AlarmsConfig, ReleaseConfig

FIVE_MIN = Duration.minutes(5)
RUNBOOK_BASE = "https://github.com/lectern/lectern/blob/main/docs/runbooks"
RUNBOOK_PREFIX = "Runbook: "


def runbook(name: str) -> str:
    """The text an alarm description ends with: `Runbook: <url of docs/runbooks/NAME.md>`."""
    return f"{RUNBOOK_PREFIX}{RUNBOOK_BASE}/{name}.md"


def describe(text: str, runbook_name: str) -> str:
    return f"{text}. {runbook(runbook_name)}"


def lectern_metric(name: str, statistic: str = "Sum", period: Duration = FIVE_MIN) -> cw.Metric:
    return cw.Metric(
        namespace="Lectern",
        metric_name=name,
        dimensions_map={"service": "lectern"},
        statistic=statistic,
        period=period,
    )


class Release(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, function: lambda_.Function, config: ReleaseConfig):
        super().__init__(scope, construct_id)
        self.config = config
        self.alias = lambda_.Alias(self, "Live", alias_name="live", version=function.current_version)
        self.deployment_config = codedeploy.LambdaDeploymentConfig(
            self,
            "Canary",
            traffic_routing=codedeploy.TimeBasedCanaryTrafficRouting(
                interval=Duration.minutes(config.canary_minutes), percentage=config.canary_percent
            ),
        )
        self.group = codedeploy.LambdaDeploymentGroup(
            self,
            "Deployments",
            alias=self.alias,
            deployment_config=self.deployment_config,
            auto_rollback=codedeploy.AutoRollbackConfig(
                failed_deployment=True, stopped_deployment=True, deployment_in_alarm=True
            ),
        )
        Validations.of(self.group.role).acknowledge(
            Acknowledgment(
                id="AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
                "AWSCodeDeployRoleForLambdaLimited]",
                reason="AWS's scoped-down CodeDeploy policy for Lambda: it may only update aliases and invoke "
                "hook functions named CodeDeployHook_*; a hand-written copy would drift from what CodeDeploy needs.",
            )
        )
        self.alarms: dict[str, cw.Alarm] = {}

    def release_alarms(self, alarms_config: AlarmsConfig) -> dict[str, cw.Alarm]:
        """The guardrail intervention and thumbs-down rate alarms (the API's 5xx and latency alarms come from
        Observability and are added with `watch`)."""
        interventions = cw.MathExpression(
            expression="100 * blocked / MAX([answered + blocked, 1])",
            using_metrics={
                "blocked": lectern_metric("GuardrailInterventions"),
                "answered": lectern_metric("QueryLatencyMs", "SampleCount"),
            },
            label="Guardrail intervention rate (%)",
            period=FIVE_MIN,
        )
        thumbs_down = cw.MathExpression(
            expression="100 * down / MAX([ratings, 1])",
            using_metrics={
                "down": lectern_metric("ThumbsDown"),
                "ratings": lectern_metric("ThumbsDown", "SampleCount"),
            },
            label="Thumbs-down rate (%)",
            period=FIVE_MIN,
        )
        self.alarms["GuardrailInterventionRate"] = interventions.create_alarm(
            self,
            "GuardrailInterventionRate",
            alarm_description=describe(
                f"Guardrail blocks over {alarms_config.guardrail_intervention_rate_percent}% of questions "
                "(an attack wave, or a release that blocks normal questions)",
                "guardrail-spike",
            ),
            threshold=alarms_config.guardrail_intervention_rate_percent,
            evaluation_periods=2,
            datapoints_to_alarm=2,
            comparison_operator=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
            treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
        )
        self.alarms["ThumbsDownRate"] = thumbs_down.create_alarm(
            self,
            "ThumbsDownRate",
            alarm_description=describe(
                f"Thumbs-down on over {alarms_config.thumbs_down_rate_percent}% of rated answers", "thumbs-down"
            ),
            threshold=alarms_config.thumbs_down_rate_percent,
            evaluation_periods=3,
            datapoints_to_alarm=2,
            comparison_operator=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
            treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
        )
        return self.alarms

    def watch(self, alarms: list[cw.IAlarm]) -> None:
        for alarm in alarms:
            self.group.add_alarm(alarm)

    @staticmethod
    def dashboard_widgets() -> list[Any]:
        """The prompt A/B split per version: answers and thumbs-down rate of each prompt version (a SEARCH over
        the `prompt_version` dimension, so a new version shows up without a redeploy)."""

        def per_version(metric: str, label: str) -> cw.MathExpression:
            return cw.MathExpression(
                expression=f"SEARCH('{{Lectern,prompt_version,service}} MetricName=\"{metric}\"', 'Sum', 300)",
                using_metrics={},
                label=label,
                period=FIVE_MIN,
            )

        return [
            cw.GraphWidget(
                title="Prompt A/B: answers per prompt version",
                width=12,
                left=[per_version("PromptAnswers", "answers")],
            ),
            cw.GraphWidget(
                title="Prompt A/B: thumbs-down and ratings per prompt version",
                width=12,
                left=[per_version("PromptThumbsDown", "thumbs down")],
                right=[per_version("PromptFeedback", "ratings")],
            ),
        ]


def cost_anomaly_alarm(scope: Construct, band_width: float) -> cw.CfnAlarm:
    """ALARM when the hourly average cost per query rises above the anomaly-detection band learned from its own
    history (`band_width` standard deviations). Only the upper side: cheaper is not an incident."""
    return cw.CfnAlarm(
        scope,
        "CostPerQueryAnomaly",
        alarm_description=describe(
            "Cost per query above its expected band (anomaly detection): a routing, prompt or model change, "
            "or abuse, is spending more per question than usual",
            "cost-spike",
        ),
        comparison_operator="GreaterThanUpperThreshold",
        evaluation_periods=3,
        datapoints_to_alarm=2,
        threshold_metric_id="band",
        treat_missing_data="notBreaching",
        metrics=[
            cw.CfnAlarm.MetricDataQueryProperty(
                id="cost",
                return_data=True,
                metric_stat=cw.CfnAlarm.MetricStatProperty(
                    metric=cw.CfnAlarm.MetricProperty(
                        namespace="Lectern",
                        metric_name="QueryCostUSD",
                        dimensions=[cw.CfnAlarm.DimensionProperty(name="service", value="lectern")],
                    ),
                    period=3600,
                    stat="Average",
                ),
            ),
            cw.CfnAlarm.MetricDataQueryProperty(
                id="band", expression=f"ANOMALY_DETECTION_BAND(cost, {band_width})", return_data=True
            ),
        ],
    )
