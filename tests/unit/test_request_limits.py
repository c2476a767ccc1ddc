"""Input caps (issue 8, point 6): body size -> 413, messages and max_tokens -> 400 with `param`,
all in OpenAI's error shape; CORS stays off unless an operator adds it."""

from __future__ import annotations

import hashlib
import json

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from pydantic import BaseModel

from cli.main import make_parser
from serve.config import DEFAULT_MAX_BODY_BYTES, Settings
from serve.errors import install_error_handlers
from serve.gateway import create_app
from serve.json_body import JsonBodies, check_generation_limits

CAP = 1000
MAX_MESSAGES, MAX_TOKENS = 5, 100


class Named(BaseModel):
    name: str


@pytest.fixture
def calls() -> list[str]:
    return []


@pytest.fixture
def client(calls) -> TestClient:
    """A small app with the middleware and a chat route that checks limits as the gateway would."""
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/v1/echo")
    async def echo(request: Request):
        calls.append("echo")
        body = await request.body()
        return {"bytes": len(body), "sha256": hashlib.sha256(body).hexdigest()}

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        calls.append("chat")
        body = await request.json()
        check_generation_limits(body, MAX_MESSAGES, MAX_TOKENS)
        return {"ok": True}

    @app.post("/v1/typed")
    async def typed(named: Named):
        return {"name": named.name}

    @app.post("/v1/feedback/import")
    async def bulk(request: Request):
        return {"bytes": sum([len(chunk) async for chunk in request.stream()])}

    app.add_middleware(JsonBodies, max_body_bytes=CAP)
    return TestClient(base_url="http://127.0.0.1", app=app)


def assert_error(resp, status: int, code: str, param: str | None = None) -> str:
    assert resp.status_code == status, resp.text
    error = resp.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["type"], error["code"], error["param"]) == ("invalid_request_error", code, param)
    return error["message"]


# -- body size ---------------------------------------------------------------------------------


def test_a_body_under_the_cap_reaches_the_route_intact(client):
    body = b"x" * CAP
    resp = client.post("/v1/echo", content=body)
    assert resp.json() == {"bytes": CAP, "sha256": hashlib.sha256(body).hexdigest()}


def test_a_body_declared_too_large_is_refused_unread(client, calls):
    resp = client.post("/v1/echo", content=b"x" * (CAP + 1))
    message = assert_error(resp, 413, "request_too_large")
    assert "1000 bytes" in message and "--max-body-mib" in message
    assert calls == []  # the route never ran


def test_a_body_sent_without_a_length_is_counted_as_it_arrives(client, calls):
    def chunks():
        for _ in range(11):
            yield b"x" * 100

    resp = client.post("/v1/echo", content=chunks())
    assert "content-length" not in resp.request.headers
    assert_error(resp, 413, "request_too_large")
    assert calls == []


def test_bulk_import_keeps_its_own_larger_cap(client):
    assert client.post("/v1/feedback/import", content=b"x" * (CAP * 5)).json() == {"bytes": 5000}


def test_bodies_without_a_json_type_still_reach_typed_routes(client):
    headers = {"content-type": "application/x-www-form-urlencoded"}
    resp = client.post("/v1/typed", content=b'{"name": "curl"}', headers=headers)
    assert resp.json() == {"name": "curl"}


# -- cross-origin browser requests (CSRF on a keyless local gateway) --------------------------


def test_a_page_on_another_site_cannot_post_to_the_api(client, calls):
    # a "simple" request: a browser sends it without a CORS preflight
    headers = {"Origin": "https://evil.example", "content-type": "text/plain"}
    resp = client.post("/v1/echo", content=b'{"name": "x"}', headers=headers)
    assert "CORS" in assert_error(resp, 403, "cross_origin_refused")
    assert calls == []
    null_origin = client.post("/v1/echo", content=b"{}", headers={"Origin": "null"})
    assert null_origin.status_code == 403


@pytest.mark.parametrize(
    "headers",
    [
        {},  # a server, a script, the openai client
        {"Origin": "http://127.0.0.1"},  # the gateway's own pages (e.g. /docs)
        {"Origin": "https://api.example.com", "X-Forwarded-Host": "api.example.com"},  # proxied
    ],
)
def test_same_origin_and_non_browser_requests_pass(client, headers):
    assert client.post("/v1/echo", content=b"{}", headers=headers).status_code == 200


# -- what a chat request asks for --------------------------------------------------------------


def chat(client, **fields):
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], **fields}
    return client.post("/v1/chat/completions", json=body)


def test_too_many_messages_is_a_400_naming_messages(client):
    messages = [{"role": "user", "content": "hi"}] * (MAX_MESSAGES + 1)
    message = assert_error(chat(client, messages=messages), 400, "invalid_request", "messages")
    assert "6 messages" in message and "limit of 5" in message
    assert chat(client, messages=messages[:MAX_MESSAGES]).status_code == 200


@pytest.mark.parametrize("param", ["max_tokens", "max_completion_tokens"])
def test_max_tokens_over_the_cap_is_a_400_naming_it(client, param):
    message = assert_error(chat(client, **{param: 101}), 400, "invalid_request", param)
    assert "limit of 100 tokens" in message
    assert chat(client, **{param: 100}).status_code == 200
    assert chat(client, **{param: 16.0}).status_code == 200


@pytest.mark.parametrize("value", ["100000", 1.5, True, [1], {"n": 1}])
def test_max_tokens_that_is_not_an_integer_cannot_slip_past(client, value):
    assert_error(chat(client, max_tokens=value), 400, "invalid_request", "max_tokens")


def test_the_max_tokens_cap_defaults_to_the_context_length():
    assert Settings("m", "m", max_model_len=2048).max_tokens_cap == 2048
    assert Settings("m", "m", max_model_len=2048, max_tokens_limit=512).max_tokens_cap == 512


# -- the real gateway: default body cap, CORS off ---------------------------------------------


@pytest.fixture
def gateway(tmp_path) -> TestClient:
    # the engine is never called: nothing here reaches a relayed route's engine call
    settings = Settings("m", "m", data_dir=tmp_path, ui=False, engine_url="http://127.0.0.1:9")
    return TestClient(base_url="http://127.0.0.1", app=create_app(settings))


def test_the_keyless_gateway_refuses_a_cross_site_adapter_registration(gateway, tmp_path):
    body = b'{"name": "x", "path": "/tmp"}'
    headers = {"Origin": "http://evil.example", "content-type": "text/plain"}
    resp = gateway.post("/v1/adapters", content=body, headers=headers)
    assert_error(resp, 403, "cross_origin_refused")
    assert gateway.get("/v1/adapters").json() == []


def test_the_gateway_refuses_a_body_over_4_mib(gateway):
    assert DEFAULT_MAX_BODY_BYTES == 4 << 20
    body = b'{"model": "m", "messages": [' + b" " * DEFAULT_MAX_BODY_BYTES + b"]}"
    resp = gateway.post("/v1/chat/completions", content=body)
    assert "4 MiB" in assert_error(resp, 413, "request_too_large")


@pytest.mark.parametrize(
    "path", ["/v1/adapters", "/v1/chat/completions", "/v1/nowhere", "/health", "/docs"]
)
def test_cors_is_off_by_default(gateway, path):
    origin = {"Origin": "https://evil.example"}
    preflight = gateway.options(
        path,
        headers={
            **origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    simple = gateway.get(path, headers=origin)
    for resp in (preflight, simple):
        assert not any(h.lower().startswith("access-control-") for h in resp.headers), resp.headers


def test_up_takes_the_limits_from_the_command_line():
    argv = "up --adapter-root /srv/a --adapter-root /srv/b --max-body-mib 8 --max-messages 50"
    args = make_parser().parse_args([*argv.split(), "--max-tokens-cap", "256"])
    assert [str(p) for p in args.adapter_root] == ["/srv/a", "/srv/b"]
    assert (args.max_body_mib, args.max_messages, args.max_tokens_cap) == (8, 50, 256)
    assert (args.max_adapter_mib, args.max_adapter_files) == (2048, 100)


def test_a_battle_keeps_to_the_max_tokens_cap():
    """Hardening 5: the arena's default is cut to the cap; a number asked for over it is a 400."""
    from types import SimpleNamespace

    from serve.errors import BadRequest
    from serve.protocol import BattleRequest
    from serve.routes.arena import _check_token_cap

    settings = Settings("m", "m", max_model_len=2048, max_tokens_limit=16)
    services = SimpleNamespace(settings=settings)
    messages = [{"role": "user", "content": "hi"}]
    default = BattleRequest(messages=messages)
    _check_token_cap(default, services)
    assert default.max_tokens == 16
    with pytest.raises(BadRequest, match="limit of 16 tokens"):
        _check_token_cap(BattleRequest(messages=messages, max_tokens=17), services)
    fits = BattleRequest(messages=messages, max_tokens=12)
    _check_token_cap(fits, services)
    assert fits.max_tokens == 12


def test_a_request_without_max_tokens_gets_the_operators_cap():
    from serve.json_body import with_token_cap

    body = {"model": "m", "messages": []}
    assert with_token_cap(body, 16)["max_tokens"] == 16
    assert with_token_cap(body, None) == body  # no cap set: the engine's own default
    assert with_token_cap({**body, "max_tokens": 4}, 16)["max_tokens"] == 4
    assert "max_tokens" not in with_token_cap({**body, "max_completion_tokens": 4}, 16)


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/feedback/ratings"])
def test_a_body_nested_too_deeply_is_a_400_not_a_500(gateway, path):
    """Hardening 13: 100,000 nested brackets ended as a RecursionError (500) in the parser."""
    for deep in (b"[" * 100_000, b'{"model": "m", "messages": ' + b"[" * 200 + b"]" * 200 + b"}"):
        message = assert_error(gateway.post(path, content=deep), 400, "too_deeply_nested")
        assert "128 levels" in message


def test_brackets_inside_strings_are_not_nesting():
    from serve.json_body import nesting_depth

    text = "[{" * 5000 + ' \\" [' * 50
    assert nesting_depth(json.dumps({"messages": [{"content": text}]}).encode()) == 3
    assert nesting_depth(b"[" * 129 + b"]" * 129) == 129
