"""`lectern sync` carried out in-process: additions, edits, renames and deletions end where a fresh ingest of the
final folder ends; one FAILED row per source however often it is retried; an old data dir is migrated."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from lectern.domain.models import DocumentStatus
from lectern.domain.sync import SourceFile, SyncRunner, plan_files, plan_sync, sha256_of
from lectern.local.container import build_local
from lectern.settings import LocalSettings
from tests.fakes.embedder import HashEmbedder


class _NoTrigger:
    def start(self, tenant_id: str, document_id: str) -> None:
        return None


def open_lectern(data_dir: Path) -> Any:
    s = LocalSettings.from_env({}, data_dir=data_dir, llm="fake", auth="none", cache_enabled=False)
    lec = build_local(s, embedder=HashEmbedder())
    lec.document_service.trigger = _NoTrigger()
    return lec


def scan(folder: Path) -> list[SourceFile]:
    return [
        SourceFile(p.resolve().as_posix(), sha256_of(p.read_bytes()), p.stat().st_size)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    ]


def sync(data_dir: Path, folder: Path, **kw: Any) -> list[Any]:
    lec = open_lectern(data_dir)
    try:
        plan = plan_sync(
            folder.resolve().as_posix(), scan(folder), lec.document_service.list("default"), **kw
        )
        runner = SyncRunner(lec.document_service, lec.pipeline, lambda p: Path(p).read_bytes())
        return [runner.apply_one("default", item) for item in plan.items]
    finally:
        lec.close()


def snapshot(data_dir: Path) -> tuple[list[tuple], list[tuple]]:
    """Documents (source path, hash, status, pages, chunks, error) and chunks (source path, page, ordinal, text):
    everything but ids and times."""
    conn = sqlite3.connect(data_dir / "lectern.db")
    docs = sorted(
        conn.execute("SELECT source_path, sha256, status, pages, chunks, error FROM documents").fetchall()
    )
    chunks = sorted(
        conn.execute(
            "SELECT d.source_path, c.page, c.ordinal, c.text FROM chunks c LEFT JOIN documents d"
            " ON d.tenant_id = c.tenant_id AND d.document_id = c.document_id"
        ).fetchall()
    )
    assert conn.execute("SELECT COUNT(*) FROM chunks_fts").fetchone()[0] == len(chunks)
    conn.close()
    return docs, chunks


def write(folder: Path, name: str, text: str) -> None:
    (folder / name).parent.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)


def test_sync_carries_additions_edits_renames_and_deletions(tmp_path: Path) -> None:
    folder, data = tmp_path / "docs", tmp_path / "data"
    write(folder, "a.md", "# Alpha\n\nCoolant pressure is 42 bar.")
    write(folder, "b.txt", "Beta: laptops are replaced every three years.")
    write(folder, "sub/c.txt", "Gamma notes on the travel policy.")
    write(folder, "broken.pdf", "not a pdf at all")
    first = sync(data, folder)
    assert sorted(o.status for o in first) == ["FAILED", "INDEXED", "INDEXED", "INDEXED"]
    # edit, rename, delete, add
    write(folder, "a.md", "# Alpha\n\nCoolant pressure is 43 bar since March.")
    (folder / "b.txt").rename(folder / "b-renamed.txt")
    (folder / "sub" / "c.txt").unlink()
    write(folder, "d.html", "<h1>Delta</h1><p>Badges open the north door.</p>")
    second = sync(data, folder, delete=True)
    assert sorted((o.item.action.value, o.status) for o in second) == [
        ("add", "INDEXED"),
        ("add", "INDEXED"),
        ("delete", "DELETED"),
        ("delete", "DELETED"),
        ("failed", "FAILED"),
        ("modify", "INDEXED"),
    ]
    fresh = tmp_path / "fresh"
    sync(fresh, folder)
    assert snapshot(data) == snapshot(fresh)
    # idempotent: a third run changes nothing
    before = snapshot(data)
    third = sync(data, folder, delete=True)
    assert {o.item.action.value for o in third} == {"unchanged", "failed"}
    assert snapshot(data) == before


def test_one_failed_row_per_source_replaced_on_retry(tmp_path: Path) -> None:
    folder, data = tmp_path / "docs", tmp_path / "data"
    for i in range(4):
        write(folder, f"bad{i}.pdf", f"not a pdf {i}")
    for _ in range(3):
        sync(data, folder, retry_failed=True)
        lec = open_lectern(data)
        files = scan(folder)
        # `lectern ingest` of the same files: it retries failed files by default, on the same row
        runner = SyncRunner(lec.document_service, lec.pipeline, lambda p: Path(p).read_bytes())
        for item in plan_files(files, lec.document_service.list("default")):
            runner.apply_one("default", item)
        docs = lec.document_service.list("default")
        lec.close()
        assert len(docs) == 4 and {d.status for d in docs} == {DocumentStatus.FAILED}
    # a new (still broken) version of a failed file replaces its FAILED row instead of adding one
    write(folder, "bad0.pdf", "still not a pdf, but different")
    sync(data, folder)
    lec = open_lectern(data)
    docs = lec.document_service.list("default")
    lec.close()
    assert len(docs) == 4
    # fixed: the FAILED row goes once the fixed version is indexed
    (folder / "bad1.pdf").unlink()
    write(folder, "bad1.pdf.txt", "fixed")
    sync(data, folder, delete=True)
    lec = open_lectern(data)
    names = sorted((d.filename, d.status.value) for d in lec.document_service.list("default"))
    lec.close()
    assert names == [
        ("bad0.pdf", "FAILED"),
        ("bad1.pdf.txt", "INDEXED"),
        ("bad2.pdf", "FAILED"),
        ("bad3.pdf", "FAILED"),
    ]


def test_a_failing_new_version_keeps_the_indexed_one_searchable(tmp_path: Path) -> None:
    folder, data = tmp_path / "docs", tmp_path / "data"
    from tests.unit.conftest import build_pdf

    folder.mkdir()
    (folder / "a.pdf").write_bytes(build_pdf(["The vending machine takes coins."]))
    sync(data, folder)
    (folder / "a.pdf").write_bytes(b"%PDF-1.4 truncated")
    out = sync(data, folder)
    assert out[0].status == "FAILED" and out[0].item.action.value == "modify"
    lec = open_lectern(data)
    docs = lec.document_service.list("default")
    hits = lec.retriever.search("default", "vending machine coins", top_k=3, mode="bm25")
    lec.close()
    assert sorted(d.status.value for d in docs) == ["FAILED", "INDEXED"]
    assert hits and hits[0].chunk.filename == "a.pdf"


def test_an_old_data_dir_is_migrated_and_its_documents_adopted(tmp_path: Path) -> None:
    folder, data = tmp_path / "docs", tmp_path / "data"
    write(folder, "a.md", "Old document about the coffee machine.")
    data.mkdir()
    conn = sqlite3.connect(data / "lectern.db")
    conn.executescript(
        """CREATE TABLE documents (tenant_id TEXT NOT NULL, document_id TEXT NOT NULL, filename TEXT NOT NULL,
        content_type TEXT NOT NULL, size_bytes INTEGER NOT NULL, status TEXT NOT NULL, created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL, error TEXT, pages INTEGER, chunks INTEGER, sha256 TEXT,
        attempts INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (tenant_id, document_id));"""
    )
    sha = sha256_of((folder / "a.md").read_bytes())
    conn.execute(
        "INSERT INTO documents VALUES ('default', ?, 'a.md', 'text/markdown', 39, 'INDEXED',"
        " '2026-01-01T00:00:00.000000Z', '2026-01-01T00:00:00.000000Z', NULL, 1, 1, ?, 1)",
        ("0" * 32, sha),
    )
    conn.commit()
    conn.close()
    out = sync(data, folder)
    assert [o.item.action.value for o in out] == ["unchanged"]
    lec = open_lectern(data)
    (d,) = lec.document_service.list("default")
    lec.close()
    assert d.document_id == "0" * 32 and d.source_path == (folder / "a.md").resolve().as_posix()


@pytest.mark.parametrize("kill_after", ["create", "receive", "index"])
def test_an_interrupted_run_is_completed_by_the_next(tmp_path: Path, kill_after: str) -> None:
    """The in-process twin of the kill -9 test: stop a run after each durable step and sync again."""
    folder, data = tmp_path / "docs", tmp_path / "data"
    write(folder, "a.md", "Version one of the parking rules.")
    sync(data, folder)
    write(folder, "a.md", "Version two of the parking rules: badges needed.")
    lec = open_lectern(data)
    plan = plan_sync(folder.resolve().as_posix(), scan(folder), lec.document_service.list("default"))

    class Stop(BaseException):
        pass

    svc, pipe = lec.document_service, lec.pipeline
    if kill_after == "create":
        svc.receive_upload = lambda *a, **k: (_ for _ in ()).throw(Stop())  # type: ignore[method-assign]
    elif kill_after == "receive":
        pipe.run = lambda *a, **k: (_ for _ in ()).throw(Stop())  # type: ignore[method-assign]
    else:
        pipe.supersede = lambda doc: (_ for _ in ()).throw(Stop())  # type: ignore[method-assign]
    runner = SyncRunner(svc, pipe, lambda p: Path(p).read_bytes())
    with pytest.raises(Stop):
        for item in plan.items:
            runner.apply_one("default", item)
    lec.close()
    sync(data, folder)
    fresh = tmp_path / "fresh"
    sync(fresh, folder)
    assert snapshot(data) == snapshot(fresh)
