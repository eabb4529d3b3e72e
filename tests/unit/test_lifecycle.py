"""The document lifecycle is named once (lectern.domain.lifecycle) and every status change goes through it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lectern.domain import lifecycle
from lectern.domain.errors import Conflict, NotFound
from lectern.domain.models import Document, DocumentStatus

S = DocumentStatus
PACKAGE = Path(__file__).resolve().parents[2] / "lambdas" / "lectern"
REPOSITORIES = {"adapters/local/sqlite_documents.py", "adapters/aws/dynamo_documents.py", "domain/ports.py"}


def test_no_status_change_bypasses_the_named_transitions() -> None:
    """`documents.update(..., status=...)` appears only in the lifecycle (and the repositories that implement
    it); a field-only update keeps the status it read (`status=doc.status`)."""
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel in REPOSITORIES or rel == "domain/lifecycle.py":
            continue
        text = path.read_text()
        for m in re.finditer(r"\.update\(([^()]|\([^()]*\))*?status=(DocumentStatus\.\w+|S\.\w+)", text, re.S):
            offenders.append(f"{rel}:{text[: m.start()].count(chr(10)) + 1}")
    assert offenders == []


def test_the_graph() -> None:
    assert lifecycle.allowed(S.UPLOADING, S.PROCESSING)
    assert lifecycle.allowed(S.PROCESSING, S.INDEXED) and lifecycle.allowed(S.PROCESSING, S.FAILED)
    assert lifecycle.allowed(S.FAILED, S.PROCESSING) and lifecycle.allowed(S.INDEXED, S.PROCESSING)
    assert lifecycle.allowed(S.UPLOADING, S.FAILED)  # an upload slot never used
    ordinary = [t for t in lifecycle.TRANSITIONS if t.name != "restore"]
    assert not lifecycle.allowed(S.INDEXED, S.FAILED, ordinary)  # only the rebuild may jump
    assert not lifecycle.allowed(S.UPLOADING, S.INDEXED, ordinary)
    assert not lifecycle.allowed(S.FAILED, S.INDEXED, ordinary)


def test_a_caller_may_narrow_a_transition_never_widen_it() -> None:
    assert lifecycle.START_PROCESSING.only_from(S.FAILED).allowed_from == (S.FAILED,)
    with pytest.raises(ValueError, match="mark_indexed cannot start from"):
        lifecycle.MARK_INDEXED.only_from(S.FAILED)


class _Repo:
    """Just the conditional update of a DocumentRepository (the contract suite runs the real ones)."""

    def __init__(self, status: DocumentStatus | None) -> None:
        self.status = status
        self.fields: dict[str, object] = {}

    def update(self, tenant_id, document_id, *, status, allowed_from, **fields) -> Document:
        if self.status is None:
            raise NotFound("gone")
        if self.status not in allowed_from:
            raise Conflict(f"is {self.status.value}")
        self.status, self.fields = status, fields
        return Document(tenant_id, document_id, "a.txt", "text/plain", 1, status, "t0", "t1")


def test_apply_is_one_conditional_update() -> None:
    repo = _Repo(S.PROCESSING)
    doc = lifecycle.MARK_FAILED.apply(repo, "t", "d" * 32, error="why")  # type: ignore[arg-type]
    assert doc.status is S.FAILED and repo.fields == {"error": "why"}
    with pytest.raises(Conflict):
        lifecycle.MARK_INDEXED.apply(repo, "t", "d" * 32)  # type: ignore[arg-type]
    with pytest.raises(NotFound):
        lifecycle.RECEIVE_UPLOAD.apply(_Repo(None), "t", "d" * 32)  # type: ignore[arg-type]
