"""`lectern sync FOLDER --api URL` against a real local server on loopback (API key required, uploads through the
upload slots): additions, edits, renames, deletions carried over; the server then holds what a fresh sync of the
final folder gives; a second run changes nothing; a wrong key is a configuration error (exit 2)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner

import lectern.cli as cli
from tests.fakes.embedder import HashEmbedder


def _serve(data: Path) -> Iterator[tuple[str, str, Any]]:
    from lectern.local.container import build_local, frontend_dir
    from lectern.local.server import LocalServer
    from lectern.settings import LocalSettings

    settings = LocalSettings.from_env(
        {}, data_dir=data, llm="fake", port=0, auth="api_key", rate_limit_per_minute=0, ingest_workers=2
    )
    lectern = build_local(settings, embedder=HashEmbedder())
    server = LocalServer("127.0.0.1", 0, lectern.make_app, frontend_dir(), 60 * 1024 * 1024)
    lectern.signer.base_url = server.url
    lectern.worker.run_forever()
    key = lectern.ensure_first_key()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server.url, key, lectern
    finally:
        server.shutdown()
        server.server_close()
        lectern.close()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, str, Any]]:
    yield from _serve(tmp_path / "server")


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[tuple[str, str, Any]]:
    yield from _serve(tmp_path / "fresh")


@pytest.fixture(autouse=True)
def plain_console(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli.common, "console", Console(width=80))
    monkeypatch.setattr(cli.common, "err", Console(width=80, stderr=True))


def sync(folder: Path, url: str, key: str, *extra: str) -> Any:
    return CliRunner().invoke(
        cli.app, ["sync", str(folder), "--api", url, "--api-key", key, *extra], catch_exceptions=False
    )


def state(lectern: Any) -> tuple[list[tuple], list[tuple]]:
    docs = lectern.document_service.list(lectern.settings.tenant_id)
    by_id = {d.document_id: d.source_path for d in docs}
    rows = lectern.db.connection().execute("SELECT document_id, page, ordinal, text FROM chunks").fetchall()
    return (
        sorted((d.source_path, d.sha256, d.status.value, d.chunks, d.error) for d in docs),
        sorted((by_id.get(r[0]), r[1], r[2], r[3]) for r in rows),
    )


def test_sync_through_the_api_equals_a_fresh_sync(tmp_path: Path, served, fresh) -> None:
    url, key, lectern = served
    folder = tmp_path / "handbook"
    (folder / "hr").mkdir(parents=True)
    (folder / "hr" / "leave.md").write_text("# Leave\n\nEveryone gets 25 days of leave.")
    (folder / "it.txt").write_text("Laptops are replaced every three years.")
    (folder / "old.txt").write_text("The old canteen menu.")
    (folder / "broken.pdf").write_text("not a pdf")
    dry = sync(folder, url, key, "--dry-run")
    assert dry.exit_code == 0 and "plan: 4 add" in dry.output
    first = sync(folder, url, key)
    assert first.exit_code == 1, first.output  # broken.pdf FAILED, with its reason
    assert "FAILED broken.pdf: The file's content does not match its type" in " ".join(first.output.split())
    # edit, rename, delete
    (folder / "hr" / "leave.md").write_text("# Leave\n\nEveryone gets 27 days of leave.")
    (folder / "it.txt").rename(folder / "laptops.txt")
    (folder / "old.txt").unlink()
    (folder / "broken.pdf").unlink()
    second = sync(folder, url, key, "--delete")
    assert second.exit_code == 0, second.output
    again = sync(folder, url, key, "--delete", "--dry-run")
    assert again.output.strip().endswith("plan: 2 unchanged"), again.output
    furl, fkey, flectern = fresh
    assert sync(folder, furl, fkey).exit_code == 0
    got, want = state(lectern), state(flectern)
    assert got == want
    assert [p for p, *_ in got[0]] == ["handbook/hr/leave.md", "handbook/laptops.txt"]


def test_a_wrong_key_or_url_is_a_configuration_error(tmp_path: Path, served) -> None:
    url, _, lectern = served
    folder = tmp_path / "f"
    folder.mkdir()
    (folder / "a.txt").write_text("text")
    bad = sync(folder, url, "not-a-key")
    assert bad.exit_code == 2 and "Cannot list the documents" in bad.output
    assert lectern.document_service.list(lectern.settings.tenant_id) == []
    nowhere = sync(folder, "http://127.0.0.1:9", "k")
    assert nowhere.exit_code == 2
