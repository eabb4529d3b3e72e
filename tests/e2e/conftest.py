"""Fixtures for the browser tests: a real `lectern up` server and headless Chromium (from Debian).

Environment:
  LECTERN_E2E_LLM      generator for the server under test (sets LECTERN_LLM); default "fake"
  LECTERN_E2E_URL      use an already running Lectern at this URL instead of starting one
  LECTERN_E2E_STARTUP_S  seconds to wait for /v1/health (default 180)
  LECTERN_CHROMIUM     the Chromium binary (default /usr/bin/chromium; `apt-get install -y chromium`)
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("LECTERN_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
E2E_LLM = os.environ.get("LECTERN_E2E_LLM", "fake")
STARTUP_S = float(os.environ.get("LECTERN_E2E_STARTUP_S", "180"))

# Loopback only: never go through an HTTP proxy from the environment.
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass
class LecternServer:
    url: str
    log_path: Path | None = None
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    api_key: str = ""  # the key `lectern up` printed on its first start (LECTERN_E2E_API_KEY for an external one)

    def read_key(self) -> str:
        """The first-start key from the server log (printed once: 'Sign in with this API key ...')."""
        m = re.search(r"^\s+(lk_[A-Za-z0-9_-]{20,})\s*$", self.log_tail(100_000), re.M)
        return m.group(1) if m else ""

    def log_tail(self, chars: int = 4000) -> str:
        if not self.log_path or not self.log_path.exists():
            return "(no server log: external server)"
        return self.log_path.read_text(errors="replace")[-chars:]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _health(url: str) -> dict | None:
    try:
        with _NO_PROXY.open(f"{url}/v1/health", timeout=5) as r:
            if r.status == 200:
                return json.loads(r.read() or b"{}")
    except (OSError, urllib.error.URLError, ValueError):
        return None
    return None


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Stops the server we started, with its children (it runs in its own process group)."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@pytest.fixture(scope="session")
def lectern_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LecternServer]:
    external = os.environ.get("LECTERN_E2E_URL")
    if external:
        server = LecternServer(url=external.rstrip("/"), api_key=os.environ.get("LECTERN_E2E_API_KEY", ""))
        if _health(server.url) is None:
            pytest.fail(f"LECTERN_E2E_URL={external} does not answer GET /v1/health")
        yield server
        return

    base = tmp_path_factory.mktemp("lectern-e2e")
    data_dir = base / "data"
    data_dir.mkdir()
    log_path = base / "server.log"
    port = _free_port()
    url = f"http://127.0.0.1:{port}"

    env = os.environ.copy()
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO / "lambdas"), env.get("PYTHONPATH", "")) if p)
    env["LECTERN_LLM"] = E2E_LLM
    env["PYTHONUNBUFFERED"] = "1"
    cmd = [sys.executable, "-m", "lectern.cli", "up"]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--data-dir", str(data_dir)]

    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            cmd,
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: stopped with all its children
        )
    server = LecternServer(url=url, log_path=log_path, proc=proc)
    try:
        deadline = time.monotonic() + STARTUP_S
        while True:
            body = _health(url)
            if body is not None and body.get("status") == "ok":
                break
            if proc.poll() is not None:
                pytest.fail(
                    f"`{' '.join(cmd)}` exited with code {proc.returncode} before it was healthy.\n"
                    f"--- server log ---\n{server.log_tail()}"
                )
            if time.monotonic() > deadline:
                pytest.fail(
                    f"{url}/v1/health did not report status ok within {STARTUP_S:.0f} s "
                    f"(last answer: {body!r}).\n--- server log ---\n{server.log_tail()}"
                )
            time.sleep(0.25)
        deadline = time.monotonic() + 10
        while not server.api_key and time.monotonic() < deadline:  # printed just after the server is up
            server.api_key = server.read_key()
            time.sleep(0.1)
        if not server.api_key:
            pytest.fail(f"`lectern up` printed no API key on first start.\n--- server log ---\n{server.log_tail()}")
        yield server
    finally:
        _stop(proc)


@pytest.fixture(scope="session")
def browser():
    # Imported here so that a missing Playwright is a clear test error rather than a collection crash of
    # the whole suite; it is never a skip.
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"Chromium not found at {CHROMIUM}: `apt-get install -y chromium` or set LECTERN_CHROMIUM"
        )
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture
def page(browser, lectern_server: LecternServer, request: pytest.FixtureRequest, tmp_path: Path):
    """A fresh page (own context). On failure: a full-page screenshot in tmp_path, console and server log."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
    pg = context.new_page()
    pg.set_default_timeout(15_000)
    console: list[str] = []
    pg.on("console", lambda m: console.append(f"[{m.type}] {m.text}"))
    pg.on("pageerror", lambda e: console.append(f"[pageerror] {e}"))
    try:
        yield pg
    finally:
        rep = getattr(request.node, "rep_call", None)
        if rep is None or rep.failed:
            shot = tmp_path / "failure.png"
            try:
                pg.screenshot(path=str(shot), full_page=True)
                print(f"\nscreenshot: {shot}")
            except Exception as exc:
                print(f"\n(could not take a screenshot: {exc})")
            print("--- browser console ---\n" + "\n".join(console[-100:]))
            print(f"--- server log ({lectern_server.url}) ---\n{lectern_server.log_tail()}")
        context.close()
