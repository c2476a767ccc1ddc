"""The official `openai` client, sync and async, works against the gateway unchanged."""

from __future__ import annotations

import asyncio

import httpx
import openai
import pytest

pytestmark = pytest.mark.integration

BASE = "SmolLM2-135M-Instruct"
ASK = [{"role": "user", "content": "Count from one to five."}]


def test_parameters_reach_the_engine(client):
    reply = client.chat.completions.create(
        model=BASE, messages=ASK, max_tokens=12, n=2, logprobs=True, top_logprobs=2, seed=7
    )
    assert len(reply.choices) == 2
    assert len(reply.choices[0].logprobs.content[0].top_logprobs) == 2
    again = client.chat.completions.create(model=BASE, messages=ASK, max_tokens=12, seed=7, n=2)
    assert [c.message.content for c in again.choices] == [c.message.content for c in reply.choices]


def test_stop_sequences_are_honoured(client):
    reply = client.chat.completions.create(
        model=BASE, messages=ASK, max_tokens=40, temperature=0, stop=["three", "Three", "3"]
    )
    assert reply.choices[0].finish_reason == "stop"
    assert "three" not in reply.choices[0].message.content.lower()


def test_stream_with_usage_chunk(client):
    stream = client.chat.completions.create(
        model="base", messages=ASK, max_tokens=8, stream=True,
        stream_options={"include_usage": True},
    )  # fmt: skip
    chunks = list(stream)
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens <= 8


def test_plain_completions_stream_and_not(client):
    reply = client.completions.create(model=BASE, prompt="The sky is", max_tokens=6)
    assert reply.choices[0].text
    parts = [c.choices[0].text for c in client.completions.create(
        model=BASE, prompt="The sky is", max_tokens=6, stream=True) if c.choices]  # fmt: skip
    assert len(parts) > 1 and "".join(parts)


def test_async_client_stream_and_not(stack):
    async def run():
        client = openai.AsyncOpenAI(base_url=stack.api, api_key="local", max_retries=0)
        replies = await asyncio.gather(
            *[client.chat.completions.create(model=BASE, messages=ASK, max_tokens=6)
              for _ in range(4)]
        )  # fmt: skip
        stream = await client.chat.completions.create(
            model=BASE, messages=ASK, max_tokens=6, stream=True
        )
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        await client.close()
        return replies, text

    replies, text = asyncio.run(run())
    assert len({r.id for r in replies}) == 4 and all(r.choices[0].message.content for r in replies)
    assert text


def test_unknown_model_is_a_not_found_error(client):
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        client.chat.completions.create(model="nope", messages=ASK)


def test_models_lists_aliases_with_their_targets(client):
    models = {m.id: m for m in client.models.list().data}
    assert models["base"].root == BASE
    assert models["live"].root in models  # the base model, or the promoted adapter


def completion_tokens_counted(stack) -> float:
    prefix = f'flywheel_tokens_total{{kind="completion",model="{BASE}"}}'
    lines = httpx.get(f"{stack.url}/metrics").text.splitlines()
    return sum(float(line.split()[-1]) for line in lines if line.startswith(prefix))


def test_a_streams_tokens_are_counted_and_its_client_gets_no_event_it_did_not_ask_for(
    stack, client
):
    """Hardening 14: streamed tokens were never counted in /metrics."""
    from tests.polling import wait_for

    before = completion_tokens_counted(stack)
    chunks = list(client.chat.completions.create(
        model=BASE, messages=ASK, max_tokens=5, stream=True, temperature=0
    ))  # fmt: skip
    assert chunks and all(chunk.choices for chunk in chunks)  # no usage-only chunk
    assert all(chunk.usage is None for chunk in chunks)
    wait_for(lambda: completion_tokens_counted(stack) >= before + 1, 30, "the tokens counted")
    asked = client.chat.completions.create(
        model=BASE, messages=ASK, max_tokens=5, stream=True,
        stream_options={"include_usage": True},
    )  # fmt: skip
    assert list(asked)[-1].usage.completion_tokens >= 1  # one who asks still gets it


def test_models_retrieve_gives_one_card_or_a_not_found(client):
    """Hardening 19: `client.models.retrieve` was a 404 for every model."""
    assert client.models.retrieve(BASE).id == BASE
    live = client.models.retrieve("live")
    assert live.id == "live" and live.root == client.models.retrieve("live").root
    with pytest.raises(openai.NotFoundError, match="no model 'nope' is served"):
        client.models.retrieve("nope")


def test_metrics_count_requests_and_tokens(stack, client):
    client.chat.completions.create(model=BASE, messages=ASK, max_tokens=5)
    text = httpx.get(f"{stack.url}/metrics").text
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    assert any(
        line.startswith('flywheel_requests_total{route="/v1/chat/completions",status="200"}')
        for line in lines
    )
    assert any(line.startswith("flywheel_tokens_total{") for line in lines)
    assert "flywheel_engine_up 1.0" in lines
