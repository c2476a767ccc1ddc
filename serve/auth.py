"""API-key authentication for `/v1/*`, one pure ASGI middleware with the whole policy in view.

Local mode: while no key exists the gateway only binds loopback (`run_up` refuses otherwise),
and every request passes. Once a key exists every `/v1` request needs `Authorization: Bearer`;
changing adapters, training and key routes need an admin key. Each key may carry a request
rate (rpm), enforced with a token bucket. `/health`, `/metrics`, `/docs` and the UI are open.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass

from starlette.types import ASGIApp, Receive, Scope, Send

from feedback.api_keys import ApiKeys
from serve.errors import error_body

CACHE_SECONDS = 5.0  # how long a verified key or "no keys yet" is trusted; bounds revocation delay
ADMIN_PREFIXES = ("/v1/adapters", "/v1/train", "/v1/keys")


def needs_admin(method: str, path: str) -> bool:
    """Reading is for any key; changing adapters, starting training or managing keys is admin."""
    if path.startswith("/v1/keys"):
        return True
    return method != "GET" and path.startswith(ADMIN_PREFIXES)


@dataclass
class Bucket:
    tokens: float
    updated: float

    def take(self, rpm: int) -> float:
        """Take one request; return 0 if allowed, else the seconds until one is."""
        now = time.monotonic()
        self.tokens = min(rpm, self.tokens + (now - self.updated) * rpm / 60)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) * 60 / rpm


class ApiKeyAuth:
    def __init__(self, app: ASGIApp, keys: ApiKeys, prefix: str = "/v1/"):
        self.app = app
        self.keys = keys
        self.prefix = prefix
        self._verified: dict[str, tuple[float, dict | None]] = {}  # sha256(secret) -> row
        self._any_keys: tuple[float, bool] = (0.0, False)
        self._buckets: dict[int, Bucket] = {}

    def _keys_exist(self) -> bool:
        checked, exist = self._any_keys
        if time.monotonic() - checked > CACHE_SECONDS:
            exist = self.keys.any_active()
            self._any_keys = (time.monotonic(), exist)
        return exist

    def _verify(self, secret: str) -> dict | None:
        digest = hashlib.sha256(secret.encode()).hexdigest()
        cached = self._verified.get(digest)
        if cached and time.monotonic() - cached[0] < CACHE_SECONDS:
            return cached[1]
        if len(self._verified) > 10_000:  # bounded: random wrong keys cannot grow it forever
            self._verified.clear()
        row = self.keys.verify(secret)
        self._verified[digest] = (time.monotonic(), row)
        return row

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        if not self._keys_exist():
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        scheme, _, secret = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            await _reject(send, 401, "missing API key: send `Authorization: Bearer fw-…`; "
                          "create one with `flywheel keys create`", "invalid_api_key")  # fmt: skip
            return
        key = self._verify(secret.strip())
        if key is None:
            await _reject(send, 401, "unknown or revoked API key", "invalid_api_key")
            return
        if key["role"] != "admin" and needs_admin(scope["method"], scope["path"]):
            await _reject(send, 403, "this route needs an admin key", "insufficient_permissions")
            return
        if key["rpm"]:
            bucket = self._buckets.setdefault(key["id"], Bucket(key["rpm"], time.monotonic()))
            wait = bucket.take(key["rpm"])
            if wait:
                await _reject(send, 429, f"rate limit of {key['rpm']} requests/minute reached",
                              "rate_limit_exceeded", retry_after=math.ceil(wait))  # fmt: skip
                return
        scope.setdefault("state", {}).update(api_key_id=key["id"], api_key_role=key["role"])
        await self.app(scope, receive, send)


async def _reject(send: Send, status: int, message: str, code: str, retry_after: int = 0) -> None:
    type_ = "rate_limit_error" if status == 429 else "invalid_request_error"
    body = json.dumps(error_body(message, type_, code=code)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    if retry_after:
        headers.append((b"retry-after", str(retry_after).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
