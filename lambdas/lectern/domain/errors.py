"""Domain errors. The API maps each class to one HTTP status in one place (lectern.api.errors)."""

from __future__ import annotations


class LecternError(Exception):
    """Base class. `code` is the stable machine-readable error code returned to clients."""

    code = "internal_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ValidationFailed(LecternError):
    code = "invalid_request"


class Unauthenticated(LecternError):
    """No verified identity (or no tenant in it). The tenant always comes from the identity, never the body."""

    code = "unauthenticated"


class Forbidden(LecternError):
    code = "forbidden"


class NotFound(LecternError):
    code = "not_found"


class Conflict(LecternError):
    code = "conflict"


class DuplicateDocument(Conflict):
    """An upload of a source path (or content) the tenant already has, with `on_duplicate=reject`. The message
    names the existing document and the two other choices."""

    code = "duplicate_document"

    def __init__(self, message: str, *, existing_id: str = "") -> None:
        super().__init__(message)
        self.existing_id = existing_id


class PayloadTooLarge(LecternError):
    code = "payload_too_large"


class UnsupportedMediaType(LecternError):
    code = "unsupported_media_type"


class ExtractionError(LecternError):
    """The document cannot be turned into text (encrypted, corrupt, empty, unsupported, over a limit).

    The message is shown to the user as the document's FAILED reason, so it must be clear and must not
    leak internals (no stack traces, no file system paths).
    """

    code = "extraction_failed"


class IngestionInterrupted(LecternError):
    """Ingestion could not go on for a reason that is not the document's (the extraction process could not be
    started, or the machine is shutting down). The document stays PROCESSING and is retried, never FAILED."""

    code = "ingestion_interrupted"


class ModelUnavailable(LecternError):
    """No generation model could answer (primary and fallback down, or endpoint scaled to zero).

    `retryable` is True for throttling, 5xx, timeouts and cold/scaled-to-zero endpoints: the conditions on which
    the router moves to the fallback model. A request the model rejects as invalid is not retryable.
    """

    code = "model_unavailable"

    def __init__(self, message: str, *, retryable: bool = True, reason: str = "unavailable") -> None:
        super().__init__(message)
        self.retryable = retryable
        self.reason = reason  # "throttled" | "server_error" | "timeout" | "cold" | "invalid" | "unavailable"


class GuardrailBlocked(LecternError):
    """A guardrail stopped the question or the answer. The message is safe to show: it never quotes the
    blocked text, the policy's internals or the matched pattern; `policies` names the categories for metrics."""

    code = "guardrail_blocked"

    def __init__(self, message: str, *, policies: tuple[str, ...] = (), source: str = "input") -> None:
        super().__init__(message)
        self.policies = policies
        self.source = source  # "input" | "output"


class SearchUnavailable(LecternError):
    """The search index did not answer a read (down, throttled, or rejected the request)."""

    code = "search_unavailable"


class IndexWriteFailed(LecternError):
    """The search index accepted only part of a document's chunks. The document must not become INDEXED."""

    code = "index_write_failed"

    def __init__(self, message: str, *, failed: int = 0, total: int = 0, retryable: bool = True) -> None:
        super().__init__(message)
        self.failed = failed
        self.total = total
        self.retryable = retryable


class RateLimited(LecternError):
    code = "rate_limited"

    def __init__(self, message: str, retry_after_s: int = 1) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
