"""API-key authentication for `/v1/*`, one pure ASGI middleware with the whole policy in view.

Local mode: while no active key exists every request passes, because `run_up` binds loopback
only in that mode. A gateway bound to another address (`local_mode=False`) never opens up,
even when its last key is revoked. Once a key exists every `/v1` request needs
`Authorization: Bearer fw-…`; see `needs_admin` for what needs an admin key. Each key may carry
a rate (rpm), enforced with a token bucket. `/health`, `/metrics`, `/docs` and the UI need no key.

While no key exists, every route (the UI and its websockets included) answers only requests whose
`Host` is a loopback name: that is the whole defence of a keyless gateway against DNS rebinding.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import json
import math
import time
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from feedback.api_keys import ApiKeys
from serve.errors import error_body

CACHE_SECONDS = 5.0  # how long a verified key or "no keys yet" is trusted; bounds revocation delay
STALE_AFTER_S = 0.2  # a lookup slower than this (the store is busy) leaves the last answer in use

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


NOT_LOOPBACK = (
    "a gateway without API keys answers only to loopback host names (localhost, 127.0.0.1, [::1]); "
    "create a key with `flywheel keys create` to serve other names"
)


def is_loopback_name(name: str) -> bool:
    """`localhost`, or an IP literal in 127.0.0.0/8 or ::1 (brackets allowed); nothing else.

    Parsed as an address, never matched as a prefix: `127.0.0.1.evil.example` is a DNS name an
    attacker owns and can point at 127.0.0.1 (DNS rebinding), so it must not count as loopback.
    """
    name = name.lower()
    if name == "localhost":
        return True
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def host_header_name(host: str) -> str:
    """The name in a `Host` header, without its port: `[::1]:8000` -> `[::1]`.

    Anything but `name` or `name:port` (`[::1].evil.example`) comes back whole, so it is no
    loopback name."""
    if host.startswith("["):
        name, _, rest = host.partition("]")
        return name + "]" if rest == "" or (rest.startswith(":") and rest[1:].isdigit()) else host
    return host.rsplit(":", 1)[0] if ":" in host else host


def _loopback_host(scope: Scope) -> bool:
    host = dict(scope["headers"]).get(b"host", b"").decode("latin-1").strip()
    if not host:
        return True  # HTTP/1.0 without Host: not something a browser sends
    return is_loopback_name(host_header_name(host))


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
        self._lookups: dict[str, asyncio.Future] = {}  # lookups running in worker threads
        self._buckets: dict[int, Bucket] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        try:
            api = scope["path"].startswith(self.prefix)
            if api or (self.local_mode and not _loopback_host(scope)):
                await self._refresh(scope)
            if self.local_mode and not _loopback_host(scope) and not self._keys_exist():
                # DNS rebinding: a web page whose name now points at 127.0.0.1 is same-origin
                # to itself, so only the loopback names may use a keyless gateway, on every
                # route: the UI's handlers call the API for whoever loaded the page.
                raise Refusal(403, "host_refused", NOT_LOOPBACK)
            key = self._authorize(scope) if api else None
        except Refusal as refusal:
            await _send_refusal(scope, send, refusal)
            return
        if key is not None:
            scope.setdefault("state", {}).update(
                api_key_id=key["id"], api_key_role=key["role"], api_key_rater=ApiKeys.rater_of(key)
            )
        await self.app(scope, receive, send)

    def _authorize(self, scope: Scope) -> dict[str, Any] | None:
        """The key making this request (None in local mode), or a `Refusal`."""
        if not self._keys_exist():
            if not self.local_mode:
                raise Refusal(401, "invalid_api_key", NO_KEYS)
            return None  # local mode, and the Host was checked in __call__
        secret = _bearer_secret(scope)
        if not secret:
            raise Refusal(401, "invalid_api_key", MISSING)
        key = self._verify(secret)
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

    async def _refresh(self, scope: Scope) -> None:
        """Look up in the database, in a worker thread, what the caches lack: the store's lock
        may be held through a commit and its fsync, or a whole import (a minute), and the event
        loop relays every stream's tokens: it must never wait for it. A stale answer is used
        when its lookup takes longer than STALE_AFTER_S (it goes on in the background: a revoked
        key then works until a running import ends); a first lookup is always waited for."""
        now = time.monotonic()
        if now - self._any_keys[0] > CACHE_SECONDS:
            lookup = self._lookup("any", self._set_any_keys, self.keys.any_active)
            await _within(lookup, None if self._any_keys[0] == -math.inf else STALE_AFTER_S)
        secret = _bearer_secret(scope)
        if secret and self._any_keys[1]:
            digest = _digest(secret)
            cached = self._verified.get(digest)
            if not cached or now - cached[0] >= CACHE_SECONDS:
                lookup = self._lookup(
                    digest, lambda row: self._set_verified(digest, row), self.keys.verify, secret
                )
                await _within(lookup, STALE_AFTER_S if cached else None)

    def _lookup(self, name: str, store_it, query, *args) -> asyncio.Future:
        """One lookup of `name` at a time, in a worker thread; its result is cached on arrival."""
        running = self._lookups.get(name)
        if running is None or running.done():

            async def run() -> None:
                store_it(await asyncio.to_thread(query, *args))

            running = self._lookups[name] = asyncio.ensure_future(run())
            running.add_done_callback(lambda _: self._lookups.pop(name, None))
        return asyncio.shield(running)

    def _set_any_keys(self, exist: bool) -> None:
        self._any_keys = (time.monotonic(), exist)

    def _set_verified(self, digest: str, row: dict[str, Any] | None) -> None:
        if len(self._verified) > 10_000:  # bounded: random wrong keys cannot grow it for ever
            self._verified.clear()
        self._verified[digest] = (time.monotonic(), row)

    def _keys_exist(self) -> bool:
        return self._any_keys[1]

    def _verify(self, secret: str) -> dict[str, Any] | None:
        """The key for `secret` as `_refresh` looked it up (by the secret's hash, never the
        secret), for CACHE_SECONDS."""
        cached = self._verified.get(_digest(secret))
        return cached[1] if cached else None


async def _within(lookup: asyncio.Future, seconds: float | None) -> None:
    """Wait for a lookup, at most `seconds` (None: as long as it takes)."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(lookup, seconds)


def _bearer_secret(scope: Scope) -> str | None:
    header = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
    scheme, _, secret = header.partition(" ")
    return secret.strip() if scheme.lower() == "bearer" and secret.strip() else None


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


async def _send_refusal(scope: Scope, send: Send, refusal: Refusal) -> None:
    if scope["type"] == "websocket":  # closing before accept is answered with HTTP 403
        await send({"type": "websocket.close", "code": 1008, "reason": refusal.message[:120]})
        return
    type_ = "rate_limit_error" if refusal.status == 429 else "invalid_request_error"
    body = json.dumps(error_body(refusal.message, type_, code=refusal.code)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if refusal.status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    if refusal.retry_after:
        headers.append((b"retry-after", str(refusal.retry_after).encode()))
    await send({"type": "http.response.start", "status": refusal.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
