"""One place that builds boto3 clients.

Every client honours boto3's own per-service endpoint variables (`AWS_ENDPOINT_URL_S3`,
`AWS_ENDPOINT_URL_BEDROCK_RUNTIME`, `AWS_ENDPOINT_URL_DYNAMODB`, ... and the global `AWS_ENDPOINT_URL`), which
boto3 reads itself since 1.28: nothing here overrides an endpoint, so the production code path is the one the
tests point at moto or at the in-repo fake servers. Retries use botocore's adaptive mode (client-side rate limiting
on throttling) with explicit timeouts, so a slow dependency fails in bounded time instead of holding a Lambda.
"""

from __future__ import annotations

import threading
from typing import Any

import boto3
from botocore.config import Config

_lock = threading.Lock()
_sessions: dict[str | None, boto3.session.Session] = {}


def client_config(
    *, max_attempts: int = 4, connect_timeout: float = 3.0, read_timeout: float = 30.0, pool: int = 16
) -> Config:
    return Config(
        retries={"mode": "adaptive", "max_attempts": max_attempts},
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        max_pool_connections=pool,
        user_agent_extra="lectern",
    )


def session(region: str | None = None) -> boto3.session.Session:
    with _lock:
        if region not in _sessions:
            _sessions[region] = boto3.session.Session(region_name=region)
        return _sessions[region]


def client(service: str, *, region: str | None = None, config: Config | None = None) -> Any:
    """A boto3 client for `service` (thread-safe to create; clients themselves are thread-safe)."""
    return session(region).client(service, config=config or client_config())


def reset() -> None:
    """Forget cached sessions (tests that change credentials or endpoints between cases)."""
    with _lock:
        _sessions.clear()
