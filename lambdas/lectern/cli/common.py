"""The CLI's shared parts: the Typer apps, the consoles, --data-dir, settings and the container."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from lectern.domain.documents import ACCEPTED_TYPES
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


def _frontend() -> Path | None:
    from lectern.local.container import frontend_dir

    return frontend_dir()


EXIT_CODES = (
    "Exit codes: 0 every file is indexed (or deleted as planned); 1 some files failed (the summary lists them "
    "with their reasons); 2 usage or configuration error (bad option, missing folder, a --data-dir that does not "
    "exist without --init, a bad LECTERN_* variable); 130 interrupted (Ctrl-C): run the same command again to "
    "resume."
)


def _cwd() -> str:
    """Paths under the working directory are shown relative to it."""
    return Path.cwd().resolve().as_posix()
