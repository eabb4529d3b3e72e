"""Every error becomes `{"error": {"code", "message"}}` with one HTTP status, decided here and only here."""

from __future__ import annotations

import json
import logging

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)

from lectern.domain import errors as e

log = logging.getLogger(__name__)

STATUS: dict[type[e.LecternError], int] = {
    e.ValidationFailed: 400,
    e.Unauthenticated: 401,
    e.Forbidden: 403,
    e.NotFound: 404,
    e.DuplicateDocument: 409,  # code duplicate_document: on_duplicate=reject met the same source path / content
    e.Conflict: 409,
    e.PayloadTooLarge: 413,
    e.UnsupportedMediaType: 415,
    e.ExtractionError: 422,
    e.RateLimited: 429,
    e.GuardrailBlocked: 400,
    e.ModelUnavailable: 503,
    e.IngestionInterrupted: 503,
    e.IndexWriteFailed: 503,
    e.SearchUnavailable: 503,
}


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body=json.dumps({"error": {"code": code, "message": message}}),
        headers=headers or {},
    )


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body",))
        parts.append(f"{loc or 'body'}: {err.get('msg', 'invalid')}")
    return "Invalid request. " + "; ".join(parts)


def register_error_handlers(app: APIGatewayRestResolver) -> None:
    @app.exception_handler(e.LecternError)
    def _domain(exc: e.LecternError) -> Response:
        status = next((s for cls, s in STATUS.items() if isinstance(exc, cls)), 500)
        headers = {"Retry-After": str(exc.retry_after_s)} if isinstance(exc, e.RateLimited) else None
        return error_response(status, exc.code, exc.message, headers)

    @app.exception_handler(RequestUnsupportedContentType)
    def _content_type(exc: RequestUnsupportedContentType) -> Response:
        return error_response(
            415, "unsupported_media_type", "Send the request body as JSON (Content-Type: application/json)."
        )

    @app.exception_handler(RequestValidationError)
    def _invalid(exc: RequestValidationError) -> Response:
        return error_response(422, "invalid_request", _validation_message(exc))

    @app.not_found
    def _not_found(exc: NotFoundError) -> Response:
        return error_response(404, "route_not_found", "No such route.")

    @app.exception_handler(ValueError)
    def _value_error(exc: ValueError) -> Response:
        # Powertools' request validation raises a bare ValueError for a multipart Content-Type without a
        # boundary (found by schemathesis); that is the client's malformed request. Anything else is ours.
        if "boundary" in str(exc) and "multipart" in str(exc):
            return error_response(400, "invalid_request", "Malformed multipart/form-data: no boundary.")
        return _unexpected(exc)

    @app.exception_handler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.exception("unhandled error")
        return error_response(500, "internal_error", "Internal error.")
