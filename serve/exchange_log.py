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


def choice_id(completion_id: str, index: int) -> str:
    """The id an answer is stored and rated under: the response's id for its first choice
    (what every client knows), `<id>-choice<i>` for the others of an `n > 1` request."""
    return completion_id if index == 0 else f"{completion_id}-choice{index}"


def _exchange(info: RequestInfo, completion_id: str, answer: dict[str, Any], **kw) -> Exchange:
    return Exchange(
        id=choice_id(completion_id, answer["index"]),
        model=info.model,
        engine_model=info.engine_model,
        messages=info.messages,
        completion=answer["text"],
        params=info.params,
        tool_calls=answer.get("tool_calls") or None,
        finish_reason=answer.get("finish_reason"),
        api_key_id=info.api_key_id,
        **kw,
    )


def exchanges_from_response(info: RequestInfo, data: dict[str, Any]) -> list[Exchange]:
    """Every choice of a whole answer, each with its text and its tool calls."""
    latency_ms = (time.perf_counter() - info.started) * 1000
    answers = [
        {
            "index": c.get("index", i),
            "text": _choice_text(c, "message"),
            "tool_calls": (c.get("message") or {}).get("tool_calls"),
            "finish_reason": c.get("finish_reason"),
        }
        for i, c in enumerate(data.get("choices") or [{}])
    ]
    usage = data.get("usage")
    return [
        _exchange(
            info,
            data["id"],
            a,
            usage=usage if a["index"] == 0 else None,
            latency_ms=latency_ms,
            stream=False,
        )
        for a in answers
    ]


def exchanges_from_stream(info: RequestInfo, chunks: list[bytes], ended: float) -> list[Exchange]:
    """Rebuild every choice from the relayed SSE bytes: text, tool calls (their pieces joined
    by index), finish reason; the usage (if the engine sent it) goes with the first."""
    completion_id, usage = None, None
    answers: dict[int, dict[str, Any]] = {}
    for event in SSEDecoder().feed(b"".join(chunks) + b"\n"):
        completion_id = completion_id or event.get("id")
        usage = event.get("usage") or usage
        for choice in event.get("choices") or []:
            index = choice.get("index", 0)
            answer = answers.setdefault(index, {"index": index, "parts": [], "calls": {}})
            answer["parts"].append(_choice_text(choice, "delta"))
            for call in (choice.get("delta") or {}).get("tool_calls") or []:
                _merge_call(answer["calls"], call)
            answer["finish_reason"] = choice.get("finish_reason") or answer.get("finish_reason")
    if completion_id is None:
        return []
    latency_ms = (ended - info.started) * 1000
    return [
        _exchange(
            info,
            completion_id,
            {
                "index": a["index"],
                "text": "".join(a["parts"]),
                "tool_calls": [a["calls"][k] for k in sorted(a["calls"])],
                "finish_reason": a.get("finish_reason") or "cancelled",
            },
            usage=usage if a["index"] == 0 else None,
            latency_ms=latency_ms,
            stream=True,
        )
        for a in sorted(answers.values(), key=lambda a: a["index"])
    ]


def _merge_call(calls: dict[int, dict[str, Any]], piece: dict[str, Any]) -> None:
    """A streamed tool call arrives in pieces: id, type and name once, `arguments` in parts."""
    call = calls.setdefault(piece.get("index", 0), {"function": {"arguments": ""}})
    for key in ("id", "type"):
        if piece.get(key):
            call[key] = piece[key]
    function = piece.get("function") or {}
    if function.get("name"):
        call["function"]["name"] = function["name"]
    call["function"]["arguments"] += function.get("arguments") or ""


def exchange_from_stream(info: RequestInfo, chunks: list[bytes], ended: float) -> Exchange | None:
    """The first choice of a stream (a battle's side asks for one)."""
    return next(iter(exchanges_from_stream(info, chunks, ended)), None)


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
        """Queue a zero-argument callable that returns the `Exchange`, or a list of them (one
        per choice), built in the writer."""
        self._submitted += 1
        self._pending.add(self._submitted)
        self.queue.put_nowait((self._submitted, build))

    def _write(self, builds: list) -> None:
        exchanges: list[Exchange] = []
        for build in builds:  # an Exchange, a list of them (every choice), or None
            built = build()
            exchanges += built if isinstance(built, list) else [built] if built else []
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
