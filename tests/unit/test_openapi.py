import json
from pathlib import Path

from lectern.api.openapi import openapi_document, openapi_json

COMMITTED = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"


def test_committed_spec_matches_the_routes():
    assert COMMITTED.read_text() == openapi_json(), "docs/openapi.json is stale: run `make openapi`"


def test_spec_has_the_contract():
    doc = openapi_document()
    paths = doc["paths"]
    assert set(paths) == {
        "/v1/health",
        "/v1/documents",
        "/v1/documents/{document_id}",
        "/v1/documents/{document_id}/pages/{page}/image",
        "/v1/query",
        "/v1/search",
        "/v1/feedback",
        "/v1/formats",
        "/v1/conversations",
        "/v1/conversations/{conversation_id}",
    }
    assert set(paths["/v1/documents/{document_id}"]) == {"get", "delete"}
    image = paths["/v1/documents/{document_id}/pages/{page}/image"]["get"]
    assert set(image["responses"]["200"]["content"]) == {"image/png"}
    assert image["responses"]["404"]["content"]["application/json"]["schema"]["$ref"].endswith("ErrorResponse")
    assert set(paths["/v1/conversations/{conversation_id}"]) == {"get", "delete"}
    create = paths["/v1/documents"]["post"]
    assert create["responses"]["201"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "CreateDocumentResponse"
    )
    for op in (create, paths["/v1/query"]["post"], paths["/v1/search"]["post"]):
        assert op["responses"]["422"]["content"]["application/json"]["schema"]["$ref"].endswith("ErrorResponse")
    schemas = doc["components"]["schemas"]
    assert set(schemas["QueryRequest"]["properties"]) == {"question", "top_k", "filters", "conversation_id"}
    assert {"conversation_id", "standalone_question", "rewrite"} <= set(schemas["QueryResponse"]["properties"])
    assert set(schemas["DocumentOut"]["properties"]["status"]["enum"]) == {
        "UPLOADING",
        "PROCESSING",
        "INDEXED",
        "FAILED",
    }
    json.dumps(doc)  # serialisable
