"""DPO on a tiny random Llama: the LoRA learns, the base stays frozen, the engine accepts it."""

import json

import pytest
from safetensors.torch import load_file

from serve.adapter_checks import validate_adapter
from train.dpo import DpoParams, train_dpo

PAIRS = [
    {
        "prompt": [{"role": "user", "content": f"Question {i}?"}],
        "chosen": [{"role": "assistant", "content": f"A kind, full answer number {i}."}],
        "rejected": [{"role": "assistant", "content": "No."}],
    }
    for i in range(4)
]


def test_dpo_trains_a_servable_lora_and_logs_progress(tiny_llama, tmp_path):
    logged = []
    out = tmp_path / "adapter"
    params = DpoParams(max_steps=3, batch_size=2, lora_r=8, lora_alpha=16, learning_rate=1e-2)
    metrics = train_dpo(str(tiny_llama), PAIRS, out, params, lambda s, t, m: logged.append((s, m)))

    assert [step for step, row in logged if "loss" in row] == [1, 2, 3]
    assert "rewards/accuracies" in metrics
    weights = load_file(out / "adapter_model.safetensors")
    lora_b = [t for name, t in weights.items() if "lora_B" in name]
    assert lora_b and any(t.abs().sum() > 0 for t in lora_b)  # B starts at zero: it moved
    assert not any("lora" not in name for name in weights)  # only LoRA weights: base frozen
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["r"] == 8
    validate_adapter(out, str(tiny_llama), max_rank=16)


def test_no_pairs_is_a_clear_error(tiny_llama, tmp_path):
    with pytest.raises(ValueError, match="no preference pairs"):
        train_dpo(str(tiny_llama), [], tmp_path / "a", DpoParams())
