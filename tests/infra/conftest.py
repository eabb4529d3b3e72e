"""The CDK app synthesized once per session (bundling off: the raw lambdas/ folder is the code asset), for dev
(managed domain) and prod (serverless collection), with cdk-nag's AwsSolutions checks as validation plugin."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION", "1")

import pytest


@dataclass
class Synth:
    assembly: object
    directory: Path
    stacks: dict

    def raw(self, part: str) -> dict:
        return self.assembly.get_stack_by_name(self.stacks[part].stack_name).template

    def template(self, part: str):
        from aws_cdk.assertions import Template

        return Template.from_json(self.raw(part))

    def report(self) -> dict:
        return json.loads((self.directory / "validation-report.json").read_text())


def _synth(env_name: str, tmp: Path) -> Synth:
    from aws_cdk import App, Validations
    from cdk.app import build
    from cdk.config import load_config
    from cdk.constructs.nag import acknowledge_reviewed
    from cdk_nag import AwsSolutionsChecks

    app = App(context={"lectern:bundle": "none"}, outdir=str(tmp))
    stacks = build(app, load_config(env_name))
    acknowledge_reviewed(app)
    Validations.of(app).add_plugins(AwsSolutionsChecks(app, write_suppressions_to_cloud_formation=True))
    assembly = app.synth()  # raises "Validation failed" on any unacknowledged finding
    return Synth(assembly, tmp, stacks)


@pytest.fixture(scope="session")
def dev(tmp_path_factory) -> Synth:
    return _synth("dev", tmp_path_factory.mktemp("cdk-dev"))


@pytest.fixture(scope="session")
def prod(tmp_path_factory) -> Synth:
    return _synth("prod", tmp_path_factory.mktemp("cdk-prod"))
