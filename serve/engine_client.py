"""The gateway's connection pool to the engine, on the hot path of every token.

aiohttp rather than httpx here: on a 2-core machine every cycle the gateway spends relaying a
chunk is taken from the engine, and aiohttp's per-chunk cost is several times lower
(measured with bench/gateway.py). The session lives inside the running event loop.
"""

from __future__ import annotations

import asyncio
import json
import weakref
from typing import Any

import aiohttp

ABORTED = "the engine stopped answering (hung or restarted)"


class EngineUnreachable(Exception):
    """No answer from the engine (refused, reset, or timed out before the headers)."""


class EngineClient:
    def __init__(self, base_url: str, headers: dict[str, str] | None = None):
        self.base_url = base_url.rstrip("/")
        self.headers = headers or {}  # the engine's API key
        self._session: aiohttp.ClientSession | None = None
        self._reading: weakref.WeakSet[aiohttp.ClientResponse] = weakref.WeakSet()

    async def start(self) -> None:
        self._session = self._new_session()

    def _new_session(self) -> aiohttp.ClientSession:
        # Idle connections are dropped before the engine drops them (vLLM's uvicorn: after 5 s,
        # VLLM_HTTP_TIMEOUT_KEEP_ALIVE): a request sent on one the engine is closing that
        # moment fails before it is read.
        return aiohttp.ClientSession(
            base_url=self.base_url,
            connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=4),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=5),
            auto_decompress=False,
            headers=self.headers,
        )

    async def close(self) -> None:
        if self._session:
            await self._session.close()

    def abort_all(self) -> None:
        """End every request in flight now (the engine hung or died), so a waiting client gets
        a 503 and a stream its error event instead of waiting for ever: a response being read
        fails with `ClientConnectionError`, a request still waiting for its headers with its
        connection closed. New requests get a new pool. Call from the event loop."""
        for resp in list(self._reading):
            resp.content.set_exception(aiohttp.ClientConnectionError(ABORTED))
        old, self._session = self._session, self._new_session()
        if old is not None:
            asyncio.get_running_loop().create_task(old.close())

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("EngineClient.start() was not awaited")
        return self._session

    async def post(self, path: str, body: dict[str, Any]) -> tuple[int, bytes]:
        """A whole request: status and raw body (the gateway relays the bytes as they are)."""
        try:
            async with self.session.post(path, data=_encode(body), headers=_JSON) as resp:
                self._reading.add(resp)
                return resp.status, await resp.read()
        except (aiohttp.ClientError, OSError) as exc:
            raise EngineUnreachable(str(exc) or type(exc).__name__) from exc

    async def open_stream(self, path: str, body: dict[str, Any]) -> aiohttp.ClientResponse:
        """Start a streaming request; the caller reads `.content` and must `close()` it."""
        try:
            resp = await self.session.post(path, data=_encode(body), headers=_JSON)
        except (aiohttp.ClientError, OSError) as exc:
            raise EngineUnreachable(str(exc) or type(exc).__name__) from exc
        self._reading.add(resp)
        return resp

    async def get(self, path: str) -> tuple[int, bytes]:
        try:
            async with self.session.get(path) as resp:
                return resp.status, await resp.read()
        except (aiohttp.ClientError, OSError) as exc:
            raise EngineUnreachable(str(exc) or type(exc).__name__) from exc


_JSON = {"Content-Type": "application/json"}


def _encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body, ensure_ascii=False).encode()
