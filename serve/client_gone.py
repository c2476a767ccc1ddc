"""Whole answers that stop when their client leaves: a CPU engine must not generate for nobody.

A streamed answer stops with its stream (Starlette closes the generator when the client goes).
A whole answer is computed before anything is sent, so nothing notices a client that timed out
or closed its tab, and the engine keeps a batch slot busy for minutes: on a 2-core machine that
slows every other user. So while a whole answer is computed, the gateway listens on the
client's channel, as vLLM's own server does, and cancels the engine request when the client
disconnects; vLLM then aborts the sequence.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from fastapi import Request
from fastapi.responses import Response

T = TypeVar("T")

CLIENT_CLOSED = 499
"""nginx's "client closed request": what the access log and metrics show; no client sees it."""


async def _disconnected(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def unless_client_leaves(request: Request, work: Awaitable[T]) -> T | Response:
    """`work`'s result, or a 499 once the client has gone (and `work` was cancelled)."""
    task = asyncio.ensure_future(work)
    gone = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({task, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
        if not task.done():
            task.cancel()
            await asyncio.wait({task})  # its cleanup (closing the engine request) runs now
    if task.cancelled():
        return Response(status_code=CLIENT_CLOSED)
    return task.result()
