"""Read every API body as JSON, whatever its declared content type, and cap what a request asks.

`curl -d '{...}'` declares form-urlencoded and some clients send no type at all; the OpenAI
routes (relayed as bytes) accept such bodies, so the typed flywheel routes must too. A pure
ASGI middleware: it rewrites one request header and never touches response streams.

It also caps the body's size (413 in OpenAI's shape) before any route reads it: a body
declared too large is refused unread, one sent without a length is counted as it arrives.
The body is read once, here, and handed on as it came; nothing is parsed twice. A body nested
deeper than `MAX_NESTING` is refused (400) before any parser sees it: Python's JSON decoder
recurses per level and a body of 100,000 `[` would end as a `RecursionError` (a 500) in
whichever route parsed it. What a chat
request asks for (messages, max_tokens) is checked by `check_generation_limits` in the route,
on the JSON it parses anyway.

Because bodies of any declared type count as JSON, a web page on another site could make a
visitor's browser POST to a keyless local gateway (a "simple" request needs no CORS preflight;
its answer is unreadable, its side effects are not). So a request that a browser marks as
coming from another origin is refused (403): CORS is off, so no cross-origin page can use
the API anyway, and servers, scripts and this gateway's own pages send no foreign `Origin`.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serve.config import DEFAULT_MAX_BODY_BYTES
from serve.errors import BadRequest, error_body

LENIENT_TYPES = (b"", b"application/x-www-form-urlencoded", b"text/plain")
CROSS_ORIGIN = (
    "cross-origin browser requests are refused (this gateway does not enable CORS); call the "
    "API from a server or a script, or through this gateway's own pages"
)
MAX_NESTING = 128
"""Levels of `[`/`{` a body may nest: tool and response-format schemas need a few dozen."""
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_A_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
# Paths that stream their own large bodies under their own cap (bulk import: 512 MiB, admin).
OWN_BODY_CAP = ("/v1/feedback/import",)


class JsonBodies:
    def __init__(
        self,
        app: ASGIApp,
        prefix: str = "/v1/",
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ):
        self.app = app
        self.prefix = prefix
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        if not _same_origin(headers):
            await _refuse(send, 403, "cross_origin_refused", CROSS_ORIGIN)
            return
        declared = headers.get(b"content-type", b"").split(b";")[0].strip()
        if declared in LENIENT_TYPES:
            others = [(k, v) for k, v in scope["headers"] if k != b"content-type"]
            scope = {**scope, "headers": [*others, (b"content-type", b"application/json")]}
        if scope["path"] in OWN_BODY_CAP:
            await self.app(scope, receive, send)
            return
        length = headers.get(b"content-length", b"")
        if length.isdigit() and int(length) > self.max_body_bytes:
            await self._too_large(send)  # refused unread: a client expecting 100 sends nothing
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client left mid-upload: nobody to answer
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                await self._too_large(send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if nesting_depth(body) > MAX_NESTING:
            message = (
                f"the request body nests arrays and objects more than {MAX_NESTING} levels "
                "deep; send a flatter body"
            )
            await _refuse(send, 400, "too_deeply_nested", message)
            return
        await self.app(scope, _replay(body, receive), send)

    async def _too_large(self, send: Send) -> None:
        cap = self.max_body_bytes
        size = f"{cap >> 20} MiB" if cap >= 1 << 20 else f"{cap} bytes"
        message = (
            f"the request body is over this gateway's limit of {size}; send a smaller request "
            "(fewer or shorter messages), or start the gateway with a larger --max-body-mib"
        )
        await _refuse(send, 413, "request_too_large", message)


def nesting_depth(body: bytes) -> int:
    """How deep the arrays and objects of a JSON text nest (brackets inside strings not counted);
    linear, with no recursion. A body with few brackets is answered without a scan."""
    if body.count(b"[") + body.count(b"{") <= MAX_NESTING:
        return 0
    depth = deepest = 0
    for bracket in _JSON_STRING.sub(b"", body).translate(None, _NOT_A_BRACKET):
        if bracket in b"[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


async def _refuse(send: Send, status: int, code: str, message: str) -> None:
    body = json.dumps(error_body(message, "invalid_request_error", code=code)).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),  # the request body is not read
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _same_origin(headers: dict[bytes, bytes]) -> bool:
    """No `Origin` (not a browser, or a same-origin GET), or one naming this very host."""
    origin = headers.get(b"origin")
    if origin is None:
        return True
    netloc = urlsplit(origin.decode("latin-1").strip()).netloc.lower()
    hosts = {headers.get(b"host", b""), headers.get(b"x-forwarded-host", b"").split(b",")[0]}
    return bool(netloc) and netloc in {h.decode("latin-1").strip().lower() for h in hosts}


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body as one message, then the client's own channel (a stream listens for it)."""
    pending = True

    async def replayed() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


def check_generation_limits(body: dict[str, Any], max_messages: int, max_tokens: int) -> None:
    """Refuse a chat or completion request that asks for more than this gateway serves.

    400 in OpenAI's shape with `param` set. `max_tokens` must be an integer, so that no string
    the engine would coerce can slip past the cap.
    """
    messages = body.get("messages")
    if isinstance(messages, list) and len(messages) > max_messages:
        raise BadRequest(
            f"`messages` holds {len(messages)} messages, over this gateway's limit of "
            f"{max_messages}; send fewer (e.g. drop or summarise the oldest turns)",
            param="messages",
        )
    for param in ("max_tokens", "max_completion_tokens"):
        value = body.get(param)
        if value is None:
            continue
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or (isinstance(value, float) and not value.is_integer())
        ):
            shown = json.dumps(value)[:60]
            raise BadRequest(f"`{param}` must be an integer, not {shown}", param=param)
        if value > max_tokens:
            raise BadRequest(
                f"`{param}` is {int(value)}, over this gateway's limit of {max_tokens} tokens; "
                "ask for fewer",
                param=param,
            )


def with_token_cap(body: dict[str, Any], limit: int | None) -> dict[str, Any]:
    """`body` with `max_tokens` set to the operator's cap when the request names no limit.

    Without it the engine answers up to the whole remaining context, so `--max-tokens-cap` held
    only for clients that asked for a number. vLLM clips `max_tokens` to the context left, so
    the cap never turns a request that fits into an error. `limit` None (no cap set): unchanged.
    """
    asked = any(body.get(p) is not None for p in ("max_tokens", "max_completion_tokens"))
    if limit is None or asked:
        return body
    return {**body, "max_tokens": limit}
