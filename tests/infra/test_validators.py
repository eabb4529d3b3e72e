"""The validators CI runs over what a deploy would submit: cfn-lint (with the cfn-lint-serverless rules) over
every synthesized template of every environment and flag combination, asl-validator over each state machine
definition as CloudFormation substitutes it, and checkov with every remaining finding acknowledged in
cdk/checkov-acknowledged.yaml with a reason.

The tools are pinned: cfn-lint and cfn-lint-serverless in pyproject's dev extra, asl-validator in
package.json (node_modules/.bin), checkov in its own venv (`.venv-checkov`; its dependencies pin an older
boto3 than the project's) — scripts/bootstrap.sh installs all three. A missing tool fails the test.

Nothing is deployed: these check the templates, not what AWS would do with them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml
from cdk.config import LecternConfig, load_config

from tests.infra.asl_harness import INGEST_ASL, REBUILD_ASL, placeholders, render

pytestmark = pytest.mark.timeout(900)

ROOT = Path(__file__).resolve().parents[2]
ACKNOWLEDGED = ROOT / "cdk" / "checkov-acknowledged.yaml"
COMBINATIONS = [(env, fallback) for env in ("dev", "prod") for fallback in (False, True)]


def _tool(path: Path, what: str) -> str:
    if not path.exists():
        pytest.fail(f"{what} is not installed at {path}: run scripts/bootstrap.sh (make venv)")
    return str(path)


def _synth(env_name: str, fallback: bool, outdir: Path) -> list[Path]:
    from aws_cdk import App
    from cdk.app import build

    data = load_config(env_name).model_dump()
    if fallback:
        data["fallback"] = {"enabled": True, "model": {"model_s3_uri": "s3://lectern-models/qwen/v1/"}}
    app = App(context={"lectern:bundle": "none"}, outdir=str(outdir))
    build(app, LecternConfig.model_validate(data))
    app.synth()
    return sorted(outdir.glob("*.template.json"))


@pytest.fixture(scope="module")
def templates(tmp_path_factory) -> dict[str, list[Path]]:
    out = {}
    for env_name, fallback in COMBINATIONS:
        name = f"{env_name}{'-fallback' if fallback else ''}"
        out[name] = _synth(env_name, fallback, tmp_path_factory.mktemp(f"synth-{name}"))
        assert len(out[name]) == 4, out[name]
    return out


def test_cfn_lint_with_the_serverless_rules_finds_no_error_in_any_template(templates) -> None:
    cfn_lint = _tool(Path(sys.executable).parent / "cfn-lint", "cfn-lint")
    files = [str(f) for fs in templates.values() for f in fs]
    run = subprocess.run(
        [cfn_lint, "--append-rules", "cfn_lint_serverless.rules", "--format", "json", "--", *files],
        capture_output=True,
        text=True,
        check=False,
    )
    findings = json.loads(run.stdout or "[]")
    levels = Counter(f["Level"] for f in findings)
    rules = Counter(f"{f['Level']} {f['Rule']['Id']}" for f in findings)
    print(f"\ncfn-lint over {len(files)} templates: {dict(levels)}; by rule: {dict(rules)}")
    errors = [
        f"{Path(f['Filename']).name} {'/'.join(map(str, f['Location']['Path']))}: "
        f"{f['Rule']['Id']} {f['Message']}"
        for f in findings
        if f["Level"] == "Error"
    ]
    assert errors == [], "\n".join(errors)
    assert run.returncode in (0, 4, 8), run.stderr[-2000:]  # 4 / 8: warnings / informational only
    # the serverless rules are loaded (ES* ids exist only there): a lint that silently ran without them fails
    probe = subprocess.run(
        [cfn_lint, "--append-rules", "cfn_lint_serverless.rules", "--list-rules"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert "ES4000" in probe.stdout and "ES1005" in probe.stdout


def _substitutions(template: dict, asl: Path) -> dict[str, str]:
    """The machine's DefinitionSubstitutions, intrinsics replaced by values of the shape CloudFormation
    would put there."""
    (machine,) = [
        r["Properties"]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::StepFunctions::StateMachine"
        and set(r["Properties"]["DefinitionSubstitutions"]) == placeholders(asl)
    ]
    out = {}
    for name, value in machine["DefinitionSubstitutions"].items():
        if isinstance(value, str):
            out[name] = value
        elif name.endswith("FunctionArn"):
            out[name] = f"arn:aws:lambda:us-east-1:123456789012:function:lectern-{name[:-11].lower()}"
        elif name.endswith("QueueUrl"):
            out[name] = "https://sqs.us-east-1.amazonaws.com/123456789012/lectern-dead-letters"
        elif name == "DocumentsBucket":
            out[name] = "lectern-dev-documents-123456789012-us-east-1"
        else:
            raise AssertionError(f"no stand-in for substitution {name}: {value}")
    return out


def test_asl_validator_accepts_every_substituted_definition_and_rejects_a_broken_one(
    templates, tmp_path
) -> None:
    validator = _tool(ROOT / "node_modules" / ".bin" / "asl-validator", "asl-validator (npm ci)")
    checked = []
    for name, files in templates.items():
        service = json.loads(next(f for f in files if f.name.endswith("-Service.template.json")).read_text())
        for asl in (INGEST_ASL, REBUILD_ASL):
            path = tmp_path / f"{name}-{asl.name}"
            path.write_text(json.dumps(render(asl, _substitutions(service, asl))))
            run = subprocess.run([validator, "--json-path", str(path)], capture_output=True, text=True)
            assert run.returncode == 0, run.stdout + run.stderr
            checked.append(path.name)
    print(f"\nasl-validator: {len(checked)} definitions valid ({', '.join(checked)})")
    broken = json.loads((tmp_path / checked[-1]).read_text())
    del broken["States"]["ReindexDocuments"]["ItemProcessor"]["StartAt"]
    bad = tmp_path / "broken.json"
    bad.write_text(json.dumps(broken))
    run = subprocess.run([validator, "--json-path", str(bad)], capture_output=True, text=True)
    assert run.returncode != 0  # the validator does look at what we use


def _checkov() -> str:
    found = os.environ.get("LECTERN_CHECKOV") or (ROOT / ".venv-checkov" / "bin" / "checkov")
    return _tool(Path(found), "checkov") if not shutil.which(str(found)) else str(found)


def test_checkov_findings_are_each_acknowledged_with_a_reason(templates, tmp_path) -> None:
    checkov = _checkov()
    acknowledged = yaml.safe_load(ACKNOWLEDGED.read_text())
    for entry in acknowledged:
        assert set(entry) == {"id", "resources", "reason"} and len(entry["reason"]) >= 60, entry
    used: Counter[str] = Counter()
    unacknowledged, total = [], 0
    for name, files in templates.items():
        folder = tmp_path / name
        folder.mkdir()
        for f in files:
            shutil.copy(f, folder / f.name)
        run = subprocess.run(
            [
                checkov,
                "-d",
                str(folder),
                "--framework",
                "cloudformation",
                "-o",
                "json",
                "--quiet",
                "--skip-download",
                "--compact",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        report = json.loads(run.stdout)
        report = report if isinstance(report, list) else [report]
        (cfn,) = [r for r in report if r.get("check_type") == "cloudformation"]
        assert cfn["summary"]["parsing_errors"] == 0 and cfn["summary"]["resource_count"] > 100, cfn[
            "summary"
        ]
        for failed in cfn["results"]["failed_checks"]:
            total += 1
            entry = next(
                (
                    e
                    for e in acknowledged
                    if e["id"] == failed["check_id"] and re.search(e["resources"], failed["resource"])
                ),
                None,
            )
            if entry is None:
                unacknowledged.append(
                    f"{name}: {failed['check_id']} {failed['resource']} ({failed['check_name']})"
                )
            else:
                used[f"{entry['id']} {entry['resources']}"] += 1
    print(f"\ncheckov: {total} findings over {len(templates)} combinations, all acknowledged: {dict(used)}")
    assert unacknowledged == [], "\n".join(unacknowledged)
    stale = [f"{e['id']} {e['resources']}" for e in acknowledged if f"{e['id']} {e['resources']}" not in used]
    assert stale == [], f"acknowledged but no longer found: {stale}"
