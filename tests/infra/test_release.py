"""Release safety in the synthesized templates: the API alias and its CodeDeploy canary with rollback alarms, the
cost anomaly alarm, the prompt A/B widgets, a runbook behind every alarm, and a tabletop replay of a recorded
incident (Bedrock throttling in the in-repo fake) through the metric, the alarm and the runbook."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
from cdk.config import LecternConfig, load_config
from cdk.constructs.release import RUNBOOK_BASE

from tests.infra.test_stacks import PARTS, resources

pytestmark = pytest.mark.timeout(300)
pytest_plugins = ["tests.fakes.bedrock_server"]  # the fake_bedrock fixture

RUNBOOKS = Path(__file__).resolve().parents[2] / "docs" / "runbooks"
ROLLBACK_ALARMS = ("Api5xxRate", "ApiP95Latency", "GuardrailInterventionRate", "ThumbsDownRate")


def _alarm_ids(raw: dict) -> dict[str, str]:
    """alarm name fragment -> logical id, for the alarms of our constructs."""
    return {k: k for k in resources(raw, "AWS::CloudWatch::Alarm")}


def _one(raw: dict, kind: str) -> tuple[str, dict]:
    (item,) = resources(raw, kind).items()
    return item


def test_the_api_serves_through_an_alias_moved_by_a_codedeploy_canary(dev) -> None:
    raw = dev.raw("Service")
    cfg = load_config("dev").release
    alias_id, alias = _one(raw, "AWS::Lambda::Alias")
    assert alias["Properties"]["Name"] == "live"
    assert "FunctionsApi" in json.dumps(alias["Properties"]["FunctionName"])
    hook = alias["UpdatePolicy"]["CodeDeployLambdaAliasUpdate"]
    _, group = _one(raw, "AWS::CodeDeploy::DeploymentGroup")
    assert hook["DeploymentGroupName"] == {"Ref": next(iter(resources(raw, "AWS::CodeDeploy::DeploymentGroup")))}
    _, dconf = _one(raw, "AWS::CodeDeploy::DeploymentConfig")
    routing = dconf["Properties"]["TrafficRoutingConfig"]
    assert routing["Type"] == "TimeBasedCanary"
    assert routing["TimeBasedCanary"] == {"CanaryPercentage": 10, "CanaryInterval": 5}
    assert (cfg.canary_percent, cfg.canary_minutes) == (10, 5)
    props = group["Properties"]
    assert props["DeploymentStyle"] == {"DeploymentType": "BLUE_GREEN", "DeploymentOption": "WITH_TRAFFIC_CONTROL"}
    assert set(props["AutoRollbackConfiguration"]["Events"]) == {
        "DEPLOYMENT_FAILURE",
        "DEPLOYMENT_STOP_ON_REQUEST",
        "DEPLOYMENT_STOP_ON_ALARM",
    }
    assert props["AutoRollbackConfiguration"]["Enabled"] is True
    assert props["AlarmConfiguration"]["Enabled"] is True
    watched = json.dumps(props["AlarmConfiguration"]["Alarms"])
    for name in ROLLBACK_ALARMS:
        (logical,) = [k for k in _alarm_ids(raw) if name in k]
        assert logical in watched, name
    # every API Gateway integration and invoke permission names the alias, never the bare function
    methods = resources(raw, "AWS::ApiGateway::Method")
    uris = [
        json.dumps(m["Properties"]["Integration"].get("Uri"))
        for m in methods.values()
        if "Integration" in m["Properties"]
    ]
    lambda_uris = [u for u in uris if "lambda:path" in u]
    assert lambda_uris and all(alias_id in u for u in lambda_uris)
    perms = [p for p in resources(raw, "AWS::Lambda::Permission").values() if "apigateway" in json.dumps(p)]
    assert perms and all(alias_id in json.dumps(p["Properties"]["FunctionName"]) for p in perms)


def test_canary_settings_are_validated() -> None:
    base = load_config("dev").model_dump()
    for bad in ({"canary_percent": 0}, {"canary_percent": 100}, {"canary_minutes": 0}):
        with pytest.raises(ValueError):
            LecternConfig.model_validate({**base, "release": bad})
    ok = LecternConfig.model_validate({**base, "release": {"canary_percent": 25, "canary_minutes": 15}})
    assert (ok.release.canary_percent, ok.release.canary_minutes) == (25, 15)


def test_release_alarms_measure_guardrail_and_thumbs_down_rates_and_notify(dev) -> None:
    raw = dev.raw("Service")
    cfg = load_config("dev").alarms
    alarms = resources(raw, "AWS::CloudWatch::Alarm")

    def alarm(fragment: str) -> dict:
        (props,) = [r["Properties"] for k, r in alarms.items() if fragment in k]
        assert "MonitoringAlarms" in json.dumps(props["AlarmActions"])
        return props

    guard = alarm("GuardrailInterventionRate")
    assert guard["Threshold"] == cfg.guardrail_intervention_rate_percent
    text = json.dumps(guard["Metrics"])
    assert "GuardrailInterventions" in text and "QueryLatencyMs" in text and "SampleCount" in text
    down = alarm("ThumbsDownRate")
    assert down["Threshold"] == cfg.thumbs_down_rate_percent and "ThumbsDown" in json.dumps(down["Metrics"])
    model = alarm("ModelUnavailable")
    assert model["MetricName"] == "ModelUnavailable" and model["Dimensions"] == [
        {"Name": "service", "Value": "lectern"}
    ]
    assert alarm("DocumentsStuck")["MetricName"] == "StuckDocumentsFailed"


def test_cost_per_query_has_an_anomaly_detection_alarm(dev) -> None:
    raw = dev.raw("Service")
    (props,) = [r["Properties"] for k, r in resources(raw, "AWS::CloudWatch::Alarm").items() if "CostPerQuery" in k]
    assert props["ComparisonOperator"] == "GreaterThanUpperThreshold" and props["ThresholdMetricId"] == "band"
    queries = {q["Id"]: q for q in props["Metrics"]}
    assert (
        queries["band"]["Expression"]
        == f"ANOMALY_DETECTION_BAND(cost, {load_config('dev').alarms.cost_anomaly_band_stddevs})"
    )
    stat = queries["cost"]["MetricStat"]
    assert stat["Metric"]["MetricName"] == "QueryCostUSD" and stat["Stat"] == "Average" and stat["Period"] == 3600
    assert "MonitoringAlarms" in json.dumps(props["AlarmActions"])


def test_dashboard_shows_the_prompt_ab_split_per_version(dev) -> None:
    dash = next(iter(resources(dev.raw("Service"), "AWS::CloudWatch::Dashboard").values()))
    body = json.dumps(dash)
    assert "Prompt A/B" in body
    for metric in ("PromptAnswers", "PromptThumbsDown", "PromptFeedback"):
        assert re.search(rf"SEARCH\(.*prompt_version.*{metric}", body), metric


@pytest.mark.parametrize("env_name", ["dev", "prod"])
def test_every_alarm_links_an_existing_runbook_with_diagnosis_and_rollback(env_name, request) -> None:
    synth = request.getfixturevalue(env_name)
    seen = 0
    for part in PARTS:
        for logical, res in resources(synth.raw(part), "AWS::CloudWatch::Alarm").items():
            description = json.dumps(res["Properties"].get("AlarmDescription", ""))
            m = re.search(re.escape(RUNBOOK_BASE) + r"/([a-z0-9-]+)\.md", description)
            assert m, f"{part}/{logical} links no runbook: {description}"
            page = RUNBOOKS / f"{m.group(1)}.md"
            assert page.is_file(), f"{logical} links {page}, which does not exist"
            text = page.read_text()
            for section in ("## Alarm", "## Diagnose", "## Roll back"):
                assert section in text, (page.name, section)
            assert "```bash" in text.split("## Diagnose", 1)[1], page.name  # commands, not prose
            name = re.sub(r"[0-9A-F]{8}$", "", logical.removeprefix("Monitoring").removeprefix("Release"))
            assert name in text, f"{page.name} does not name the alarm {name}"
            seen += 1
    assert seen >= 11


def test_every_runbook_is_listed_in_the_index() -> None:
    index = (RUNBOOKS / "README.md").read_text()
    pages = sorted(p.name for p in RUNBOOKS.glob("*.md") if p.name != "README.md")
    assert len(pages) >= 9
    for page in pages:
        assert f"({page})" in index, page


# -- tabletop: a recorded incident replayed ------------------------------------------------------------------


def _alarm_fires(props: dict, datapoints: list[float]) -> bool:
    """CloudWatch's M-of-N rule over the last evaluation_periods datapoints."""
    n = props["EvaluationPeriods"]
    m = props.get("DatapointsToAlarm", n)
    op = {
        "GreaterThanOrEqualToThreshold": lambda v: v >= props["Threshold"],
        "GreaterThanThreshold": lambda v: v > props["Threshold"],
    }[props["ComparisonOperator"]]
    return sum(op(v) for v in datapoints[-n:]) >= m


def test_tabletop_bedrock_throttling_fires_model_unavailable(dev, fake_bedrock, monkeypatch) -> None:
    """Incident replay: Bedrock throttles every Converse call for ten minutes. Each question through the API's
    answer metrics fails with ModelUnavailable; the emitted EMF metric is the one the alarm reads (namespace,
    name, dimensions), the replayed counts fire it, and it links the runbook for this incident."""
    from aws_lambda_powertools import Metrics

    from lectern.adapters.aws import clients
    from lectern.adapters.aws.bedrock import BedrockConverseModel
    from lectern.aws.observability import NAMESPACE, MetricsStage
    from lectern.domain.errors import ModelUnavailable
    from lectern.domain.models import ChatMessage

    for key, value in {
        "AWS_ACCESS_KEY_ID": "t",
        "AWS_SECRET_ACCESS_KEY": "t",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    clients.reset()
    model = BedrockConverseModel(client=clients.client("bedrock-runtime", config=clients.client_config(max_attempts=1)))
    questions_per_period = 4  # the recorded incident: 4 questions in each 5-minute period, all throttled
    periods: list[float] = []
    for _ in range(2):
        fake_bedrock.throttle_next(10 * questions_per_period, operations=("converse",))
        metrics = Metrics(namespace=NAMESPACE, service="lectern")
        stage = MetricsStage(metrics=metrics)

        def next_(request):
            yield model.generate([ChatMessage("user", request.question)], max_tokens=10, temperature=0.0)

        for i in range(questions_per_period):
            with pytest.raises(ModelUnavailable) as exc:
                list(stage.run(SimpleNamespace(tenant_id="t1", question=f"q{i}"), next_))
            assert exc.value.reason == "throttled"
        emf = metrics.serialize_metric_set()
        (directive,) = emf["_aws"]["CloudWatchMetrics"]
        periods.append(
            float(
                sum(emf["ModelUnavailable"]) if isinstance(emf["ModelUnavailable"], list) else emf["ModelUnavailable"]
            )
        )
        metrics.clear_metrics()
    assert periods == [questions_per_period, questions_per_period]
    assert len(fake_bedrock.of("converse")) >= 2 * questions_per_period  # the fake really answered 429s

    raw = dev.raw("Service")
    matching = [
        r["Properties"]
        for r in resources(raw, "AWS::CloudWatch::Alarm").values()
        if r["Properties"].get("MetricName") == "ModelUnavailable"
    ]
    (alarm,) = matching
    assert alarm["Namespace"] == directive["Namespace"] == "Lectern"
    emitted_dims = {d: emf[d] for d in directive["Dimensions"][0]}
    assert {d["Name"]: d["Value"] for d in alarm["Dimensions"]} == emitted_dims == {"service": "lectern"}
    assert alarm["Statistic"] == "Sum" and alarm["Period"] == 300
    assert _alarm_fires(alarm, periods)
    assert not _alarm_fires(alarm, [0.0, 0.0])  # quiet periods do not
    m = re.search(re.escape(RUNBOOK_BASE) + r"/([a-z0-9-]+)\.md", alarm["AlarmDescription"])
    assert m and m.group(1) == "model-throttling"
    page = (RUNBOOKS / "model-throttling.md").read_text()
    assert "ModelUnavailable" in page and "ThrottlingException" in page
    assert "test_tabletop_bedrock_throttling_fires_model_unavailable" in page  # the page points at this replay
    rollback = page.split("## Roll back", 1)[1]
    assert ("generation_model_id" in rollback and "update-alias" in page) or "Rolling back a release" in rollback


def _references(node: object) -> set[str]:
    if isinstance(node, dict):
        found: set[str] = set()
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                found.add(value)
            elif key == "Fn::GetAtt":
                found.add(value[0] if isinstance(value, list) else str(value).split(".")[0])
            else:
                found |= _references(value)
        return found
    if isinstance(node, list):
        return set().union(*(_references(v) for v in node)) if node else set()
    return set()


@pytest.mark.parametrize("env_name", ["dev", "prod"])
def test_alias_deployment_group_and_rollback_alarms_form_no_dependency_cycle(env_name, request) -> None:
    """The alias waits on the deployment group, which names the alarms, which read the API stage's metrics: a
    Ref from an alarm to the stage would close a cycle through the methods that call the alias."""
    raw = request.getfixturevalue(env_name).raw("Service")["Resources"]
    edges = {}
    for logical, res in raw.items():
        deps = _references({k: v for k, v in res.items() if k != "Metadata"})
        depends = res.get("DependsOn", [])
        deps |= set([depends] if isinstance(depends, str) else depends)
        edges[logical] = {d for d in deps if d in raw}
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in edges[node]:
            if state.get(nxt) == 1:
                raise AssertionError(" -> ".join([*path, node, nxt]))
            if nxt not in state:
                visit(nxt, [*path, node])
        state[node] = 2

    for logical in edges:
        if logical not in state:
            visit(logical, [])
