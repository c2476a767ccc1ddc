"""Both sides of an arena battle, generated at once and released at an equal pace.

The two answers are streamed from the engine concurrently. What reaches the rater is paced so
that neither side runs more than a few characters ahead of the other: a model that answers
faster (a smaller one, or the base without an adapter) must not give itself away by its speed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp

from serve.engine_client import EngineUnreachable
from serve.errors import APIError, EngineUnavailable
from serve.exchange_log import RequestInfo, exchange_from_stream
from serve.services import Services
from serve.sse import SSEDecoder

SIDES = ("a", "b")
SLACK = 24  # characters one side may run ahead of the other


class Pacer:
    """Holds back the faster side's text until the slower side catches up (or finishes)."""

    def __init__(self, slack: int = SLACK):
        self.slack = slack
        self.pending = dict.fromkeys(SIDES, "")
        self.sent = dict.fromkeys(SIDES, 0)
        self.done: set[str] = set()

    def add(self, side: str, text: str) -> list[tuple[str, str]]:
        self.pending[side] += text
        return self._release()

    def finish(self, side: str) -> list[tuple[str, str]]:
        self.done.add(side)
        return self._release()

    def _release(self) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        moved = True
        while moved:
            moved = False
            for side in SIDES:
                other = "b" if side == "a" else "a"
                limit = None if other in self.done else self.sent[other] + self.slack
                room = len(self.pending[side]) if limit is None else limit - self.sent[side]
                if room > 0 and self.pending[side]:
                    piece, self.pending[side] = (
                        self.pending[side][:room],
                        self.pending[side][room:],
                    )
                    self.sent[side] += len(piece)
                    out.append((side, piece))
                    moved = True
        return out


@dataclass
class SideAnswer:
    id: str
    completion: str
    finish_reason: str | None


class BattleFailed(APIError):
    status, type, code = 502, "engine_error", "battle_failed"


async def _stream_side(
    services: Services,
    side: str,
    engine_model: str,
    messages: list[dict[str, Any]],
    params: dict[str, Any],
    key_id: int | None,
    out: asyncio.Queue,
) -> SideAnswer:
    body = {
        **params,
        "model": engine_model,
        "messages": messages,
        "stream": True,
        "stream_options": {"include_usage": True},
    }  # fmt: skip  (tokens in /metrics)
    info = RequestInfo(model=engine_model, engine_model=engine_model, body=body, api_key_id=key_id)
    try:
        resp = await services.engine_client.open_stream("/v1/chat/completions", body)
    except EngineUnreachable as exc:
        raise EngineUnavailable(f"the engine is not answering: {exc}") from exc
    chunks: list[bytes] = []
    decoder = SSEDecoder()
    try:
        if resp.status != 200:
            raise BattleFailed(
                f"the engine refused side {side}: {(await resp.read()).decode()[:300]}"
            )
        async for chunk in resp.content.iter_any():
            chunks.append(chunk)
            for event in decoder.feed(chunk):
                for choice in event.get("choices") or []:
                    text = (choice.get("delta") or {}).get("content")
                    if text:
                        await out.put((side, text))
    except (TimeoutError, aiohttp.ClientError) as exc:
        raise BattleFailed(f"the engine stopped mid-answer: {exc or type(exc).__name__}") from exc
    finally:
        resp.close()
    exchange = exchange_from_stream(info, chunks, time.perf_counter())
    if exchange is None:
        raise BattleFailed(f"the engine sent no answer for side {side}")
    services.exchange_log.submit(lambda: exchange)
    return SideAnswer(exchange.id, exchange.completion, exchange.finish_reason)


async def generate_pair(
    services: Services,
    models: tuple[str, str],
    histories: tuple[list[dict[str, Any]], list[dict[str, Any]]],
    params: dict[str, Any],
    key_id: int | None,
) -> AsyncIterator[tuple[str, str] | dict[str, SideAnswer]]:
    """Yield paced `(side, text)` pieces, then `{"a": SideAnswer, "b": SideAnswer}`.

    Closing the iterator early (the client left) cancels both engine requests.
    """
    queue: asyncio.Queue = asyncio.Queue()

    async def side_task(side: str, model: str, history: list[dict[str, Any]]) -> None:
        # Text pieces, then the side's answer or its error: one FIFO keeps them in order.
        try:
            answer = await _stream_side(services, side, model, history, params, key_id, queue)
        except Exception as exc:  # handed to the consumer, raised there
            answer = exc
        await queue.put((side, answer))

    tasks = [
        asyncio.create_task(side_task(side, model, history))
        for side, model, history in zip(SIDES, models, histories, strict=True)
    ]
    pacer, answers = Pacer(), {}
    try:
        while len(answers) < 2:
            side, item = await queue.get()
            if isinstance(item, Exception):
                raise item
            if isinstance(item, str):
                pieces = pacer.add(side, item)
            else:
                answers[side] = item
                pieces = pacer.finish(side)
            for piece in pieces:
                yield piece
        yield answers
    finally:
        for task in tasks:
            task.cancel()
