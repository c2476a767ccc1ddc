"""Every malformed adapter is refused before the engine sees it, with a message naming why."""

from pathlib import Path

import pytest
import torch

from serve.adapter_checks import validate_adapter
from serve.errors import AdapterRejected
from tests.unit.adapter_files import write_adapter

BASE = "/models/SmolLM2-135M-Instruct"


def make_adapter(path: Path, weights: dict | None = None, **config) -> Path:
    """A LoRA on q_proj (one zero A matrix unless weights are given)."""
    if weights is None:
        weights = {"base_model.model.layers.0.self_attn.q_proj.lora_A.weight": torch.zeros(8, 16)}
    return write_adapter(path, weights, BASE, **config)


def test_a_valid_adapter_passes(tmp_path):
    assert validate_adapter(make_adapter(tmp_path / "ok"), BASE, 16)["r"] == 8


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"use_dora": True}, "DoRA"),
        ({"modules_to_save": ["lm_head"]}, "modules_to_save"),
        ({"r": 64}, "rank 64"),
        ({"peft_type": "IA3"}, "only LoRA"),
        ({"base_model_name_or_path": "/models/Llama-3-8B"}, "trained on"),
    ],
)
def test_config_the_engine_cannot_serve_is_refused(tmp_path, config, message):
    with pytest.raises(AdapterRejected, match=message):
        validate_adapter(make_adapter(tmp_path / "a", **config), BASE, 16)


def test_missing_folder_config_or_weights_is_refused(tmp_path):
    with pytest.raises(AdapterRejected, match="not a folder"):
        validate_adapter(tmp_path / "nowhere", BASE, 16)
    (tmp_path / "empty").mkdir()
    with pytest.raises(AdapterRejected, match=r"no adapter_config\.json"):
        validate_adapter(tmp_path / "empty", BASE, 16)
    adapter = make_adapter(tmp_path / "noweights")
    (adapter / "adapter_model.safetensors").unlink()
    (adapter / "adapter_model.bin").write_bytes(b"pickle")
    with pytest.raises(AdapterRejected, match="pickled"):
        validate_adapter(adapter, BASE, 16)


def test_truncated_weights_are_refused(tmp_path):
    adapter = make_adapter(tmp_path / "trunc")
    weights = adapter / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:40])
    with pytest.raises(AdapterRejected, match="cannot be read"):
        validate_adapter(adapter, BASE, 16)


def test_broken_json_is_refused(tmp_path):
    adapter = make_adapter(tmp_path / "json")
    (adapter / "adapter_config.json").write_text("{not json")
    with pytest.raises(AdapterRejected, match="not valid JSON"):
        validate_adapter(adapter, BASE, 16)


def test_resized_embeddings_are_refused(tmp_path):
    weights = {"base_model.model.embed_tokens.weight": torch.zeros(4, 4)}
    with pytest.raises(AdapterRejected, match="embeddings"):
        validate_adapter(make_adapter(tmp_path / "emb", weights=weights), BASE, 16)
