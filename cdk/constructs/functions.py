"""One factory for "a Lambda of ours": Python 3.12 on arm64, one code asset, its own role, log group and env.

The code asset is the `lambdas/` folder. With the context flag `lectern:bundle=none` (tests, quick synths)
it is used as it is; otherwise `PipBundling` builds it on this machine without Docker: `pip install --platform
manylinux_2_34_aarch64 ... --platform manylinux_2_17_aarch64 --platform manylinux2014_aarch64
--only-binary=:all: --python-version 3.12 --target <asset>` of the package's runtime dependencies (pyproject
`dependencies` + the `aws` extra), then a copy of `lambdas/lectern`. Powertools is bundled (no layer to pin
per region).

The platform tags are those of Lambda's python3.12 runtime: Amazon Linux 2023 on arm64, glibc 2.34
(https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtimes.html). pip does not widen a `manylinux_2_X` tag
to older glibc versions (only the legacy `manylinux2014` alias to 2010/1 on x86), so every compatible tag is
passed, newest first: with `manylinux2014` alone, a package whose aarch64 wheels are only `manylinux_2_28` (or
that ships a newer build for 2_28 than for 2014) resolves to an older release, or none, than the tests run.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import jsii
from aws_cdk import (
    Acknowledgment,
    BundlingOptions,
    DockerImage,
    Duration,
    ILocalBundling,
    RemovalPolicy,
    Validations,
)
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

ROOT = Path(__file__).resolve().parents[2]
LAMBDAS = ROOT / "lambdas"
RUNTIME = lambda_.Runtime.PYTHON_3_12
LAMBDA_GLIBC = (2, 34)  # Amazon Linux 2023, the python3.12 runtime's OS
LAMBDA_ARCH = "aarch64"  # lambda_.Architecture.ARM_64


def lambda_platforms(glibc: tuple[int, int] = LAMBDA_GLIBC, arch: str = LAMBDA_ARCH) -> list[str]:
    """Every manylinux platform tag a wheel may carry to run there, most specific first (PEP 600; 2_17 is
    manylinux2014, the oldest glibc on aarch64)."""
    major, minor = glibc
    tags = [f"manylinux_{major}_{m}_{arch}" for m in range(minor, 16, -1)]
    return [*tags, f"manylinux2014_{arch}"]


def pip_command(output_dir: str) -> list[str]:
    """The bundling `pip install`: binary wheels for CPython 3.12 on Lambda's platform, into the asset."""
    platforms = [arg for tag in lambda_platforms() for arg in ("--platform", tag)]
    return [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--no-compile",
        *platforms,
        "--implementation",
        "cp",
        "--python-version",
        "3.12",
        "--only-binary=:all:",
        "--target",
        str(output_dir),
        *runtime_requirements(),
    ]


def runtime_requirements(pyproject: Path = ROOT / "pyproject.toml") -> list[str]:
    project = tomllib.loads(pyproject.read_text())["project"]
    return [*project["dependencies"], *project["optional-dependencies"]["aws"]]


@jsii.implements(ILocalBundling)
class PipBundling:
    """Local bundling: manylinux aarch64 wheels for CPython 3.12 plus the `lectern` package folder."""

    def try_bundle(self, output_dir: str, options: BundlingOptions) -> bool:
        out = Path(output_dir)
        subprocess.run(pip_command(str(out)), check=True)  # noqa: S603 (fixed argv)
        shutil.copytree(
            LAMBDAS / "lectern",
            out / "lectern",
            dirs_exist_ok=True,
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
        )
        return True


def lambda_code(scope: Construct) -> lambda_.Code:
    mode = scope.node.try_get_context("lectern:bundle") or "pip"
    if mode == "none":
        return lambda_.Code.from_asset(str(LAMBDAS), exclude=["**/__pycache__", "**/*.pyc"])
    if mode != "pip":
        raise ValueError("context lectern:bundle must be 'pip' (default) or 'none'")
    return lambda_.Code.from_asset(
        str(LAMBDAS),
        bundling=BundlingOptions(
            image=DockerImage.from_registry("public.ecr.aws/sam/build-python3.12"),  # never used: local wins
            local=PipBundling(),
        ),
    )


class Functions(Construct):
    """Makes the project's functions; all of them share the code asset and the common environment."""

    def __init__(
        self, scope: Construct, construct_id: str, *, environment: dict[str, str], log_retention_days: int
    ):
        super().__init__(scope, construct_id)
        self.code = lambda_code(self)
        self.environment = dict(environment)
        self.retention = getattr(logs.RetentionDays, _RETENTION[log_retention_days])
        self.all: dict[str, lambda_.Function] = {}

    def make(
        self,
        construct_id: str,
        handler: str,
        *,
        description: str,
        memory_mb: int = 512,
        timeout: Duration | None = None,
        reserved_concurrency: int | None = None,
        environment: dict[str, str] | None = None,
    ) -> lambda_.Function:
        log_group = logs.LogGroup(
            self, f"{construct_id}Logs", retention=self.retention, removal_policy=RemovalPolicy.DESTROY
        )
        role = iam.Role(
            self,
            f"{construct_id}Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"Lectern {construct_id} function",
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="WriteOwnLogs",
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[log_group.log_group_arn],
            )
        )
        fn = lambda_.Function(
            self,
            construct_id,
            runtime=RUNTIME,
            architecture=lambda_.Architecture.ARM_64,
            code=self.code,
            handler=handler,
            description=description,
            memory_size=memory_mb,
            timeout=timeout or Duration.seconds(60),
            role=role,
            log_group=log_group,
            tracing=lambda_.Tracing.ACTIVE,
            reserved_concurrent_executions=reserved_concurrency,
            environment={**self.environment, **(environment or {})},
        )
        Validations.of(fn).acknowledge(
            Acknowledgment(
                id="AwsSolutions-L1",
                reason="Python 3.12 is the project's Lambda runtime: the bundle's wheels are built for cp312 "
                "and the package is tested on it; moving to a newer runtime is a deliberate upgrade.",
            )
        )
        self.all[construct_id] = fn
        return fn


_RETENTION = {
    7: "ONE_WEEK",
    14: "TWO_WEEKS",
    30: "ONE_MONTH",
    60: "TWO_MONTHS",
    90: "THREE_MONTHS",
    180: "SIX_MONTHS",
    365: "ONE_YEAR",
}
