"""The loop on the real stack: judgements -> `flywheel train --method dpo` -> served by name."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import httpx
import pytest

from feedback import Store

pytestmark = pytest.mark.integration


def test_dpo_adapter_is_registered_hot_loaded_and_answers(stack, trained_adapter):
    result = trained_adapter.result
    assert result.returncode == 0, result.stderr[-3000:]
    name = trained_adapter.name

    models = {m["id"]: m for m in httpx.get(f"{stack.api}/models").json()["data"]}
    assert models[f"{name}@1"]["parent"] == "SmolLM2-135M-Instruct"
    assert models[name]["root"] == f"{name}@1"

    body = {"model": name, "messages": [{"role": "user", "content": "Name a fruit."}]}
    reply = httpx.post(f"{stack.api}/chat/completions", json=body | {"max_tokens": 16}).json()
    assert reply["model"] == f"{name}@1"
    assert reply["choices"][0]["message"]["content"]


def test_training_job_and_adapter_carry_their_lineage(stack, trained_adapter):
    assert trained_adapter.result.returncode == 0
    store = Store(stack.data_dir / "flywheel.db")
    [adapter] = [a for a in store.adapters() if a["name"] == trained_adapter.name]
    job = store.job(adapter["job_id"])
    assert job["status"] == "succeeded" and job["adapter"] == adapter["engine_name"]
    assert [row["step"] for row in job["metrics"] if "loss" in row] == [1, 2]
    assert job["config"]["dataset_hash"] == adapter["dataset_hash"]

    folder = Path(adapter["path"])
    weights = (folder / "adapter_model.safetensors").read_bytes()
    assert hashlib.sha256(weights).hexdigest() == adapter["sha256"]
    lineage = json.loads((folder / "lineage.json").read_text())
    assert lineage["job_id"] == job["id"] and lineage["method"] == "dpo"
    assert not any(p.name.endswith(".tmp") for p in (stack.data_dir / "runs").rglob("*"))
