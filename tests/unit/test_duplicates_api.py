"""Re-uploading a source path through the API: on_duplicate = replace | keep_both | reject (409
duplicate_document, nothing stored), and the document schema carries source_path and timings."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from lectern.api.app import build_app
from lectern.local.container import build_local
from lectern.settings import LocalSettings
from tests.aws.handler_env import api_event
from tests.fakes.embedder import HashEmbedder


class _Ctx:
    function_name = "t"
    memory_limit_in_mb = 128
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:t"
    aws_request_id = "r"


class _Inline:
    def __init__(self) -> None:
        self.pipeline: Any = None

    def start(self, tenant_id: str, document_id: str) -> None:
        self.pipeline.run(tenant_id, document_id)


@pytest.fixture
def lec(tmp_path: Path) -> Any:
    s = LocalSettings.from_env({}, data_dir=tmp_path / "d", llm="fake", auth="none", cache_enabled=False)
    lectern = build_local(s, embedder=HashEmbedder())
    trigger = _Inline()
    lectern.document_service.trigger = trigger
    trigger.pipeline = lectern.pipeline
    yield lectern
    lectern.close()


def call(lec: Any, method: str, path: str, body: dict | None = None) -> tuple[int, Any]:
    app = build_app(lec.api_services())
    out = app.resolve(api_event(method, path, None, body=body), _Ctx())
    return out["statusCode"], json.loads(out["body"]) if out.get("body") else None


def upload(lec: Any, name: str, data: bytes, **extra: Any) -> tuple[int, Any]:
    status, body = call(lec, "POST", "/v1/documents", {"filename": name, "size_bytes": len(data), **extra})
    if status == 201:
        lec.document_service.receive_upload("default", body["document_id"], data)
    return status, body


def docs(lec: Any) -> list[dict]:
    return call(lec, "GET", "/v1/documents")[1]["documents"]


def test_replace_is_the_default_and_replaces_once_indexed(lec: Any) -> None:
    s1, first = upload(lec, "memo.md", b"# Memo\n\nLaptops are replaced every three years.")
    s2, second = upload(lec, "memo.md", b"# Memo\n\nLaptops are replaced every four years.")
    assert (s1, s2) == (201, 201)
    assert second["replaces"] == [first["document_id"]] and second["source_path"] == "memo.md"
    (only,) = docs(lec)
    assert only["document_id"] == second["document_id"] and only["status"] == "INDEXED"
    assert only["source_path"] == "memo.md"
    assert set(only["timings"]) == {"validate", "extract", "chunk", "embed", "index"}
    assert all(isinstance(v, int) and v >= 0 for v in only["timings"].values())


def test_a_failing_replacement_leaves_the_indexed_version(lec: Any) -> None:
    from tests.unit.conftest import build_pdf

    _, good = upload(lec, "r.pdf", build_pdf(["Quarterly report text."]))
    _, bad = upload(lec, "r.pdf", b"%PDF-1.4 broken")
    got = {d["document_id"]: d["status"] for d in docs(lec)}
    assert got == {good["document_id"]: "INDEXED", bad["document_id"]: "FAILED"}
    failed = next(d for d in docs(lec) if d["status"] == "FAILED")
    assert "extract" in failed["timings"]
    _, again = upload(lec, "r.pdf", b"%PDF-1.4 still broken")  # a retry: one FAILED row, not two
    assert sorted(d["status"] for d in docs(lec)) == ["FAILED", "INDEXED"]
    assert again["document_id"] in {d["document_id"] for d in docs(lec)}


def test_reject_is_a_409_duplicate_document_and_stores_nothing(lec: Any) -> None:
    data = b"The badge opens the north door."
    _, first = upload(lec, "door.txt", data)
    before = docs(lec)
    status, body = upload(lec, "door.txt", b"other text", on_duplicate="reject")
    assert status == 409 and body["error"]["code"] == "duplicate_document"
    assert first["document_id"] in body["error"]["message"] and "keep_both" in body["error"]["message"]
    # same content under another name, with its hash given
    status, body = upload(
        lec, "copy.txt", data, on_duplicate="reject", sha256=hashlib.sha256(data).hexdigest()
    )
    assert (
        status == 409
        and body["error"]["code"] == "duplicate_document"
        and "door.txt" in body["error"]["message"]
    )
    assert docs(lec) == before
    # a new name without a hash is no duplicate
    assert upload(lec, "other.txt", b"new", on_duplicate="reject")[0] == 201


def test_keep_both_gives_the_new_document_its_own_source_path(lec: Any) -> None:
    upload(lec, "a.txt", b"first text about parking")
    _, second = upload(lec, "a.txt", b"second text about parking", on_duplicate="keep_both")
    _, third = upload(lec, "a.txt", b"third text about parking", on_duplicate="keep_both")
    assert (second["source_path"], third["source_path"]) == ("a.txt (2)", "a.txt (3)")
    assert second["replaces"] == []
    got = sorted((d["filename"], d["source_path"], d["status"]) for d in docs(lec))
    assert got == [
        ("a.txt", "a.txt", "INDEXED"),
        ("a.txt", "a.txt (2)", "INDEXED"),
        ("a.txt", "a.txt (3)", "INDEXED"),
    ]


def test_bad_duplicate_options_are_422_and_store_nothing(lec: Any) -> None:
    for extra in ({"on_duplicate": "merge"}, {"sha256": "xyz"}, {"source_path": "p" * 2000}):
        status, body = upload(lec, "a.txt", b"x", **extra)
        assert status == 422 and body["error"]["code"] == "invalid_request", extra
    assert docs(lec) == []


def test_source_path_is_the_identity_not_the_filename(lec: Any) -> None:
    upload(lec, "readme.md", b"# One\n\nfirst repo", source_path="repo-a/readme.md")
    upload(lec, "readme.md", b"# Two\n\nsecond repo", source_path="repo-b/readme.md")
    assert sorted(d["source_path"] for d in docs(lec)) == ["repo-a/readme.md", "repo-b/readme.md"]
