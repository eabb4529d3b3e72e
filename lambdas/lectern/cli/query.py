"""`lectern ask`, `search`, `documents`, `delete`."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from lectern.cli import common
from lectern.cli.common import DataDir, app
from lectern.domain.errors import LecternError
from lectern.domain.models import Answer


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
    data_dir: DataDir = None,
) -> None:
    """Ask a question: the stage while it is worked on, then the checked answer and the sentences it rests on.

    Every answer is a turn of a conversation (a new one unless --conversation or --continue); a follow-up is
    rewritten from the history and the rewritten question is printed ("Searched: ...")."""
    lectern = common._build(common._settings(data_dir, must_exist=True))
    conversation = _most_recent_conversation(lectern) if continue_ and conversation is None else conversation
    stages = {"retrieving": "Searching your documents", "generating": "Writing", "verifying": "Checking the answer"}
    try:
        with common.console.status(f"{stages['retrieving']}…") as waiting:
            stage, words, answer = "retrieving", 0, None
            # the model's tokens are a draft the done event may withhold: counted here, never printed as the answer
            events = lectern.answerer.stream(
                lectern.settings.tenant_id, question, top_k=top_k, conversation_id=conversation, remember=True
            )
            for ev in events:
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
        if a.rewrite != "none":
            common.err.print(f"[dim]Searched: {escape(a.standalone_question)}[/dim]", highlight=False)
        if a.abstained:
            common.err.print(
                f"[yellow]{escape(a.answer)}[/yellow] [dim]{escape(a.withheld_reason)}[/dim]", highlight=False
            )
        else:
            common.console.print(a.answer, highlight=False, markup=False)
        for c in a.citations or a.best_passages:
            support = c.text[c.support_start : c.support_end] if c.support_end > c.support_start else c.snippet
            label = "closest" if a.abstained else f"[{c.n}]"
            common.console.print(
                f"  [bold]{escape(label)}[/bold] {escape(c.filename)}, p. {c.page}: [dim]{escape(support[:200])}[/dim]"
            )
        common.console.print(_footer(a))
    except LecternError as exc:
        common.err.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(1) from None
    finally:
        lectern.close()


def _footer(a: Answer) -> str:
    conversation = f" · conversation {a.conversation_id}" if a.conversation_id else ""
    return (
        f"[dim]{a.model} · {a.usage.input_tokens}+{a.usage.output_tokens} tokens · {a.latency_ms} ms · "
        f"prompt {a.prompt_version}{' · cached' if a.cache_hit else ''}{conversation}[/dim]"
    )


def _most_recent_conversation(lectern: object) -> str:
    recent = lectern.conversations.list(lectern.settings.tenant_id, None)  # type: ignore[attr-defined]
    if not recent:
        lectern.close()  # type: ignore[attr-defined]
        common.err.print("[red]No conversation to continue: ask without --continue first.[/red]")
        raise typer.Exit(1)
    return str(recent[0].conversation_id)


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
        common.console.print(
            f"[bold]{i}. {h.chunk.filename}[/bold] p. {h.chunk.page}  [dim]score {h.score:.4f}[/dim]"
        )
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
            common.err.print(
                f"[red]{'No' if not matches else 'More than one'} document matches {document_id!r}.[/red]"
            )
            raise typer.Exit(1)
        lectern.document_service.delete(lectern.settings.tenant_id, matches[0].document_id)
        common.console.print(f"deleted {matches[0].filename}")
    finally:
        lectern.close()
