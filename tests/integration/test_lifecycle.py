"""The engine lives and dies with `flywheel up`: restarted after a crash, never orphaned."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import httpx
import pytest

from feedback import Store
from serve.engine import free_port
from tests.polling import pid_alive, wait_for

pytestmark = pytest.mark.integration


def engine_state(url: str) -> dict | None:
    try:
        return httpx.get(f"{url}/health", timeout=2).json()["engine"]
    except (httpx.HTTPError, ValueError, KeyError):
        return None


def chat(url: str, model: str) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}
    return httpx.post(f"{url}/v1/chat/completions", json=body, timeout=60)


def test_crashed_engine_is_restarted_and_a_killed_gateway_takes_it_along(
    tmp_path, stack, trained_adapter
):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with open(tmp_path / "up.log", "wb") as log:
        gateway = subprocess.Popen(
            [sys.executable, "-m", "serve.cli", "up", "--no-ui", "--port", str(port),
             "--data-dir", str(tmp_path / "data")],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    try:
        first = wait_for(
            lambda: (s := engine_state(url)) and s["state"] == "ready" and s, 400, "the stack"
        )
        assert trained_adapter.result.returncode == 0
        folder = Store(stack.data_dir / "flywheel.db").adapter(f"{trained_adapter.name}@1")["path"]
        added = httpx.post(f"{url}/v1/adapters", json={"name": "kept", "path": folder}, timeout=120)
        assert added.status_code == 201, added.text

        events = []
        long_answer = {"model": "base", "messages": [{"role": "user", "content": "Tell a story"}],
                       "max_tokens": 1000, "ignore_eos": True, "stream": True}  # fmt: skip
        started = time.monotonic()
        with httpx.stream("POST", f"{url}/v1/chat/completions", json=long_answer) as stream:
            for line in stream.iter_lines():
                if line.startswith("data: {"):
                    events.append(json.loads(line[6:]))
                    if len(events) == 3:
                        os.kill(first["pid"], signal.SIGKILL)  # the engine crashes mid-answer
        # the stream ended promptly with an OpenAI-shaped error, not a hang or a cut connection
        assert time.monotonic() - started < 30
        assert events[-1]["error"]["code"] == "engine_unavailable"
        down = wait_for(lambda: (r := chat(url, "base")).status_code == 503 and r, 30, "a 503")
        assert int(down.headers["Retry-After"]) >= 1
        assert down.json()["error"]["code"] == "engine_unavailable"
        second = wait_for(
            lambda: (s := engine_state(url)) and s["restarts"] == 1 and s["state"] == "ready" and s,
            400,
            "the supervisor to restart the engine",
        )
        assert second["pid"] != first["pid"]
        # the adapter was loaded again after the restart
        assert chat(url, "kept").json()["model"] == "kept@1"

        gateway.kill()  # SIGKILL: no clean-up code runs in the gateway
        gateway.wait()
        wait_for(lambda: not pid_alive(second["pid"]), 30, "the orphaned engine to exit")
    finally:
        if gateway.poll() is None:
            gateway.send_signal(signal.SIGTERM)
            gateway.wait(60)
