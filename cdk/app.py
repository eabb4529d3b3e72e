"""Lectern's CDK app. `npx cdk synth -c env=dev` from the repository root (cdk.json runs `-m cdk.app`).

Context: `env` (dev|prod, default dev) picks `cdk/config/<env>.json`; `lectern:bundle=none` uses the raw
`lambdas/` folder as the code asset (no pip run; for tests and quick synths).
"""

from __future__ import annotations

import os

from aws_cdk import App, Aspects, Environment, Tags, Validations
from cdk_nag import AwsSolutionsChecks

from cdk.config import LecternConfig, load_config
from cdk.constructs.lint import ExplicitMemorySize
from cdk.constructs.nag import acknowledge_reviewed
from cdk.stacks.data import DataStack
from cdk.stacks.search import SearchStack
from cdk.stacks.service import ServiceStack
from cdk.stacks.web import WebStack

BILLABLE = ("Search", "Service", "Web")  # what scripts/pause destroys; Data stays


def build(app: App, config: LecternConfig) -> dict[str, object]:
    env = Environment(
        account=config.account or os.environ.get("CDK_DEFAULT_ACCOUNT"),
        region=config.region,
    )
    data = DataStack(
        app,
        config.stack_name("Data"),
        config=config,
        env=env,
        description="Lectern documents, table and users (kept while paused)",
    )
    search = SearchStack(
        app, config.stack_name("Search"), config=config, env=env, description="Lectern search index"
    )
    service = ServiceStack(
        app,
        config.stack_name("Service"),
        config=config,
        data=data,
        search=search,
        env=env,
        description="Lectern API, ingestion, models and monitoring",
    )
    web = WebStack(
        app, config.stack_name("Web"), data=data, service=service, env=env, description="Lectern web UI"
    )
    for key, value in {"project": "lectern", "environment": config.env_name, **config.tags}.items():
        Tags.of(app).add(key, value)
    Aspects.of(app).add(ExplicitMemorySize())
    return {"Data": data, "Search": search, "Service": service, "Web": web}


def main(app: App | None = None) -> App:
    app = app or App()
    config = load_config(app.node.try_get_context("env") or "dev")
    build(app, config)
    acknowledge_reviewed(app)
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return app


if __name__ == "__main__":
    main().synth()
