"""One error path: every failure leaves the gateway in OpenAI's JSON shape with the right status.

Domain errors are raised deep (`UnknownModel`, `AdapterRejected`, feedback's `UnknownExchange`)
and translated here, in handlers registered once by `install_error_handlers`.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from feedback.arena import BattleNotReady, UnknownBattle
from feedback.errors import InvalidJudgement, UnknownExchange

log = logging.getLogger("flywheel.gateway")


class APIError(Exception):
    status = 500
    type = "server_error"
    code: str | None = None

    def __init__(self, message: str, param: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        self.headers = headers or {}


class BadRequest(APIError):
    status, type, code = 400, "invalid_request_error", "invalid_request"


class UnknownModel(APIError):
    status, type, code = 404, "invalid_request_error", "model_not_found"


class NotFound(APIError):
    status, type, code = 404, "invalid_request_error", "not_found"


class MethodNotAllowed(APIError):
    status, type, code = 405, "invalid_request_error", "method_not_allowed"


class Forbidden(APIError):
    """The key may make this request, but not with what it asked for (e.g. another rater)."""

    status, type, code = 403, "invalid_request_error", "insufficient_permissions"


class RateLimited(APIError):
    status, type, code = 429, "rate_limit_error", "rate_limit_exceeded"

    def __init__(self, message: str, retry_after: int):
        super().__init__(message, headers={"Retry-After": str(retry_after)})


class Conflict(APIError):
    """The request is valid but the current state forbids it (e.g. deleting the live adapter)."""

    status, type, code = 409, "invalid_request_error", "conflict"


class AdapterRejected(APIError):
    """A LoRA folder that must not reach the engine (validated before any load)."""

    status, type, code = 422, "invalid_request_error", "adapter_rejected"


class EngineUnavailable(APIError):
    status, type, code = 503, "engine_unavailable", "engine_unavailable"

    def __init__(self, message: str, retry_after: int = 5):
        super().__init__(message, headers={"Retry-After": str(retry_after)})


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorResponse(BaseModel):
    """Every error the gateway answers, in OpenAI's shape (documented for each route)."""

    error: ErrorDetail


ERROR_STATUSES = {
    400: "invalid request: a body or parameter that does not validate, or a refused judgement",
    401: "no API key, or an unknown or revoked one (only once keys exist)",
    403: "an admin route with a user key, a cross-origin browser request, or a foreign Host",
    404: "no such model, answer, battle, adapter or job",
    405: "a known path with another method",
    409: "valid, but the current state forbids it",
    413: "the request body is over the gateway's limit",
    422: "the content was read and refused (an adapter folder, an import file)",
    429: "the key's rate limit is spent; see Retry-After",
    502: "the engine failed while answering",
    503: "the engine is not answering (starting, restarting); see Retry-After",
}
# What any /v1 route can answer before it runs: JsonBodies and ApiKeyAuth refuse these.
API_ERRORS = (400, 401, 403, 413, 429)


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: these statuses, each with the OpenAI error body."""
    return {s: {"model": ErrorResponse, "description": ERROR_STATUSES[s]} for s in statuses}


def error_body(message: str, type_: str, param: str | None = None, code: str | None = None):
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def error_response(
    status: int, message: str, type_: str, param=None, code=None, headers=None
) -> JSONResponse:
    return JSONResponse(error_body(message, type_, param, code), status, headers=headers)


def _validation_message(exc: RequestValidationError) -> tuple[str, str | None]:
    first = exc.errors()[0]
    where = ("body", "query", "path", "header")  # OpenAI names the parameter alone
    loc = [str(part) for part in first.get("loc", ()) if part not in where]
    param = ".".join(loc) or None
    return (f"{param}: {first['msg']}" if param else first["msg"]), param


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def _api_error(_: Request, exc: APIError):
        return error_response(exc.status, exc.message, exc.type, exc.param, exc.code, exc.headers)

    @app.exception_handler(UnknownExchange)
    async def _unknown_exchange(_: Request, exc: UnknownExchange):
        return error_response(404, str(exc), "invalid_request_error", "completion_id", "not_found")

    @app.exception_handler(InvalidJudgement)
    async def _invalid_judgement(_: Request, exc: InvalidJudgement):
        return error_response(400, str(exc), "invalid_request_error", None, "invalid_judgement")

    @app.exception_handler(UnknownBattle)
    async def _unknown_battle(_: Request, exc: UnknownBattle):
        return error_response(404, str(exc), "invalid_request_error", None, "not_found")

    @app.exception_handler(BattleNotReady)
    async def _battle_not_ready(_: Request, exc: BattleNotReady):
        return error_response(409, str(exc), "invalid_request_error", None, "conflict")

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError):
        message, param = _validation_message(exc)
        return error_response(400, message, "invalid_request_error", param, "invalid_request")

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException):
        type_ = "invalid_request_error" if exc.status_code < 500 else "server_error"
        return error_response(exc.status_code, str(exc.detail), type_, headers=exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception):
        log.exception("unhandled error")
        return error_response(500, f"internal error: {type(exc).__name__}", "server_error")
