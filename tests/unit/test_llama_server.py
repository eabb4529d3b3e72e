"""LlamaServer's process handling with stand-in child processes (no llama.cpp, no model)."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import httpx
import pytest

from lectern.adapters.local import llama_server
from lectern.adapters.local.llama_server import LlamaServer, LlamaServerError

FAKE_SERVER = textwrap.dedent(
    """
    import json, os, sys
    from http.server import BaseHTTPRequestHandler, HTTPServer

    model, port = sys.argv[1], int(sys.argv[2])

    class H(BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps({"object": "list", "data": [{"id": model}], "env": dict(os.environ)}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    print("fake server up", flush=True)
    HTTPServer(("127.0.0.1", port), H).serve_forever()
    """
)


class Scripted(LlamaServer):
    """Runs `script` instead of llama.cpp's server."""

    script = ""

    def command(self) -> list[str]:
        return [sys.executable, "-c", self.script, str(self.model_path), str(self.port)]


@pytest.fixture
def gguf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(llama_server, "llama_available", lambda: True)
    path = tmp_path / "model.gguf"
    path.write_bytes(b"GGUF")
    return path


def test_command_line(tmp_path: Path) -> None:
    server = LlamaServer(tmp_path / "m.gguf", log_dir=tmp_path, port=8123, n_ctx=2048, n_threads=3)
    cmd = server.command()
    assert cmd[:3] == [sys.executable, "-m", "lectern.adapters.local.llama_serve"]
    args = dict(zip(cmd[3::2], cmd[4::2], strict=True))
    assert args == {
        "--model": str(tmp_path / "m.gguf"), "--host": "127.0.0.1", "--port": "8123", "--n_ctx": "2048",
        "--n_threads": "3", "--n_threads_batch": "3", "--logits_all": "false", "--use_mlock": "false",
        "--interrupt_requests": "false",
    }
    assert server.base_url == "http://127.0.0.1:8123"
    chatml = LlamaServer(tmp_path / "m.gguf", log_dir=tmp_path, chat_format="chatml").command()
    assert chatml[-2:] == ["--chat_format", "chatml"]


def test_starts_waits_for_readiness_and_stops(
    gguf: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PORT", "1")  # llama_cpp.server would let these override its command line
    monkeypatch.setenv("host", "0.0.0.0")
    Scripted.script = FAKE_SERVER
    with Scripted(gguf, log_dir=tmp_path / "logs", startup_timeout_s=20) as server:
        assert server.running and server.port > 0
        models = httpx.get(f"{server.base_url}/v1/models").json()
        env = models["env"]
        assert env["OMP_WAIT_POLICY"] == "PASSIVE"
        assert "PORT" not in env and "host" not in env
    assert not server.running
    assert "fake server up" in (tmp_path / "logs" / "llama-server.log").read_text()
    server.stop()  # idempotent


def test_exit_during_start_reports_the_log_tail(gguf: Path, tmp_path: Path) -> None:
    Scripted.script = "import sys; print('error loading model: bad magic', file=sys.stderr); sys.exit(3)"
    server = Scripted(gguf, log_dir=tmp_path, startup_timeout_s=20)
    with pytest.raises(LlamaServerError, match=r"(?s)exit code 3.*error loading model: bad magic"):
        server.start()
    assert not server.running


def test_start_timeout_stops_the_process(gguf: Path, tmp_path: Path) -> None:
    Scripted.script = "import time; print('loading...', flush=True); time.sleep(60)"
    server = Scripted(gguf, log_dir=tmp_path, startup_timeout_s=1.0, stop_grace_s=2)
    with pytest.raises(LlamaServerError, match=r"(?s)did not answer within 1 s.*loading\.\.\."):
        server.start()
    assert not server.running


def test_missing_model_file(tmp_path: Path) -> None:
    with pytest.raises(LlamaServerError, match="does not exist"):
        LlamaServer(tmp_path / "absent.gguf", log_dir=tmp_path).start()


def test_llama_not_installed_says_make_venv(
    gguf: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(llama_server, "llama_available", lambda: False)
    with pytest.raises(LlamaServerError, match="make venv"):
        LlamaServer(gguf, log_dir=tmp_path).start()
