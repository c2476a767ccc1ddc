"""Server-sent events from the engine, decoded incrementally.

Lines end at `\\n` only: str.splitlines() would also cut at `\\x85` or `\\u2028`, which a model may
well emit inside a JSON string, and lose tokens.
"""

from __future__ import annotations

import json
from typing import Any


class SSEDecoder:
    """Feed raw bytes as they arrive; get back the JSON events completed so far."""

    def __init__(self) -> None:
        self._pending = b""

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        lines = (self._pending + data).split(b"\n")
        self._pending = lines.pop()  # an unfinished line waits for the next chunk
        events = []
        for line in lines:
            line = line.rstrip(b"\r")
            if not line.startswith(b"data: ") or line == b"data: [DONE]":
                continue
            try:
                event = json.loads(line[6:])
            except json.JSONDecodeError:
                continue
            if isinstance(event, dict):
                events.append(event)
        return events


def encode_event(payload: dict[str, Any] | str) -> bytes:
    """One `data:` event; a string is sent as it is (`[DONE]`)."""
    text = payload if isinstance(payload, str) else json.dumps(payload)
    return f"data: {text}\n\n".encode()


# One event as the OpenAPI document describes it (OpenAPI 3.1: `schema` is one event).
EVENT_STREAM = {
    "text/event-stream": {
        "schema": {
            "type": "object",
            "required": ["data"],
            "properties": {
                "data": {
                    "type": "string",
                    "description": "a JSON chunk, an OpenAI error object, or [DONE] at the end",
                }
            },
        }
    }
}
