"""`python -m lectern.adapters.local.llama_serve ARGS`: llama-cpp-python's server plus token usage in streams.

llama-cpp-python's server (0.3.36) ignores OpenAI's `stream_options.include_usage` and never reports usage in
a stream, while the C++ llama-server, TGI and OpenAI send a final chunk with `"choices": []` and `"usage"`.
This entry point adds that chunk to every streamed chat completion and otherwise runs `llama_cpp.server`
unchanged, with the same arguments. The counts are exact: the prompt length and the number of tokens
generated (the end token excluded), taken from `Llama.generate`. If the library's internals ever change shape,
the patch is skipped with a warning and the server runs as it ships (streams then report no usage; the client
counts 0).

Before the server imports anything of llama.cpp, the CPU backend chosen for this machine is loaded
(`llama_runtime.load_cpu_backend`: runtime dispatch over the build's CPU variants), and a watcher ends the
server when the process that started it is gone (a `kill -9` of `lectern up` leaves no orphan holding the
model's memory and its port).

This module is only imported in the server's own process, never in Lectern's.
"""

from __future__ import annotations

import functools
import os
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any


def _patch() -> None:
    import llama_cpp

    llama_cls = llama_cpp.Llama
    original_generate = llama_cls.generate
    original_chat = llama_cls.create_chat_completion

    @functools.wraps(original_generate)
    def generate(self: Any, tokens: Any, *args: Any, **kwargs: Any) -> Iterator[int]:
        counts = self._lectern_usage = [len(tokens), 0]
        for token in original_generate(self, tokens, *args, **kwargs):
            if not llama_cpp.llama_vocab_is_eog(self._model.vocab, token):
                counts[1] += 1
            yield token

    def with_usage(self: Any, chunks: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        last: dict[str, Any] = {}
        for chunk in chunks:
            last = chunk
            yield chunk
        counts = self._lectern_usage
        if counts is None:
            return
        prompt, completion = counts
        yield {
            "id": last.get("id", "chatcmpl-usage"),
            "object": "chat.completion.chunk",
            "created": last.get("created", int(time.time())),
            "model": last.get("model", ""),
            "choices": [],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            },
        }

    @functools.wraps(original_chat)
    def create_chat_completion(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not kwargs.get("stream"):
            return original_chat(self, *args, **kwargs)
        self._lectern_usage = None
        return with_usage(self, original_chat(self, *args, **kwargs))  # type: ignore[arg-type]

    llama_cls.generate = generate  # type: ignore[method-assign,assignment]
    llama_cls.create_chat_completion = create_chat_completion  # type: ignore[method-assign]


def _exit_with_parent(poll_s: float = 0.5) -> None:
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_s)
        os._exit(0)  # the parent died: nobody will ever ask this server anything

    threading.Thread(target=watch, name="lectern-parent-watch", daemon=True).start()


def main() -> None:
    from lectern.adapters.local.llama_runtime import RuntimeCheckError, load_cpu_backend

    _exit_with_parent()
    try:
        variant = load_cpu_backend()
    except RuntimeCheckError as exc:
        print(f"lectern: {exc}", file=sys.stderr, flush=True)
        sys.exit(2)
    print(f"lectern: llama.cpp CPU backend: {variant or 'built in'}", file=sys.stderr, flush=True)
    try:
        _patch()
    except Exception as exc:  # never stop the server over a missing usage chunk
        print(f"lectern: streamed usage disabled ({type(exc).__name__}: {exc})", file=sys.stderr)
    from llama_cpp.server.__main__ import main as server_main

    server_main()


if __name__ == "__main__":
    main()
