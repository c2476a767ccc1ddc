"""The OpenAI surface: requests are relayed to the engine as they are, model names resolved.

Only `model` is rewritten (`adapter` -> `adapter@version`); the body is otherwise untouched,
so every OpenAI parameter the engine knows works through the gateway. Streams are relayed
chunk by chunk; a client that goes away closes the engine request with it.
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.background import BackgroundTask

from serve.errors import APIError, BadRequest, EngineUnavailable
from serve.exchange_log import RequestInfo, exchange_from_response, exchange_from_stream
from serve.services import Services, ServicesDep

router = APIRouter(prefix="/v1", tags=["openai"])


async def read_json_object(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequest(f"the request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    return body


def upstream_error(resp: httpx.Response, body: bytes) -> APIError:
    """Re-shape an engine error into ours, keeping its status and message."""
    try:
        message = json.loads(body)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = body.decode(errors="replace")[:1000] or resp.reason_phrase
    error = APIError(message)
    error.status = resp.status_code
    error.type = "invalid_request_error" if resp.status_code < 500 else "engine_error"
    error.code = {404: "model_not_found"}.get(resp.status_code)
    return error


def engine_down(services: Services, exc: Exception) -> EngineUnavailable:
    state = services.engine.state
    return EngineUnavailable(f"the engine is not answering (state: {state}): {exc}")


@router.post("/chat/completions")
async def chat_completions(request: Request, services: ServicesDep) -> Response:
    body = await read_json_object(request)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("`messages` must be a non-empty list", param="messages")
    return await relay(services, "/v1/chat/completions", body)


@router.post("/completions")
async def completions(request: Request, services: ServicesDep) -> Response:
    body = await read_json_object(request)
    if body.get("prompt") in (None, "", []):
        raise BadRequest("`prompt` is required", param="prompt")
    return await relay(services, "/v1/completions", body)


async def relay(services: Services, path: str, body: dict[str, Any]) -> Response:
    """Send the request on with the engine's model name; log the exchange off the hot path."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest("`model` is required: a model name from /v1/models", param="model")
    engine_model = services.registry.resolve(model)
    info = RequestInfo(model=model, engine_model=engine_model, body=body)
    upstream = {**body, "model": engine_model}
    if body.get("stream"):
        return await _relay_stream(services, path, info, upstream)
    try:
        resp = await services.http.post(path, json=upstream)
    except httpx.HTTPError as exc:
        raise engine_down(services, exc) from exc
    if resp.status_code != 200:
        raise upstream_error(resp, resp.content)
    data = resp.json()
    services.exchange_log.submit(lambda: exchange_from_response(info, data))
    return JSONResponse(data)


async def _relay_stream(
    services: Services, path: str, info: RequestInfo, upstream: dict
) -> Response:
    request = services.http.build_request("POST", path, json=upstream)
    try:
        resp = await services.http.send(request, stream=True)
    except httpx.HTTPError as exc:
        raise engine_down(services, exc) from exc
    if resp.status_code != 200:
        content = await resp.aread()
        await resp.aclose()
        raise upstream_error(resp, content)
    chunks: list[bytes] = []

    async def relay():
        async for chunk in resp.aiter_raw():
            chunks.append(chunk)
            yield chunk

    def log_when_done() -> None:
        ended = time.perf_counter()
        services.exchange_log.submit(lambda: exchange_from_stream(info, chunks, ended))

    async def finish() -> None:
        await resp.aclose()
        log_when_done()

    return StreamingResponse(
        relay(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        background=BackgroundTask(finish),
    )


@router.get("/models")
async def list_models(services: ServicesDep) -> dict:
    try:
        resp = await services.http.get("/v1/models")
    except httpx.HTTPError as exc:
        raise engine_down(services, exc) from exc
    if resp.status_code != 200:
        raise upstream_error(resp, resp.content)
    data = resp.json()
    data["data"].extend(services.registry.model_cards(created=int(time.time())))
    return data
