"""/v1/documents: create an upload slot, list, get and delete documents."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Path
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse

from lectern.api.routes import ERRORS, caller
from lectern.api.schemas import (
    CreateDocumentRequest,
    CreateDocumentResponse,
    DocumentList,
    DocumentOut,
    ErrorResponse,
    UploadOut,
)

if TYPE_CHECKING:
    from lectern.api.app import ApiServices

_CREATE_RESPONSES: dict[int, OpenAPIResponse] = {
    201: {"description": "Created", "content": {"application/json": {"model": CreateDocumentResponse}}},
    413: {"description": "Too large", "content": {"application/json": {"model": ErrorResponse}}},
    409: {
        "description": "on_duplicate=reject and the tenant has this source path or content (duplicate_document)",
        "content": {"application/json": {"model": ErrorResponse}},
    },
    415: {"description": "Unsupported type", "content": {"application/json": {"model": ErrorResponse}}},
    **ERRORS,
}


def router(services: ApiServices) -> Router:
    r = Router()

    @r.post(
        "/v1/documents",
        summary="Create a document and get an upload slot (S3 presigned POST shape)",
        responses=_CREATE_RESPONSES,
    )
    def create_document(body: Annotated[CreateDocumentRequest, Body()]) -> Response[CreateDocumentResponse]:
        tenant = caller(r).tenant_id
        doc, slot = services.documents.create_upload(
            tenant,
            body.filename,
            body.content_type,
            body.size_bytes,
            source_path=body.source_path,
            sha256=body.sha256,
            on_duplicate=body.on_duplicate,
        )
        out = CreateDocumentResponse(
            document_id=doc.document_id,
            upload=UploadOut(url=slot.url, fields=slot.fields),
            source_path=doc.source_path or doc.filename,
            replaces=services.documents.replaced_by(doc),
        )
        return Response(201, content_types.APPLICATION_JSON, out)

    @r.get("/v1/documents", summary="List documents")
    def list_documents() -> DocumentList:
        return DocumentList(
            documents=[DocumentOut.of(d) for d in services.documents.list(caller(r).tenant_id)]
        )

    @r.get("/v1/documents/<document_id>", summary="Get a document's status", responses=ERRORS)
    def get_document(document_id: Annotated[str, Path(max_length=64)]) -> DocumentOut:
        return DocumentOut.of(services.documents.get(caller(r).tenant_id, document_id))

    @r.get(
        "/v1/documents/<document_id>/pages/<page>/image",
        summary="A page's image (PNG, rendered at ingest), for showing a citation's region on its page",
        responses={
            200: {"description": "The page as PNG", "content": {"image/png": {}}},
            **ERRORS,
        },
    )
    def get_page_image(
        document_id: Annotated[str, Path(max_length=64)], page: Annotated[int, Path(ge=1, le=100_000)]
    ):  # no return type: Powertools would validate (and JSON-encode) the PNG bytes
        png = services.documents.page_image(caller(r).tenant_id, document_id, page)
        return Response(200, "image/png", png, headers={"Cache-Control": "private, max-age=3600"})

    @r.delete(
        "/v1/documents/<document_id>",
        summary="Delete a document, its chunks and index entries",
        responses={204: {"description": "Deleted"}, **ERRORS},
    )
    def delete_document(document_id: Annotated[str, Path(max_length=64)]) -> Response[None]:
        services.documents.delete(caller(r).tenant_id, document_id)
        return Response(204, content_types.APPLICATION_JSON, None)

    return r
