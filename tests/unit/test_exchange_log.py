"""Streams are logged from the relayed bytes, however the engine split them into chunks."""

import asyncio
import json

from feedback import Store
from serve.exchange_log import ExchangeLogger, RequestInfo, exchange_from_stream


def sse(*events: dict) -> bytes:
    return (
        b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events) + b"data: [DONE]\n\n"
    )


STREAM = sse(
    {"id": "chatcmpl-1", "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]},
    {"id": "chatcmpl-1", "choices": [{"index": 0, "delta": {"content": "Hel"}}]},
    {"id": "chatcmpl-1", "choices": [{"index": 0, "delta": {"content": "lo"}}]},
    {"id": "chatcmpl-1", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
    {"id": "chatcmpl-1", "choices": [], "usage": {"completion_tokens": 2}},
)
INFO = RequestInfo(model="base", engine_model="M", body={"messages": [], "stream": True, "seed": 1})


def test_chunks_split_mid_event_rebuild_the_answer():
    chunks = [STREAM[i : i + 7] for i in range(0, len(STREAM), 7)]
    exchange = exchange_from_stream(INFO, chunks, ended=INFO.started + 0.5)
    assert (exchange.id, exchange.completion, exchange.finish_reason) == (
        "chatcmpl-1",
        "Hello",
        "stop",
    )
    assert exchange.usage == {"completion_tokens": 2}
    assert exchange.params == {"seed": 1}
    assert exchange.latency_ms == 500


def test_a_stream_cut_before_the_end_is_logged_as_cancelled():
    cut = STREAM[: STREAM.index(b"lo")]
    assert exchange_from_stream(INFO, [cut], ended=INFO.started).finish_reason == "cancelled"


def test_everything_queued_is_written_by_close():
    store = Store(None)

    async def run():
        logger = ExchangeLogger(store)
        logger.start()
        for i in range(300):
            logger.submit(
                lambda i=i: exchange_from_stream(INFO, [STREAM.replace(b"-1", b"-%d" % i)], 0)
            )
        await logger.close()

    asyncio.run(run())
    assert store.counts()["exchanges"] == 300


def test_unicode_line_separators_inside_an_answer_are_kept():
    """Regression: str.splitlines() split SSE lines at \u2028/\x85 and lost those tokens."""
    text = "one\u2028two\x85three\x1cfour"
    stream = sse(
        {"id": "chatcmpl-2", "choices": [{"index": 0, "delta": {"content": text}}]},
        {"id": "chatcmpl-2", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
    ).replace(json.dumps(text).encode(), json.dumps(text, ensure_ascii=False).encode())
    assert "\u2028".encode() in stream  # raw, as vLLM sends it
    assert exchange_from_stream(INFO, [stream], 0).completion == text


def numbered(i: int):
    return lambda: exchange_from_stream(INFO, [STREAM.replace(b"-1", b"-%d" % i)], 0)


def test_a_batch_the_database_refuses_for_a_while_is_retried_not_dropped(monkeypatch):
    """Hardening 8: a failed batch write dropped up to 256 answers with a log line."""
    import sqlite3

    import serve.exchange_log as exchange_log

    monkeypatch.setattr(exchange_log, "RETRY_FIRST_S", 0.001)
    store = Store(None)
    real, refusals = store.log_exchanges, [3]

    def sometimes_locked(exchanges):
        if refusals[0]:
            refusals[0] -= 1
            raise sqlite3.OperationalError("database is locked")
        return real(exchanges)

    monkeypatch.setattr(store, "log_exchanges", sometimes_locked)
    retries, dropped = [], []

    async def run():
        logger = ExchangeLogger(
            store, on_retry=lambda: retries.append(1), on_dropped=lambda: dropped.append(1)
        )
        logger.start()
        for i in range(300):
            logger.submit(numbered(i))
        logger.submit(lambda: 1 / 0)  # one that cannot be built: dropped alone, and counted
        await logger.close()

    asyncio.run(run())
    assert store.counts()["exchanges"] == 300
    assert len(retries) == 3 and len(dropped) == 1


def test_flush_waits_for_what_came_before_it_not_for_an_empty_queue():
    """Hardening 8: flush() waited for an empty queue, so under steady traffic a rating waited
    on every answer that came after it."""
    import threading

    store = Store(None)
    gate = threading.Event()
    real = store.log_exchanges

    def slow_after_the_first(exchanges):
        if any(e.id != "chatcmpl-0" for e in exchanges):
            gate.wait(10)  # the answers that came later take their time
        return real(exchanges)

    store.log_exchanges = slow_after_the_first

    async def run():
        logger = ExchangeLogger(store)
        logger.start()
        logger.submit(numbered(0))
        rating = asyncio.create_task(logger.flush())  # a rating of answer 0 waits for it
        await asyncio.sleep(0)
        logger.submit(numbered(1))  # answers keep coming; this one is slow to write
        await asyncio.wait_for(rating, 5)
        assert store.exchange("chatcmpl-0") is not None
        assert store.exchange("chatcmpl-1") is None
        gate.set()
        await logger.close()

    asyncio.run(run())
    assert store.counts()["exchanges"] == 2


def test_every_choice_and_its_tool_calls_are_logged():
    """Hardening 19: the log kept choice 0 only and dropped tool calls."""
    from serve.exchange_log import exchanges_from_response, exchanges_from_stream

    call = {"id": "call_1", "type": "function",
            "function": {"name": "weather", "arguments": '{"city": "Oslo"}'}}  # fmt: skip
    whole = {
        "id": "chatcmpl-9",
        "choices": [
            {"index": 0, "message": {"content": "Sunny."}, "finish_reason": "stop"},
            {
                "index": 1,
                "message": {"content": None, "tool_calls": [call]},
                "finish_reason": "tool_calls",
            },
        ],
        "usage": {"completion_tokens": 7},
    }
    first, second = exchanges_from_response(INFO, whole)
    assert (first.id, first.completion, first.usage) == ("chatcmpl-9", "Sunny.", whole["usage"])
    assert (second.id, second.tool_calls, second.finish_reason) == (
        "chatcmpl-9-choice1",
        [call],
        "tool_calls",
    )
    pieces = [
        {"index": 0, "id": "call_1", "type": "function",
         "function": {"name": "weather", "arguments": '{"city": '}},
        {"index": 0, "function": {"arguments": '"Oslo"}'}},
    ]  # fmt: skip
    stream = sse(
        {"id": "chatcmpl-8", "choices": [{"index": 0, "delta": {"tool_calls": [pieces[0]]}},
                                         {"index": 1, "delta": {"content": "Hi"}}]},
        {"id": "chatcmpl-8", "choices": [{"index": 0, "delta": {"tool_calls": [pieces[1]]},
                                          "finish_reason": "tool_calls"}]},
        {"id": "chatcmpl-8", "choices": [{"index": 1, "delta": {}, "finish_reason": "stop"}]},
    )  # fmt: skip
    a, b = exchanges_from_stream(INFO, [stream], 0)
    assert a.tool_calls == [call] and a.finish_reason == "tool_calls"
    assert (b.id, b.completion, b.finish_reason) == ("chatcmpl-8-choice1", "Hi", "stop")
    store = Store(None)
    store.log_exchanges([a, b, first, second])
    assert store.exchange("chatcmpl-8")["tool_calls"] == [call]
    assert store.exchange("chatcmpl-9-choice1")["completion"] == ""
