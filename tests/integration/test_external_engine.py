"""`--engine-url`: a gateway in front of an engine it does not own (a GPU box, a cluster)."""

from __future__ import annotations

import signal
import subprocess
import sys

import httpx
import pytest

from serve.engine import free_port
from tests.polling import pid_alive, wait_for

pytestmark = pytest.mark.integration


def health(url: str) -> dict | None:
    try:
        resp = httpx.get(f"{url}/health", timeout=2)
    except httpx.HTTPError:
        return None
    return resp.json() if resp.status_code == 200 else None


def test_gateway_serves_an_external_engine_and_leaves_it_running(stack, tmp_path):
    engine = httpx.get(f"{stack.url}/health").json()["engine"]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with open(tmp_path / "up.log", "wb") as log:
        gateway = subprocess.Popen(
            [sys.executable, "-m", "serve.cli", "up", "--no-ui", "--port", str(port),
             "--engine-url", engine["url"], "--data-dir", str(tmp_path / "data")],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    try:
        state = wait_for(lambda: health(url), 120, "the gateway")["engine"]
        assert (state["state"], state["supervised"], state["pid"]) == ("external", False, None)
        body = {"model": "base", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}
        reply = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=60)
        assert reply.status_code == 200 and reply.json()["choices"][0]["message"]["content"]
    finally:
        gateway.send_signal(signal.SIGTERM)
        gateway.wait(60)
    assert pid_alive(engine["pid"])  # not ours to stop
    assert health(stack.url)["status"] == "ok"
