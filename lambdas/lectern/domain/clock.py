from __future__ import annotations

from datetime import UTC, datetime


def utc_now_iso() -> str:
    """UTC timestamp with microseconds, ISO 8601 with a Z suffix (sorts lexically in time order)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
