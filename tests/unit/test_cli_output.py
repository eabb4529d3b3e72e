"""The CLI's ingest/sync/documents output at 80 columns, as snapshots: plain lines when not a terminal (COLUMNS=80,
CliRunner's output is no TTY) and Rich's terminal form (Console(width=80)); plus exit codes, skipped types, library
warnings kept out of the output, and --data-dir that must exist unless --init.

Update the snapshots with LECTERN_UPDATE_SNAPSHOTS=1 (and read the diff)."""

from __future__ import annotations

import io
import os
import re
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console, Group
from typer.testing import CliRunner

import lectern.cli as cli
import lectern.cli.common as cli_common
from lectern.cli_output import IngestDisplay, documents_view, summary_table
from lectern.domain.sync import Action, SyncItem, SyncOutcome, SyncPlan, SyncReport
from lectern.local.container import build_local
from tests.fakes.embedder import HashEmbedder
from tests.unit.conftest import build_pdf

SNAPSHOTS = Path(__file__).parent / "snapshots"
WIDTH = 80


def normalize(text: str) -> str:
    text = re.sub(r"\(\d+\.\d s\)", "(T s)", text)
    text = re.sub(r"\b[0-9a-f]{8}\b", "xxxxxxxx", text)
    text = re.sub(r"\d\d-\d\d \d\d:\d\d", "MM-DD HH:MM", text)
    text = re.sub(r"(embed|index|validate|extract|chunk) \d+", r"\1 N", text)
    text = re.sub(r"total \d+ ms", "total N ms", text)
    return "\n".join(line.rstrip() for line in text.splitlines()) + "\n"


def check_snapshot(name: str, text: str) -> None:
    text = normalize(text)
    wide = [line for line in text.splitlines() if len(line) > WIDTH and " " in line[:WIDTH].strip()]
    assert not wide, f"lines wider than {WIDTH} columns: {wide}"
    path = SNAPSHOTS / f"{name}.txt"
    if os.environ.get("LECTERN_UPDATE_SNAPSHOTS") or not path.exists():
        path.write_text(text)
        if not os.environ.get("LECTERN_UPDATE_SNAPSHOTS"):
            pytest.fail(f"snapshot {path.name} written; read it and run again")
    assert text == path.read_text()


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, Any]:
    monkeypatch.setenv("COLUMNS", str(WIDTH))
    monkeypatch.setenv("LECTERN_LLM", "fake")
    monkeypatch.setenv("LECTERN_AUTH", "none")
    monkeypatch.setenv("LECTERN_INGEST_WORKERS", "1")  # snapshots need the files' order
    monkeypatch.delenv("LECTERN_DATA_DIR", raising=False)
    monkeypatch.setattr(cli_common, "_build", lambda settings: build_local(settings, embedder=HashEmbedder()))
    monkeypatch.setattr(cli_common, "console", Console(width=WIDTH))
    monkeypatch.setattr(cli_common, "err", Console(width=WIDTH, stderr=True))
    folder = tmp_path / "docs"
    (folder / "guides").mkdir(parents=True)
    (folder / "guides" / "parking.md").write_text("# Parking\n\nBadges open the garage from seven.")
    (folder / "travel.txt").write_text("Travel is booked through the portal two weeks ahead.")
    (folder / "scan.pdf").write_text("not a pdf")
    (folder / "photo.gif").write_bytes(b"GIF89a")
    (folder / "logo.svg").write_text("<svg/>")
    return {"folder": folder, "data": tmp_path / "data", "tmp": tmp_path}


def run(*args: str) -> Any:
    return CliRunner().invoke(cli.app, list(args), catch_exceptions=False)


def test_sync_plain_output_plan_summary_and_exit_codes(env: dict[str, Any]) -> None:
    folder, data = str(env["folder"]), str(env["data"])
    missing = run("sync", folder, "--data-dir", data)
    assert missing.exit_code == 2 and "--init" in missing.output and not env["data"].exists()
    dry = run("sync", folder, "--data-dir", data, "--init", "--dry-run")
    assert dry.exit_code == 0
    check_snapshot("sync_dry_run_plain", dry.output)
    first = run("sync", folder, "--data-dir", data)
    assert first.exit_code == 1  # scan.pdf failed
    check_snapshot("sync_first_plain", first.output)
    (env["folder"] / "travel.txt").unlink()
    (env["folder"] / "guides" / "parking.md").write_text("# Parking\n\nBadges open the garage from six.")
    second = run("sync", folder, "--data-dir", data, "--delete")
    check_snapshot("sync_second_plain", second.output)
    assert second.exit_code == 1
    (env["folder"] / "scan.pdf").unlink()
    clean = run("sync", folder, "--data-dir", data, "--delete")
    assert clean.exit_code == 0, clean.output
    docs = run("documents", "--data-dir", data, "--details")
    flat = " ".join(docs.output.split())
    assert re.fullmatch(
        r"[0-9a-f]{8} INDEXED 1 p 1 ch \d\d-\d\d \d\d:\d\d parking\.md source: \S+/docs/guides/parking\.md timings: "
        r"validate \d+ · extract \d+ · chunk \d+ · embed \d+ · index \d+ ms \(total \d+ ms\)",
        flat,
    ), docs.output
    assert all(len(line) <= WIDTH or " " not in line.strip() for line in docs.output.splitlines())


def test_a_long_failure_reason_is_written_whole(env: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    from lectern.domain.errors import ExtractionError

    reason = "The document could not be read: " + " ".join(f"word{i}" for i in range(60)) + " end."

    def failing(*a: Any) -> Any:
        raise ExtractionError(reason)

    real = cli_common._build

    def build(settings: Any) -> Any:
        lec = real(settings)
        lec.override(extractor=failing)
        return lec

    monkeypatch.setattr(cli_common, "_build", build)
    out = run("ingest", str(env["folder"] / "travel.txt"), "--data-dir", str(env["data"]), "--init")
    assert out.exit_code == 1
    # the per-file line and the failures after the summary: whole, wrapped between words, no line over 80
    flat = " ".join(out.output.split())
    assert flat.count(reason) == 2
    assert all(len(line) <= WIDTH or " " not in line.strip() for line in out.output.splitlines()), out.output
    assert all(re.fullmatch(r"(word\d+|end\.)", w) for w in re.findall(r"word\S*|end\.", out.output))
    docs = run("documents", "--data-dir", str(env["data"]))
    assert reason in " ".join(docs.output.split())


def test_ingest_reruns_keep_one_failed_row_and_report_skipped_types(env: dict[str, Any]) -> None:
    data = str(env["data"])
    for _ in range(3):
        out = run("ingest", str(env["folder"]), "--data-dir", data, "--init")
        assert out.exit_code == 1
        assert "skipped 2 file(s) of unsupported types: .gif (1), .svg (1)" in out.output
    docs = run("documents", "--data-dir", data)
    assert docs.output.count("FAILED") == 1 and docs.output.count("INDEXED") == 2


def test_library_warnings_go_to_the_log_not_the_output(env: dict[str, Any]) -> None:
    pdf = build_pdf(["The canteen serves soup on Fridays."])
    i = pdf.rfind(b"startxref")
    (env["folder"] / "warn.pdf").write_bytes(
        pdf[:i] + b"startxref\n12\n%%EOF\n"
    )  # pypdf warns, then reads it
    out = run("ingest", str(env["folder"] / "warn.pdf"), "--data-dir", str(env["data"]), "--init")
    assert out.exit_code == 0, out.output
    assert "startxref" not in out.output and "WARNING" not in out.output
    logs = (env["data"] / "logs").read_text() if (env["data"] / "logs").is_file() else ""
    logs = "".join(p.read_text() for p in (env["data"] / "logs").glob("*.log"))
    assert "incorrect startxref pointer" in logs


def test_interrupted_run_exits_130_and_the_next_run_resumes(env: dict[str, Any], monkeypatch) -> None:
    from lectern.domain import sync as sync_mod

    real = sync_mod.SyncRunner.apply_one
    calls = {"n": 0}

    def interrupt_second(self: Any, tenant: str, item: Any, progress: Any = None) -> Any:
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(self, tenant, item, progress)

    monkeypatch.setattr(sync_mod.SyncRunner, "apply_one", interrupt_second)
    (env["folder"] / "scan.pdf").unlink()
    out = run("sync", str(env["folder"]), "--data-dir", str(env["data"]), "--init")
    assert out.exit_code == 130 and "run the same command again to resume" in out.output.lower()
    monkeypatch.setattr(sync_mod.SyncRunner, "apply_one", real)
    again = run("sync", str(env["folder"]), "--data-dir", str(env["data"]))
    assert again.exit_code == 0
    assert re.search(r"added\s+│ 1", again.output) and re.search(r"unchanged\s+│ 1", again.output)


def test_read_commands_refuse_a_missing_data_dir(env: dict[str, Any]) -> None:
    for args in (["documents"], ["search", "x"], ["delete", "abc"]):
        out = run(*args, "--data-dir", str(env["tmp"] / "typo"))
        assert out.exit_code == 2 and "No Lectern data directory" in out.output, args
    assert not (env["tmp"] / "typo").exists()


def _tty() -> Console:
    return Console(width=WIDTH, force_terminal=True, color_system=None, file=io.StringIO(), record=True)


def test_terminal_form_one_bar_and_the_current_file_at_80_columns() -> None:
    console = _tty()
    display = IngestDisplay(console, 31, root="/docs")
    display._live = object()  # type: ignore[assignment]  # as if live: steps are shown
    display.start("/docs/handbooks/" + "very-long-folder-name/" * 4 + "employee-handbook-2026-final.pdf")
    display.step("embed", 64, 128)
    display._live = None
    for _ in range(12):
        display.count += 1
    display._progress.update(display._task, completed=12)
    console.print(Group(display._progress, display._current))
    display.done(
        SyncOutcome(
            SyncItem(Action.ADD, "/docs/scan.pdf"),
            "FAILED",
            "The file's content does not match its type: it is named or declared as PDF but is not one.",
        )
    )
    plan = SyncPlan("/docs", tuple(SyncItem(Action.ADD, f"/docs/{i}.md") for i in range(31)))
    report = SyncReport(plan, [SyncOutcome(i, "INDEXED") for i in plan.items[:30]])
    report.outcomes.append(SyncOutcome(plan.items[30], "FAILED", "no text"))
    console.print(summary_table(report, seconds=12.3, skipped=2))
    text = console.export_text()
    assert text.count("━") > 10 and text.count("\n") < 20  # one bar, not one line per file
    check_snapshot("ingest_terminal", text)


def test_documents_table_fits_80_columns_with_whole_reasons(tmp_path: Path) -> None:
    from lectern.domain.models import Document, DocumentStatus

    def doc(i: int, name: str, status: DocumentStatus, error: str | None = None) -> Document:
        return Document(
            "t",
            f"{i:08x}" + "0" * 24,
            name,
            "application/pdf",
            10,
            status,
            "2026-12-03T10:00:00.000000Z",
            "2026-12-03T10:05:00.000000Z",
            error,
            3,
            12,
            None,
            f"/home/user/docs/{name}",
            {"validate": 1, "extract": 120, "chunk": 4, "embed": 800, "index": 12},
        )

    docs = [
        doc(1, "quarterly-report-with-a-rather-long-name-2026.pdf", DocumentStatus.INDEXED),
        doc(
            2,
            "scan.pdf",
            DocumentStatus.FAILED,
            "The PDF is encrypted; remove the password and upload it again.",
        ),
    ]
    console = _tty()
    documents_view(console, docs, details=True)
    text = console.export_text()
    last_column = " ".join(line.split("│")[-2].strip() for line in text.splitlines() if line.count("│") > 2)
    assert "The PDF is encrypted; remove the password and upload it again." in last_column  # wrapped, whole
    check_snapshot("documents_terminal", text)
