"""API-key authentication for `/v1/*`, one pure ASGI middleware with the whole policy in view.

Local mode: while no active key exists every request passes, because `run_up` binds loopback
only in that mode. A gateway bound to another address (`local_mode=False`) never opens up,
even when its last key is revoked. Once a key exists every `/v1` request needs
`Authorization: Bearer fw-…`; see `needs_admin` for what needs an admin key. Each key may carry
a rate (rpm), enforced with a token bucket. `/health`, `/metrics`, `/docs` and the UI are open.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from feedback.api_keys import ApiKeys
from serve.errors import error_body

CACHE_SECONDS = 5.0  # how long a verified key or "no keys yet" is trusted; bounds revocation delay

# What each refusal says: the problem, then the fix.
NO_KEYS = (
    "this gateway has no active API key and is not on loopback, so it serves nobody; "
    "create one with `flywheel keys create --name NAME --role admin`"
)
MISSING = (
    "missing API key: send `Authorization: Bearer fw-…`; "
    "create one with `flywheel keys create --name NAME`"
)
UNKNOWN = (
    "unknown or revoked API key: check the secret (`flywheel keys list` shows each key's "
    "prefix) or create one with `flywheel keys create --name NAME`"
)
NOT_ADMIN = (
    "{method} {path} needs an admin key and this is a user key; use an admin key "
    "(`flywheel keys create --name NAME --role admin`)"
)
TOO_FAST = (
    "rate limit of {rpm} requests per minute reached for this key; retry in {seconds} s, "
    "or use a key created with a higher --rpm"
)

# The policy once a key exists: path (and everything below it) -> methods any key may use.
# Other methods there need an admin key; paths not listed are open to any valid key.
ADMIN_ROUTES: dict[str, frozenset[str]] = {
    "/v1/adapters": frozenset({"GET"}),  # anyone may list; register/promote/rollback/rm: admin
    "/v1/train": frozenset({"GET"}),  # anyone may watch; starting or stopping a job: admin
    "/v1/keys": frozenset(),  # managing keys: admin only
    "/v1/loop": frozenset({"GET"}),  # anyone may read the gate's decisions; acting on them: admin
    "/v1/feedback/export": frozenset(),  # everyone's judgements in bulk: admin only
    "/v1/feedback/import": frozenset(),  # writes judgements in bulk: admin only
}


def needs_admin(method: str, path: str) -> bool:
    for root, open_methods in ADMIN_ROUTES.items():
        if path == root or path.startswith(root + "/"):
            return method not in open_methods
    return False


@dataclass
class Bucket:
    """A token bucket holding up to `rpm` requests, refilled at `rpm` per minute."""

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


class Refusal(Exception):
    """One refused request, already in OpenAI's shape."""

    def __init__(self, status: int, code: str, message: str, retry_after: int = 0):
        super().__init__(message)
        self.status, self.code, self.message, self.retry_after = status, code, message, retry_after


LOOPBACK_NAMES = {"127.0.0.1", "localhost", "::1", "[::1]"}
NOT_LOOPBACK = (
    "a gateway without API keys answers only to loopback host names (localhost, 127.0.0.1); "
    "create a key with `flywheel keys create` to serve other names"
)


def _loopback_host(scope: Scope) -> bool:
    host = dict(scope["headers"]).get(b"host", b"").decode("latin-1").lower()
    if not host:
        return True  # HTTP/1.0 without Host: not something a browser sends
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    return name in LOOPBACK_NAMES or name.startswith("127.")


class ApiKeyAuth:
    def __init__(
        self, app: ASGIApp, keys: ApiKeys, prefix: str = "/v1/", local_mode: bool = True
    ) -> None:
        self.app = app
        self.keys = keys
        self.prefix = prefix
        self.local_mode = local_mode  # False: without keys every request is refused
        self._verified: dict[str, tuple[float, dict | None]] = {}  # sha256(secret) -> row
        self._any_keys: tuple[float, bool] = (-math.inf, False)
        self._buckets: dict[int, Bucket] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(self.prefix):
            try:
                key = self._authorize(scope)
            except Refusal as refusal:
                await _send_refusal(send, refusal)
                return
            if key is not None:
                scope.setdefault("state", {}).update(api_key_id=key["id"], api_key_role=key["role"])
        await self.app(scope, receive, send)

    def _authorize(self, scope: Scope) -> dict[str, Any] | None:
        """The key making this request (None in local mode), or a `Refusal`."""
        if not self._keys_exist():
            if not self.local_mode:
                raise Refusal(401, "invalid_api_key", NO_KEYS)
            if not _loopback_host(scope):
                # DNS rebinding: a web page whose name now points at 127.0.0.1 is same-origin
                # to itself, so only the loopback names may use a keyless gateway.
                raise Refusal(403, "host_refused", NOT_LOOPBACK)
            return None
        header = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
        scheme, _, secret = header.partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise Refusal(401, "invalid_api_key", MISSING)
        key = self._verify(secret.strip())
        if key is None:
            raise Refusal(401, "invalid_api_key", UNKNOWN)
        method, path = scope["method"], scope["path"]
        if key["role"] != "admin" and needs_admin(method, path):
            message = NOT_ADMIN.format(method=method, path=path)
            raise Refusal(403, "insufficient_permissions", message)
        if key["rpm"]:
            bucket = self._buckets.setdefault(key["id"], Bucket(key["rpm"], time.monotonic()))
            if wait := bucket.take(key["rpm"]):
                seconds = math.ceil(wait)
                message = TOO_FAST.format(rpm=key["rpm"], seconds=seconds)
                raise Refusal(429, "rate_limit_exceeded", message, retry_after=seconds)
        return key

    def _keys_exist(self) -> bool:
        checked, exist = self._any_keys
        if time.monotonic() - checked > CACHE_SECONDS:
            exist = self.keys.any_active()
            self._any_keys = (time.monotonic(), exist)
        return exist

    def _verify(self, secret: str) -> dict[str, Any] | None:
        """`keys.verify`, remembered for CACHE_SECONDS by the secret's hash, never the secret."""
        digest = hashlib.sha256(secret.encode()).hexdigest()
        cached = self._verified.get(digest)
        if cached and time.monotonic() - cached[0] < CACHE_SECONDS:
            return cached[1]
        if len(self._verified) > 10_000:  # bounded: random wrong keys cannot grow it forever
            self._verified.clear()
        row = self.keys.verify(secret)
        self._verified[digest] = (time.monotonic(), row)
        return row


async def _send_refusal(send: Send, refusal: Refusal) -> None:
    type_ = "rate_limit_error" if refusal.status == 429 else "invalid_request_error"
    body = json.dumps(error_body(refusal.message, type_, code=refusal.code)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if refusal.status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    if refusal.retry_after:
        headers.append((b"retry-after", str(refusal.retry_after).encode()))
    await send({"type": "http.response.start", "status": refusal.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
