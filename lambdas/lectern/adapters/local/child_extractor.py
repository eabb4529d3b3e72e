"""Extraction in a child process under a time limit: one pathological file (a PDF whose parser loops, a
decompression bomb the limits do not catch, a crash in a C extension) costs at most the limit and ends FAILED
with the reason, instead of holding a worker — or the whole process — forever.

Each ingestion thread owns one long-lived child (forked from a forkserver, so the parent's threads are not
copied), which extracts one document at a time: bytes in over a pipe, an `ExtractedDocument` (or the
`ExtractionError` message) out. At the limit the child is killed (SIGKILL) and the next document gets a fresh
one. The child ignores SIGINT (Ctrl-C reaches the parent, which decides) and exits when its parent is gone
(EOF on the pipe).
"""

from __future__ import annotations

import importlib
import logging
import multiprocessing
import signal
import threading
import warnings
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from lectern.domain.errors import ExtractionError, IngestionInterrupted
from lectern.domain.extraction import ExtractionLimits
from lectern.domain.models import ExtractedDocument

log = logging.getLogger(__name__)


def _load(target: str) -> Any:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def _serve(conn: Connection, log_path: str | None, target: str) -> None:  # pragma: no cover - in the child
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    run = _load(target)
    conn.send(("ready", None))  # start-up (imports) is not charged to the first document's time limit
    # library warnings (pypdf, python-docx) go to the log file, never to the terminal the parent prints on
    root = logging.getLogger()
    root.handlers[:] = [
        logging.FileHandler(log_path, encoding="utf-8", delay=True) if log_path else logging.NullHandler()
    ]
    root.handlers[0].setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s [extract]: %(message)s")
    )
    root.setLevel(logging.INFO)
    logging.captureWarnings(True)
    warnings.simplefilter("default")
    while True:
        try:
            data, filename, content_type, limits = conn.recv()
        except (EOFError, OSError):
            return
        try:
            result: tuple[str, Any] = ("ok", run(data, filename, content_type, limits))
        except ExtractionError as exc:
            result = ("error", exc.message)
        except Exception as exc:
            log.exception("extraction crashed")
            result = ("crash", type(exc).__name__)
        try:
            conn.send(result)
        except (BrokenPipeError, OSError):
            return


class _Child:
    def __init__(self, ctx: Any, log_path: str | None, target: str) -> None:
        parent, child = ctx.Pipe(duplex=True)
        self.conn: Connection = parent
        self.proc = ctx.Process(
            target=_serve, args=(child, log_path, target), name="lectern-extract", daemon=True
        )
        try:
            self.proc.start()
        finally:
            child.close()
        try:
            ready = self.conn.poll(120) and self.conn.recv()[0] == "ready"
        except (EOFError, OSError):
            ready = False
        if not ready:
            self.kill()
            raise RuntimeError("the extraction child process did not start")

    def kill(self) -> None:
        if self.proc.pid is not None:
            if self.proc.is_alive():
                self.proc.kill()
            self.proc.join(5)
        self.conn.close()


class ChildProcessExtractor:
    """An `Extractor` (see `domain.ingest`) that runs `domain.extraction.extract` in a child process."""

    def __init__(
        self,
        time_limit_s: float,
        *,
        log_path: Path | None = None,
        target: str = "lectern.domain.extraction:extract",
    ) -> None:
        """`target`: the extraction function, as `module:name` (the child imports it)."""
        if time_limit_s <= 0:
            raise ValueError("time_limit_s must be positive")
        self.time_limit_s = time_limit_s
        self.target = target
        self.log_path = str(log_path) if log_path else None
        if log_path:
            log_path.parent.mkdir(parents=True, exist_ok=True)
        self._ctx = multiprocessing.get_context("forkserver")
        self._local = threading.local()
        self._all: list[_Child] = []
        self._lock = threading.Lock()

    def _child(self) -> _Child:
        child: _Child | None = getattr(self._local, "child", None)
        if child is None or not child.proc.is_alive():
            try:
                child = _Child(self._ctx, self.log_path, self.target)
            except (
                EOFError,
                OSError,
                RuntimeError,
            ) as exc:  # killed while starting, forkserver gone, shutdown
                raise IngestionInterrupted(f"The extraction process could not be started ({exc!r}).") from exc
            self._local.child = child
            with self._lock:
                self._all.append(child)
        return child

    def _drop(self, child: _Child) -> None:
        child.kill()
        self._local.child = None
        with self._lock:
            if child in self._all:
                self._all.remove(child)

    def __call__(
        self, data: bytes, filename: str, content_type: str, limits: ExtractionLimits
    ) -> ExtractedDocument:
        """Extract in this thread's child. A child killed by a signal (an operator's kill -9, the OOM killer) is
        replaced and the document tried once more in a fresh one; a second crash, or the time limit, is the
        document's failure."""
        for attempt in (1, 2):
            child = self._child()
            try:
                child.conn.send((data, filename, content_type, limits))
                ready = child.conn.poll(self.time_limit_s)
                result = child.conn.recv() if ready else None
            except (EOFError, BrokenPipeError, OSError):
                child.proc.join(5)
                code = child.proc.exitcode
                self._drop(child)
                if attempt == 1 and code is not None and code < 0:
                    log.warning(
                        "extraction child killed by signal %d on %s; trying once more", -code, filename
                    )
                    continue
                how = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
                raise ExtractionError(
                    f"Reading this file crashed the extractor ({how}); the file is probably damaged."
                ) from None
            except BaseException:  # Ctrl-C while waiting: the child's work is abandoned with it
                self._drop(child)
                raise
            if result is None:
                self._drop(child)
                raise ExtractionError(
                    f"Reading this file took longer than the {self.time_limit_s:g} s limit "
                    "(LECTERN_INGEST_TIME_LIMIT_S) and was stopped; the file may be damaged or too complex."
                )
            kind, value = result
            if kind == "ok":
                return value
            if kind == "error":
                raise ExtractionError(value)
            raise RuntimeError(f"extraction failed in the child process: {value}")
        raise AssertionError("unreachable")

    def pids(self) -> list[int]:
        """The live children's process ids (tests, diagnostics)."""
        with self._lock:
            return [c.proc.pid for c in self._all if c.proc.is_alive() and c.proc.pid is not None]

    def close(self) -> None:
        with self._lock:
            children, self._all = self._all, []
        for child in children:
            child.kill()
