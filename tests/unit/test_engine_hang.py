"""A hung engine is noticed, its requests ended, and it is restarted (hardening #9).

The supervisor and the connection pool are tested here against a small HTTP server standing in
for vLLM's process (it answers `/health` and holds a stream open); the real engine is stopped
with SIGSTOP in bench/engine_fault.py.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time

import aiohttp

from serve import engine as engine_module
from serve.config import Settings
from serve.engine import Engine, free_port
from serve.engine_client import EngineClient

STAND_IN = """
import os, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

KEY = os.environ.get("VLLM_API_KEY")  # as vLLM: /v1 wants it, /health does not

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        keyed = self.headers.get("Authorization") == f"Bearer {KEY}"
        if self.path.startswith("/v1") and KEY and not keyed and not NAIVE:
            self.send_response(401); self.end_headers(); return
        self.send_response(200); self.end_headers(); self.wfile.write(b'{"data": [{"id": "m"}]}')

    def do_POST(self):  # a stream that starts, then never sends another byte
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream"); self.end_headers()
        self.wfile.write(b"data: {}\\n\\n"); self.wfile.flush()
        time.sleep(3600)

    def log_message(self, *args):
        pass

NAIVE = len(sys.argv) > 2  # a squatter: answers everything, key or not
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"""


def test_a_hung_engine_is_restarted_and_its_requests_ended(tmp_path, monkeypatch):
    monkeypatch.setattr(engine_module, "HUNG_AFTER_S", 2)
    monkeypatch.setattr(engine_module, "PROBE_TIMEOUT_S", 0.5)
    monkeypatch.setattr(
        engine_module, "engine_command", lambda s, port, dtype=None: [sys.executable, "-c",
                                                                       STAND_IN, str(port)]
    )  # fmt: skip
    settings = Settings("m", "m", data_dir=tmp_path, engine_port=free_port())
    engine, client = Engine(settings), EngineClient(f"http://127.0.0.1:{settings.engine_port}")
    downs: list[float] = []

    def down() -> None:
        downs.append(time.monotonic())
        client.abort_all()

    engine.on_down = down

    async def scenario():
        await client.start()
        await engine.start()
        first = engine.pid
        stream = await client.open_stream("/v1/chat/completions", {})
        await stream.content.readline()  # the stream is live

        async def read_on():
            try:
                await stream.content.read()
            except aiohttp.ClientError:
                return time.monotonic()

        reader = asyncio.create_task(read_on())
        os.kill(first, signal.SIGSTOP)  # hung: alive, silent
        stopped = time.monotonic()
        ended = await asyncio.wait_for(reader, 30)
        assert ended is not None and ended - stopped < 15  # the client is not left waiting
        while engine.restarts < 1:
            await asyncio.sleep(0.2)
        assert engine.pid != first and engine.state == "ready" and await engine.healthy()
        assert len(downs) == 1
        status, _ = await client.get("/health")  # the new pool reaches the new engine
        assert status == 200
        await engine.stop()
        await client.close()

    try:
        asyncio.run(asyncio.wait_for(scenario(), 90))
    finally:
        engine.stop_now()


def test_another_server_on_the_engines_port_is_not_taken_for_the_engine(tmp_path, monkeypatch):
    """Hardening 12: whatever answered /health on the engine's port was taken for the engine.
    The stand-in answers everything, key or not: vLLM started with the key refuses /v1
    without it."""
    import pytest

    from serve.engine import EngineFailed

    monkeypatch.setattr(
        engine_module, "engine_command", lambda s, port, dtype=None: [sys.executable, "-c",
                                                                       STAND_IN, str(port), "naive"]
    )  # fmt: skip
    engine = Engine(Settings("m", "m", data_dir=tmp_path, engine_port=free_port()))
    assert engine.api_key and engine.headers == {"Authorization": f"Bearer {engine.api_key}"}
    try:
        with pytest.raises(EngineFailed, match="not the engine flywheel started"):
            asyncio.run(engine.start())
    finally:
        engine.stop_now()
