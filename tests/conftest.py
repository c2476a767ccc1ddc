"""Shared fixtures: each test has its own FLYWHEEL_HOME; the real stack starts once per session."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from serve.config import ENGINE_KEY_ENV
from serve.engine import free_port
from tests.polling import pid_alive

STACK_READY_TIMEOUT_S = 400  # engine cold start is ~30-60 s; a loaded CI box is slower


@pytest.fixture(autouse=True)
def flywheel_home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "flywheel-home"
    monkeypatch.setenv("FLYWHEEL_HOME", str(home))
    return home


@dataclass
class Stack:
    url: str
    data_dir: Path
    process: subprocess.Popen
    log_path: Path
    engine_key: str | None = None  # what the engine's /v1 wants (the gateway sends it)

    @property
    def api(self) -> str:
        return f"{self.url}/v1"

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def _wait_ready(stack: Stack) -> None:
    deadline = time.monotonic() + STACK_READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if stack.process.poll() is not None:
            pytest.fail(
                f"`flywheel up` exited with {stack.process.returncode}:\n{stack.log_tail()}"
            )
        try:
            if httpx.get(f"{stack.url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    pytest.fail(f"`flywheel up` was not ready after {STACK_READY_TIMEOUT_S} s:\n{stack.log_tail()}")


@pytest.fixture(scope="session")
def stack(tmp_path_factory) -> Stack:
    """`flywheel up` as a user runs it: real vLLM engine, default model, gateway and UI."""
    # The engine's key: the tests that call the engine itself must know it (dev loop: set
    # FLYWHEEL_ENGINE_API_KEY where the reused stack was started, and here).
    engine_key = os.environ.get(ENGINE_KEY_ENV) or secrets.token_urlsafe(32)
    if os.environ.get("FLYWHEEL_TEST_STACK"):  # dev loop: reuse a running `flywheel up`
        url, data_dir = os.environ["FLYWHEEL_TEST_STACK"].split(",")
        yield Stack(url, Path(data_dir), None, Path(data_dir) / "logs" / "engine.log", engine_key)
        return
    data_dir = tmp_path_factory.mktemp("stack")
    port = free_port()
    log_path = data_dir / "up.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cli",
                "up",
                "--port",
                str(port),
                "--data-dir",
                str(data_dir),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, ENGINE_KEY_ENV: engine_key},
        )
    stack = Stack(f"http://127.0.0.1:{port}", data_dir, process, log_path, engine_key)
    try:
        _wait_ready(stack)
        engine_pid = httpx.get(f"{stack.url}/health").json()["engine"]["pid"]
        yield stack
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            pytest.fail("`flywheel up` did not stop within 60 s of SIGTERM")
    # Regression guard: stopping the gateway must never leave the engine running.
    assert not pid_alive(engine_pid), "the engine outlived `flywheel up`"


@dataclass
class TrainedAdapter:
    name: str
    result: subprocess.CompletedProcess


def _answer(stack: Stack, prompt: str, seed: int) -> tuple[str, str]:
    body = {
        "model": "base",
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": 48,
        "temperature": 1.0,
        "seed": seed,
    }
    data = httpx.post(f"{stack.api}/chat/completions", json=body, timeout=120).json()
    return data["id"], data["choices"][0]["message"]["content"]


@pytest.fixture(scope="session")
def trained_adapter(stack) -> TrainedAdapter:
    """Judgements through the API, then `flywheel train` against the running gateway (once)."""
    for i, prompt in enumerate(["Name a fruit.", "Say hello.", "What is rain?", "Pick a color."]):
        (id_a, text_a), (id_b, text_b) = (
            _answer(stack, prompt, 2 * i),
            _answer(stack, prompt, 2 * i + 1),
        )
        winner = "a" if len(text_a) >= len(text_b) else "b"  # a simple, consistent preference
        resp = httpx.post(
            f"{stack.api}/feedback/comparisons",
            json={"completion_ids": [id_a, id_b], "winner": winner},
        )
        assert resp.status_code == 201, resp.text
    name = "it-dpo"
    command = [
        sys.executable, "-m", "cli", "train", "--method", "dpo", "--name", name,
        "--data-dir", str(stack.data_dir), "--gateway", stack.url, "--max-steps", "2",
        "--samples", "0",  # no base-vs-tuned samples: ~20 s of the suite (test_train_jobs has them)
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    return TrainedAdapter(name, result)
