"""Stuck documents: an upload whose event never started ingestion, or an ingestion that died, must not leave a
document UPLOADING or PROCESSING forever.

`StuckDocumentSweeper.sweep` finds documents that have been UPLOADING or PROCESSING (unchanged:
`updated_at`) for longer than their limit and marks each FAILED with a reason the user can act on. The limit
for PROCESSING must exceed the ingestion workflow's own timeout, so a running ingestion is never failed under
it. Each mark is the repository's conditional status update (from exactly the status it was found in) after a
fresh read that the document is still that old: a document that moved on meanwhile (indexed, re-uploaded,
deleted) is left as it is. A later successful ingestion (EventBridge retries a failed delivery for up to 24
hours) still moves a FAILED document to PROCESSING and INDEXED.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from lectern.domain.errors import Conflict, NotFound
from lectern.domain.lifecycle import FAIL_STUCK
from lectern.domain.models import DocumentStatus
from lectern.domain.ports import DocumentRepository

STUCK_STATUSES = (DocumentStatus.UPLOADING, DocumentStatus.PROCESSING)


class StuckDocumentFinder(Protocol):
    """Documents in one status whose `updated_at` is before a time (ISO 8601 UTC, as `domain.clock`
    writes them)."""

    def stale(self, status: DocumentStatus, updated_before: str) -> Iterator[tuple[str, str]]:
        """(tenant_id, document_id) pairs, across tenants (an operator's sweep, not a tenant's request)."""
        ...


@dataclass(frozen=True)
class StuckLimits:
    uploading: timedelta = timedelta(hours=3)
    processing: timedelta = timedelta(hours=3)

    def __post_init__(self) -> None:
        if self.uploading <= timedelta(0) or self.processing <= timedelta(0):
            raise ValueError("stuck-document limits must be positive")

    def of(self, status: DocumentStatus) -> timedelta:
        return self.uploading if status is DocumentStatus.UPLOADING else self.processing


@dataclass(frozen=True)
class Swept:
    tenant_id: str
    document_id: str
    was: DocumentStatus
    reason: str


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _minutes(limit: timedelta) -> str:
    minutes = int(limit.total_seconds() // 60)
    return f"{minutes // 60} hours" if minutes % 60 == 0 and minutes >= 120 else f"{minutes} minutes"


def reason_for(status: DocumentStatus, limit: timedelta) -> str:
    if status is DocumentStatus.UPLOADING:
        return (
            f"The upload was not received or not processed within {_minutes(limit)}. Upload the file again."
        )
    return f"Processing did not finish within {_minutes(limit)}. Upload the file again."


class StuckDocumentSweeper:
    def __init__(
        self, documents: DocumentRepository, finder: StuckDocumentFinder, limits: StuckLimits | None = None
    ) -> None:
        self.documents = documents
        self.finder = finder
        self.limits = limits or StuckLimits()

    def sweep(
        self, now: datetime | None = None, statuses: tuple[DocumentStatus, ...] = STUCK_STATUSES
    ) -> list[Swept]:
        now = now or datetime.now(UTC)
        swept: list[Swept] = []
        for status in statuses:
            limit = self.limits.of(status)
            cutoff = _iso(now - limit)
            for tenant_id, document_id in self.finder.stale(status, cutoff):
                current = self.documents.get(tenant_id, document_id)
                if current is None or current.status is not status or current.updated_at >= cutoff:
                    continue  # moved on since the index was read
                reason = reason_for(status, limit)
                try:
                    FAIL_STUCK.only_from(status).apply(
                        self.documents,
                        tenant_id,
                        document_id,
                        error=reason,
                    )
                except (Conflict, NotFound):
                    continue  # moved on between the read and the update
                swept.append(Swept(tenant_id, document_id, status, reason))
        return swept
