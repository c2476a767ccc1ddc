"""DPO on a tiny random Llama: the LoRA learns, the base stays frozen, the engine accepts it,
held-out rows are evaluated, and a continued adapter keeps the base as its reference."""

import json

import pytest
from safetensors.torch import load_file

from serve.adapter_checks import describe_base, validate_adapter
from train.dpo import DpoParams, train
from train.unpadded import length_groups

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


def test_lora_layers_adapts_only_the_top_blocks_and_stays_servable(tiny_llama, tmp_path):
    out = tmp_path / "adapter"
    params = DpoParams(max_steps=1, batch_size=2, lora_layers=1, learning_rate=1e-2)
    train(str(tiny_llama), PAIRS, [], out, params)
    weights = load_file(out / "adapter_model.safetensors")
    blocks = {name.split(".layers.")[1].split(".")[0] for name in weights}
    assert blocks == {"1"}  # the tiny Llama's top block of 2
    validate_adapter(out, str(tiny_llama), 16, describe_base(str(tiny_llama)))
    with pytest.raises(ValueError, match="the model has 2 blocks"):
        train(str(tiny_llama), PAIRS, [], tmp_path / "b", DpoParams(max_steps=1, lora_layers=3))
    with pytest.raises(ValueError, match="lora_layers must be 0"):
        DpoParams(lora_layers=-1)


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


def test_length_groups_cover_every_row_and_cut_the_padding():
    lengths = [73, 46, 73, 47, 70, 45, 72, 46]  # chosen and rejected answers, interleaved
    groups = length_groups(lengths)
    assert sorted(i for g in groups for i in g) == list(range(len(lengths)))
    assert len(groups) == 2 and {max(lengths[i] for i in g) for g in groups} == {73, 47}
    assert length_groups([50] * 8) == [list(range(8))]  # nothing to save
    assert length_groups([10, 11, 12]) == [[2, 1, 0]]  # saving less than a forward costs


def _padded_batch(tokenizer):
    texts = ["A long answer " * 6, "Short.", "A middle sized answer " * 2, "No."]
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    assert batch["attention_mask"].sum(1).tolist() != [batch["input_ids"].size(1)] * 4
    return batch


def test_the_unpadded_backbone_gives_the_same_hidden_states_and_gradients(tiny_llama):
    """Splitting the batch by length must not change what training sees at any real token."""
    import torch
    from transformers import AutoModelForCausalLM

    from train.lora import load_tokenizer
    from train.unpadded import run_unpadded

    tokenizer = load_tokenizer(str(tiny_llama))
    tokenizer.padding_side = "right"
    batch = _padded_batch(tokenizer)
    mask = batch["attention_mask"].bool()
    assert len(length_groups(mask.sum(1).tolist())) > 1  # the batch really is split
    results = []
    for unpadded in (False, True):
        model = AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32)
        if unpadded:
            run_unpadded(model)
        hidden = model.base_model(**batch, use_cache=False).last_hidden_state
        hidden[mask].pow(2).sum().backward()
        results.append((hidden[mask], model.lm_head.weight.grad))
    (padded, padded_grad), (unpadded, unpadded_grad) = results
    torch.testing.assert_close(unpadded, padded, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(unpadded_grad, padded_grad, atol=1e-4, rtol=1e-4)


def test_sft_weight_adds_the_chosen_answers_likelihood_to_the_loss(tiny_llama, tmp_path):
    """Same rows, same seed: the likelihood term changes the loss, and both runs learn."""
    losses = {}
    for weight in (0.0, 1.0):
        logged: list[dict] = []
        params = DpoParams(max_steps=2, batch_size=2, learning_rate=1e-2, sft_weight=weight)
        train(str(tiny_llama), PAIRS, [], tmp_path / str(weight), params,
              lambda s, t, m, logged=logged: logged.append(m))  # fmt: skip
        losses[weight] = [row["loss"] for row in logged if "loss" in row]
    # the random tiny model's NLL per token is ~ln(vocab) = ~10.8: far above DPO's ~0.69
    assert losses[0.0][0] < 1 < 5 < losses[1.0][0]
    with pytest.raises(ValueError, match="sft_weight must not be negative"):
        DpoParams(sft_weight=-1)


@pytest.mark.parametrize(
    "schedule, expected", [("constant", [1e-2, 1e-2, 1e-2]), ("linear", [1e-2, 2e-2 / 3, 1e-2 / 3])]
)
def test_lr_schedule_sets_the_learning_rate_of_every_step(tiny_llama, tmp_path, schedule, expected):
    logged = []
    params = DpoParams(max_steps=3, batch_size=2, learning_rate=1e-2, lr_schedule=schedule)
    train(str(tiny_llama), PAIRS, [], tmp_path / "a", params, lambda s, t, m: logged.append(m))
    rates = [row["learning_rate"] for row in logged if "loss" in row]
    assert rates == pytest.approx(expected)
    with pytest.raises(ValueError, match="lr_schedule must be one of linear, constant, cosine"):
        DpoParams(lr_schedule="step")
