"""The OpenAPI document. The tracking routes read their bodies by hand (bounded,
gzip-aware), so their request schemas are declared here rather than inferred."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from funnel_shared.events import (
    AliasMessage,
    GroupMessage,
    IdentifyMessage,
    PageMessage,
    ScreenMessage,
    TrackMessage,
)
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from funnel_ingest.api_models import BatchRequest
from funnel_ingest.errors import ErrorBody

__all__ = ["MESSAGE_MODELS", "error_responses", "install_openapi", "request_body"]

MESSAGE_MODELS: dict[str, type[BaseModel]] = {
    "track": TrackMessage,
    "identify": IdentifyMessage,
    "page": PageMessage,
    "screen": ScreenMessage,
    "group": GroupMessage,
    "alias": AliasMessage,
}

_ERRORS = {
    400: "Malformed JSON, invalid UTF-8, or (single-message routes) an invalid message.",
    401: "Missing or unknown write key.",
    413: "Over a size limit: request, decompressed body, message, or messages per batch.",
    415: "Unsupported content type or content encoding.",
    429: "Rate limit for this write key exceeded; see Retry-After.",
    503: "The broker did not acknowledge in time: nothing is promised; retry after Retry-After.",
}


def error_responses() -> dict[int | str, dict[str, Any]]:
    return {status: {"model": ErrorBody, "description": text} for status, text in _ERRORS.items()}


def request_body(model_name: str) -> dict[str, Any]:
    """``openapi_extra`` for a tracking route: its body schema, under both content types."""
    schema = {"$ref": f"#/components/schemas/{model_name}"}
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": schema},
                "text/plain": {"schema": schema},
            },
        },
        "parameters": [
            {
                "name": "Content-Encoding",
                "in": "header",
                "required": False,
                "schema": {"type": "string", "enum": ["gzip", "deflate", "identity"]},
            }
        ],
        "security": [{"writeKey": []}, {}],
    }


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        models: list[type[BaseModel]] = [*MESSAGE_MODELS.values(), BatchRequest]
        _, definitions = models_json_schema(
            [(model, "validation") for model in models],
            ref_template="#/components/schemas/{model}",
        )
        components = document.setdefault("components", {})
        components.setdefault("schemas", {}).update(definitions.get("$defs", {}))
        components["securitySchemes"] = {
            "writeKey": {
                "type": "http",
                "scheme": "basic",
                "description": "Write key as username, empty password; or writeKey in the body.",
            }
        }
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]
