"""`--engine-url`: a gateway in front of an engine it does not own (a GPU box, a cluster)."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
from collections.abc import Iterator

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


@contextlib.contextmanager
def gateway_in_front(stack, data_dir, *flags: str) -> Iterator[str]:
    """A second gateway (no UI) on the session's engine, with its own flags; its URL."""
    engine_url = httpx.get(f"{stack.url}/health").json()["engine"]["url"]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    data_dir.mkdir(parents=True, exist_ok=True)
    with open(data_dir / "up.log", "wb") as log:
        gateway = subprocess.Popen(
            [sys.executable, "-m", "cli", "up", "--no-ui", "--port", str(port),
             "--engine-url", engine_url, "--engine-api-key", stack.engine_key,
             "--data-dir", str(data_dir), *flags],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    try:
        wait_for(lambda: health(url), 120, "the gateway")
        yield url
    finally:
        gateway.send_signal(signal.SIGTERM)
        gateway.wait(60)


def test_gateway_serves_an_external_engine_and_leaves_it_running(stack, tmp_path):
    engine = httpx.get(f"{stack.url}/health").json()["engine"]
    with gateway_in_front(stack, tmp_path / "data") as url:
        state = health(url)["engine"]
        assert (state["state"], state["supervised"], state["pid"]) == ("external", False, None)
        assert state["dtype"] is None  # not ours to know
        body = {"model": "base", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}
        reply = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=60)
        assert reply.status_code == 200 and reply.json()["choices"][0]["message"]["content"]
    assert pid_alive(engine["pid"])  # not ours to stop
    assert health(stack.url)["status"] == "ok"


def test_the_max_tokens_cap_holds_for_a_request_that_names_no_limit(stack, tmp_path):
    """Hardening 5: without `max_tokens` the engine would answer up to the whole context."""
    essay = [{"role": "user", "content": "Write a long essay about the history of paper."}]
    with gateway_in_front(stack, tmp_path / "data", "--max-tokens-cap", "8") as url:
        plain = httpx.post(
            f"{url}/v1/chat/completions", json={"model": "base", "messages": essay}, timeout=60
        ).json()
        assert plain["usage"]["completion_tokens"] <= 8
        assert plain["choices"][0]["finish_reason"] == "length"
        streamed = httpx.post(
            f"{url}/v1/chat/completions",
            json={"model": "base", "messages": essay, "stream": True,
                  "stream_options": {"include_usage": True}},
            timeout=60,
        ).text  # fmt: skip
        usage = [line for line in streamed.splitlines() if '"usage":{' in line][-1]
        assert '"completion_tokens":8' in usage.replace(" ", "")
        # the arena's default max_tokens (256) is cut to the cap, not refused: here the battle
        # gets as far as finding one served model only
        battle = httpx.post(f"{url}/v1/arena/battles", json={"messages": essay}, timeout=60)
        assert battle.status_code == 409, battle.text
        asked = {"messages": essay, "max_tokens": 64}
        refused = httpx.post(f"{url}/v1/arena/battles", json=asked, timeout=60)
        assert refused.status_code == 400 and refused.json()["error"]["param"] == "max_tokens"


def test_the_engine_answers_only_the_gateway(stack):
    """Hardening 12: the supervised engine's port was open to every local process, without a
    key: anyone on the machine could load an adapter past every check."""
    engine_url = httpx.get(f"{stack.url}/health").json()["engine"]["url"]
    lora = {"lora_name": "sneaked", "lora_path": "/tmp"}
    assert httpx.post(f"{engine_url}/v1/load_lora_adapter", json=lora).status_code == 401
    assert httpx.get(f"{engine_url}/v1/models").status_code == 401
    keyed = {"Authorization": f"Bearer {stack.engine_key}"}
    assert httpx.get(f"{engine_url}/v1/models", headers=keyed).status_code == 200
    assert httpx.get(f"{stack.url}/v1/models").status_code == 200  # the gateway holds the key
