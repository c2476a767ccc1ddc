"""The OpenAI surface: requests are relayed to the engine as they are, model names resolved.

Only `model` is rewritten (`adapter` -> `adapter@version`); the body is otherwise untouched,
so every OpenAI parameter the engine knows works through the gateway. Streams are relayed
chunk by chunk; a client that goes away, streaming or not, closes the engine request with it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import aiohttp
from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from starlette.background import BackgroundTask

from serve.client_gone import unless_client_leaves
from serve.engine_client import EngineUnreachable
from serve.errors import (
    APIError,
    BadRequest,
    EngineUnavailable,
    UnknownModel,
    error_body,
    error_responses,
)
from serve.exchange_log import RequestInfo, exchanges_from_response, exchanges_from_stream
from serve.json_body import check_generation_limits, with_token_cap
from serve.protocol import Completion, ModelCard, ModelList
from serve.services import Services, ServicesDep
from serve.sse import EVENT_STREAM, UsageEventFilter, with_usage

router = APIRouter(prefix="/v1", tags=["openai"])

# A JSON answer, or with `stream: true` the engine's SSE events; errors as the engine gave them.
GENERATION_RESPONSES = {
    200: {"content": EVENT_STREAM},
    **error_responses(404, 503),
}


async def read_json_object(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequest(f"the request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    return body


def upstream_error(status: int, body: bytes) -> APIError:
    """Re-shape an engine error into ours, keeping its status and message."""
    try:
        message = json.loads(body)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = body.decode(errors="replace")[:1000] or f"engine error {status}"
    error = APIError(message)
    error.status = status
    error.type = "invalid_request_error" if status < 500 else "engine_error"
    error.code = {404: "model_not_found"}.get(status)
    return error


def stream_error(message: str) -> bytes:
    """An error event inside an SSE stream (the `openai` client raises it as an APIError)."""
    body = error_body(message, "engine_error", code="engine_unavailable")
    return b"data: " + json.dumps(body).encode() + b"\n\n"


def engine_down(services: Services, exc: Exception) -> EngineUnavailable:
    state = services.engine.state
    return EngineUnavailable(f"the engine is not answering (state: {state}): {exc}")


@router.post("/chat/completions", response_model=Completion, responses=GENERATION_RESPONSES)
async def chat_completions(request: Request, services: ServicesDep) -> Response:
    body = await read_json_object(request)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("`messages` must be a non-empty list", param="messages")
    check_generation_limits(body, services.settings.max_messages, services.settings.max_tokens_cap)
    work = relay(services, "/v1/chat/completions", body, api_key_id(request))
    return await unless_client_leaves(request, work)


@router.post("/completions", response_model=Completion, responses=GENERATION_RESPONSES)
async def completions(request: Request, services: ServicesDep) -> Response:
    body = await read_json_object(request)
    if body.get("prompt") in (None, "", []):
        raise BadRequest("`prompt` is required", param="prompt")
    check_generation_limits(body, services.settings.max_messages, services.settings.max_tokens_cap)
    work = relay(services, "/v1/completions", body, api_key_id(request))
    return await unless_client_leaves(request, work)


def api_key_id(request: Request) -> int | None:
    """The key that made the request (set by the auth middleware; None in local mode)."""
    return getattr(request.state, "api_key_id", None)


async def relay(
    services: Services, path: str, body: dict[str, Any], key_id: int | None = None
) -> Response:
    """Send the request on with the engine's model name; log the exchange off the hot path.

    `"store": false` (OpenAI's own field) keeps the exchange out of the log: nothing to rate,
    nothing to train on. The loop's health check asks that way, so its probes never become data.
    """
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest("`model` is required: a model name from /v1/models", param="model")
    store = body.get("store", True)
    if not isinstance(store, bool):
        raise BadRequest("`store` must be true or false", param="store")
    engine_model = services.registry.resolve_served(model)  # 503 while it is re-loaded
    info = RequestInfo(model=model, engine_model=engine_model, body=body, api_key_id=key_id)
    upstream = {k: v for k, v in body.items() if k != "store"} | {"model": engine_model}
    upstream = with_token_cap(upstream, services.settings.max_tokens_limit)
    log = services.exchange_log.submit if store else _not_logged
    if body.get("stream"):
        return await _relay_stream(services, path, info, upstream, log)
    try:
        status, raw = await services.engine_client.post(path, upstream)
    except EngineUnreachable as exc:
        raise engine_down(services, exc) from exc
    if status != 200:
        raise upstream_error(status, raw)
    # Relay the engine's bytes as they are; parse them only in the log writer, off the hot path.
    log(lambda: exchanges_from_response(info, json.loads(raw)))
    return Response(raw, media_type="application/json")


def _not_logged(make_exchange: Callable[[], Any]) -> None:
    """The log's `submit` for a request sent with `"store": false`."""


async def _relay_stream(
    services: Services,
    path: str,
    info: RequestInfo,
    upstream: dict,
    log: Callable[[Callable[[], Any]], None],
) -> Response:
    # The engine is always asked for the usage event, so /metrics and the log count a stream's
    # tokens; a client that did not ask for it does not get it.
    upstream, client_wants_usage = with_usage(upstream)
    try:
        resp = await services.engine_client.open_stream(path, upstream)
    except EngineUnreachable as exc:
        raise engine_down(services, exc) from exc
    if resp.status != 200:
        content = await resp.read()
        resp.close()
        raise upstream_error(resp.status, content)
    chunks: list[bytes] = []
    usage_filter = None if client_wants_usage else UsageEventFilter()

    async def relay():
        try:
            async for chunk in resp.content.iter_any():
                chunks.append(chunk)
                if usage_filter is None:
                    yield chunk
                elif ready := usage_filter.feed(chunk):
                    yield ready
            if usage_filter is not None and (rest := usage_filter.rest()):
                yield rest
        except (TimeoutError, aiohttp.ClientError) as exc:
            # The engine died mid-answer: end the stream the way OpenAI clients understand, an
            # error event, then `[DONE]` for the clients that read until it.
            yield stream_error(f"the engine stopped mid-answer: {exc or type(exc).__name__}")
            yield b"data: [DONE]\n\n"

    async def finish() -> None:
        if resp.content.at_eof():
            resp.release()  # keep the connection for the next request
        else:
            # The client left early: dropping the connection aborts the engine's request
            # too, instead of letting it generate on for nobody.
            resp.close()
        ended = time.perf_counter()
        log(lambda: exchanges_from_stream(info, chunks, ended))

    return StreamingResponse(
        relay(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        background=BackgroundTask(finish),
    )


@router.get("/models", response_model=ModelList, responses=error_responses(503))
async def list_models(services: ServicesDep) -> dict:
    try:
        status, raw = await services.engine_client.get("/v1/models")
    except EngineUnreachable as exc:
        raise engine_down(services, exc) from exc
    if status != 200:
        raise upstream_error(status, raw)
    data = json.loads(raw)
    data["data"].extend(services.registry.model_cards(created=int(time.time())))
    return data


@router.get("/models/{model:path}", response_model=ModelCard, responses=error_responses(404, 503))
async def retrieve_model(model: str, services: ServicesDep) -> dict:
    """One entry of /v1/models (`client.models.retrieve`): the base, an adapter, an alias."""
    cards = (await list_models(services))["data"]
    card = next((c for c in cards if c["id"] == model), None)
    if card is None:
        names = ", ".join(sorted(c["id"] for c in cards)[:20])
        raise UnknownModel(f"no model {model!r} is served here; served: {names}", param="model")
    return card
