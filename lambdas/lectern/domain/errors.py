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


class NotFound(LecternError):
    code = "not_found"


class Conflict(LecternError):
    code = "conflict"


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


class ModelUnavailable(LecternError):
    """No generation model could answer (primary and fallback down, or endpoint scaled to zero)."""

    code = "model_unavailable"


class RateLimited(LecternError):
    code = "rate_limited"

    def __init__(self, message: str, retry_after_s: int = 1) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
