"""The Lambda bundle's `pip install` resolves wheels for the platform Lambda's python3.12 runtime is: Amazon
Linux 2023 (glibc 2.34) on arm64 (issue 13, item 7). pip takes `--platform manylinux_2_X` literally (it widens
only the legacy `manylinux2014` alias, and only on x86), so every compatible tag must be passed; with
`manylinux2014_aarch64` alone a release whose aarch64 wheels are `manylinux_2_28` is skipped for an older one.
No network here: the command is captured, and the tag sets are judged with `packaging.tags`, the same logic
pip uses. Whether each pinned dependency has such a wheel is seen only by a real bundling run (`cdk synth`).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from cdk.constructs import functions
from cdk.constructs.functions import LAMBDA_GLIBC, PipBundling, lambda_platforms, pip_command
from packaging.tags import Tag, cpython_tags
from packaging.utils import parse_wheel_filename


def _platforms(cmd: list[str]) -> list[str]:
    return [cmd[i + 1] for i, arg in enumerate(cmd) if arg == "--platform"]


def _supported(platforms: list[str], wheel: str) -> bool:
    tags = set(cpython_tags(python_version=(3, 12), platforms=platforms))
    return bool(parse_wheel_filename(wheel)[3] & tags)


def test_platforms_are_every_manylinux_tag_of_al2023_arm64_newest_first() -> None:
    tags = lambda_platforms()
    assert LAMBDA_GLIBC == (2, 34) and functions.RUNTIME.name == "python3.12"
    assert tags[0] == "manylinux_2_34_aarch64" and tags[-1] == "manylinux2014_aarch64"
    assert "manylinux_2_28_aarch64" in tags and "manylinux_2_17_aarch64" in tags
    assert all(t.endswith("_aarch64") for t in tags)
    assert "manylinux_2_35_aarch64" not in tags  # newer than the runtime's glibc: would not load


def test_bundle_command_passes_them_all_for_cpython_312_binary_only() -> None:
    cmd = pip_command("/tmp/asset")
    assert _platforms(cmd) == lambda_platforms()
    assert cmd[cmd.index("--python-version") + 1] == "3.12"
    assert cmd[cmd.index("--implementation") + 1] == "cp"
    assert "--only-binary=:all:" in cmd and cmd[cmd.index("--target") + 1] == "/tmp/asset"
    assert "aws-lambda-powertools" in " ".join(cmd)  # the runtime requirements (pyproject + aws extra)


def test_a_manylinux_2_28_wheel_is_chosen_and_x86_or_newer_glibc_is_not() -> None:
    platforms = _platforms(pip_command("/tmp/asset"))
    assert _supported(platforms, "pkg-2.0-cp312-cp312-manylinux_2_28_aarch64.whl")
    assert _supported(platforms, "pkg-2.0-cp312-cp312-manylinux_2_17_aarch64.manylinux2014_aarch64.whl")
    assert _supported(platforms, "pkg-2.0-cp312-abi3-manylinux_2_34_aarch64.whl")
    assert not _supported(platforms, "pkg-2.0-cp312-cp312-manylinux_2_28_x86_64.whl")
    assert not _supported(platforms, "pkg-2.0-cp312-cp312-manylinux_2_39_aarch64.whl")
    assert not _supported(platforms, "pkg-2.0-cp311-cp311-manylinux_2_28_aarch64.whl")
    # what the old single tag missed
    assert not _supported(["manylinux2014_aarch64"], "pkg-2.0-cp312-cp312-manylinux_2_28_aarch64.whl")
    # most specific first: pip prefers a 2_28 wheel over a 2014 one of the same release
    ordered = list(cpython_tags(python_version=(3, 12), platforms=platforms))
    assert ordered.index(Tag("cp312", "cp312", "manylinux_2_28_aarch64")) < ordered.index(
        Tag("cp312", "cp312", "manylinux2014_aarch64")
    )


def test_local_bundling_runs_that_command_and_copies_the_package(tmp_path: Path, monkeypatch) -> None:
    seen: list[list[str]] = []
    monkeypatch.setattr(subprocess, "run", lambda cmd, check: seen.append(cmd))
    assert PipBundling().try_bundle(str(tmp_path), None) is True
    assert seen == [pip_command(str(tmp_path))]
    assert (tmp_path / "lectern" / "aws" / "handlers" / "api.py").is_file()
    assert not list((tmp_path / "lectern").rglob("__pycache__"))
