"""`lectern ingest` and `lectern sync`: files and folders into the index, with progress and a summary."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Annotated

import typer

from lectern.cli import common
from lectern.cli.common import _EXTENSIONS, EXIT_CODES, DataDir, _cwd, app
from lectern.domain.errors import LecternError


def _expand(paths: list[Path]) -> tuple[list[Path], list[Path]]:
    """(files to ingest, files skipped for their type). Folders are walked; hidden files are ignored."""
    files: list[Path] = []
    skipped: list[Path] = []
    for p in paths:
        if p.is_dir():
            for f in sorted(p.rglob("*")):
                if not f.is_file() or any(part.startswith(".") for part in f.relative_to(p).parts):
                    continue
                (files if f.suffix.lower() in _EXTENSIONS else skipped).append(f)
        elif p.is_file():
            files.append(p)
        else:
            common.err.print(f"[yellow]skipped {p}: no such file[/yellow]")
    return files, skipped


class _NoTrigger:
    def start(self, tenant_id: str, document_id: str) -> None:
        return None


Init = Annotated[bool, typer.Option("--init", help="Create --data-dir if it does not exist.")]


Workers = Annotated[
    int | None,
    typer.Option(
        "--workers",
        min=1,
        max=8,
        help="Documents ingested at once (LECTERN_INGEST_WORKERS; default: one per CPU core but one).",
        show_default=False,
    ),
]


def _scan(files: list[Path]):
    """Each file's source path (absolute, resolved) and content hash."""
    from lectern.domain.sync import SourceFile, sha256_of

    out = []
    for f in files:
        path = f.resolve()
        try:
            data = path.read_bytes()
        except OSError as exc:
            common.err.print(f"[yellow]skipped {f}: {exc.strerror}[/yellow]")
            continue
        out.append(SourceFile(path.as_posix(), sha256_of(data), len(data)))
    return out


def _work(runner, tenant: str, todo, results, display) -> None:
    """One sync thread: items from `todo` until it is empty; each outcome (or a BaseException) to `results`."""
    import queue

    from lectern.domain.sync import SyncOutcome

    while True:
        try:
            item = todo.get_nowait()
        except queue.Empty:
            return
        display.start(item.path)
        try:
            outcome = runner.apply_one(
                tenant, item, lambda s, d, t, p=item.path: display.step(s, d, t, path=p)
            )
        except (
            LecternError
        ) as exc:  # e.g. IngestionInterrupted: the document stays PROCESSING, resumed next run
            outcome = SyncOutcome(item, "FAILED", f"{exc.message} Run again to resume it.")
        except Exception:
            logging.getLogger("lectern.cli").exception("sync of %s failed", item.path)
            outcome = SyncOutcome(item, "FAILED", "Internal error (see DATA_DIR/logs/cli.log).")
        except BaseException as exc:  # KeyboardInterrupt / SystemExit in a thread: the main thread raises it
            results.put(exc)
            return
        results.put(outcome)


def _run_items(lectern, items, root: str | None, verb: str, workers: int = 1):
    """Carry out planned items with a progress display, on `workers` threads (extraction runs in one child process
    per thread, embedding releases the GIL). Returns the report. On Ctrl-C the threads are abandoned (daemons):
    what they held stays PROCESSING and the next run resumes it."""
    import queue

    from lectern.cli_output import IngestDisplay
    from lectern.domain.sync import SyncPlan, SyncReport, SyncRunner

    lectern.document_service.trigger = _NoTrigger()
    runner = SyncRunner(lectern.document_service, lectern.pipeline, lambda p: Path(p).read_bytes())
    items = list(items)
    report = SyncReport(SyncPlan(root or "", tuple(items)))
    todo: queue.Queue = queue.Queue()
    for item in items:
        todo.put(item)
    results: queue.Queue = queue.Queue()
    with IngestDisplay(common.console, len(items), root=root, verb=verb) as display:
        args = (runner, lectern.settings.tenant_id, todo, results, display)
        for i in range(max(1, min(workers, len(items)))):
            threading.Thread(target=_work, args=args, name=f"lectern-sync-{i}", daemon=True).start()
        for _ in items:
            while True:
                try:
                    got = results.get(timeout=0.5)  # a timeout keeps the wait interruptible by Ctrl-C
                    break
                except queue.Empty:
                    continue
            if isinstance(got, BaseException):
                raise got
            report.outcomes.append(got)
            display.done(got)
    return report


def _sync_api(
    folder: Path,
    files,
    skipped,
    api: str,
    credentials,
    prefix,
    delete: bool,
    retry_failed: bool,
    dry_run: bool,
    started: float,
) -> None:
    """`lectern sync --api`: the same plan, carried out through the REST API (lectern.remote_sync)."""
    import httpx

    from lectern.cli_output import IngestDisplay, print_plan
    from lectern.domain.sync import SourceFile, SyncReport, plan_sync, sha256_of
    from lectern.remote_sync import ApiClient, ApiError, ApiSyncRunner

    root = (prefix if prefix is not None else folder.resolve().name).strip("/")
    if not root:
        common.err.print("[red]--prefix must not be empty.[/red]")
        raise typer.Exit(2)
    local = {f"{root}/{f.relative_to(folder).as_posix()}": f for f in files}
    sources = [SourceFile(p, sha256_of(f.read_bytes()), f.stat().st_size) for p, f in local.items()]
    client = ApiClient(api, credentials[0], id_token=credentials[1])
    try:
        try:
            stored = [d for d in client.documents() if d.source_path]
        except (ApiError, httpx.HTTPError) as exc:
            common.err.print(f"[red]Cannot list the documents at {api}: {exc}[/red]")
            raise typer.Exit(2) from None
        plan = plan_sync(root, sources, stored, delete=delete, retry_failed=retry_failed)
        if dry_run:
            print_plan(common.console, plan, root)
            return
        runner = ApiSyncRunner(client, lambda p: local[p].read_bytes())
        report = SyncReport(plan)
        try:
            with IngestDisplay(common.console, len(plan.items), root=root, verb="syncing") as display:

                def done(outcome) -> None:
                    report.outcomes.append(outcome)
                    display.done(outcome)

                pending = {}
                for item in plan.items:
                    display.start(item.path)
                    started_item = runner.start(item)
                    if isinstance(started_item, str):
                        pending[started_item] = item
                    else:
                        done(started_item)
                runner.wait(pending, done)
        except KeyboardInterrupt:
            common.err.print("Interrupted. Run the same command again to resume.")
            raise typer.Exit(130) from None
    finally:
        client.close()
    _finish(report, started, root, skipped)


def _finish(report, started: float, root: str | None, skipped: list[Path]) -> None:
    import time

    from lectern.cli_output import plain, print_failures, skipped_note, summary_table

    common.console.print(summary_table(report, seconds=time.monotonic() - started, skipped=len(skipped)))
    if skipped:
        plain(common.console, skipped_note(skipped))
    print_failures(common.console, report, root)
    if report.failed:
        raise typer.Exit(1)


def _open_for_ingest(data_dir: Path | None, init: bool):
    from lectern.cli_output import log_to_file

    settings = common._settings(data_dir, must_exist=not init, create_default=True)
    log_to_file(settings.data_dir)
    lectern = common._build(settings)
    lectern.purge_orphans()
    return lectern


@app.command(epilog=EXIT_CODES)
def ingest(
    paths: Annotated[
        list[Path], typer.Argument(help="Files or folders (folders are walked).", show_default=False)
    ],
    retry_failed: Annotated[
        bool, typer.Option("--retry-failed/--no-retry-failed", help="Process files that failed before again.")
    ] = True,
    workers: Workers = None,
    data_dir: DataDir = None,
    init: Init = False,
) -> None:
    """Add documents (PDF, DOCX, HTML, Markdown, text; scans and PNG/JPEG/TIFF through OCR). Unchanged files
    are skipped; a changed file replaces its document once the new version is indexed. Nothing is deleted
    (see `lectern sync`).

    Example:  lectern ingest ~/papers report.pdf notes.md
    """
    import time

    from lectern.domain.sync import plan_files

    started = time.monotonic()
    files, skipped = _expand(paths)
    if not files:
        common.err.print(
            "[red]Nothing to ingest.[/red]"
            + (f" ({len(skipped)} file(s) of unsupported types)" if skipped else "")
        )
        raise typer.Exit(2)
    lectern = _open_for_ingest(data_dir, init)
    try:
        stored = lectern.document_service.list(lectern.settings.tenant_id)
        items = plan_files(_scan(files), stored, retry_failed=retry_failed)
        try:
            report = _run_items(
                lectern, items, _cwd(), "ingesting", workers or lectern.settings.ingest_workers
            )
        except KeyboardInterrupt:
            common.err.print("Interrupted. Run the same command again to resume.")
            raise typer.Exit(130) from None
    finally:
        lectern.close()
    _finish(report, started, _cwd(), skipped)


@app.command(epilog=EXIT_CODES)
def sync(
    folder: Annotated[
        Path, typer.Argument(help="The folder whose files the index must hold.", show_default=False)
    ],
    delete: Annotated[bool, typer.Option("--delete", help="Remove documents whose file is gone.")] = False,
    retry_failed: Annotated[
        bool, typer.Option("--retry-failed", help="Process files that failed before (same content) again.")
    ] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan and change nothing.")] = False,
    workers: Workers = None,
    api: Annotated[
        str | None,
        typer.Option(
            "--api", help="Sync into a deployment through its REST API (base URL) instead of --data-dir."
        ),
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option("--api-key", envvar="LECTERN_API_KEY", help="API key for --api (LECTERN_API_KEY)."),
    ] = None,
    id_token: Annotated[
        str | None,
        typer.Option(
            "--id-token",
            envvar="LECTERN_ID_TOKEN",
            help="For --api on AWS: a Cognito ID token (LECTERN_ID_TOKEN).",
        ),
    ] = None,
    prefix: Annotated[
        str | None,
        typer.Option(
            help="With --api: the source-path prefix of this folder's documents (default: its name)."
        ),
    ] = None,
    data_dir: DataDir = None,
    init: Init = False,
) -> None:
    """Make the index hold exactly FOLDER's documents: added and modified files are ingested (content hashes
    decide), documents of deleted files are removed with --delete. Idempotent; a killed run resumes when run
    again.

    Examples:  lectern sync docs/ --dry-run

    lectern sync docs/ --delete --data-dir ./.lectern --init

    lectern sync docs/ --delete --api https://api.example.com/prod --api-key $KEY
    """
    import time

    from lectern.cli_output import print_plan
    from lectern.domain.sync import plan_sync

    started = time.monotonic()
    if not folder.is_dir():
        common.err.print(f"[red]{folder} is not a folder.[/red]")
        raise typer.Exit(2)
    root = folder.resolve().as_posix()
    files, skipped = _expand([folder])
    if api:
        _sync_api(
            folder, files, skipped, api, (api_key, id_token), prefix, delete, retry_failed, dry_run, started
        )
        return
    lectern = _open_for_ingest(data_dir, init)
    try:
        stored = lectern.document_service.list(lectern.settings.tenant_id)
        plan = plan_sync(root, _scan(files), stored, delete=delete, retry_failed=retry_failed)
        if dry_run:
            print_plan(common.console, plan, root)
            return
        try:
            report = _run_items(
                lectern, list(plan.items), root, "syncing", workers or lectern.settings.ingest_workers
            )
        except KeyboardInterrupt:
            common.err.print("Interrupted. Run the same command again to resume.")
            raise typer.Exit(130) from None
        report.plan = plan
    finally:
        lectern.close()
    _finish(report, started, root, skipped)
