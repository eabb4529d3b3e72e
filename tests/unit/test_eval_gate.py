"""The release gate: configuration files and their digest, the comparison rule and its bootstrap interval, a
whole gate run over the cache suite through the CLI (exit codes, report, run store), the promotion that needs a
passing report for exactly that candidate, the append-only run store and its MLflow export."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lectern import cli
from lectern.evaluation.gate import (
    GateError,
    Rule,
    SuiteResult,
    bootstrap_delta,
    compare,
    load_config,
    load_thresholds,
)
from lectern.evaluation.tracking import EvalStore, StoreCorrupted, export_mlflow
from lectern.settings import CoreSettings

ROOT = Path(__file__).resolve().parents[2]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# -- configurations ------------------------------------------------------------------------------------------


def test_a_config_names_only_real_settings_with_valid_values(tmp_path) -> None:
    with pytest.raises(GateError, match="not a setting the gate can vary: top_kk"):
        load_config(write(tmp_path / "a.toml", "[settings]\ntop_kk = 3\n"))
    with pytest.raises(GateError, match=r"b\.toml: .*top_k"):
        load_config(write(tmp_path / "b.toml", "[settings]\ntop_k = 0\n"))
    with pytest.raises(GateError, match="data_dir"):
        load_config(write(tmp_path / "c.toml", '[settings]\ndata_dir = "/tmp"\n'))
    with pytest.raises(GateError, match="not valid TOML"):
        load_config(write(tmp_path / "d.toml", "[settings\n"))
    with pytest.raises(GateError, match="does not exist"):
        load_config(write(tmp_path / "e.toml", 'prompt_file = "nope.txt"\n'))
    with pytest.raises(GateError, match="needs exactly a \\[system\\] and a \\[user\\]"):
        write(tmp_path / "bad.txt", "no sections\n")
        load_config(write(tmp_path / "f.toml", 'prompt_file = "bad.txt"\n'))


def test_the_digest_follows_settings_and_prompt_text_not_comments(tmp_path) -> None:
    a = load_config(write(tmp_path / "a.toml", '[settings]\nllm = "fake"\ntop_k = 5\n'))
    same = load_config(write(tmp_path / "b.toml", '# a comment\nname = "x"\n[settings]\ntop_k = 5\nllm = "fake"\n'))
    other = load_config(write(tmp_path / "c.toml", '[settings]\nllm = "fake"\ntop_k = 6\n'))
    assert a.digest == same.digest != other.digest
    default = CoreSettings.model_fields["prompt_version"].default  # the packaged prompt a config without one uses
    shutil.copy(ROOT / f"lambdas/lectern/prompts/{default}.txt", tmp_path / "p.txt")
    with_file = load_config(write(tmp_path / "d.toml", 'prompt_file = "p.txt"\n[settings]\nllm = "fake"\ntop_k = 5\n'))
    assert with_file.digest == a.digest  # the same prompt text, whether packaged or a file
    (tmp_path / "p.txt").write_text((tmp_path / "p.txt").read_text() + "\nAnswer in French.\n")
    assert with_file.digest != a.digest  # an edited prompt is another candidate


def test_the_shipped_gate_files_load() -> None:
    th = load_thresholds(ROOT / "eval/gate.toml")
    assert {"retrieval", "answers", "guardrails", "cache"} <= set(th.suites)
    assert Rule("guardrails.attack_success_rate", "lower", 0.0) in th.rules
    for name in ("baseline", "candidate-v4", "candidate-worse-prompt"):
        load_config(ROOT / f"eval/gate/{name}.toml")


def test_thresholds_file_errors_are_clear(tmp_path) -> None:
    with pytest.raises(GateError, match="unknown suite"):
        load_thresholds(write(tmp_path / "eval/g.toml", "[suites.speed]\n"))
    with pytest.raises(GateError, match="better = higher\\|lower"):
        load_thresholds(write(tmp_path / "eval/g.toml", '[suites.cache]\n[metrics."cache.x"]\nbetter = "up"\n'))


# -- comparison ----------------------------------------------------------------------------------------------


def _suite(values: dict[str, float]) -> SuiteResult:
    return SuiteResult("answers", {"f1": sum(values.values()) / len(values)}, {"f1": values}, {}, 0.0, len(values))


def test_a_metric_loses_only_beyond_its_tolerance_in_its_direction(tmp_path) -> None:
    th = load_thresholds(ROOT / "eval/gate.toml")
    base = _suite({"q1": 0.5, "q2": 0.5})
    within = compare(Rule("answers.f1", "higher", 0.1), base, _suite({"q1": 0.45, "q2": 0.45}), th)
    beyond = compare(Rule("answers.f1", "higher", 0.01), base, _suite({"q1": 0.45, "q2": 0.45}), th)
    lower_better = compare(Rule("answers.f1", "lower", 0.0), base, _suite({"q1": 0.45, "q2": 0.45}), th)
    assert within.passed and not beyond.passed and lower_better.passed
    assert beyond.reason == "worse by 0.0500 (tolerance 0.01)" and beyond.delta == pytest.approx(-0.05)
    worse_lower = compare(Rule("answers.f1", "lower", 0.0), base, _suite({"q1": 0.6, "q2": 0.5}), th)
    assert not worse_lower.passed


def test_bootstrap_interval_is_paired_and_brackets_the_delta() -> None:
    base = {f"q{i}": float(i % 2) for i in range(40)}
    cand = {k: v - 0.25 for k, v in base.items()}  # every item 0.25 worse
    ci, paired = bootstrap_delta(base, cand, samples=500, confidence=0.95, seed=1)
    assert paired and ci == [-0.25, -0.25]
    noisy = {k: v - (0.5 if i % 4 == 0 else 0.0) for i, (k, v) in enumerate(base.items())}
    ci2, _ = bootstrap_delta(base, noisy, samples=2000, confidence=0.95, seed=1)
    assert ci2[0] < -0.125 < ci2[1] < 0
    assert bootstrap_delta({"a": 1.0}, {"a": 0.0}, samples=10, confidence=0.9, seed=1) == (None, False)
    unpaired, is_paired = bootstrap_delta(
        {"a": 1.0, "b": 1.0}, {"c": 0.0, "d": 0.0}, samples=50, confidence=0.9, seed=1
    )
    assert not is_paired and unpaired == [-1.0, -1.0]


# -- a whole gate run (cache suite: a real embedding pass, seconds) -----------------------------------------


GATE = """
[bootstrap]
samples = 300
[budget]
cost_per_query_usd = 0.001
[suites.cache]
pairs = "{pairs}"
[metrics."cache.false_hit_rate"]
better = "lower"
tolerance = 0.0
[metrics."cache.paraphrase_hit_rate"]
better = "higher"
tolerance = 0.03
"""


@pytest.fixture
def gate_files(tmp_path) -> dict[str, Path]:
    th = write(tmp_path / "repo/eval/gate.toml", GATE.format(pairs=ROOT / "tests/fixtures/cache/pairs.jsonl"))
    return {
        "th": th,
        "base": write(tmp_path / "base.toml", '[settings]\nllm = "fake"\n'),
        "same": write(
            tmp_path / "same.toml", 'name = "same"\n[settings]\nllm = "fake"\nprompt_version = "answer-v4"\n'
        ),
        "loose": write(tmp_path / "loose.toml", '[settings]\nllm = "fake"\ncache_threshold = 0.70\n'),
        "store": tmp_path / "runs.jsonl",
        "tmp": tmp_path,
    }


def gate(files: dict[str, Path], candidate: str, out: Path) -> object:
    return CliRunner().invoke(
        cli.app,
        [
            "eval",
            "gate",
            "--baseline",
            str(files["base"]),
            "--candidate",
            str(files[candidate]),
            "--thresholds",
            str(files["th"]),
            "--out",
            str(out),
            "--store",
            str(files["store"]),
        ],
        catch_exceptions=False,
    )


def test_gate_passes_an_equal_candidate_fails_a_looser_cache_and_records_both(gate_files) -> None:
    tmp = gate_files["tmp"]
    ok = gate(gate_files, "same", tmp / "ok.json")
    assert ok.exit_code == 0, ok.output
    report = json.loads((tmp / "ok.json").read_text())
    assert report["passed"] and report["suites"]["cache"]["shared"] is True  # no cache setting changed
    assert "# Evaluation gate: PASS" in (tmp / "ok.md").read_text()
    bad = gate(gate_files, "loose", tmp / "bad.json")
    assert bad.exit_code == 1, bad.output
    report = json.loads((tmp / "bad.json").read_text())
    (row,) = [m for m in report["metrics"] if m["metric"] == "cache.false_hit_rate"]
    assert not report["passed"] and not row["passed"] and row["candidate"] > row["baseline"]
    assert row["paired"] and row["ci"][0] <= row["delta"] <= row["ci"][1]
    assert report["candidate"]["digest"] == load_config(gate_files["loose"]).digest
    store = EvalStore(gate_files["store"])
    assert store.verify() == 6
    gates = list(store.records("gate"))
    assert [g["passed"] for g in gates] == [True, False]
    runs = list(store.records("eval-run"))
    assert runs[0]["code"]["git"] and runs[0]["data"]["cache:pairs"] and "cache.false_hit_rate" in runs[0]["metrics"]


def test_gate_with_an_unusable_file_exits_2_and_writes_nothing(gate_files) -> None:
    write(gate_files["tmp"] / "broken.toml", "[settings]\nfusion = 'best'\n")
    gate_files["broken"] = gate_files["tmp"] / "broken.toml"
    result = gate(gate_files, "broken", gate_files["tmp"] / "x.json")
    assert result.exit_code == 2 and "broken.toml" in result.output
    assert not (gate_files["tmp"] / "x.json").exists() and not gate_files["store"].exists()


# -- promotion -----------------------------------------------------------------------------------------------


def _report(path: Path, digest: str, passed: bool, th_sha: str) -> Path:
    return write(
        path,
        json.dumps(
            {
                "passed": passed,
                "failures": [] if passed else ["x: worse"],
                "candidate": {"digest": digest},
                "thresholds": {"sha256": th_sha},
            }
        ),
    )


def promote(tmp: Path, candidate: Path, report: Path, th: Path) -> object:
    return CliRunner().invoke(
        cli.app,
        [
            "promote",
            "--candidate",
            str(candidate),
            "--report",
            str(report),
            "--env",
            "dev",
            "--config-dir",
            str(tmp / "cfg"),
            "--thresholds",
            str(th),
            "--store",
            str(tmp / "runs.jsonl"),
        ],
        catch_exceptions=False,
    )


def test_promotion_needs_a_passing_report_for_exactly_this_candidate(gate_files) -> None:
    tmp, th = gate_files["tmp"], load_thresholds(gate_files["th"])
    shutil.copytree(ROOT / "cdk/config", tmp / "cfg")
    before = (tmp / "cfg/dev.json").read_text()
    cand = write(
        tmp / "cand.toml",
        '[settings]\nprompt_version = "answer-v4"\n[deploy]\ngeneration_model_id = "us.amazon.nova-micro-v1:0"\n',
    )
    digest = load_config(cand).digest
    refusals = {
        "no gate report": tmp / "missing.json",
        "failed the gate": _report(tmp / "r1.json", digest, False, th.sha256),
        "the configuration changed": _report(tmp / "r2.json", "0" * 64, True, th.sha256),
        "another version of": _report(tmp / "r3.json", digest, True, "f" * 64),
        "not a gate report": write(tmp / "r4.json", "[]"),
    }
    for why, report in refusals.items():
        result = promote(tmp, cand, report, gate_files["th"])
        text = " ".join(result.output.split())  # Rich wraps long lines
        assert result.exit_code == 1 and "refused" in text and why in text, why
        assert (tmp / "cfg/dev.json").read_text() == before  # nothing written on a refusal
    result = promote(tmp, cand, _report(tmp / "ok.json", digest, True, th.sha256), gate_files["th"])
    assert result.exit_code == 0, result.output
    models = json.loads((tmp / "cfg/dev.json").read_text())["models"]
    assert models["prompt_version"] == "answer-v4" and models["generation_model_id"] == "us.amazon.nova-micro-v1:0"
    (rec,) = EvalStore(tmp / "runs.jsonl").records("promotion")
    assert rec["candidate_digest"] == digest and rec["env"] == "dev"


def test_a_prompt_file_under_trial_cannot_be_promoted(gate_files) -> None:
    tmp, th = gate_files["tmp"], load_thresholds(gate_files["th"])
    shutil.copytree(ROOT / "cdk/config", tmp / "cfg")
    cand = ROOT / "eval/gate/candidate-worse-prompt.toml"
    report = _report(tmp / "r.json", load_config(cand).digest, True, th.sha256)
    result = promote(tmp, cand, report, gate_files["th"])
    assert result.exit_code == 1 and "prompt_file" in result.output


# -- the run store -------------------------------------------------------------------------------------------


def test_the_store_only_appends_and_finds_an_edited_or_removed_record(tmp_path) -> None:
    store = EvalStore(tmp_path / "runs.jsonl")
    for i in range(3):
        store.append("eval-run", {"role": "baseline", "metrics": {"answers.token_f1": 0.1 * i}, "config": {}})
    lines = store.path.read_text().splitlines()
    store.append("gate", {"passed": True})
    assert store.path.read_text().splitlines()[:3] == lines  # earlier lines untouched
    assert store.verify() == 4
    edited = lines[1].replace('"answers.token_f1": 0.1', '"answers.token_f1": 0.9')
    store.path.write_text("\n".join([lines[0], edited, lines[2]]) + "\n")
    with pytest.raises(StoreCorrupted, match=":3: the record before it"):
        store.verify()
    store.path.write_text("\n".join([lines[0], lines[2]]) + "\n")
    with pytest.raises(StoreCorrupted):
        store.verify()


def test_mlflow_export_writes_the_file_store_layout(tmp_path) -> None:
    store = EvalStore(tmp_path / "runs.jsonl")
    store.append(
        "eval-run",
        {
            "role": "candidate",
            "config": {"name": "c", "digest": "abc", "settings": {"top_k": 3}},
            "code": {"git": "deadbeef"},
            "data": {"cache:pairs": "123"},
            "metrics": {"cache.false_hit_rate": 0.02, "answers.citation_precision": None},
        },
    )
    store.append("gate", {"passed": True})
    (run,) = export_mlflow(store, tmp_path / "mlruns")
    exp = run.parent
    assert 'name: "lectern-eval"' in (exp / "meta.yaml").read_text()
    meta = (run / "meta.yaml").read_text()
    assert f'run_id: "{run.name}"' in meta and "status: 3" in meta and 'run_name: "candidate:c"' in meta
    ts, value, step = (run / "metrics/cache.false_hit_rate").read_text().split()
    assert (float(value), step) == (0.02, "0") and int(ts) > 0
    assert not (run / "metrics/answers.citation_precision").exists()  # None is not a measurement
    assert (run / "params/settings.top_k").read_text() == "3" and (run / "params/config.digest").read_text() == "abc"
    assert (run / "tags/mlflow.source.git.commit").read_text() == "deadbeef"


def test_the_ci_workflow_gates_prompt_model_retrieval_and_guardrail_changes_with_real_options() -> None:
    import shlex

    import yaml
    from typer.main import get_command

    flow = yaml.safe_load((ROOT / ".github/workflows/eval-gate.yml").read_text())
    paths = flow.get("on", flow.get(True))["pull_request"]["paths"]
    for watched in (
        "lambdas/lectern/prompts/**",
        "cdk/config/**",
        "lambdas/lectern/domain/retrieval.py",
        "lambdas/lectern/adapters/local/guardrails/**",
        "lambdas/lectern/settings.py",
        "eval/**",
    ):
        assert watched in paths, watched
    (run,) = [s["run"] for s in flow["jobs"]["gate"]["steps"] if "lectern eval gate" in s.get("run", "")]
    line = run.split(".venv/bin/lectern ", 1)[1].replace("\\\n", " ").replace('"$CANDIDATE"', "c.toml")
    argv = shlex.split(line)[2:]
    gate_cmd = get_command(cli.app).commands["eval"].commands["gate"]  # type: ignore[attr-defined]
    ctx = gate_cmd.make_context("gate", argv)
    assert ctx.params["baseline"] == Path("eval/gate/baseline.toml") and ctx.params["candidate"] == Path("c.toml")
