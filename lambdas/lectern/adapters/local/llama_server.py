"""Runs llama-cpp-python's OpenAI-compatible server as a child process on a loopback port.

The server is started as `python -m lectern.adapters.local.llama_serve` (llama_cpp.server with a usage chunk
added to streams, see that module) with the GGUF's own chat template: without --chat_format, llama-cpp-python
renders the Jinja template in the file's metadata (for Qwen2.5, ChatML with Qwen's default system prompt) and
stops at the end token it names. Output goes to a log file; a start that fails reports the log's tail.
`MessagesApiChatModel` talks to `base_url`.
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO

import httpx

import lectern
from lectern.adapters.local.llama_runtime import describe_exit

SERVE_MODULE = "lectern.adapters.local.llama_serve"
LOG_NAME = "llama-server.log"
_SERVER_MODULES = (
    "llama_cpp", "uvicorn", "fastapi", "sse_starlette", "starlette_context", "pydantic_settings",
)
# llama_cpp.server reads every setting from an environment variable of the same name (case-insensitive), and
# HOST/PORT even override its command line: a stray PORT or MODEL in the user's environment must not reach it.
_SERVER_ENV_NAMES = frozenset((
    "api_key", "cache", "cache_size", "cache_type", "chat_format", "chat_template_kwargs", "clip_model_path",
    "config_file", "disable_ping_events", "draft_model", "draft_model_num_pred_tokens", "embedding",
    "flash_attn", "hf_model_repo_id", "hf_pretrained_model_name_or_path", "hf_tokenizer_config_path", "host",
    "interrupt_requests", "kv_overrides", "last_n_tokens_size", "logits_all", "lora_base", "lora_path",
    "main_gpu", "model", "model_alias", "mul_mat_q", "n_batch", "n_ctx", "n_gpu_layers", "n_threads",
    "n_threads_batch", "n_ubatch", "numa", "offload_kqv", "port", "root_path", "rope_freq_base",
    "rope_freq_scale", "rope_scaling_type", "rpc_servers", "seed", "split_mode", "ssl_certfile",
    "ssl_keyfile", "tensor_split", "type_k", "type_v", "use_mlock", "use_mmap", "verbose", "vocab_only",
    "yarn_attn_factor", "yarn_beta_fast", "yarn_beta_slow", "yarn_ext_factor", "yarn_orig_ctx",
))
_PORT_IN_USE = "address already in use"


class LlamaServerError(RuntimeError):
    """The local model server could not start. The first line says why; the log's tail follows."""


def llama_available() -> bool:
    """Whether llama-cpp-python and its server's dependencies are installed (`make venv` installs them)."""
    return all(importlib.util.find_spec(name) is not None for name in _SERVER_MODULES)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class LlamaServer:
    def __init__(
        self,
        model_path: Path,
        *,
        log_dir: Path,
        host: str = "127.0.0.1",
        port: int | None = None,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        chat_format: str | None = None,
        startup_timeout_s: float = 120.0,
        stop_grace_s: float = 10.0,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.model_path = Path(model_path)
        self.log_dir = Path(log_dir)
        self.host = host
        self._fixed_port = port
        self.port = port or 0
        self.n_ctx = n_ctx
        self.n_threads = n_threads or max(1, os.cpu_count() or 1)
        self.chat_format = chat_format
        self.startup_timeout_s = startup_timeout_s
        self.stop_grace_s = stop_grace_s
        self.extra_args = tuple(extra_args)
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.log_dir / LOG_NAME

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def command(self) -> list[str]:
        threads = str(self.n_threads)
        cmd = [
            sys.executable, "-m", SERVE_MODULE,
            "--model", str(self.model_path),
            "--host", self.host,
            "--port", str(self.port),
            "--n_ctx", str(self.n_ctx),
            "--n_threads", threads,
            "--n_threads_batch", threads,
            # The server's default (true) computes the vocabulary's logits for every prompt token.
            "--logits_all", "false",
            "--use_mlock", "false",  # do not pin half a gigabyte of RAM
            # By default a waiting request cuts the current stream short; it should wait its turn instead.
            "--interrupt_requests", "false",
        ]
        if self.chat_format:
            cmd += ["--chat_format", self.chat_format]
        return cmd + list(self.extra_args)

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k.lower() not in _SERVER_ENV_NAMES}
        env["OMP_WAIT_POLICY"] = "PASSIVE"  # idle OpenMP threads sleep instead of spinning on the cores
        env["PYTHONUNBUFFERED"] = "1"
        package_root = str(Path(lectern.__file__).resolve().parents[1])  # so the child finds SERVE_MODULE
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
        return env

    def start(self) -> None:
        """Start the server and wait until it answers; raise LlamaServerError with the log's tail if not."""
        if self.running:
            return
        if not self.model_path.is_file():
            raise LlamaServerError(f"The model file does not exist: {self.model_path}")
        if not llama_available():
            raise LlamaServerError("llama-cpp-python is not installed; run `make venv`.")
        self.log_dir.mkdir(parents=True, exist_ok=True)
        attempts = 1 if self._fixed_port else 3
        for attempt in range(1, attempts + 1):
            self.port = self._fixed_port or free_port(self.host)
            try:
                self._spawn_and_wait()
                return
            except LlamaServerError as exc:
                # A port picked free can be taken before the server binds it (after loading the model).
                if attempt == attempts or _PORT_IN_USE not in str(exc):
                    raise

    def _spawn_and_wait(self) -> None:
        if self.log_path.exists():
            self.log_path.replace(self.log_path.with_name(LOG_NAME + ".1"))
        self._log = self.log_path.open("wb")
        self._proc = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments, no shell
            self.command(), stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
            env=self._env(), cwd=self.log_dir,
        )
        atexit.register(self.stop)
        deadline = time.monotonic() + self.startup_timeout_s
        with httpx.Client(timeout=httpx.Timeout(2.0, connect=1.0)) as client:
            while True:
                code = self._proc.poll()
                if code is not None:
                    self.stop()
                    tail = self.log_tail()
                    last = tail.splitlines()[-1] if tail else ""
                    raise LlamaServerError(
                        f"The local model server exited during start-up ({describe_exit(code)}): "
                        f"{last[:200]} "
                        f"Log {self.log_path}:\n{tail}"
                    )
                if self._ready(client):
                    return
                if time.monotonic() > deadline:
                    self.stop()
                    raise LlamaServerError(
                        f"The local model server did not answer within {self.startup_timeout_s:.0f} s. "
                        f"Log {self.log_path}:\n{self.log_tail()}"
                    )
                time.sleep(0.2)

    def _ready(self, client: httpx.Client) -> bool:
        try:
            r = client.get(f"{self.base_url}/v1/models")
            ids = [m.get("id") for m in r.json().get("data", [])] if r.status_code == 200 else []
        except (httpx.HTTPError, ValueError, AttributeError):
            return False
        return str(self.model_path) in ids  # ours, not another process that took the port

    def wait(self) -> int | None:
        """Block until the server process exits and return its code (negative: the signal that killed it);
        None when no process is running. `stop()` from another thread ends the wait too."""
        proc = self._proc
        if proc is None:
            return None
        return proc.wait()

    def last_log_line(self) -> str:
        lines = [line for line in self.log_tail(4000).splitlines() if line.strip()]
        return lines[-1].strip() if lines else ""

    def log_tail(self, max_chars: int = 2000) -> str:
        try:
            with self.log_path.open("rb") as f:
                f.seek(max(0, f.seek(0, os.SEEK_END) - max_chars))
                return f.read().decode("utf-8", "replace").strip()
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        """Terminate the server (SIGTERM, then SIGKILL after the grace period). Safe to call again."""
        proc, self._proc = self._proc, None
        if proc is not None:
            atexit.unregister(self.stop)
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=self.stop_grace_s)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> LlamaServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
