"""The sync plan (domain.sync.plan_sync) is pure: stored documents + the folder's files -> one action per path."""

from __future__ import annotations

import dataclasses

from lectern.domain.models import Document, DocumentStatus
from lectern.domain.sync import Action, SourceFile, plan_files, plan_sync

S = DocumentStatus
ROOT = "/data/docs"
_n = iter(range(10_000))


def doc(
    path: str | None, sha: str | None, status: S = S.INDEXED, *, filename: str | None = None, **kw
) -> Document:
    n = next(_n)
    return Document(
        tenant_id="t",
        document_id=f"{n:032x}",
        filename=filename or (path or "x").rsplit("/", 1)[-1],
        content_type="text/plain",
        size_bytes=10,
        status=status,
        created_at=f"2026-12-03T10:00:00.{n:06d}Z",
        updated_at=f"2026-12-03T10:00:00.{n:06d}Z",
        sha256=sha,
        source_path=path,
        **kw,
    )


def f(name: str, sha: str) -> SourceFile:
    return SourceFile(f"{ROOT}/{name}", sha, 10)


def actions(plan) -> dict[str, Action]:
    return {i.path.removeprefix(ROOT + "/"): i.action for i in plan.items}


def test_add_modify_unchanged_delete_and_gone() -> None:
    stored = [doc(f"{ROOT}/same.md", "s1"), doc(f"{ROOT}/edited.md", "old"), doc(f"{ROOT}/removed.md", "r")]
    files = [f("same.md", "s1"), f("edited.md", "new"), f("new.md", "n")]
    plan = plan_sync(ROOT, files, stored)
    assert actions(plan) == {
        "same.md": Action.UNCHANGED,
        "edited.md": Action.MODIFY,
        "new.md": Action.ADD,
        "removed.md": Action.GONE,
    }
    assert plan.of(Action.GONE)[0].remove == ()  # nothing is deleted without --delete
    deleting = plan_sync(ROOT, files, stored, delete=True)
    assert actions(deleting)["removed.md"] is Action.DELETE
    assert deleting.of(Action.DELETE)[0].remove == (stored[2].document_id,)
    assert plan.counts() == {
        "add": 1,
        "modify": 1,
        "unchanged": 1,
        "resume": 0,
        "retry": 0,
        "failed": 0,
        "delete": 0,
        "gone": 1,
    }


def test_a_rename_is_an_add_and_a_delete() -> None:
    stored = [doc(f"{ROOT}/old-name.md", "h")]
    plan = plan_sync(ROOT, [f("new-name.md", "h")], stored, delete=True)
    assert actions(plan) == {"new-name.md": Action.ADD, "old-name.md": Action.DELETE}


def test_documents_outside_the_root_are_not_touched() -> None:
    stored = [doc("/elsewhere/a.md", "a"), doc(f"{ROOT}-other/b.md", "b"), doc("report.pdf", "c")]
    plan = plan_sync(ROOT, [], stored, delete=True)
    assert plan.items == ()


def test_failed_content_is_reported_or_retried_on_the_same_row() -> None:
    bad = doc(f"{ROOT}/bad.pdf", "b", S.FAILED, error="The PDF is encrypted.")
    plan = plan_sync(ROOT, [f("bad.pdf", "b")], [bad])
    item = plan.items[0]
    assert (item.action, item.document_id, item.reason) == (
        Action.FAILED,
        bad.document_id,
        "The PDF is encrypted.",
    )
    retry = plan_sync(ROOT, [f("bad.pdf", "b")], [bad], retry_failed=True).items[0]
    assert (retry.action, retry.document_id) == (Action.RETRY, bad.document_id)
    # new content of a failed file is a modification (the new version's failure replaces the old FAILED row)
    assert plan_sync(ROOT, [f("bad.pdf", "fixed")], [bad]).items[0].action is Action.MODIFY


def test_a_killed_run_is_resumed_and_its_leftovers_cleaned() -> None:
    processing = doc(f"{ROOT}/a.md", "new", S.PROCESSING)
    slot = doc(f"{ROOT}/b.md", None, S.UPLOADING)
    old = doc(f"{ROOT}/c.md", "old")
    newer = doc(f"{ROOT}/c.md", "new")  # indexed, killed before it removed the version it replaces
    plan = plan_sync(
        ROOT, [f("a.md", "new"), f("b.md", "b"), f("c.md", "new")], [processing, slot, old, newer]
    )
    by = {i.path.rsplit("/", 1)[-1]: i for i in plan.items}
    assert (by["a.md"].action, by["a.md"].document_id) == (Action.RESUME, processing.document_id)
    assert (by["b.md"].action, by["b.md"].remove) == (Action.ADD, (slot.document_id,))
    assert (by["c.md"].action, by["c.md"].document_id, by["c.md"].remove) == (
        Action.UNCHANGED,
        newer.document_id,
        (old.document_id,),
    )


def test_documents_from_before_source_paths_are_adopted_by_unique_filename() -> None:
    legacy = dataclasses.replace(doc(None, "h", filename="a.md"))
    plan = plan_sync(ROOT, [f("a.md", "h")], [legacy])
    assert plan.items[0].action is Action.UNCHANGED and plan.items[0].adopt == (legacy.document_id,)
    # two files of that name: ambiguous, nothing adopted
    twice = plan_sync(ROOT, [f("a.md", "h"), f("sub/a.md", "h")], [legacy])
    assert all(i.adopt == () and i.action is Action.ADD for i in twice.items)


def test_plan_files_never_deletes_and_retries_by_default() -> None:
    bad = doc("/x/bad.pdf", "b", S.FAILED, error="no")
    items = plan_files([SourceFile("/x/bad.pdf", "b", 1)], [bad, doc("/x/other.md", "o")])
    assert [(i.action, i.document_id) for i in items] == [(Action.RETRY, bad.document_id)]
