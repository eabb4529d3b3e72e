"""What the CLI's ingest and sync print, in one place, so that it fits the terminal and reads well in a file.

On a terminal: one overall bar and one line naming the current file and step (Rich `Live`), failures printed
above it as they happen (whole reasons, wrapped between words), then a summary table. Not on a terminal (a
pipe, a file, CI): plain lines, one record per file, wrapped between words at the width (COLUMNS, default 80)
with an indented continuation — never cut, no escape codes — then the same summary. Library warnings
(pypdf, python-docx, onnxruntime …) go to `DATA_DIR/logs/cli.log`, never to the output.
"""

from __future__ import annotations

import logging
import textwrap
import threading
import warnings
from collections import Counter
from pathlib import Path
from types import TracebackType

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from lectern.domain.ingest import TIMED_STEPS
from lectern.domain.models import Document
from lectern.domain.sync import Action, SyncOutcome, SyncPlan, SyncReport

_ACTION_WORDS = {
    Action.ADD: "add",
    Action.MODIFY: "update",
    Action.UNCHANGED: "unchanged",
    Action.RESUME: "resume",
    Action.RETRY: "retry",
    Action.FAILED: "failed before",
    Action.DELETE: "delete",
    Action.GONE: "gone (kept)",
}


def log_to_file(data_dir: Path) -> Path:
    """Send every log record and Python warning of this process to DATA_DIR/logs/cli.log (and nothing to the
    terminal: without a handler, Python's last-resort handler would print library warnings to stderr)."""
    path = data_dir / "logs" / "cli.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_lectern_cli", False):
            root.removeHandler(h)
            h.close()
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler._lectern_cli = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    logging.captureWarnings(True)
    warnings.simplefilter("default")
    return path


def plain(console: Console, text: str, indent: str = "    ") -> None:
    """Print `text` for a file or pipe: wrapped between words at the console's width, continuation indented;
    a word longer than the width (a long path) is kept whole."""
    lines = textwrap.wrap(
        text, width=console.width, subsequent_indent=indent, break_long_words=False, break_on_hyphens=False
    )
    print("\n".join(lines) if lines else "", flush=True)


def skipped_note(skipped: list[Path]) -> str:
    """'skipped 3 file(s) of unsupported types: .png (2), .exe (1)'."""
    by_ext = Counter(p.suffix.lower() or "(no extension)" for p in skipped)
    parts = ", ".join(f"{ext} ({n})" for ext, n in sorted(by_ext.items(), key=lambda kv: (-kv[1], kv[0])))
    return f"skipped {len(skipped)} file(s) of unsupported types: {parts}"


def display_path(path: str, root: str | None) -> str:
    if root and path.startswith(root.rstrip("/") + "/"):
        return path[len(root.rstrip("/")) + 1 :]
    return path


class IngestDisplay:
    """Progress of a run over `total` files. Use as a context manager; call `start`, `step`, `done` per file."""

    def __init__(
        self, console: Console, total: int, *, root: str | None = None, verb: str = "ingesting"
    ) -> None:
        self.console = console
        self.total = total
        self.root = root
        self.verb = verb
        self.tty = console.is_terminal
        self.count = 0
        self._current = Text("", no_wrap=True, overflow="ellipsis")
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(bar_width=None),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            expand=True,
        )
        self._task = self._progress.add_task(verb, total=max(total, 1))
        self._live: Live | None = None
        self._inflight: dict[str, str] = {}  # files being worked on -> their current step
        self._lock = threading.Lock()

    def __enter__(self) -> IngestDisplay:
        if self.tty and self.total:
            self._live = Live(Group(self._progress, self._current), console=self.console, transient=True)
            self._live.__enter__()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._live is not None:
            self._live.__exit__(exc_type, exc, tb)
            self._live = None

    def start(self, path: str) -> None:
        with self._lock:
            self._inflight[path] = ""
            self._render_current()

    def step(self, step: str, done: int, total: int, *, path: str | None = None) -> None:
        if self._live is None:
            return
        with self._lock:
            key = path if path is not None else next(reversed(self._inflight), None)
            if key is None:
                return
            self._inflight[key] = f"{step} {done}/{total}" if step == "embed" and total else step
            self._render_current()

    def _render_current(self) -> None:
        parts = [display_path(p, self.root) + (f" ({s})" if s else "") for p, s in self._inflight.items()]
        self._current.plain = "  " + " | ".join(parts)

    def done(self, outcome: SyncOutcome) -> None:
        with self._lock:
            self._inflight.pop(outcome.item.path, None)
            self._render_current()
        self.count += 1
        self._progress.update(self._task, completed=self.count)
        name = display_path(outcome.item.path, self.root)
        if self.tty:
            if outcome.status == "FAILED":
                self.console.print(Text.assemble(("FAILED ", "bold red"), name, ": ", outcome.detail))
            return
        line = f"[{self.count}/{self.total}] {outcome.status:<8} {name}"
        if outcome.detail:
            line += f": {outcome.detail}" if outcome.status == "FAILED" else f" ({outcome.detail})"
        plain(self.console, line)


def plan_table(plan: SyncPlan, root: str | None) -> Table:
    table = Table("action", "file", "note", title=f"plan for {plan.root}", title_justify="left")
    for item in plan.items:
        note = item.reason if item.action in (Action.FAILED, Action.RETRY) else ""
        table.add_row(_ACTION_WORDS[item.action], display_path(item.path, root), note)
    return table


def print_plan(console: Console, plan: SyncPlan, root: str | None) -> None:
    if console.is_terminal:
        console.print(plan_table(plan, root))
    else:
        for item in plan.items:
            note = f": {item.reason}" if item.action in (Action.FAILED, Action.RETRY) and item.reason else ""
            plain(
                console, f"{_ACTION_WORDS[item.action]:<13} {display_path(item.path, root)}{note}", " " * 14
            )
    counts = ", ".join(f"{n} {_ACTION_WORDS[Action(a)]}" for a, n in plan.counts().items() if n)
    plain(console, f"plan: {counts or 'nothing to do'}")


def summary_table(report: SyncReport, *, seconds: float, skipped: int = 0) -> Table:
    counts = report.plan.counts()
    ended = Counter(o.status for o in report.outcomes)
    rows = [
        ("added", counts["add"]),
        ("updated", counts["modify"]),
        ("resumed / retried", counts["resume"] + counts["retry"]),
        ("unchanged", counts["unchanged"]),
        ("deleted", counts["delete"]),
        ("gone, kept", counts["gone"]),
        ("skipped (type)", skipped),
        ("failed", ended.get("FAILED", 0)),
    ]
    table = Table("result", "files", title=f"summary ({seconds:.1f} s)", title_justify="left")
    for name, n in rows:
        if n:
            table.add_row(name, str(n), style="red" if name == "failed" else None)
    if not table.rows:
        table.add_row("nothing to do", "0")
    return table


def print_failures(console: Console, report: SyncReport, root: str | None) -> None:
    """Every failure with its whole reason: wrapped between words on a terminal, one unwrapped line otherwise."""
    for o in report.failed:
        name = display_path(o.item.path, root)
        if console.is_terminal:
            console.print(Text.assemble(("FAILED ", "bold red"), name, ": ", o.detail or "(no reason given)"))
        else:
            plain(console, f"FAILED {name}: {o.detail or '(no reason given)'}")


def timings_line(doc: Document) -> str:
    """'extract 120 · chunk 4 · embed 800 · index 12 ms (total 937 ms)', or '' when none were recorded."""
    t = doc.timings or {}
    if not t:
        return ""
    parts = " · ".join(f"{k} {t[k]}" for k in TIMED_STEPS if k in t)
    return f"{parts} ms (total {sum(t.values())} ms)"


def _short_time(iso: str) -> str:
    return f"{iso[5:10]} {iso[11:16]}" if len(iso) >= 16 else iso


def documents_view(console: Console, docs: list[Document], *, details: bool = False) -> None:
    """The `documents` listing: a table that fits the terminal (reasons wrapped between words under the name),
    or one plain line per document plus indented detail lines when the output is not a terminal."""
    if not docs:
        print("No documents yet. Add some with `lectern ingest PATH` or `lectern sync FOLDER`.")
        return
    if not console.is_terminal:
        for d in docs:
            pages, chunks = str(d.pages or "-"), str(d.chunks or "-")
            plain(
                console,
                f"{d.document_id[:8]}  {d.status.value:<10} {pages:>5} p {chunks:>6} ch"
                f"  {_short_time(d.updated_at)}  {d.filename}",
            )
            if d.error:
                plain(console, f"    error: {d.error}", " " * 11)
            if details:
                plain(console, f"    source: {d.source_path or '(not recorded)'}", " " * 12)
                plain(console, f"    timings: {timings_line(d) or '(not recorded)'}", " " * 13)
        return
    table = Table(expand=False, title=f"{len(docs)} document(s)", title_justify="left")
    table.add_column("id", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("pages", justify="right", no_wrap=True)
    table.add_column("chunks", justify="right", no_wrap=True)
    table.add_column("updated", no_wrap=True)
    table.add_column("document", overflow="fold", ratio=1)
    colors = {"INDEXED": "green", "FAILED": "red", "PROCESSING": "yellow", "UPLOADING": "yellow"}
    for d in docs:
        cell = Text(d.filename)
        if d.error:
            cell.append("\n" + d.error, style="red")
        if details:
            cell.append(f"\n{d.source_path or '(source not recorded)'}", style="dim")
            line = timings_line(d)
            if line:
                cell.append("\n" + line, style="dim")
        table.add_row(
            d.document_id[:8],
            Text(d.status.value, style=colors.get(d.status.value, "")),
            str(d.pages or ""),
            str(d.chunks or ""),
            _short_time(d.updated_at),
            cell,
        )
    console.print(table)
