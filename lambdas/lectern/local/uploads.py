"""The local stand-in for S3's presigned POST target: `POST /v1/uploads/{document_id}` (multipart/form-data).

Only the local app has this route; on AWS the upload slot's URL is S3 itself and S3 -> EventBridge starts
ingestion. Fields are checked against the signed policy before anything is stored, like S3 does.
"""

from __future__ import annotations

import base64
from typing import Annotated

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Path
from python_multipart.multipart import MultipartParser, parse_options_header

from lectern.adapters.local.upload_signer import HmacUploadSigner
from lectern.domain.documents import DocumentService, blob_key, check_document_id
from lectern.domain.errors import ValidationFailed


class _Parts:
    """The multipart parser's callbacks, collecting each part's headers and bytes."""

    def __init__(self) -> None:
        self.parts: list[tuple[dict[bytes, bytes], bytearray]] = []
        self._field = b""
        self._value = b""

    def callbacks(self) -> dict[str, object]:
        return {
            "on_part_begin": self.on_part_begin,
            "on_header_field": self.on_header_field,
            "on_header_value": self.on_header_value,
            "on_header_end": self.on_header_end,
            "on_part_data": self.on_part_data,
        }

    def on_part_begin(self) -> None:
        self.parts.append(({}, bytearray()))

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def on_header_end(self) -> None:
        self.parts[-1][0][self._field.lower()] = self._value
        self._field = self._value = b""

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        self.parts[-1][1].extend(data[start:end])


def parse_multipart(body: bytes, content_type: str) -> tuple[dict[str, str], bytes | None]:
    """Return (text fields, file bytes). The file is the part named `file`, which must come last (as on S3)."""
    ctype, params = parse_options_header(content_type)
    if ctype != b"multipart/form-data" or b"boundary" not in params:
        raise ValidationFailed("Uploads must be multipart/form-data.")
    collected = _Parts()
    parser = MultipartParser(params[b"boundary"], callbacks=collected.callbacks())  # type: ignore[arg-type]
    try:
        parser.write(body)
        parser.finalize()
    except Exception as exc:
        raise ValidationFailed("The multipart body could not be parsed.") from exc
    fields: dict[str, str] = {}
    file_data: bytes | None = None
    for headers, data in collected.parts:
        _, disp = parse_options_header(headers.get(b"content-disposition", b""))
        name = disp.get(b"name", b"").decode("utf-8", "replace")
        if name == "file":
            file_data = bytes(data)
        elif file_data is None:
            fields[name] = data.decode("utf-8", "replace")
    return fields, file_data


def register_upload_route(
    app: APIGatewayRestResolver, documents: DocumentService, signer: HmacUploadSigner
) -> None:
    """Like S3, the upload is authorised by the signed policy in the fields, not by a session: the tenant is the
    one the policy's key was signed for."""

    @app.post(
        "/v1/uploads/<document_id>",
        summary="Local upload target (the S3 presigned POST stand-in); multipart fields + file",
        include_in_schema=False,
    )
    def upload(document_id: Annotated[str, Path(max_length=64)]) -> Response[None]:
        check_document_id(document_id)
        event = app.current_event
        raw = event.body or ""
        body = base64.b64decode(raw) if event.is_base64_encoded else raw.encode("utf-8", "surrogateescape")
        ctype = event.headers.get("content-type") or event.headers.get("Content-Type") or ""
        fields, data = parse_multipart(body, ctype)
        if data is None:
            raise ValidationFailed("The multipart form has no part named 'file'.")
        key = fields.get("key", "")
        signer.verify(fields, key=key, size=len(data))
        tenant_id = key.split("/", 1)[0]
        if key != blob_key(tenant_id, document_id):
            raise ValidationFailed("The upload slot is for another document.")
        documents.receive_upload(tenant_id, document_id, data)
        return Response(204, content_types.TEXT_PLAIN, None)
