"""Server-sent events read the way the spec says: lines end at \\n (or \\r\\n), nowhere else.

httpx's `aiter_lines` also splits at \\x85, \\u2028 and friends, which a model may emit inside
a JSON string; a benchmark must not count those answers as broken streams.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx


async def sse_events(resp: httpx.Response) -> AsyncIterator[dict]:
    buffer = b""
    async for chunk in resp.aiter_bytes():
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            line = line.rstrip(b"\r")
            if line.startswith(b"data: {"):
                yield json.loads(line[6:])
