"""`lectern ask`, `search`, `documents`, `delete`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

import typer
from rich.markup import escape

from lectern.cli import common
from lectern.cli.common import DataDir, app
from lectern.domain.errors import LecternError

_STAGES = {"retrieving": "Searching your documents", "generating": "Writing", "verifying": "Checking the answer"}


@app.command()
def ask(
    question: Annotated[str, typer.Argument()],
    top_k: Annotated[int | None, typer.Option(help="Passages to use.")] = None,
    conversation: Annotated[
        str | None, typer.Option("--conversation", help="A follow-up in this conversation (its id).")
    ] = None,
    continue_: Annotated[
        bool, typer.Option("--continue", help="A follow-up in the most recent conversation of `lectern ask`.")
    ] = False,
    reuse: Annotated[
        bool, typer.Option("--reuse/--no-reuse", help="Ask the running `lectern up` of this data dir, if any.")
    ] = True,
    data_dir: DataDir = None,
) -> None:
    """Ask a question: the stage while it is worked on, then the checked answer and the sentences it rests on.

    Every answer is a turn of a conversation (a new one unless --conversation or --continue); a follow-up is
    rewritten from the history and the rewritten question is printed ("Searched: ...").
    When a `lectern up` serves the same data dir, the question goes to it over loopback (its model is loaded);
    otherwise the model starts here. The first line on stderr says which."""
    from lectern.local.running import find_running

    settings = common._settings(data_dir, must_exist=True)
    running, why = find_running(settings.data_dir) if reuse else (None, "--no-reuse")
    if running is not None:
        common.err.print(f"[dim]{escape(why)}[/dim]", highlight=False)
        answer = _ask_running(running, question, top_k, conversation, continue_)
    else:
        common.err.print(f"[dim]{escape(why)}: starting the model in this process[/dim]", highlight=False)
        answer = _ask_here(settings, question, top_k, conversation, continue_)
    if answer is not None:
        _print_answer(answer)


def _progress(events: Iterator[tuple[str, dict[str, Any]]]) -> dict[str, Any] | None:
    """Show the stage (and the draft's word count: a draft the done event may withhold, never printed as the
    answer) while the events come; the done event's answer."""
    with common.console.status(f"{_STAGES['retrieving']}…") as waiting:
        stage, words, answer = "retrieving", 0, None
        for kind, data in events:
            if kind == "status":
                stage = data.get("stage", stage)
            elif kind == "token" and data.get("provisional"):
                words += len(str(data.get("text", "")).split())
            elif kind == "done":
                answer = data
            elif kind == "error":
                common.err.print(f"[red]{escape(str(data.get('error', {}).get('message', data)))}[/red]")
                raise typer.Exit(1)
            draft = f" (draft: {words} words)" if words else ""
            waiting.update(f"{_STAGES.get(stage, stage)}…{draft}")
    return answer


def _ask_here(
    settings: Any, question: str, top_k: int | None, conversation: str | None, continue_: bool
) -> dict[str, Any] | None:
    from lectern.api.schemas import QueryResponse

    lectern = common._build(settings)

    def events() -> Iterator[tuple[str, dict[str, Any]]]:
        conversation_id = _most_recent_conversation(lectern) if continue_ and conversation is None else conversation
        stream = lectern.answerer.stream(
            lectern.settings.tenant_id, question, top_k=top_k, conversation_id=conversation_id, remember=True
        )
        for ev in stream:
            if ev.kind == "status":
                yield "status", {"stage": ev.stage}
            elif ev.kind == "token":
                yield "token", {"text": ev.text, "provisional": ev.provisional}
            elif ev.kind == "done":
                yield "done", QueryResponse.of(ev.answer).model_dump()

    try:
        return _progress(events())
    except LecternError as exc:
        common.err.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(1) from None
    finally:
        lectern.close()


def _most_recent_conversation(lectern: object) -> str:
    recent = lectern.conversations.list(lectern.settings.tenant_id, None)  # type: ignore[attr-defined]
    if not recent:
        common.err.print("[red]No conversation to continue: ask without --continue first.[/red]")
        raise typer.Exit(1)
    return str(recent[0].conversation_id)


def _ask_running(
    running: Any, question: str, top_k: int | None, conversation: str | None, continue_: bool
) -> dict[str, Any] | None:
    import json
    import urllib.error

    from lectern.local.running import recent_conversation, stream_query

    try:
        if continue_ and conversation is None:
            conversation = recent_conversation(running)
            if conversation is None:
                common.err.print("[red]No conversation to continue: ask without --continue first.[/red]")
                raise typer.Exit(1)
        return _progress(stream_query(running, question, top_k, conversation_id=conversation))
    except urllib.error.HTTPError as exc:  # a 4xx/5xx before the stream: the API's error body
        try:
            message = json.loads(exc.read().decode("utf-8"))["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = f"HTTP {exc.code}"
        common.err.print(f"[red]{escape(str(message))}[/red]")
        raise typer.Exit(1) from None
    except (urllib.error.URLError, OSError) as exc:
        common.err.print(f"[red]The running `lectern up` at {escape(running.url)} failed: {escape(str(exc))}[/red]")
        raise typer.Exit(1) from None


def _print_answer(a: dict[str, Any]) -> None:
    if a.get("rewrite", "none") != "none" and a.get("standalone_question"):
        common.err.print(f"[dim]Searched: {escape(a['standalone_question'])}[/dim]", highlight=False)
    if a["abstained"]:
        common.err.print(
            f"[yellow]{escape(a['answer'])}[/yellow] [dim]{escape(a.get('withheld_reason') or '')}[/dim]",
            highlight=False,
        )
    else:
        common.console.print(a["answer"], highlight=False, markup=False)
    for c in a.get("citations") or a.get("best_passages") or []:
        start, end = c.get("support_start", 0), c.get("support_end", 0)
        support = c.get("text", "")[start:end] if end > start else c.get("snippet", "")
        label = "closest" if a["abstained"] else f"[{c['n']}]"
        common.console.print(
            f"  [bold]{escape(label)}[/bold] {escape(c['filename'])}, p. {c['page']}: "
            f"[dim]{escape(support[:200])}[/dim]"
        )
    usage = a.get("usage") or {}
    conversation = f" · conversation {a['conversation_id']}" if a.get("conversation_id") else ""
    common.console.print(
        f"[dim]{a['model']} · {usage.get('input_tokens', 0)}+{usage.get('output_tokens', 0)} tokens · "
        f"{a['latency_ms']} ms · prompt {a['prompt_version']}{' · cached' if a.get('cache_hit') else ''}"
        f"{conversation}[/dim]"
    )


@app.command()
def search(
    query: Annotated[str, typer.Argument()],
    mode: Annotated[str, typer.Option(help="hybrid, bm25 or vector")] = "hybrid",
    top_k: Annotated[int, typer.Option()] = 5,
    data_dir: DataDir = None,
) -> None:
    """Search passages without generating an answer."""
    if mode not in ("hybrid", "bm25", "vector"):
        common.err.print("[red]--mode must be hybrid, bm25 or vector[/red]")
        raise typer.Exit(2)
    lectern = common._build(common._settings(data_dir, must_exist=True, llm="fake"))
    try:
        hits = lectern.search.search(lectern.settings.tenant_id, query, top_k=top_k, mode=mode)
    except LecternError as exc:
        common.err.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(1) from None
    finally:
        lectern.close()
    for i, h in enumerate(hits, 1):
        common.console.print(f"[bold]{i}. {h.chunk.filename}[/bold] p. {h.chunk.page}  [dim]score {h.score:.4f}[/dim]")
        common.console.print(f"   {' '.join(h.chunk.text.split())[:300]}", highlight=False, markup=False)


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

    lectern = common._build(common._settings(data_dir, must_exist=True, llm="fake"))
    try:
        docs = lectern.document_service.list(lectern.settings.tenant_id)
    finally:
        lectern.close()
    documents_view(common.console, docs, details=details)


@app.command()
def delete(document_id: Annotated[str, typer.Argument()], data_dir: DataDir = None) -> None:
    """Delete a document, its chunks and its file."""
    lectern = common._build(common._settings(data_dir, must_exist=True, llm="fake"))
    try:
        matches = [
            d
            for d in lectern.document_service.list(lectern.settings.tenant_id)
            if d.document_id.startswith(document_id)
        ]
        if len(matches) != 1:
            common.err.print(f"[red]{'No' if not matches else 'More than one'} document matches {document_id!r}.[/red]")
            raise typer.Exit(1)
        lectern.document_service.delete(lectern.settings.tenant_id, matches[0].document_id)
        common.console.print(f"deleted {matches[0].filename}")
    finally:
        lectern.close()
