"""`lectern ask` asks the running `lectern up` of its data dir (loopback, the run's key) instead of starting a model,
says which path it took, and falls back to its own model once that server has stopped."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

from lectern.local.running import RUN_FILE, RUN_KEY_NAME, find_running
from tests.integration.helpers import start_lectern_up

REPO = Path(__file__).resolve().parents[2]
NOTE = "The internal phone extension of the travel desk is 4410. Meals are paid at 55 EUR a day.\n"


def _env(**kw: str) -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(REPO / "lambdas"), **kw)


def _lectern(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lectern.cli", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ask_uses_the_running_server_then_its_own_model(tmp_path: Path):
    data = tmp_path / "data"
    note = tmp_path / "travel.txt"
    note.write_text(NOTE)
    done = _lectern("ingest", str(note), "--init", "--data-dir", str(data), env=_env(LECTERN_LLM="fake"))
    assert done.returncode == 0, done.stderr
    port = _free_port()
    proc = start_lectern_up(data, port, tmp_path / "up.log", _env(LECTERN_LLM="fake"))  # API keys on (default)
    try:
        run = json.loads((data / RUN_FILE).read_text())
        assert run["url"] == f"http://127.0.0.1:{port}" and run["pid"] == proc.pid and run["key"]
        assert (data / RUN_FILE).stat().st_mode & 0o077 == 0  # the key is readable by its owner only
        # a model this process could not start: only the server can have answered
        asked = _lectern(
            "ask",
            "What is the phone extension of the travel desk?",
            "--data-dir",
            str(data),
            env=_env(LECTERN_LLM="openai", LECTERN_LLM_BASE_URL=""),
        )
        assert asked.returncode == 0, asked.stderr
        assert f"using the running `lectern up` at http://127.0.0.1:{port}" in asked.stderr
        assert "4410" in asked.stdout and "travel.txt" in asked.stdout
        assert "extractive" in asked.stdout  # the server's (fake) model answered
        # --no-reuse takes the other path even while the server runs
        own = _lectern(
            "ask", "What is the meal allowance?", "--no-reuse", "--data-dir", str(data), env=_env(LECTERN_LLM="fake")
        )
        assert own.returncode == 0, own.stderr
        assert "--no-reuse: starting the model in this process" in own.stderr and "55 EUR" in own.stdout
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    assert not (data / RUN_FILE).exists()
    db = sqlite3.connect(data / "lectern.db")
    revoked = db.execute("SELECT revoked FROM api_keys WHERE name = ?", (RUN_KEY_NAME,)).fetchall()
    assert revoked == [(1,)]  # the run's key no longer opens anything
    after = _lectern(
        "ask", "What is the phone extension of the travel desk?", "--data-dir", str(data), env=_env(LECTERN_LLM="fake")
    )
    assert after.returncode == 0, after.stderr
    assert "no `lectern up` is serving this data dir: starting the model in this process" in after.stderr
    assert "4410" in after.stdout


def test_a_stale_run_file_is_not_used(tmp_path: Path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / RUN_FILE).parent.mkdir(parents=True)
    (tmp_path / RUN_FILE).write_text(json.dumps({"url": "http://127.0.0.1:9", "pid": dead.pid, "key": "k"}))
    running, why = find_running(tmp_path)
    assert running is None and f"(pid {dead.pid}) is no longer running" in why
    (tmp_path / RUN_FILE).write_text(json.dumps({"url": "http://10.0.0.5:8000", "pid": os.getpid(), "key": "k"}))
    running, why = find_running(tmp_path)
    assert running is None and "not on loopback" in why
    (tmp_path / RUN_FILE).write_text("{not json")
    assert find_running(tmp_path)[0] is None
