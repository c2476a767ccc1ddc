"""Exchange logging off the hot path: a queue and a batched writer thread.

A stream is relayed byte for byte; its raw chunks are handed over only when it ends, and
parsed into an `Exchange` here, in the writer, never between two tokens.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from feedback import Exchange, Store
from serve.sse import SSEDecoder

log = logging.getLogger("flywheel.log")

BATCH = 256


@dataclass
class RequestInfo:
    """What the gateway knows about a request before the engine answers."""

    model: str
    engine_model: str
    body: dict[str, Any]
    api_key_id: int | None = None
    started: float = field(default_factory=time.perf_counter)

    @property
    def params(self) -> dict[str, Any]:
        skip = ("messages", "prompt", "model", "stream")
        return {k: v for k, v in self.body.items() if k not in skip}

    @property
    def messages(self) -> list[dict[str, Any]]:
        """Chat messages; a plain completion's prompt is kept as one `prompt` turn."""
        if "messages" in self.body:
            return self.body["messages"]
        return [{"role": "prompt", "content": self.body.get("prompt")}]


def _choice_text(choice: dict[str, Any], key: str) -> str:
    """Chat carries text in `message`/`delta`, plain completions in `text`."""
    return (choice.get(key) or {}).get("content") or choice.get("text") or ""


def exchange_from_response(info: RequestInfo, data: dict[str, Any]) -> Exchange | None:
    choices = data.get("choices") or [{}]
    return Exchange(
        id=data["id"],
        model=info.model,
        engine_model=info.engine_model,
        messages=info.messages,
        completion=_choice_text(choices[0], "message"),
        params=info.params,
        usage=data.get("usage"),
        finish_reason=choices[0].get("finish_reason"),
        latency_ms=(time.perf_counter() - info.started) * 1000,
        stream=False,
        api_key_id=info.api_key_id,
    )


def exchange_from_stream(info: RequestInfo, chunks: list[bytes], ended: float) -> Exchange | None:
    """Rebuild the answer from the relayed SSE bytes (first choice; usage if the engine sent it)."""
    completion_id, parts, usage, finish = None, [], None, None
    for event in SSEDecoder().feed(b"".join(chunks) + b"\n"):
        completion_id = completion_id or event.get("id")
        usage = event.get("usage") or usage
        for choice in event.get("choices") or []:
            if choice.get("index", 0) != 0:
                continue
            parts.append(_choice_text(choice, "delta"))
            finish = choice.get("finish_reason") or finish
    if completion_id is None:
        return None
    return Exchange(
        id=completion_id,
        model=info.model,
        engine_model=info.engine_model,
        messages=info.messages,
        completion="".join(parts),
        params=info.params,
        usage=usage,
        finish_reason=finish or "cancelled",
        latency_ms=(ended - info.started) * 1000,
        stream=True,
        api_key_id=info.api_key_id,
    )


class ExchangeLogger:
    """Bounded queue drained in batches into the store by a background task."""

    def __init__(
        self,
        store: Store,
        maxsize: int = 10_000,
        on_logged: Callable[[Exchange], None] | None = None,
    ):
        self.store = store
        self.on_logged = on_logged  # e.g. token counters, fed off the hot path
        self.queue: asyncio.Queue[Any] = asyncio.Queue(maxsize)
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._drain())

    def submit(self, build) -> None:
        """Queue a zero-argument callable that returns the `Exchange` (built in the writer)."""
        try:
            self.queue.put_nowait(build)
        except asyncio.QueueFull:
            # Never stall a stream; write this one on its own instead of dropping it.
            log.warning("exchange log queue full; writing directly")
            asyncio.get_running_loop().run_in_executor(None, self._write, [build])

    def _write(self, builds: list) -> None:
        exchanges = []
        for build in builds:
            try:
                exchange = build()
            except Exception:
                log.exception("could not build an exchange record")
                continue
            if exchange is not None:
                exchanges.append(exchange)
        self.store.log_exchanges(exchanges)
        if self.on_logged:
            for exchange in exchanges:
                self.on_logged(exchange)

    async def _drain(self) -> None:
        while True:
            batch = [await self.queue.get()]
            while len(batch) < BATCH and not self.queue.empty():
                batch.append(self.queue.get_nowait())
            try:
                await asyncio.to_thread(self._write, batch)
            except Exception:
                log.exception("writing %d exchanges failed", len(batch))
            finally:
                for _ in batch:
                    self.queue.task_done()

    async def flush(self) -> None:
        """Wait until everything queued so far is in the database."""
        await self.queue.join()

    async def close(self) -> None:
        await self.flush()
        if self._task:
            self._task.cancel()
