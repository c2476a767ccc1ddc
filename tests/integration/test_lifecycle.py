"""The engine lives and dies with `flywheel up`: restarted after a crash, never orphaned."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from common.default_model import prepare
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


STREAMS = 8  # in flight when the engine dies: half on the base model, half on the adapter


@pytest.fixture(scope="module")
def random_adapter(tmp_path_factory) -> Path:
    """A LoRA of random weights on the default model: reloading one needs no training."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(prepare(), dtype=torch.float32)
    config = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"],
                        init_lora_weights=False, task_type="CAUSAL_LM")  # fmt: skip
    folder = tmp_path_factory.mktemp("lora") / "adapter"
    get_peft_model(base, config).save_pretrained(folder)
    return folder


def long_stream(url: str, model: str, generating: threading.Event) -> tuple[dict, float, bool]:
    """A long streamed answer: its last JSON event, when the stream ended, and whether `[DONE]`
    closed it."""
    body = {"model": model, "messages": [{"role": "user", "content": "Tell a story"}],
            "max_tokens": 1500, "ignore_eos": True, "stream": True}  # fmt: skip
    last, buffer, done = {}, b"", False
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=60) as stream:
        for chunk in stream.iter_bytes():  # lines end at \n only (a token may hold \u2028)
            *lines, buffer = (buffer + chunk).split(b"\n")
            for line in lines:
                if line.startswith(b"data: {"):
                    last = json.loads(line[6:])
                    generating.set()
                done = done or line.strip() == b"data: [DONE]"
    return last, time.monotonic(), done


def test_crashed_engine_is_restarted_and_a_killed_gateway_takes_it_along(tmp_path, random_adapter):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with open(tmp_path / "up.log", "wb") as log:
        gateway = subprocess.Popen(
            [sys.executable, "-m", "cli", "up", "--no-ui", "--port", str(port),
             "--data-dir", str(tmp_path / "data")],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    try:
        first = wait_for(
            lambda: (s := engine_state(url)) and s["state"] == "ready" and s, 400, "the stack"
        )
        folder = str(random_adapter)
        added = httpx.post(f"{url}/v1/adapters", json={"name": "kept", "path": folder}, timeout=120)
        assert added.status_code == 201, added.text

        generating = [threading.Event() for _ in range(STREAMS)]
        with ThreadPoolExecutor(STREAMS) as pool:
            streams = [
                pool.submit(long_stream, url, ("base", "kept")[i % 2], generating[i])
                for i in range(STREAMS)
            ]
            assert all(g.wait(300) for g in generating), "a stream never started"
            os.kill(first["pid"], signal.SIGKILL)  # the engine crashes mid-answer
            killed = time.monotonic()
            # each stream ended promptly with an OpenAI-shaped error event: a hang fails
            # here (TimeoutError), a cut connection too (httpx raises it)
            ends = [s.result(timeout=30) for s in streams]
        assert [last["error"]["code"] for last, _, _ in ends] == ["engine_unavailable"] * STREAMS
        assert all(done for _, _, done in ends)  # Hardening 19: clients waiting for [DONE] end
        assert max(ended for _, ended, _ in ends) - killed < 30
        down = wait_for(lambda: (r := chat(url, "base")).status_code == 503 and r, 30, "a 503")
        assert int(down.headers["Retry-After"]) >= 1
        assert down.json()["error"]["code"] == "engine_unavailable"
        second = wait_for(
            lambda: (s := engine_state(url)) and s["restarts"] == 1 and s["state"] == "ready" and s,
            400,
            "the supervisor to restart the engine",
        )
        assert second["pid"] != first["pid"]
        # the adapter is loaded again after the restart, and both models answer
        wait_for(
            lambda: "kept@1" in httpx.get(f"{url}/health", timeout=5).json()["adapters_loaded"],
            120,
            "the adapter to be loaded again",
        )
        assert chat(url, "kept").json()["model"] == "kept@1"
        assert chat(url, "base").status_code == 200
        print(f"\nkill -> both models answering again: {time.monotonic() - killed:.1f} s")

        gateway.kill()  # SIGKILL: no clean-up code runs in the gateway
        gateway.wait()
        wait_for(lambda: not pid_alive(second["pid"]), 30, "the orphaned engine to exit")
    finally:
        if gateway.poll() is None:
            gateway.send_signal(signal.SIGTERM)
            gateway.wait(60)
