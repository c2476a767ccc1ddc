"""POST /v1/adapters refuses a name that would take over `base`, `live` or the base model."""

from __future__ import annotations

from fastapi.testclient import TestClient

from serve.config import Settings
from serve.gateway import create_app

BASE = "Base-1"


def test_a_reserved_name_is_refused_in_openai_shape(tmp_path):
    settings = Settings(
        f"/m/{BASE}", BASE, data_dir=tmp_path / "data", ui=False, engine_url="http://127.0.0.1:9"
    )
    client = TestClient(create_app(settings), base_url="http://127.0.0.1")
    store = client.app.state.services.store
    for name in ("base", "live", BASE):
        resp = client.post("/v1/adapters", json={"name": name, "path": str(tmp_path / "lora")})
        assert resp.status_code == 422, resp.text
        error = resp.json()["error"]
        assert error["code"] == "adapter_rejected" and error["param"] == "name"
        assert repr(name) in error["message"] and "choose another name" in error["message"]
    assert store.adapters() == []
