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
