"""The document at /openapi.json, made to say what the gateway really answers.

FastAPI generates it from the routes, but it cannot know three things, fixed here:
- a body or parameter that fails validation is answered 400 in OpenAI's shape
  (`serve/errors.py`), never FastAPI's 422 `HTTPValidationError`, so those entries go;
- the OpenAI routes relay their bodies unparsed (the hot path never builds a model), so their
  request bodies are described here, by hand, as far as the gateway itself checks them;
- the caps set on the command line (`--max-tokens-cap`, `--max-messages`).
The document is fuzzed against the running stack (`tests/integration/test_fuzz.py`).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from serve.config import Settings

FASTAPI_422 = "#/components/schemas/HTTPValidationError"


def _message_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["role", "content"],
        "properties": {
            "role": {"type": "string", "enum": ["system", "user", "assistant"]},
            "content": {"type": "string", "maxLength": 100_000},
        },
    }


def _generation_fields(settings: Settings) -> dict[str, Any]:
    """What `check_generation_limits` enforces; every other field goes to the engine as is."""
    tokens = {"type": "integer", "minimum": 1, "maximum": settings.max_tokens_cap}
    return {
        "model": {
            "type": "string",
            "minLength": 1,
            "description": "the base model's name, `base`, `live`, an adapter `name` or `name@N`",
            "examples": [settings.served_model_name],
        },
        "max_tokens": tokens,
        "max_completion_tokens": tokens,
        "stream": {"type": "boolean"},
    }


def chat_request(settings: Settings) -> dict[str, Any]:
    fields = _generation_fields(settings)
    fields["messages"] = {
        "type": "array",
        "minItems": 1,
        "maxItems": settings.max_messages,
        "items": _message_schema(),
    }
    return _json_body(fields, ["model", "messages"])


def completion_request(settings: Settings) -> dict[str, Any]:
    fields = _generation_fields(settings)
    fields["prompt"] = {
        "anyOf": [
            {"type": "string", "minLength": 1},
            {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1}},
        ]
    }
    return _json_body(fields, ["model", "prompt"])


def _json_body(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    schema = {
        "type": "object",
        "required": required,
        "properties": properties,
        "additionalProperties": True,  # any other OpenAI parameter the engine knows
    }
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def gateway_openapi(app: FastAPI, settings: Settings) -> dict[str, Any]:
    """Build the document once, corrected as the module docstring says."""
    if app.openapi_schema:
        return app.openapi_schema
    doc = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    for item in doc["paths"].values():
        for operation in item.values():
            responses = operation["responses"]
            schema = responses.get("422", {}).get("content", {}).get("application/json", {})
            if schema.get("schema", {}).get("$ref") == FASTAPI_422:
                del responses["422"]
    doc["paths"]["/v1/chat/completions"]["post"]["requestBody"] = chat_request(settings)
    doc["paths"]["/v1/completions"]["post"]["requestBody"] = completion_request(settings)
    schemas = doc.get("components", {}).get("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    app.openapi_schema = doc
    return doc
