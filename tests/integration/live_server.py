"""`lectern up` as a child process on loopback, for the tests that kill it, load it or fuzz it.

The server runs the deterministic extractive model (`LECTERN_LLM=fake`), without sign-in and without the
per-tenant rate limit and token budget (those have their own tests; here they would turn load into 429s).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]

OPEN_SETTINGS: dict[str, object] = {"auth": "none", "rate_limit_per_minute": 0, "daily_token_budget": 0}


def open_settings() -> dict[str, object]:
    """LocalSettings overrides for an open server, limited to the fields this version of the settings has."""
    from lectern.settings import LocalSettings

    return {k: v for k, v in OPEN_SETTINGS.items() if k in LocalSettings.model_fields}


def server_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, LECTERN_LLM="fake", PYTHONPATH=str(REPO / "lambdas"))
    env.update({f"LECTERN_{k.upper()}": str(v) for k, v in OPEN_SETTINGS.items()})
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerDied(RuntimeError):
    pass


def start_server(
    data_dir: Path, port: int, log: Path, *, timeout: float = 120.0, **env: str
) -> subprocess.Popen:
    """Start `lectern up` on 127.0.0.1:port in its own process group and wait for /v1/health."""
    argv = [sys.executable, "-m", "lectern.cli", "up", "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--data-dir", str(data_dir)]
    proc = subprocess.Popen(
        argv,
        cwd=REPO,
        env=server_env(**env),
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServerDied(f"server exited ({proc.returncode}): {log.read_text(errors='replace')[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=2).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    kill9(proc)
    raise ServerDied(f"server did not answer /v1/health within {timeout:.0f} s")


def kill9(proc: subprocess.Popen) -> None:
    """SIGKILL the server's whole process group (it has no chance to clean up), and reap it."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(30)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            kill9(proc)
