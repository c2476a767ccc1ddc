"""/metrics counts every answer the gateway gives, the 500 of an unhandled error included."""

from __future__ import annotations

from fastapi.testclient import TestClient

from serve.config import Settings
from serve.gateway import create_app


def requests_counted(client: TestClient, route: str, status: str) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(f'flywheel_requests_total{{route="{route}",status="{status}"}}'):
            return float(line.split()[-1])
    return 0.0


def test_an_unhandled_error_is_counted_as_the_500_it_becomes(tmp_path):
    """Hardening 14: Starlette answers an unhandled error outside the metrics middleware, so
    the 500 never reached /metrics."""
    settings = Settings("m", "m", data_dir=tmp_path, ui=False, engine_url="http://127.0.0.1:9")
    app = create_app(settings)

    @app.get("/boom")
    async def boom():
        raise RuntimeError("a bug")

    client = TestClient(app, base_url="http://127.0.0.1", raise_server_exceptions=False)
    assert client.get("/boom").status_code == 500
    assert client.get("/boom").status_code == 500
    assert requests_counted(client, "/boom", "500") == 2


def test_a_stream_is_asked_for_usage_and_relayed_without_it():
    """Hardening 14: streamed tokens were never counted (no usage event was asked for); the
    gateway now asks, and a client that did not gets the stream it would have got."""
    from serve.sse import UsageEventFilter, with_usage

    body = {"model": "m", "stream": True}
    assert with_usage(body) == ({**body, "stream_options": {"include_usage": True}}, False)
    asked = {**body, "stream_options": {"include_usage": True}}
    assert with_usage(asked) == (asked, True)
    token = b'data: {"id":"c","choices":[{"index":0,"delta":{"content":"[]\\"choices\\":[]"}}]}\n\n'
    usage = b'data: {"id":"c","choices":[],"usage":{"completion_tokens":2}}\n\n'
    stream = token + token + usage + b"data: [DONE]\n\n"
    for size in (1, 7, 64, len(stream)):  # however the bytes arrive
        relay = UsageEventFilter()
        out = b"".join(relay.feed(stream[i : i + size]) for i in range(0, len(stream), size))
        assert out + relay.rest() == token + token + b"data: [DONE]\n\n"
