"""The OpenAPI document, generated from the routes (never hand-written). `make openapi` writes docs/openapi.json."""

from __future__ import annotations

import json
from typing import Any

import lectern
from lectern.api.app import ApiServices, build_app


def _unused(*args: Any, **kwargs: Any) -> Any:  # the spec needs the routes, not working services
    raise RuntimeError("not wired")


def openapi_document() -> dict[str, Any]:
    services = ApiServices(documents=None, retriever=None, answerer=None, tenant_of=_unused, health=_unused)  # type: ignore[arg-type]
    app = build_app(services)
    schema = app.get_openapi_json_schema(
        title="Lectern API",
        version=lectern.__version__,
        description="Document question answering with cited answers. Errors are JSON {error: {code, message}}.",
    )
    return json.loads(schema)


def openapi_json() -> str:
    return json.dumps(openapi_document(), indent=2, sort_keys=True) + "\n"
