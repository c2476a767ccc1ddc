"""The recipe: what a job trains with when nobody set a parameter, the same from every door."""

from __future__ import annotations

import pytest

from train import recipe
from train.dpo import DpoParams
from train.methods import given_names, load_params
from train.reward import RewardParams


def words(messages: list[dict]) -> int:
    """A stand-in tokenizer: one token per word, plus 4 per message for the template."""
    return sum(len(m["content"].split()) + 4 for m in messages)


def pair(prompt: str, chosen: str, rejected: str) -> dict:
    return {
        "prompt": [{"role": "user", "content": prompt}],
        "chosen": [{"role": "assistant", "content": chosen}],
        "rejected": [{"role": "assistant", "content": rejected}],
    }


ROWS = [pair("Hi there", "Hello " * 20, "Hey"), pair("Why?", "Because.", "No " * 50)]


def test_continuing_an_adapter_halves_dpos_rate_unless_it_was_given():
    params = DpoParams()
    continued, notes = recipe.choose("dpo", params, set(), ROWS, True, words)
    assert continued.learning_rate == params.learning_rate / 2
    assert "continuing an adapter" in notes[0]
    fresh, notes = recipe.choose("dpo", params, set(), ROWS, False, words)
    assert fresh.learning_rate == params.learning_rate
    assert [n for n in notes if "learning rate" in n] == []
    given, _ = recipe.choose(
        "dpo", DpoParams(learning_rate=3e-4), {"learning_rate"}, ROWS, True, words
    )
    assert given.learning_rate == 3e-4
    reward, _ = recipe.choose("reward", RewardParams(), set(), ROWS, True, words)
    assert reward.learning_rate == RewardParams().learning_rate  # its rate was never measured so


def test_whole_answers_fit_the_longest_row_rounded_up_and_capped():
    chosen, notes = recipe.choose("dpo", DpoParams(max_length=0), set(), ROWS, False, words)
    assert chosen.max_length == 64  # "Why?" + 50 words + 8 template tokens = 59 -> 64
    assert "whole answers" in notes[0] and "59 tokens" in notes[0]
    huge = [pair("Tell me", "word " * 2000, "no")]
    capped, notes = recipe.choose("dpo", DpoParams(max_length=0), set(), huge, False, words)
    assert capped.max_length == recipe.WHOLE_ANSWER_CAP and "cut" in notes[0]
    fixed, notes = recipe.choose("dpo", DpoParams(max_length=96), set(), ROWS, False, words)
    assert fixed.max_length == 96 and notes == []


def test_the_recipe_leaves_what_a_config_file_or_flag_set(tmp_path):
    config = tmp_path / "params.json"
    config.write_text('{"learning_rate": 2e-4, "epochs": 1}')
    assert given_names("dpo", config, {"beta": 0.2, "lora_r": None, "gateway": "x"}) == {
        "learning_rate",
        "epochs",
        "beta",
    }
    assert load_params("dpo", config).learning_rate == 2e-4


def test_an_empty_job_request_gets_the_loops_measured_recipe():
    """`POST /v1/train/jobs {"method": "dpo"}` and a loop round both send no parameter."""
    params = load_params("dpo")
    assert (params.learning_rate, params.sft_weight, params.epochs) == (1e-3, 1.0, 1)
    assert params.max_length == 0  # whole answers, sized by the recipe to the longest pair
    assert load_params("reward").epochs == 1
    assert "sft_weight=1" in recipe.summary("dpo") and "x0.5" in recipe.summary("dpo")


def test_max_length_may_be_zero_but_not_negative():
    assert DpoParams(max_length=0).max_length == 0
    with pytest.raises(ValueError, match="max_length"):
        DpoParams(max_length=-1)


def test_the_token_counter_applies_the_models_chat_template(tiny_llama):
    count = recipe.chat_token_counter(str(tiny_llama))
    short = count([{"role": "user", "content": "Hi"}])
    longer = count([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}])
    assert 0 < short < longer


def test_the_training_forms_hand_set_fields_start_at_each_methods_defaults():
    """The Training tab cannot import `train/` (it is an HTTP client), so its copy of the
    defaults is checked here: a form that drifted would send an old recipe when ticked."""
    from ui.training_tab import DEFAULT_EPOCHS, DEFAULT_LR

    for method in ("dpo", "kto", "reward", "sft"):
        defaults = load_params(method)
        assert (DEFAULT_LR[method], DEFAULT_EPOCHS[method]) == (
            defaults.learning_rate,
            defaults.epochs,
        ), method
