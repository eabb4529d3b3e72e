"""The docs-sync workflow runs commands this CLI has: every `lectern sync` line in it parses with the real
Typer app (options exist, the --api path is taken), so a renamed option breaks this test, not the CI job."""

from __future__ import annotations

import shlex
from pathlib import Path

import yaml
from typer.main import get_command

import lectern.cli as cli

WORKFLOW = Path(__file__).resolve().parents[2] / ".github" / "workflows" / "docs-sync.yml"


def test_the_workflow_syncs_docs_with_options_the_cli_has() -> None:
    flow = yaml.safe_load(WORKFLOW.read_text())
    on = flow.get("on", flow.get(True))  # YAML 1.1 reads the key `on` as True
    assert on["push"]["paths"] == ["docs/**"] and on["push"]["branches"] == ["main"]
    steps = flow["jobs"]["sync"]["steps"]
    runs = [s["run"] for s in steps if "run" in s and s["run"].startswith("lectern sync")]
    assert len(runs) == 2 and any("--dry-run" in r for r in runs)
    sync = get_command(cli.app).commands["sync"]  # type: ignore[attr-defined]
    for run in runs:
        argv = shlex.split(run.replace('"${{ vars.LECTERN_API_URL || secrets.LECTERN_API_URL }}"', "URL"))[2:]
        ctx = sync.make_context("sync", argv)
        assert ctx.params["api"] == "URL" and ctx.params["delete"] and ctx.params["prefix"] == "docs"
        assert ctx.params["folder"] == Path("docs")
