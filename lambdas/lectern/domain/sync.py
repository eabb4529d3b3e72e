"""Keeping the index in step with a source (a folder, a prefix): a pure plan, then its execution over the ports.

`plan_sync` compares the documents stored for a source root (their `source_path` and content hash) with the
files the source holds now and says, per path, what to do:

    add        a file no document comes from
    modify     a file whose content differs from its document's (the new version replaces the old once indexed)
    unchanged  a file whose content is INDEXED already
    resume     a file whose document a killed run left PROCESSING with this content: ingestion is run again
    retry      a file whose content FAILED before, with --retry-failed: the same FAILED row is processed again
    failed     a file whose content FAILED before, without --retry-failed: left as it is, reported
    delete     a document whose file is gone, with --delete: removed (chunks, vectors, file)
    gone       a document whose file is gone, without --delete: kept, reported

The plan has no I/O and is the whole decision, so `--dry-run` prints exactly what a run would do. `SyncRunner`
carries it out with the same domain services as every other ingestion. Every step is a durable, idempotent
transition of one document, so a run killed at any point and run again reaches the state a fresh ingest of the
final source would have: a half-created slot is cleaned up, a PROCESSING document is resumed, an INDEXED new
version that had not yet removed its predecessor removes it (`IngestionPipeline.supersede`).

Documents stored before source paths existed (no `source_path`) are adopted by filename when exactly one file of
the source has that name.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import posixpath
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from lectern.domain.documents import DocumentService, remove_document
from lectern.domain.errors import Conflict, LecternError, NotFound
from lectern.domain.ingest import IngestionPipeline, Progress
from lectern.domain.lifecycle import START_PROCESSING
from lectern.domain.models import Document, DocumentStatus


class Action(enum.StrEnum):
    ADD = "add"
    MODIFY = "modify"
    UNCHANGED = "unchanged"
    RESUME = "resume"
    RETRY = "retry"
    FAILED = "failed"
    DELETE = "delete"
    GONE = "gone"


WORK = (Action.ADD, Action.MODIFY, Action.RESUME, Action.RETRY)  # the actions that run ingestion


@dataclass(frozen=True)
class SourceFile:
    path: str  # the source path: the document's identity
    sha256: str
    size: int


@dataclass(frozen=True)
class SyncItem:
    action: Action
    path: str
    sha256: str | None = None  # the file's content (None for delete / gone)
    document_id: str | None = None  # the document kept, resumed or retried
    remove: tuple[
        str, ...
    ] = ()  # documents of this path to remove (deleted files, stale versions, dead slots)
    adopt: tuple[str, ...] = ()  # documents without a source path to give this one
    reason: str = ""  # the earlier failure, for failed / retry


@dataclass(frozen=True)
class SyncPlan:
    root: str
    items: tuple[SyncItem, ...]

    def of(self, *actions: Action) -> list[SyncItem]:
        return [i for i in self.items if i.action in actions]

    def counts(self) -> dict[str, int]:
        c = Counter(i.action.value for i in self.items)
        return {a.value: c.get(a.value, 0) for a in Action}

    @property
    def work(self) -> list[SyncItem]:
        return self.of(*WORK)


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _newest(docs: Iterable[Document]) -> Document:
    return max(docs, key=lambda d: (d.created_at, d.document_id))


def under(root: str, path: str) -> bool:
    root = root.rstrip("/")
    return path == root or path.startswith(root + "/")


def plan_sync(
    root: str,
    files: Sequence[SourceFile],
    stored: Sequence[Document],
    *,
    delete: bool = False,
    retry_failed: bool = False,
) -> SyncPlan:
    """What to do so that the documents under `root` are the `files` (see the module docstring). Pure."""
    in_root = [d for d in stored if not d.source_path or under(root, d.source_path)]
    items = list(plan_files(files, in_root, retry_failed=retry_failed))
    planned = {i.path for i in items}
    by_path: dict[str, list[Document]] = defaultdict(list)
    for d in in_root:
        if d.source_path and d.source_path not in planned:
            by_path[d.source_path].append(d)
    for path in sorted(by_path):
        ids = tuple(d.document_id for d in by_path[path])
        items.append(SyncItem(Action.DELETE if delete else Action.GONE, path, remove=ids if delete else ()))
    return SyncPlan(root, tuple(items))


def plan_files(
    files: Sequence[SourceFile], stored: Sequence[Document], *, retry_failed: bool = True
) -> tuple[SyncItem, ...]:
    """The plan for these files only (`lectern ingest`: nothing is deleted). `stored`: the tenant's documents."""
    by_path: dict[str, list[Document]] = defaultdict(list)
    legacy: dict[str, list[Document]] = defaultdict(list)
    for d in stored:
        if d.source_path:
            by_path[d.source_path].append(d)
        else:
            legacy[d.filename].append(d)
    names = Counter(posixpath.basename(f.path) for f in files)
    seen: set[str] = set()
    items: list[SyncItem] = []
    for f in sorted(files, key=lambda f: f.path):
        if f.path in seen:
            continue
        seen.add(f.path)
        docs = list(by_path.get(f.path, ()))
        name = posixpath.basename(f.path)
        adopt: tuple[str, ...] = ()
        if not docs and names[name] == 1 and legacy.get(name):
            docs = legacy[name]
            adopt = tuple(d.document_id for d in docs)
        items.append(_plan_file(f, docs, adopt, retry_failed))
    return tuple(items)


def _plan_file(f: SourceFile, docs: list[Document], adopt: tuple[str, ...], retry_failed: bool) -> SyncItem:
    S = DocumentStatus
    same = [d for d in docs if d.sha256 == f.sha256]
    dead_slots = tuple(d.document_id for d in docs if d.status is S.UPLOADING)
    indexed = [d for d in same if d.status is S.INDEXED]
    if indexed:
        keep = _newest(indexed)
        stale = tuple(d.document_id for d in docs if d.document_id != keep.document_id)
        return SyncItem(Action.UNCHANGED, f.path, f.sha256, keep.document_id, remove=stale, adopt=adopt)
    processing = [d for d in same if d.status is S.PROCESSING]
    if processing:
        return SyncItem(Action.RESUME, f.path, f.sha256, _newest(processing).document_id, dead_slots, adopt)
    failed = [d for d in same if d.status is S.FAILED]
    if failed:
        last = _newest(failed)
        action = Action.RETRY if retry_failed else Action.FAILED
        return SyncItem(
            action, f.path, f.sha256, last.document_id, dead_slots, adopt, reason=last.error or ""
        )
    versions = [d for d in docs if d.status is not S.UPLOADING]
    return SyncItem(Action.MODIFY if versions else Action.ADD, f.path, f.sha256, None, dead_slots, adopt)


# -- execution ---------------------------------------------------------------------------------------------
@dataclass
class SyncOutcome:
    item: SyncItem
    status: str  # INDEXED | FAILED | DELETED | KEPT
    detail: str = ""  # the failure reason (whole), or "3 page(s), 12 chunk(s)"
    document: Document | None = None


@dataclass
class SyncReport:
    plan: SyncPlan
    outcomes: list[SyncOutcome] = field(default_factory=list)

    @property
    def failed(self) -> list[SyncOutcome]:
        return [o for o in self.outcomes if o.status == "FAILED"]

    def summary(self) -> dict[str, int]:
        """Per planned action: how many; plus how many files ended FAILED."""
        counts = {k: v for k, v in self.plan.counts().items() if v}
        counts["failed_total"] = len(self.failed)
        return counts


def _done(doc: Document) -> tuple[str, str]:
    if doc.status is DocumentStatus.FAILED:
        return "FAILED", doc.error or ""
    return doc.status.value, f"{doc.pages} page(s), {doc.chunks} chunk(s)"


class SyncRunner:
    """Carries out a `SyncPlan` for one tenant: the uploads go through `DocumentService` (identity, limits),
    ingestion through `IngestionPipeline.run` in this process. `read(path)` returns a file's bytes."""

    def __init__(
        self, service: DocumentService, pipeline: IngestionPipeline, read: Callable[[str], bytes]
    ) -> None:
        self.service = service
        self.pipeline = pipeline
        self.documents = service.documents
        self.read = read

    def _remove(self, tenant_id: str, ids: Iterable[str]) -> None:
        for doc_id in ids:
            remove_document(self.documents, self.service.index, self.service.blobs, tenant_id, doc_id)

    def _adopt(self, tenant_id: str, item: SyncItem) -> None:
        for doc_id in item.adopt:
            doc = self.documents.get(tenant_id, doc_id)
            if doc is not None and not doc.source_path:
                try:
                    self.documents.update(
                        tenant_id, doc_id, status=doc.status, allowed_from=[doc.status], source_path=item.path
                    )
                except (Conflict, NotFound):
                    continue

    def apply_one(self, tenant_id: str, item: SyncItem, progress: Progress | None = None) -> SyncOutcome:
        step = progress or (lambda s, d, t: None)
        self._adopt(tenant_id, item)
        if item.action is Action.GONE:
            return SyncOutcome(item, "KEPT", "the file is gone; kept (sync with --delete removes it)")
        if item.action is Action.DELETE:
            self._remove(tenant_id, item.remove)
            return SyncOutcome(item, "DELETED")
        if item.action is Action.FAILED:
            return SyncOutcome(item, "FAILED", item.reason)
        self._remove(tenant_id, item.remove)
        if item.action is Action.UNCHANGED:
            doc = self.documents.get(tenant_id, item.document_id or "")
            return SyncOutcome(item, "INDEXED", "unchanged", doc)
        if item.action is Action.RETRY and item.document_id:
            with contextlib.suppress(Conflict, NotFound):  # moved on meanwhile: run() does what its status allows
                START_PROCESSING.only_from(DocumentStatus.FAILED).apply(
                    self.documents, tenant_id, item.document_id, error=None
                )
        if item.action in (Action.RESUME, Action.RETRY) and item.document_id:
            self.documents.begin_attempt(tenant_id, item.document_id)  # type: ignore[attr-defined]
            doc = self.pipeline.run(tenant_id, item.document_id, step)
            return SyncOutcome(item, *_done(doc), document=doc)
        try:
            data = self.read(item.path)
            if not data:
                return SyncOutcome(item, "FAILED", "The file is empty; there is nothing to index.")
            doc, _ = self.service.create_upload(
                tenant_id,
                posixpath.basename(item.path),
                None,
                len(data),
                source_path=item.path,
                on_duplicate="replace",
            )
            self.service.receive_upload(tenant_id, doc.document_id, data)
        except LecternError as exc:
            return SyncOutcome(item, "FAILED", exc.message)
        except OSError as exc:
            return SyncOutcome(item, "FAILED", f"The file could not be read: {exc.strerror or exc}.")
        self.documents.begin_attempt(tenant_id, doc.document_id)  # type: ignore[attr-defined]
        done = self.pipeline.run(tenant_id, doc.document_id, step)
        return SyncOutcome(item, *_done(done), document=done)
