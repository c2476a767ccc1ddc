"""The auth middleware's policy on a tiny app: local mode, 401/403/429 in OpenAI's shape."""

import pytest
from fastapi import FastAPI, Request, WebSocket
from fastapi.testclient import TestClient

from feedback import Store
from feedback.api_keys import ApiKeys
from serve.auth import ApiKeyAuth, needs_admin
from serve.config import Settings
from serve.gateway import _is_loopback, create_app


@pytest.fixture
def keys() -> ApiKeys:
    return ApiKeys(Store(None))


def tiny_app(keys: ApiKeys, local_mode: bool = True) -> TestClient:
    app = FastAPI()

    @app.get("/v1/models")
    def models(request: Request):
        state = request.state
        return {
            "key": getattr(state, "api_key_id", None),
            "role": getattr(state, "api_key_role", None),
        }

    @app.get("/v1/adapters")
    def list_adapters():
        return []

    @app.post("/v1/adapters")
    def add_adapter():
        return {"ok": True}

    @app.get("/health")
    def health():
        return {"ok": True}

    @app.get("/")
    def page():  # stands for the Gradio UI mounted at `/`
        return {"ui": True}

    @app.get("/gradio_api/info")
    def gradio_info():
        return {"ui": True}

    @app.websocket("/ws")
    async def socket(websocket: WebSocket):
        await websocket.accept()
        await websocket.send_text("hello")
        await websocket.close()

    app.add_middleware(ApiKeyAuth, keys=keys, local_mode=local_mode)
    return TestClient(base_url="http://127.0.0.1", app=app)


@pytest.fixture
def client(keys) -> TestClient:
    return tiny_app(keys)


def bearer(secret: str) -> dict:
    return {"Authorization": f"Bearer {secret}"}


def assert_error(resp, status: int, type_: str, code: str) -> str:
    """OpenAI's error shape with this status, type and code; returns the message."""
    assert resp.status_code == status
    error = resp.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["type"], error["code"]) == (type_, code)
    return error["message"]


def assert_401(resp) -> str:
    return assert_error(resp, 401, "invalid_request_error", "invalid_api_key")


@pytest.mark.parametrize(
    "method, path, admin",
    [
        ("POST", "/v1/chat/completions", False),
        ("POST", "/v1/feedback/ratings", False),
        ("GET", "/v1/models", False),
        ("GET", "/v1/adapters", False),
        ("POST", "/v1/adapters", True),
        ("POST", "/v1/adapters/tone/promote", True),
        ("DELETE", "/v1/adapters/tone@1", True),
        ("GET", "/v1/train/jobs/1", False),
        ("POST", "/v1/train", True),
        ("GET", "/v1/keys", True),
        ("POST", "/v1/keys", True),
        ("POST", "/v1/adapters-elsewhere", False),  # a path segment, not a string prefix
    ],
)
def test_policy_table(method, path, admin):
    assert needs_admin(method, path) is admin


def test_local_mode_without_keys_lets_requests_through(client):
    assert client.get("/v1/models").json() == {"key": None, "role": None}
    assert client.post("/v1/adapters").status_code == 200


def test_without_keys_off_loopback_everything_is_refused(keys):
    message = assert_401(tiny_app(keys, local_mode=False).get("/v1/models"))
    assert "no active API key" in message and "flywheel keys create" in message


def test_missing_key_is_401_and_says_how_to_send_one(client, keys):
    keys.create("someone", "user")
    resp = client.get("/v1/models")
    message = assert_401(resp)
    assert "Authorization: Bearer" in message and "flywheel keys create" in message
    assert resp.headers["WWW-Authenticate"] == "Bearer"
    _, secret = keys.create("other", "user")
    basic = {"Authorization": f"Basic {secret}"}
    assert "missing API key" in assert_401(client.get("/v1/models", headers=basic))


def test_unknown_key_is_401(client, keys):
    _, secret = keys.create("someone", "user")
    for wrong in ("fw-wrong", secret[:12] + "x" * (len(secret) - 12), secret + "x"):
        resp = client.get("/v1/models", headers=bearer(wrong))
        assert "unknown or revoked" in assert_401(resp)


def test_open_paths_stay_open_once_keys_exist(client, keys):
    keys.create("someone", "user")
    assert client.get("/health").status_code == 200


def test_a_valid_key_passes_and_is_known_to_the_route(client, keys):
    row, secret = keys.create("someone", "user")
    resp = client.get("/v1/models", headers=bearer(secret))
    assert resp.json() == {"key": row["id"], "role": "user"}


def test_user_keys_read_but_cannot_change_adapters(client, keys):
    _, user = keys.create("user", "user")
    _, admin = keys.create("admin", "admin")
    assert client.get("/v1/adapters", headers=bearer(user)).status_code == 200
    resp = client.post("/v1/adapters", headers=bearer(user))
    message = assert_error(resp, 403, "invalid_request_error", "insufficient_permissions")
    assert "POST /v1/adapters" in message and "--role admin" in message
    assert client.post("/v1/adapters", headers=bearer(admin)).status_code == 200


def test_revoked_key_is_refused(keys, client, monkeypatch):
    monkeypatch.setattr("serve.auth.CACHE_SECONDS", 0)
    row, secret = keys.create("someone", "user")
    keys.create("other", "user")
    assert client.get("/v1/models", headers=bearer(secret)).status_code == 200
    keys.revoke(row["id"])
    assert_401(client.get("/v1/models", headers=bearer(secret)))


def test_a_verified_key_is_not_looked_up_again_within_the_cache_window(client, keys, monkeypatch):
    _, secret = keys.create("someone", "user")
    lookups = []
    verify = keys.verify
    monkeypatch.setattr(keys, "verify", lambda s: lookups.append(s) or verify(s))
    for _ in range(5):
        assert client.get("/v1/models", headers=bearer(secret)).status_code == 200
    assert len(lookups) == 1


def test_rate_limit_answers_429_with_retry_after(client, keys):
    _, secret = keys.create("slow", "user", rpm=3)
    _, other = keys.create("other", "user", rpm=3)
    statuses = [client.get("/v1/models", headers=bearer(secret)).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    resp = client.get("/v1/models", headers=bearer(secret))
    message = assert_error(resp, 429, "rate_limit_error", "rate_limit_exceeded")
    assert "3 requests per minute" in message
    assert 1 <= int(resp.headers["Retry-After"]) <= 20  # one request per 20 s at rpm=3
    assert client.get("/v1/models", headers=bearer(other)).status_code == 200  # per key


@pytest.mark.parametrize(
    "host, loopback",
    [
        ("127.0.0.1", True),
        ("127.0.1.1", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.5", False),
        ("example.com", False),
        ("127.0.0.1.evil.example", False),
        ("[::1]", True),
    ],
)
def test_only_loopback_hosts_may_run_without_keys(host, loopback):
    assert _is_loopback(host) is loopback


@pytest.mark.parametrize("host, status", [("127.0.0.1", 200), ("0.0.0.0", 401)])
def test_gateway_serves_keyless_only_on_loopback(tmp_path, host, status):
    # the engine is never called: listing adapters reads the store
    engine = "http://127.0.0.1:9"
    settings = Settings("m", "m", host=host, data_dir=tmp_path, ui=False, engine_url=engine)
    client = TestClient(base_url="http://127.0.0.1", app=create_app(settings))
    assert client.get("/v1/adapters").status_code == status


def test_local_mode_answers_only_loopback_host_names(keys):
    """DNS rebinding: evil.example re-pointed at 127.0.0.1 must not reach a keyless gateway."""
    client = tiny_app(keys)
    assert client.get("/v1/models", headers={"Host": "localhost:8000"}).status_code == 200
    assert client.get("/v1/models", headers={"Host": "[::1]:8000"}).status_code == 200
    refused = client.get("/v1/models", headers={"Host": "evil.example:8000"})
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "host_refused"
    assert "flywheel keys create" in refused.json()["error"]["message"]


REBOUND_HOSTS = [
    "127.0.0.1.evil.example:8000",  # starts with "127." but is a DNS name an attacker owns
    "127.evil.example",
    "localhost.evil.example:8000",
    "127.1:8000",  # not a strict address literal
    "localhost.:8000",
    "evil.example",
    "[::1].evil.example",
]


@pytest.mark.parametrize("host", REBOUND_HOSTS)
def test_local_mode_refuses_names_that_merely_look_like_loopback(keys, host):
    """Regression (hardening 1): `name.startswith("127.")` let 127.0.0.1.evil.example through."""
    refused = tiny_app(keys).get("/v1/models", headers={"Host": host})
    assert_error(refused, 403, "invalid_request_error", "host_refused")


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.1.1:8000", "LOCALHOST:8000", "[::1]"])
def test_local_mode_accepts_loopback_literals(keys, host):
    assert tiny_app(keys).get("/v1/models", headers={"Host": host}).status_code == 200


@pytest.mark.parametrize("path", ["/health", "/", "/gradio_api/info"])
def test_local_mode_checks_the_host_on_every_route(keys, path):
    """Regression (hardening 2): the UI at `/` answered any Host, and its handlers call the API."""
    client = tiny_app(keys)
    assert client.get(path, headers={"Host": "127.0.0.1.evil.example:8000"}).status_code == 403
    assert client.get(path, headers={"Host": "127.0.0.1:8000"}).status_code != 403


def test_local_mode_refuses_a_websocket_from_a_foreign_host(keys):
    from starlette.websockets import WebSocketDisconnect

    with pytest.raises(WebSocketDisconnect) as closed:
        with tiny_app(keys).websocket_connect("/ws", headers={"Host": "evil.example"}):
            pass
    assert closed.value.code == 1008
    with tiny_app(keys).websocket_connect("/ws", headers={"Host": "localhost"}) as ws:
        assert ws.receive_text() == "hello"


def test_once_a_key_exists_the_ui_answers_any_host(keys):
    """With keys, every API call from the page needs the rater's own key, which a page on
    another origin cannot read: the Host check is the keyless mode's defence only."""
    keys.create("admin", role="admin")
    assert tiny_app(keys).get("/", headers={"Host": "flywheel.example"}).status_code == 200


def test_a_user_key_judges_as_itself_and_only_an_admin_may_name_a_rater(tmp_path):
    """Hardening 3: a user key could send any `rater` (another person, another key's label) and
    it won over the key's identity."""
    from feedback import Exchange

    store = Store(tmp_path / "flywheel.db")
    keys = ApiKeys(store)
    _, plain = keys.create("app", "user")
    _, named = keys.create("alice's laptop", "user", rater="alice")
    _, admin = keys.create("ops", "admin")
    prompt = [{"role": "user", "content": "Hi"}]
    store.log_exchanges(
        Exchange(id=f"x{i}", model="m", engine_model="m", messages=prompt, completion=f"a{i}")
        for i in range(6)
    )
    store.close()
    settings = Settings("m", "m", data_dir=tmp_path, ui=False, engine_url="http://127.0.0.1:9")
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as gateway:

        def rate(i: int, secret: str, rater: str | None = None):
            body = {"completion_id": f"x{i}", "value": 1, **({"rater": rater} if rater else {})}
            return gateway.post("/v1/feedback/ratings", json=body, headers=bearer(secret))

        assert rate(0, plain).status_code == 201
        assert rate(1, named).status_code == 201
        assert rate(2, named, "alice").status_code == 201  # its own name: fine
        for secret, who in ((plain, "bob"), (named, "bob"), (plain, "alice")):
            message = assert_error(rate(3, secret, who), 403, "invalid_request_error",
                                   "insufficient_permissions")  # fmt: skip
            assert "only an admin key" in message
        assert rate(4, admin, "carol").status_code == 201  # e.g. recording for a rater
        vote = gateway.post(
            "/v1/arena/battles/nope/vote", json={"winner": "a", "rater": "bob"},
            headers=bearer(plain),
        )  # fmt: skip
        assert vote.status_code == 403  # the arena's votes, too
    raters = [r["rater"] for r in Store(tmp_path / "flywheel.db").db["ratings"].rows]
    assert raters[:2] == ["key:1", "alice"] and raters[2:] == ["alice", "carol"]


def test_a_key_lookup_never_holds_up_the_event_loop(keys):
    """Hardening 11: key lookups ran SQLite on the event loop under the store's lock, which a
    commit and its fsync (or a whole import) holds: every stream waited with them."""
    import asyncio
    import threading
    import time

    import httpx

    _, secret = keys.create("ci", "user")
    app = tiny_app(keys).app
    locked, release = threading.Event(), threading.Event()

    def hold_the_store() -> None:  # a long commit, an import
        with keys.store._lock:
            locked.set()
            release.wait(5)

    async def scenario() -> float:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            threading.Thread(target=hold_the_store).start()
            locked.wait(5)
            started = time.monotonic()
            keyed = asyncio.create_task(client.get("/v1/models", headers=bearer(secret)))
            health = asyncio.create_task(client.get("/health"))  # needs no store
            assert (await health).status_code == 200
            waited = time.monotonic() - started
            release.set()
            assert (await keyed).status_code == 200
            return waited

    assert asyncio.run(scenario()) < 0.5


def test_a_request_is_not_held_by_a_long_import_when_its_key_was_seen(keys, monkeypatch):
    """Hardening 11: once the 5 s cache expired, the next request waited for the store's lock,
    which an import holds for its whole transaction (a probe waited over 60 s)."""
    import threading
    import time

    _, secret = keys.create("ci", "user")
    locked, release = threading.Event(), threading.Event()

    def import_running() -> None:
        with keys.store._lock:
            locked.set()
            release.wait(10)

    with tiny_app(keys) as client:  # one event loop for every request, as a server has
        assert client.get("/v1/models", headers=bearer(secret)).status_code == 200  # seen
        monkeypatch.setattr("serve.auth.CACHE_SECONDS", 0)  # every answer is stale now
        threading.Thread(target=import_running).start()
        locked.wait(5)
        try:
            started = time.monotonic()
            assert client.get("/v1/models", headers=bearer(secret)).status_code == 200
            assert time.monotonic() - started < 2
        finally:
            release.set()
