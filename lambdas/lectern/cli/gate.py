"""`lectern eval gate`, `lectern eval runs` and `lectern promote`: the release gate and the promotion it guards."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from lectern.cli import common
from lectern.cli.common import app, eval_app

Thresholds = Annotated[Path, typer.Option(help="The reviewed thresholds file")]
DEFAULT_THRESHOLDS = Path("eval/gate.toml")


def _store_path(store: Path | None) -> Path:
    if store is not None:
        return store
    from lectern.settings import LocalSettings

    return LocalSettings().data_dir / "eval-runs.jsonl"


@eval_app.command("gate")
def eval_gate(
    baseline: Annotated[Path, typer.Option(help="The configuration serving now (TOML)")],
    candidate: Annotated[Path, typer.Option(help="The configuration to promote (TOML)")],
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
    out: Annotated[Path, typer.Option(help="JSON report path (the .md report is written beside it)")] = Path(
        "gate-report.json"
    ),
    suites: Annotated[str | None, typer.Option(help="comma-separated subset of the configured suites")] = None,
    store: Annotated[Path | None, typer.Option(help="append-only run store (default DATA_DIR/eval-runs.jsonl)")] = None,
) -> None:
    """Evaluate both configurations, compare with the thresholds, write the report; exit 1 when the candidate
    loses (2 when a file cannot be used)."""
    from lectern.evaluation.gate import GateError, load_config, load_thresholds, run_gate
    from lectern.evaluation.tracking import EvalStore

    try:
        th = load_thresholds(thresholds)
        base, cand = load_config(baseline), load_config(candidate)
        only = [s.strip() for s in suites.split(",") if s.strip()] if suites else None
        report = run_gate(
            base,
            cand,
            th,
            only=only,
            store=EvalStore(_store_path(store)),
            log=lambda m: common.console.print(f"[dim]{m}[/dim]"),
        )
    except GateError as exc:
        common.console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report.to_json())
    out.with_suffix(".md").write_text(report.markdown())
    common.console.print(report.markdown(), markup=False)
    common.console.print(f"[dim]wrote {out} and {out.with_suffix('.md')}[/dim]")
    if not report.passed:
        raise typer.Exit(1)


@eval_app.command("runs")
def eval_runs(
    store: Annotated[Path | None, typer.Option(help="run store (default DATA_DIR/eval-runs.jsonl)")] = None,
    mlflow: Annotated[
        Path | None, typer.Option(help="also export the runs as an MLflow file store here (e.g. mlruns)")
    ] = None,
) -> None:
    """Verify the append-only run store and list its records; optionally export them for MLflow."""
    from lectern.evaluation.tracking import EvalStore, StoreCorrupted, export_mlflow

    s = EvalStore(_store_path(store))
    try:
        n = s.verify()
    except StoreCorrupted as exc:
        common.console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    for rec in s.records():
        what = rec.get("role") or ("passed" if rec.get("passed") else "failed" if "passed" in rec else "")
        digest = rec.get("config", {}).get("digest") or rec.get("candidate_digest", "")
        common.console.print(f"{rec['at']}  {rec['kind']:<9} {what:<9} {digest[:12]}  {rec['id']}")
    common.console.print(f"[dim]{n} records, chain intact ({s.path})[/dim]")
    if mlflow is not None:
        runs = export_mlflow(s, mlflow)
        common.console.print(f"[dim]wrote {len(runs)} MLflow runs under {mlflow}[/dim]")


@app.command()
def promote(
    candidate: Annotated[Path, typer.Option(help="The configuration to promote (TOML)")],
    report: Annotated[Path, typer.Option(help="The gate report (JSON) that passed for this candidate")],
    env: Annotated[str, typer.Option(help="CDK environment whose config receives the prompt and model")] = "dev",
    config_dir: Annotated[Path, typer.Option(help="CDK environment configs")] = Path("cdk/config"),
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
    store: Annotated[Path | None, typer.Option(help="run store (default DATA_DIR/eval-runs.jsonl)")] = None,
) -> None:
    """Write the candidate's prompt version and model ids into cdk/config/ENV.json, only with a passing gate
    report for exactly this candidate (its digest) under the thresholds as they are now; then `cdk deploy`
    rolls it out through the canary."""
    from lectern.evaluation.gate import GateError, check_promotion, load_config, load_thresholds
    from lectern.evaluation.tracking import EvalStore

    try:
        cand = load_config(candidate)
        th = load_thresholds(thresholds)
        check_promotion(report, cand, th)
        if cand.prompt_file is not None:
            raise GateError(
                f"{candidate} uses prompt_file {cand.prompt_file}: add the template to lambdas/lectern/prompts "
                "and name it with prompt_version before promoting"
            )
        path = config_dir / f"{env}.json"
        if not path.is_file():
            raise GateError(f"no CDK environment config {path}")
        data = json.loads(path.read_text())
    except GateError as exc:
        common.console.print(f"[red]refused: {exc}[/red]")
        raise typer.Exit(1) from None
    models = dict(data.get("models", {}))
    changes = {"prompt_version": cand.settings.get("prompt_version"), **cand.deploy}
    changes = {k: v for k, v in changes.items() if v is not None}
    models.update(changes)
    data["models"] = models
    from cdk.config import LecternConfig

    LecternConfig.model_validate({"env_name": env, **data})  # a value the stack refuses never gets written
    path.write_text(json.dumps(data, indent=2) + "\n")
    EvalStore(_store_path(store)).append(
        "promotion",
        {"env": env, "candidate_digest": cand.digest, "report": str(report), "changes": changes},
    )
    common.console.print(f"promoted {cand.name} ({cand.digest[:12]}) to {env}: {changes} -> {path}")
