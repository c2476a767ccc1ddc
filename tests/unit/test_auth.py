"""The auth middleware's policy on a tiny app: local mode, 401/403/429 in OpenAI's shape."""

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from feedback import Store
from feedback.api_keys import ApiKeys
from serve.auth import ApiKeyAuth


@pytest.fixture
def keys() -> ApiKeys:
    return ApiKeys(Store(None))


@pytest.fixture
def client(keys) -> TestClient:
    app = FastAPI()

    @app.get("/v1/models")
    def models(request: Request):
        return {"key": getattr(request.state, "api_key_id", None)}

    @app.post("/v1/adapters")
    def adapters():
        return {"ok": True}

    @app.get("/health")
    def health():
        return {"ok": True}

    app.add_middleware(ApiKeyAuth, keys=keys)
    return TestClient(app)


def bearer(secret: str) -> dict:
    return {"Authorization": f"Bearer {secret}"}


def assert_error(resp, status: int, code: str):
    assert resp.status_code == status
    error = resp.json()["error"]
    assert error["code"] == code and error["message"]
    assert set(error) == {"message", "type", "param", "code"}


def test_local_mode_without_keys_lets_requests_through(client):
    assert client.get("/v1/models").json() == {"key": None}
    assert client.post("/v1/adapters").status_code == 200


def test_once_a_key_exists_requests_need_one(client, keys):
    keys.create("someone", "user")
    assert_error(client.get("/v1/models"), 401, "invalid_api_key")
    assert_error(client.get("/v1/models", headers=bearer("fw-wrong")), 401, "invalid_api_key")
    assert client.get("/health").status_code == 200  # not under /v1: stays open


def test_a_valid_key_passes_and_is_known_to_the_route(client, keys):
    row, secret = keys.create("someone", "user")
    assert client.get("/v1/models", headers=bearer(secret)).json() == {"key": row["id"]}


def test_user_keys_cannot_use_admin_routes(client, keys):
    _, user = keys.create("user", "user")
    _, admin = keys.create("admin", "admin")
    assert_error(client.post("/v1/adapters", headers=bearer(user)), 403, "insufficient_permissions")
    assert client.post("/v1/adapters", headers=bearer(admin)).status_code == 200


def test_revoked_key_is_refused(keys, client, monkeypatch):
    monkeypatch.setattr("serve.auth.CACHE_SECONDS", 0)
    row, secret = keys.create("someone", "user")
    keys.create("other", "user")
    assert client.get("/v1/models", headers=bearer(secret)).status_code == 200
    keys.revoke(row["id"])
    assert_error(client.get("/v1/models", headers=bearer(secret)), 401, "invalid_api_key")


def test_rate_limit_answers_429_with_retry_after(client, keys):
    _, secret = keys.create("slow", "user", rpm=3)
    statuses = [client.get("/v1/models", headers=bearer(secret)).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    resp = client.get("/v1/models", headers=bearer(secret))
    assert_error(resp, 429, "rate_limit_exceeded")
    assert int(resp.headers["Retry-After"]) >= 1
