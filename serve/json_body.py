"""Read every API body as JSON, whatever its declared content type.

`curl -d '{...}'` declares form-urlencoded and some clients send no type at all; the OpenAI
routes (relayed as bytes) accept such bodies, so the typed flywheel routes must too. A pure
ASGI middleware: it only rewrites one request header and never touches response streams.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

LENIENT_TYPES = (b"", b"application/x-www-form-urlencoded", b"text/plain")


class JsonBodies:
    def __init__(self, app: ASGIApp, prefix: str = "/v1/"):
        self.app = app
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(self.prefix):
            headers = [(k, v) for k, v in scope["headers"] if k != b"content-type"]
            declared = dict(scope["headers"]).get(b"content-type", b"").split(b";")[0].strip()
            if declared in LENIENT_TYPES:
                scope = {**scope, "headers": [*headers, (b"content-type", b"application/json")]}
        await self.app(scope, receive, send)
