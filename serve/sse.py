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


USAGE_ONLY = b'"choices":[]'


def with_usage(body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """A streamed request as sent on: the engine asked for its usage event (the token counts
    in /metrics and the exchange log); and whether the client asked for it too."""
    options = body.get("stream_options")
    if options is None:
        options = {}
    if not isinstance(options, dict):
        return body, True  # not ours to fix: the engine answers it with a 400
    if options.get("include_usage") is True:
        return body, True
    return {**body, "stream_options": {**options, "include_usage": True}}, False


class UsageEventFilter:
    """Relays SSE bytes event by event, without the usage-only event (`"choices":[]`) that the
    gateway asked for on a client's behalf: a client that did not ask gets what it would have
    got. A partial event waits for its end (a client reads whole events anyway)."""

    def __init__(self) -> None:
        self._pending = b""

    def feed(self, data: bytes) -> bytes:
        data = self._pending + data
        end = data.rfind(b"\n\n")
        if end < 0:
            self._pending = data
            return b""
        self._pending, ready = data[end + 2 :], data[: end + 2]
        if USAGE_ONLY not in ready:
            return ready
        return b"".join(
            event + b"\n\n"
            for event in ready.split(b"\n\n")[:-1]
            if not (event.startswith(b"data: {") and USAGE_ONLY in event)
        )

    def rest(self) -> bytes:
        """What is left when the stream ends (an event the engine did not finish)."""
        rest, self._pending = self._pending, b""
        return rest
