"""Adapter lifecycle without an engine: versions, managed copies, promote, rollback, delete."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from feedback import Store
from serve.adapters import AdapterRegistry
from serve.errors import AdapterRejected, Conflict, UnknownModel
from tests.unit.adapter_files import write_adapter

BASE = "Base-1"


def make_adapter(path: Path, seed: int = 0, targets=("q_proj",)) -> Path:
    """A LoRA whose weights differ by `seed` (two seeds: two versions, one seed: a repeat)."""
    torch.manual_seed(seed)
    weights = {"base_model.model.layers.0.self_attn.q_proj.lora_A.weight": torch.randn(8, 16)}
    return write_adapter(path, weights, f"/m/{BASE}", targets)


@pytest.fixture
def registry(tmp_path) -> AdapterRegistry:
    return AdapterRegistry(
        Store(None), tmp_path / "managed", BASE, f"/m/{BASE}", max_rank=16, keys_exist=lambda: False
    )


def run(coro):
    return asyncio.run(coro)


def test_versions_are_numbered_per_name_and_copied_by_content(registry, tmp_path):
    one = run(registry.register("tone", make_adapter(tmp_path / "a", seed=1)))
    two = run(registry.register("tone", make_adapter(tmp_path / "b", seed=2)))
    assert (one["engine_name"], two["engine_name"]) == ("tone@1", "tone@2")
    assert Path(one["path"]).name == one["sha256"] and Path(one["path"]).is_relative_to(
        tmp_path / "managed"
    )
    assert registry.resolve("tone") == "tone@2"  # newest, as nothing is live


def test_registering_the_same_weights_again_is_idempotent(registry, tmp_path):
    first = run(registry.register("tone", make_adapter(tmp_path / "a")))
    again = run(registry.register("tone", make_adapter(tmp_path / "copy")))
    assert again["id"] == first["id"]
    other = run(registry.register("other", make_adapter(tmp_path / "copy2")))
    assert other["path"] == first["path"]  # same bytes stored once


def test_promote_moves_live_and_the_name(registry, tmp_path):
    run(registry.register("tone", make_adapter(tmp_path / "a", seed=1)))
    run(registry.register("tone", make_adapter(tmp_path / "b", seed=2)))
    assert registry.resolve("live") == BASE
    change = run(registry.promote("tone", version=1))
    assert change == {"live": "tone@1", "previous": BASE}
    assert registry.resolve("live") == "tone@1"
    assert registry.resolve("tone") == "tone@1"  # the live version, though @2 is newer
    run(registry.promote("tone"))
    assert registry.resolve("live") == "tone@2"
    statuses = {r["engine_name"]: r["status"] for r in registry.store.adapters()}
    assert statuses == {"tone@1": "candidate", "tone@2": "live"}


def test_rollback_restores_the_previous_live_and_retires_the_current(registry, tmp_path):
    run(registry.register("tone", make_adapter(tmp_path / "a", seed=1)))
    run(registry.register("tone", make_adapter(tmp_path / "b", seed=2)))
    run(registry.promote("tone", 1))
    run(registry.promote("tone", 2))
    assert run(registry.rollback("tone")) == {"live": "tone@1", "retired": "tone@2"}
    assert registry.resolve("live") == "tone@1"
    with pytest.raises(UnknownModel):
        registry.resolve("tone@2")
    assert run(registry.rollback("tone")) == {"live": BASE, "retired": "tone@1"}
    assert registry.resolve("live") == BASE


def test_rollback_of_an_adapter_that_is_not_live_is_refused(registry, tmp_path):
    run(registry.register("tone", make_adapter(tmp_path / "a")))
    with pytest.raises(Conflict, match="not live"):
        run(registry.rollback("tone"))


def test_the_live_adapter_cannot_be_deleted_but_a_candidate_can(registry, tmp_path):
    run(registry.register("tone", make_adapter(tmp_path / "a", seed=1)))
    run(registry.register("tone", make_adapter(tmp_path / "b", seed=2)))
    run(registry.promote("tone", 1))
    with pytest.raises(Conflict, match="tone@1 is live"):
        run(registry.delete("tone"))
    assert run(registry.delete("tone@2")) == ["tone@2"]
    assert registry.resolve("tone") == "tone@1"
    with pytest.raises(UnknownModel):
        run(registry.delete("nothing"))


def test_aliases_and_names_are_listed_as_models(registry, tmp_path):
    run(registry.register("tone", make_adapter(tmp_path / "a")))
    run(registry.promote("tone"))
    cards = {c["id"]: c for c in registry.model_cards(created=0)}
    assert cards["base"]["root"] == BASE and cards["base"]["parent"] is None
    assert cards["live"]["root"] == "tone@1" and cards["live"]["parent"] == BASE
    assert cards["tone"]["root"] == "tone@1"


def test_a_rejected_adapter_leaves_nothing_behind(registry, tmp_path):
    bad = make_adapter(tmp_path / "bad")
    (bad / "adapter_model.safetensors").write_bytes(b"garbage")
    with pytest.raises(AdapterRejected):
        run(registry.register("tone", bad))
    assert registry.store.adapters() == []
    assert not (tmp_path / "managed").exists()


def test_symlinks_and_unknown_target_modules_are_refused(tmp_path):
    base = tmp_path / BASE
    base.mkdir()
    save_file({"model.layers.0.self_attn.q_proj.weight": torch.zeros(2, 2)},
              str(base / "model.safetensors"))  # fmt: skip
    registry = AdapterRegistry(
        Store(None), tmp_path / "managed", BASE, str(base), max_rank=16, keys_exist=lambda: False
    )
    with pytest.raises(AdapterRejected, match="do not exist"):
        run(registry.register("x", make_adapter(tmp_path / "t", targets=("q_proj", "mlp_x"))))
    linked = make_adapter(tmp_path / "l")
    (linked / "secret").symlink_to("/etc/passwd")
    with pytest.raises(AdapterRejected, match="symbolic link"):
        run(registry.register("x", linked))


@pytest.mark.parametrize("name", ["base", "live", BASE, "Live", "BASE"])
def test_names_that_routing_already_uses_are_refused_before_anything_is_written(
    registry, tmp_path, name
):
    with pytest.raises(AdapterRejected, match=r"reserved.*choose another name") as caught:
        run(registry.register(name, make_adapter(tmp_path / "a")))
    assert caught.value.param == "name"
    assert registry.store.adapters() == [] and not (tmp_path / "managed").exists()
    assert registry.resolve("base") == BASE and registry.resolve("live") == BASE


def test_an_adapter_peft_wrote_with_full_module_paths_is_served(tiny_llama, tmp_path):
    """Hardening 15: PEFT >= 0.21 writes "all-linear" out as full module paths, which the check
    (leaf names only) refused; flywheel kept a hand copy of "all-linear" to get leaf names."""
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    from train.lora import TrainParams, lora_config

    model = AutoModelForCausalLM.from_pretrained(tiny_llama)
    config = lora_config(TrainParams(lora_r=8, lora_layers=1), model)
    assert config.target_modules == "all-linear"  # PEFT's own, no hand copy
    get_peft_model(model, config).save_pretrained(tmp_path / "adapter")
    written = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert any("." in t for t in written["target_modules"])  # full paths, as PEFT 0.21 writes
    from safetensors import safe_open

    with safe_open(tmp_path / "adapter" / "adapter_model.safetensors", "pt") as weights:
        names = list(weights.keys())
    assert names and all(".layers.1." in name for name in names)  # lora_layers=1: the top
    registry = AdapterRegistry(
        Store(None),
        tmp_path / "managed",
        tiny_llama.name,
        str(tiny_llama),
        max_rank=16,
        keys_exist=lambda: False,
    )
    run(registry.register("full-paths", tmp_path / "adapter"))
    assert [a["name"] for a in registry.store.adapters()] == ["full-paths"]
