"""DPO on a tiny random Llama: the LoRA learns, the base stays frozen, the engine accepts it,
held-out rows are evaluated, and a continued adapter keeps the base as its reference."""

import json

import pytest
from safetensors.torch import load_file

from serve.adapter_checks import describe_base, validate_adapter
from train.dpo import DpoParams, train

PAIRS = [
    {
        "prompt": [{"role": "user", "content": f"Question {i}?"}],
        "chosen": [{"role": "assistant", "content": f"A kind, full answer number {i}."}],
        "rejected": [{"role": "assistant", "content": "No."}],
    }
    for i in range(4)
]


@pytest.fixture(scope="module")
def dpo_run(tiny_llama, tmp_path_factory):
    """One 3-step run (dtype from the CPU, as in production): (out dir, logged rows, metrics)."""
    logged = []
    out = tmp_path_factory.mktemp("dpo") / "adapter"
    params = DpoParams(max_steps=3, batch_size=2, lora_r=8, lora_alpha=16, learning_rate=1e-2)
    metrics = train(str(tiny_llama), PAIRS, [], out, params, lambda s, t, m: logged.append((s, m)))
    return out, logged, metrics


def test_dpo_trains_a_servable_lora_and_logs_progress(dpo_run, tiny_llama):
    out, logged, metrics = dpo_run
    assert [step for step, row in logged if "loss" in row] == [1, 2, 3]
    assert "rewards/accuracies" in metrics
    assert metrics["reference"] == "base"
    assert metrics["evaluation"].startswith("none")  # no held-out rows: says so
    weights = load_file(out / "adapter_model.safetensors")
    lora_b = [t for name, t in weights.items() if "lora_B" in name]
    assert lora_b and any(t.abs().sum() > 0 for t in lora_b)  # B starts at zero: it moved
    assert not any("lora" not in name for name in weights)  # only LoRA weights: base frozen
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["r"] == 8
    validate_adapter(out, str(tiny_llama), 16, describe_base(str(tiny_llama)))
    assert not out.with_name(out.name + ".checkpoints").exists()


def test_held_out_pairs_are_evaluated_against_the_base(tiny_llama, tmp_path):
    logged = []
    params = DpoParams(epochs=1, batch_size=2, learning_rate=1e-2, dtype="float32")
    metrics = train(
        str(tiny_llama), PAIRS, PAIRS[:2], tmp_path / "a", params, lambda s, t, m: logged.append(m)
    )
    assert any("eval_loss" in row for row in logged)  # streamed, as train rows are
    assert 0 <= metrics["eval_rewards/accuracies"] <= 1
    assert "eval_rewards/margins" in metrics and metrics["best_step"] == 2


def test_continuing_starts_from_the_adapter_and_keeps_the_base_as_reference(
    dpo_run, tiny_llama, tmp_path
):
    """Iterative DPO (TRL #1824): the reference is the base, never a copy of the start adapter."""
    start, _, _ = dpo_run
    logged = []
    params = DpoParams(max_steps=1, batch_size=2, learning_rate=0.0, dtype="float32")
    out = tmp_path / "next"
    metrics = train(
        str(tiny_llama),
        PAIRS,
        [],
        out,
        params,
        lambda s, t, m: logged.append(m),
        init_adapter=start,
    )
    before, after = (load_file(p / "adapter_model.safetensors") for p in (start, out))
    assert before.keys() == after.keys()
    assert all((before[k] == after[k]).all() for k in before)  # lr 0: the start weights, unchanged
    assert metrics["reference"] == "base" and metrics["init_adapter"] == str(start)
    # Against a copy of itself the policy's reward would be exactly 0; against the base it is not.
    assert logged[0]["rewards/chosen"] != 0


def test_no_pairs_is_a_clear_error(tiny_llama, tmp_path):
    with pytest.raises(ValueError, match="no preference pairs"):
        train(str(tiny_llama), [], [], tmp_path / "a", DpoParams())
