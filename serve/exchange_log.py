"""Exchange logging off the hot path: a queue and a batched writer thread.

A stream is relayed byte for byte; its raw chunks are handed over only when it ends, and
parsed into an `Exchange` here, in the writer, never between two tokens.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from feedback import Exchange, Store
from serve.sse import SSEDecoder

log = logging.getLogger("flywheel.log")

BATCH = 256
RETRY_FIRST_S, RETRY_MAX_S = 0.05, 5.0


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
    """A queue drained in batches into the store by one background task.

    An answer the client has received must be rateable, so nothing queued is dropped: a batch
    the database refuses for a passing reason (locked, I/O, disk full) is retried until it is
    written, with backoff, each retry counted (`on_retry`); a batch that fails otherwise is
    written one exchange at a time, and only an exchange that fails alone (one that cannot be
    built or stored at all) is dropped, logged and counted (`on_dropped`). The queue has no
    bound: a bound would make an answer wait, or be dropped, or be written beside the queue
    where `flush` cannot see it; its depth is in /metrics. `flush` waits for what was submitted
    before it, not for an empty queue, so under steady traffic a rating does not wait for the
    answers that came after it.
    """

    def __init__(
        self,
        store: Store,
        on_logged: Callable[[Exchange], None] | None = None,
        on_retry: Callable[[], None] | None = None,
        on_dropped: Callable[[], None] | None = None,
    ):
        self.store = store
        self.on_logged = on_logged  # e.g. token counters, fed off the hot path
        self.on_retry = on_retry
        self.on_dropped = on_dropped
        self.queue: asyncio.Queue[tuple[int, Any]] = asyncio.Queue()
        self._submitted = 0
        self._pending: set[int] = set()  # sequence numbers submitted and not yet written
        self._written: asyncio.Condition | None = None
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._written = asyncio.Condition()
        self._task = asyncio.create_task(self._drain())

    def submit(self, build) -> None:
        """Queue a zero-argument callable that returns the `Exchange` (built in the writer)."""
        self._submitted += 1
        self._pending.add(self._submitted)
        self.queue.put_nowait((self._submitted, build))

    def _write(self, builds: list) -> None:
        exchanges = [e for e in (build() for build in builds) if e is not None]
        self.store.log_exchanges(exchanges)
        if self.on_logged:
            for exchange in exchanges:
                self.on_logged(exchange)

    async def _write_batch(self, builds: list) -> None:
        delay = RETRY_FIRST_S
        while True:
            try:
                await asyncio.to_thread(self._write, builds)
                return
            except sqlite3.OperationalError as exc:  # locked, disk I/O, full: it passes
                log.warning("writing %d exchanges failed (%s); retrying", len(builds), exc)
                if self.on_retry:
                    self.on_retry()
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
            except Exception:
                if len(builds) == 1:
                    log.exception("an exchange could not be built or stored; dropped")
                    if self.on_dropped:
                        self.on_dropped()
                    return
                for build in builds:  # find the one at fault; the others are written
                    await self._write_batch([build])
                return

    async def _drain(self) -> None:
        assert self._written is not None
        while True:
            batch = [await self.queue.get()]
            while len(batch) < BATCH and not self.queue.empty():
                batch.append(self.queue.get_nowait())
            await self._write_batch([build for _, build in batch])
            async with self._written:
                self._pending.difference_update(seq for seq, _ in batch)
                self._written.notify_all()

    async def flush(self) -> None:
        """Wait until everything submitted before this call is in the database."""
        if self._written is None:  # not started: nothing is written, nothing to wait for
            return
        upto = self._submitted
        async with self._written:
            await self._written.wait_for(lambda: not self._pending or min(self._pending) > upto)

    async def close(self) -> None:
        await self.flush()
        if self._task:
            self._task.cancel()
