"""A document's lifecycle, named once: every status change is one of these transitions.

    UPLOADING ──receive_upload──► PROCESSING ──mark_indexed──► INDEXED
        │                            └─────────mark_failed───► FAILED
        └──expire / fail_stuck────────────────────────────────► FAILED   (the sweeps; PROCESSING too)
    UPLOADING · INDEXED · FAILED ──start_processing──► PROCESSING         (a new upload event on AWS, a retry,
                                                                          the local worker's recovery)
    any ──restore──► PROCESSING | INDEXED                                 (the AWS rebuild from S3)

Each transition is applied as one conditional update of the repository (`DocumentRepository.update` with
`allowed_from`): a document that moved on meanwhile is a Conflict, one that is gone a NotFound. A caller that
knows more may narrow the sources (`only_from`: the local worker starts only what it found UPLOADING), never
widen them. Local mode and AWS share these rules; the ingestion steps themselves are `INGESTION_STEPS` in
`lectern.domain.ingest` (the ASL and the CDK construct are held to that table by tests).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from lectern.domain.models import Document, DocumentStatus
from lectern.domain.ports import DocumentRepository

S = DocumentStatus


@dataclass(frozen=True)
class Transition:
    name: str
    to: DocumentStatus
    allowed_from: tuple[DocumentStatus, ...]

    def only_from(self, *statuses: DocumentStatus) -> Transition:
        """The same transition from fewer sources (a caller's own precondition)."""
        wider = set(statuses) - set(self.allowed_from)
        if wider:
            raise ValueError(f"{self.name} cannot start from {sorted(s.value for s in wider)}")
        return Transition(self.name, self.to, tuple(statuses))

    def apply(self, documents: DocumentRepository, tenant_id: str, document_id: str, **fields: object) -> Document:
        """One conditional update; raises Conflict (moved on) or NotFound (gone)."""
        return documents.update(tenant_id, document_id, status=self.to, allowed_from=self.allowed_from, **fields)


RECEIVE_UPLOAD = Transition("receive_upload", S.PROCESSING, (S.UPLOADING,))
START_PROCESSING = Transition("start_processing", S.PROCESSING, (S.UPLOADING, S.INDEXED, S.FAILED))
MARK_INDEXED = Transition("mark_indexed", S.INDEXED, (S.PROCESSING,))
MARK_FAILED = Transition("mark_failed", S.FAILED, (S.PROCESSING,))
FAIL_STUCK = Transition("fail_stuck", S.FAILED, (S.UPLOADING, S.PROCESSING))
RESTORE = Transition("restore", S.INDEXED, tuple(S))
RESTORE_FOR_PROCESSING = Transition("restore", S.PROCESSING, tuple(S))

TRANSITIONS: tuple[Transition, ...] = (
    RECEIVE_UPLOAD,
    START_PROCESSING,
    MARK_INDEXED,
    MARK_FAILED,
    FAIL_STUCK,
    RESTORE,
    RESTORE_FOR_PROCESSING,
)


def allowed(source: DocumentStatus, target: DocumentStatus, among: Iterable[Transition] = TRANSITIONS) -> bool:
    """Whether some transition moves a document from `source` to `target`."""
    return any(t.to is target and source in t.allowed_from for t in among)
