"""`lectern keys ...`: the API keys the page and the REST API sign in with."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from lectern.cli import common
from lectern.cli.common import DataDir, keys_app


def _key_store(data_dir: Path | None):
    from lectern.adapters.local.sqlite_db import SqliteDatabase
    from lectern.adapters.local.sqlite_keys import SqliteApiKeyStore

    settings = common._settings(data_dir)
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
        common.err.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(2) from None
    common.console.print(f"key {record.key_id} for tenant {record.tenant_id!r} (shown only now):")
    print(key)


@keys_app.command("list")
def keys_list(data_dir: DataDir = None) -> None:
    """The keys that exist: id, tenant, name, created, revoked (never the key itself)."""
    table = Table("id", "tenant", "name", "created", "revoked")
    for k in _key_store(data_dir).list():
        table.add_row(k.key_id, k.tenant_id, k.name, k.created_at, "yes" if k.revoked else "")
    common.console.print(table)


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The id `keys list` shows")], data_dir: DataDir = None
) -> None:
    """Revoke a key at once (requests with it get 401)."""
    if not _key_store(data_dir).revoke(key_id):
        common.err.print(f"[red]No active key with id {key_id!r}.[/red]")
        raise typer.Exit(1)
    common.console.print(f"revoked {key_id}")
