"""The registry on the real engine: promote, roll back, delete; a bad adapter never goes live."""

from __future__ import annotations

import json
import shutil

import httpx
import pytest

from feedback import Store

pytestmark = pytest.mark.integration


def post(stack, path: str, body: dict | None = None) -> httpx.Response:
    return httpx.post(f"{stack.api}{path}", json=body, timeout=300)


def ask(stack, model: str) -> dict:
    body = {"model": model, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}
    return httpx.post(f"{stack.api}/chat/completions", json=body, timeout=120).json()


def engine_models(stack) -> set[str]:
    return {m["id"] for m in httpx.get(f"{stack.api}/models").json()["data"]}


@pytest.fixture(scope="module")
def adapter_folder(stack, trained_adapter):
    assert trained_adapter.result.returncode == 0, trained_adapter.result.stderr[-2000:]
    store = Store(stack.data_dir / "flywheel.db")
    [row] = [r for r in store.adapters() if r["name"] == trained_adapter.name]
    return row["path"]


def test_promote_rollback_and_delete_on_the_running_engine(stack, trained_adapter, adapter_folder):
    name = trained_adapter.name
    assert post(stack, f"/adapters/{name}/promote").json()["live"] == f"{name}@1"
    assert ask(stack, "live")["model"] == f"{name}@1"

    copy = post(stack, "/adapters", {"name": "it-copy", "path": adapter_folder})
    assert copy.status_code == 201, copy.text
    assert copy.json()["path"] == adapter_folder  # the same bytes are stored once
    assert post(stack, "/adapters/it-copy/promote").json() == {
        "live": "it-copy@1", "previous": f"{name}@1", "retired": None,
    }  # fmt: skip
    assert ask(stack, "live")["model"] == "it-copy@1"

    refused = httpx.delete(f"{stack.api}/adapters/it-copy")
    assert refused.status_code == 409 and "is live" in refused.json()["error"]["message"]

    assert post(stack, "/adapters/it-copy/rollback").json()["live"] == f"{name}@1"
    assert ask(stack, "live")["model"] == f"{name}@1"
    assert "it-copy@1" not in engine_models(stack)
    gone = httpx.post(f"{stack.api}/chat/completions", json={"model": "it-copy", "messages": [{}]})
    assert gone.status_code == 404


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"r": 64}, "rank 64"),
        ({"use_dora": True}, "DoRA"),
        ({"modules_to_save": ["lm_head"]}, "modules_to_save"),
        ({"base_model_name_or_path": "/models/other-model"}, "trained on"),
        ({"target_modules": ["q_proj", "no_such_proj"]}, "do not exist"),
    ],
)
def test_a_malformed_adapter_is_rejected_and_live_keeps_serving(
    stack, adapter_folder, tmp_path, change, message
):
    live_before = ask(stack, "live")["model"]
    bad = tmp_path / "bad"
    shutil.copytree(adapter_folder, bad)
    config = json.loads((bad / "adapter_config.json").read_text())
    (bad / "adapter_config.json").write_text(json.dumps({**config, **change}))
    resp = post(stack, "/adapters", {"name": "bad", "path": str(bad)})
    assert resp.status_code == 422
    assert message in resp.json()["error"]["message"]
    assert ask(stack, "live")["model"] == live_before
    assert not any(m.startswith("bad") for m in engine_models(stack))
