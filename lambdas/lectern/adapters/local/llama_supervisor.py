"""The local model server, supervised: started in the background, watched, restarted with backoff.

`SupervisedModel` is the `ChatModel` the local container hands to the domain. One thread owns the server's
life: it starts the child (`LlamaServer`), then blocks in `wait()` on the child, so a crash, a `kill -9` or
the out-of-memory killer is noticed the moment the process is reaped. Then:

- `status` is "restarting" (health reports the model down, with the reason) and every question is refused at
  once with `ModelUnavailable` (HTTP 503, or an SSE `error` event for an answer already streaming) — nothing
  waits on a process that is gone;
- the server is started again after a backoff (1, 2, 4, ... seconds);
- `max_crashes` exits within `crash_window_s` stop the restarts: `status` becomes "failed", health and the log
  say so, and questions are refused with the reason until `lectern up` is restarted.

A configuration error (no model file, llama-cpp-python missing) is "failed" at once: restarting cannot fix it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import Protocol

from lectern.adapters.local.llama_runtime import describe_exit
from lectern.domain.errors import ModelUnavailable
from lectern.domain.models import ChatMessage, Generation
from lectern.domain.ports import ChatModel

log = logging.getLogger(__name__)


class Server(Protocol):
    """What the supervisor needs of a model server process (`LlamaServer`)."""

    @property
    def base_url(self) -> str: ...

    def start(self) -> None: ...  # spawn and wait until it answers; raise on failure

    def wait(self) -> int | None: ...  # block until the process exits; its return code (None: not running)

    def stop(self) -> None: ...

    def last_log_line(self) -> str: ...


class ConfigurationError(Exception):
    """Raised by a server factory for what no restart can fix (missing model file, missing library)."""


def _exit_reason(code: int | None) -> str:
    return describe_exit(code) if code is not None else "the process is gone"


class SupervisedModel:
    """A `ChatModel` over a supervised local model server."""

    def __init__(
        self,
        make_server: Callable[[], Server],
        make_client: Callable[[str], ChatModel],
        model_id: str,
        *,
        backoff_s: Sequence[float] = (1, 2, 4, 8, 16, 30),
        max_crashes: int = 5,
        crash_window_s: float = 600.0,
        first_start_wait_s: float = 180.0,
        notice_wait_s: float = 2.0,
    ) -> None:
        self.model_id = model_id
        self._make_server = make_server
        self._make_client = make_client
        self._backoff = tuple(backoff_s)
        self._max_crashes = max_crashes
        self._window = crash_window_s
        self._first_wait = first_start_wait_s
        self._notice_wait = notice_wait_s
        self._cond = threading.Condition()
        self._state = "idle"  # idle | starting | ok | restarting | failed | stopped
        self._reason = ""
        self._client: ChatModel | None = None
        self._server: Server | None = None
        self._crashes: deque[float] = deque()
        self._generation = 0  # +1 per successful start: a stream knows whether its server is the current one
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None
        self.restarts = 0

    # --- what health and the page see --------------------

    @property
    def status(self) -> str:
        return self._state

    @property
    def detail(self) -> str:
        """Why the model is not "ok" (empty when it is)."""
        with self._cond:
            return "" if self._state == "ok" else self._reason

    # --- life cycle --------------------

    def warm(self) -> None:
        with self._cond:
            if self._thread is not None or self._closed.is_set():
                return
            self._state, self._reason = "starting", "the model server is starting"
            self._thread = threading.Thread(
                target=self._supervise, name="lectern-llm-supervisor", daemon=True
            )
            self._thread.start()

    def _set(self, state: str, reason: str = "") -> None:
        with self._cond:
            self._state, self._reason = state, reason
            self._cond.notify_all()

    def _supervise(self) -> None:
        while not self._closed.is_set():
            try:
                server = self._make_server()
                self._server = server
                server.start()
            except ConfigurationError as exc:
                log.error("the local model cannot start: %s", exc)
                self._set("failed", f"cannot start: {exc}")
                return
            except Exception as exc:  # a start that failed: counted like a crash
                first = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
                if self._closed.is_set() or not self._crashed(f"its start failed: {first}", ""):
                    return
                continue
            client = self._make_client(server.base_url)
            with self._cond:
                self._client = client
                self._generation += 1
            self._set("ok")
            log.info("the local model server is ready at %s", server.base_url)
            code = server.wait()  # blocks until the child exits: crash, kill -9, OOM, or our own stop()
            with self._cond:
                self._client = None
            close = getattr(client, "close", None)
            if close:
                close()
            if self._closed.is_set():
                return
            if not self._crashed(_exit_reason(code), server.last_log_line()):
                return

    def _crashed(self, reason: str, last_log_line: str) -> bool:
        """Record an exit; back off and return True to restart, or give up (False)."""
        now = time.monotonic()
        self._crashes.append(now)
        while self._crashes and now - self._crashes[0] > self._window:
            self._crashes.popleft()
        n = len(self._crashes)
        last = f"; its last log line: {last_log_line[:300]}" if last_log_line else ""
        if n >= self._max_crashes:
            message = (
                f"the model server stopped {n} times within {self._window / 60:.0f} min and is not "
                f"restarted again (last time: {reason}); fix the cause and restart `lectern up`"
            )
            log.error("local model: %s%s", message, last)
            self._set("failed", message)
            return False
        delay = self._backoff[min(n - 1, len(self._backoff) - 1)]
        log.error(
            "the local model server stopped (%s)%s; restarting in %.1f s (%d of %d)",
            reason,
            last,
            delay,
            n,
            self._max_crashes,
        )
        self._set("restarting", f"the model server stopped ({reason}); restarting")
        self.restarts += 1
        return not self._closed.wait(delay)

    def close(self) -> None:
        self._closed.set()
        server = self._server
        if server is not None:
            server.stop()
        self._set("stopped", "Lectern is shutting down")
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=15)
        if self._server is not None and self._server is not server:
            self._server.stop()  # one that was being spawned while we closed

    # --- ChatModel --------------------

    def _current(self) -> tuple[ChatModel, int]:
        self.warm()
        with self._cond:
            if self._state == "starting":  # the first start (model load): worth a wait
                self._cond.wait_for(lambda: self._state != "starting", timeout=self._first_wait)
            if self._state == "ok" and self._client is not None:
                return self._client, self._generation
            if self._state == "starting":
                raise ModelUnavailable("The local model is still loading; try again in a moment.")
            if self._state == "failed":
                raise ModelUnavailable(f"The local model is unavailable: {self._reason}.")
            raise ModelUnavailable(
                f"The local model is unavailable right now: {self._reason}. Try again in a few seconds."
            )

    def check_available(self) -> None:
        """Raises `ModelUnavailable` (with the reason) now if a question could not be answered: the answerer
        asks before it starts, so an outage is a 503 rather than an error in the middle of a stream."""
        self._current()

    def _explain(self, exc: ModelUnavailable, generation: int) -> ModelUnavailable:
        """A request that failed because its server died says so (the monitor notices within milliseconds)."""
        with self._cond:
            self._cond.wait_for(
                lambda: self._generation != generation or self._state != "ok", timeout=self._notice_wait
            )
            if self._state != "ok" or self._generation != generation:
                return ModelUnavailable(
                    f"The local model server stopped while answering: {self._reason}. "
                    "Try again in a few seconds."
                )
        return exc

    def generate(self, messages: Sequence[ChatMessage], *, max_tokens: int, temperature: float) -> Generation:
        client, generation = self._current()
        try:
            return client.generate(messages, max_tokens=max_tokens, temperature=temperature)
        except ModelUnavailable as exc:
            raise self._explain(exc, generation) from None

    def stream(
        self, messages: Sequence[ChatMessage], *, max_tokens: int, temperature: float
    ) -> Iterator[str | Generation]:
        client, generation = self._current()  # refused now, before the caller commits to a 200
        return self._stream(client, generation, messages, max_tokens, temperature)

    def _stream(
        self,
        client: ChatModel,
        generation: int,
        messages: Sequence[ChatMessage],
        max_tokens: int,
        temperature: float,
    ) -> Iterator[str | Generation]:
        try:
            yield from client.stream(messages, max_tokens=max_tokens, temperature=temperature)
        except ModelUnavailable as exc:
            raise self._explain(exc, generation) from None
