"""Shared fixtures for the AWS adapter tests. No AWS account is used: moto, botocore Stubber and in-repo fake
servers on loopback stand in for AWS, reached through boto3's own endpoint variables."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

_ENDPOINT_VARS = [k for k in os.environ if k.startswith("AWS_ENDPOINT_URL")]


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fake credentials and a region; no endpoint variables leak in from the machine."""
    for key in [k for k in os.environ if k.startswith("AWS_ENDPOINT_URL") or k == "AWS_PROFILE"]:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    from lectern.adapters.aws import clients

    clients.reset()
    yield
    clients.reset()


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """moto's server on loopback (for what must cross real HTTP, e.g. a browser-style presigned POST upload)."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()
