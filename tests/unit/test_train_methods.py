"""KTO, reward model and SFT on a tiny random Llama, the shared skeleton (evaluation, early
stopping, continuing an adapter), the base-vs-new comparisons, and the params registry."""

import json
import os

import pytest
from safetensors.torch import load_file

from serve.adapter_checks import describe_base, validate_adapter
from train import methods
from train.evaluation import pairwise_accuracy, reward_scores, sample_side_by_side
from train.kto import kto_weights
from train.reward import load_reward_model
from train.sft import as_prompt_completion


def user(text):
    return [{"role": "user", "content": text}]


def assistant(text):
    return [{"role": "assistant", "content": text}]


PAIRS = [
    {
        "prompt": user(f"Question {i}?"),
        "chosen": assistant(f"A kind, full answer number {i}."),
        "rejected": assistant("No."),
    }
    for i in range(4)
]
ROWS = {
    # three thumbs-up, one thumbs-down: the weights must make up for it
    "kto": [
        {"prompt": p["prompt"], "completion": p["chosen" if i else "rejected"], "label": bool(i)}
        for i, p in enumerate(PAIRS)
    ],
    "reward": PAIRS,
    "sft": [{"messages": p["prompt"] + p["chosen"]} for p in PAIRS],
}


@pytest.fixture(scope="module")
def trained(tiny_llama, tmp_path_factory):
    """Each method trained once for 2 steps without held-out rows: (out, logged rows, metrics)."""
    runs = {}

    def run(method):
        if method not in runs:
            logged = []
            out = tmp_path_factory.mktemp(method) / "adapter"
            params = methods.get(method).params(
                max_steps=2, batch_size=2, lora_r=8, lora_alpha=16, learning_rate=1e-2
            )
            metrics = methods.get(method).train(
                str(tiny_llama),
                ROWS[method],
                [],
                out,
                params,
                lambda s, t, m: logged.append((s, m)),
            )
            runs[method] = out, logged, metrics
        return runs[method]

    return run


@pytest.mark.parametrize("method", ["kto", "reward", "sft"])
def test_method_trains_a_lora_and_logs_progress(method, trained, tiny_llama):
    out, logged, metrics = trained(method)
    assert [step for step, row in logged if "loss" in row] == [1, 2]
    assert metrics["method"] == method and metrics["steps"] == 2
    assert metrics["evaluation"].startswith("none")  # no held-out rows: says so
    weights = load_file(out / "adapter_model.safetensors")
    lora_b = [t for name, t in weights.items() if "lora_B" in name]
    assert lora_b and any(t.abs().sum() > 0 for t in lora_b)  # B starts at zero: it moved
    head = {"score"} if method == "reward" else set()  # the reward head is trained in full
    assert {n for n in weights if "lora" not in n} == {f"base_model.model.{h}.weight" for h in head}
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["r"] == 8
    if method != "reward":  # served by the engine; the reward model is used offline only
        validate_adapter(out, str(tiny_llama), 16, describe_base(str(tiny_llama)))


def test_kto_weights_balance_the_label_counts(trained):
    _, _, metrics = trained("kto")
    assert (metrics["desirable_weight"], metrics["undesirable_weight"]) == (1.0, 3.0)
    assert metrics["reference"] == "base"
    for n_d, n_u in [(3, 1), (1, 3), (7, 3), (2, 9), (5, 5), (100, 7)]:
        w_d, w_u = kto_weights([True] * n_d + [False] * n_u)
        assert 1 <= (n_d * w_d) / (n_u * w_u) <= 4 / 3, (n_d, n_u)
    assert kto_weights([True, False], 2.0, 0.5) == (2.0, 0.5)  # given weights are kept
    w_d, w_u = kto_weights([True] * 3 + [False], desirable=1.0)
    assert 1 <= (3 * w_d) / (1 * w_u) <= 4 / 3


def test_kto_continues_from_an_adapter_with_the_base_as_reference(trained, tiny_llama, tmp_path):
    start, _, _ = trained("kto")
    logged = []
    params = methods.get("kto").params(max_steps=1, batch_size=4, learning_rate=0.0)
    metrics = methods.get("kto").train(
        str(tiny_llama), ROWS["kto"], [], tmp_path / "next", params,
        lambda s, t, m: logged.append(m), init_adapter=start,
    )  # fmt: skip
    before = load_file(start / "adapter_model.safetensors")
    after = load_file(tmp_path / "next" / "adapter_model.safetensors")
    assert all((before[k] == after[k]).all() for k in before)
    assert metrics["reference"] == "base"
    assert logged[0]["rewards/chosen"] != 0  # policy = start adapter, reference = base


def test_eval_each_epoch_early_stopping_and_base_comparison(tiny_llama, tmp_path):
    """lr 0: the eval loss never improves, so patience 1 stops after the 2nd of 3 epochs, the
    first checkpoint is the best one, and the tuned eval loss equals the base's."""
    logged = []
    params = methods.get("sft").params(
        epochs=3, batch_size=2, learning_rate=0.0, early_stopping_patience=1, dtype="float32"
    )
    metrics = methods.get("sft").train(
        str(tiny_llama), ROWS["sft"], ROWS["sft"][:2], tmp_path / "a", params,
        lambda s, t, m: logged.append((s, m)),
    )  # fmt: skip
    assert [step for step, row in logged if "eval_loss" in row][:2] == [2, 4]
    assert metrics["stopped_early"] and metrics["steps"] == 4 < metrics["total_steps"] == 6
    assert metrics["best_step"] == 2
    assert metrics["eval_base_loss"] == pytest.approx(metrics["eval_loss"])
    assert not (tmp_path / "a.checkpoints").exists()


def test_reward_model_ranks_held_out_pairs(tiny_llama, tmp_path):
    params = methods.get("reward").params(epochs=2, batch_size=2, learning_rate=1e-2)
    out = tmp_path / "rm"
    metrics = methods.get("reward").train(str(tiny_llama), PAIRS, PAIRS[:2], out, params)
    assert 0 <= metrics["eval_pairwise_accuracy"] <= 1
    assert 0 <= metrics["eval_accuracy"] <= 1
    model, tokenizer = load_reward_model(str(tiny_llama), out)  # offline, as best-of-n will
    assert tokenizer.pad_token is not None
    assert pairwise_accuracy(model, tokenizer, PAIRS) == 1.0  # trivially separable pairs


def test_reward_scores_in_length_sorted_batches_keep_each_conversations_score(tiny_llama, tmp_path):
    params = methods.get("reward").params(epochs=1, batch_size=2, dtype="float32")
    out = tmp_path / "rm"
    methods.get("reward").train(str(tiny_llama), PAIRS, [], out, params)
    model, tokenizer = load_reward_model(str(tiny_llama), out, dtype="float32")
    lengths = [9, 1, 30, 4, 17, 2, 12]  # unsorted, so the batches reorder them
    conversations = [user("Say something.") + assistant("word " * n) for n in lengths]
    one_by_one = [reward_scores(model, tokenizer, [c], batch_size=1)[0] for c in conversations]
    batched = reward_scores(model, tokenizer, conversations, batch_size=3)
    assert batched == pytest.approx(one_by_one, abs=1e-4)
    assert len(set(one_by_one)) == len(one_by_one)  # distinct: a mix-up could not pass


def test_the_merged_reward_model_scores_as_the_unmerged_one(tiny_llama, tmp_path):
    import torch
    from peft import PeftModel

    from train.reward import load_scoring_model

    params = methods.get("reward").params(epochs=2, batch_size=2, learning_rate=1e-2)
    out = tmp_path / "rm"
    methods.get("reward").train(str(tiny_llama), PAIRS, [], out, params)
    merged, tokenizer = load_reward_model(str(tiny_llama), out, dtype="float32")
    base = load_scoring_model(str(tiny_llama), torch.float32, None, tokenizer.pad_token_id)
    unmerged = PeftModel.from_pretrained(base, str(out)).eval()
    conversations = [[*p["prompt"], *p["chosen"]] for p in PAIRS]
    conversations += [[*p["prompt"], *p["rejected"]] for p in PAIRS]
    expected = reward_scores(unmerged, tokenizer, conversations)
    assert reward_scores(merged, tokenizer, conversations) == pytest.approx(expected, abs=1e-4)
    assert not isinstance(merged, PeftModel)


def test_side_by_side_samples(trained, tiny_llama):
    out, _, _ = trained("sft")
    prompts = ["Hello?", user("Name a colour.")]
    samples = sample_side_by_side(str(tiny_llama), out, prompts, max_new_tokens=3)
    assert [s["prompt"] for s in samples] == prompts
    assert all(isinstance(s["base"], str) and isinstance(s["tuned"], str) for s in samples)


@pytest.mark.parametrize("method", sorted(methods.METHODS))
def test_no_rows_is_a_clear_error(method, tiny_llama, tmp_path):
    m = methods.get(method)
    with pytest.raises(ValueError, match="to train on: the training set is empty"):
        m.train(str(tiny_llama), [], [], tmp_path / "a", m.params())


def test_sft_rows_must_end_with_the_answer():
    row = {"messages": user("Hi") + assistant("Hello!")}
    assert as_prompt_completion(row) == {"prompt": user("Hi"), "completion": assistant("Hello!")}
    with pytest.raises(ValueError, match="assistant"):
        as_prompt_completion({"messages": user("Hi")})


def test_params_from_config_file_then_overrides(tmp_path):
    config = tmp_path / "dpo.yaml"
    config.write_text("method: dpo\nlearning-rate: 5e-4\nbeta: 0.2\nepochs: 4\nlora_r: 8\n")
    params = methods.load_params("dpo", config, {"beta": 0.3, "seed": None})
    assert (params.learning_rate, params.beta, params.epochs, params.lora_r) == (5e-4, 0.3, 4, 8)
    assert params.seed == 0  # None: not given on the command line
    with pytest.raises(ValueError, match="not 'sft'"):
        methods.load_params("sft", config)

    json_config = tmp_path / "kto.json"
    json_config.write_text(json.dumps({"desirable_weight": 1.5, "eval_each_epoch": "false"}))
    kto = methods.load_params("kto", json_config)
    assert kto.desirable_weight == 1.5 and kto.undesirable_weight is None
    assert kto.eval_each_epoch is False


def test_params_refuse_what_they_do_not_know(tmp_path):
    config = tmp_path / "typo.yaml"
    config.write_text("lora_rank: 8\n")
    with pytest.raises(ValueError, match="unknown dpo parameters: lora_rank"):
        methods.load_params("dpo", config)
    with pytest.raises(ValueError, match="lora_r: 'eight' is not a int"):
        methods.load_params("dpo", overrides={"lora_r": "eight"})
    with pytest.raises(ValueError, match="dtype must be one of"):
        methods.load_params("dpo", overrides={"dtype": "fp8"})
    with pytest.raises(ValueError, match="unknown method 'ppo'"):
        methods.get("ppo")


def test_nonsense_hyperparameters_are_refused_by_name():
    from train.methods import load_params

    for name, value in (("lora_r", 0), ("batch_size", 0), ("epochs", 0)):
        with pytest.raises(ValueError, match=f"{name} must be greater than 0"):
            load_params("dpo", overrides={name: value})
    with pytest.raises(ValueError, match="learning_rate must not be negative"):
        load_params("kto", overrides={"learning_rate": -1.0})
    with pytest.raises(ValueError, match="max_steps"):
        load_params("sft", overrides={"max_steps": 0})


def test_threads_follow_the_cores_other_processes_leave_free(monkeypatch):
    import torch

    from train import spare_cores

    stat = "cpu  100 5 50 1000 20 1 2 3 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n"
    ticks = os.sysconf("SC_CLK_TCK")
    busy_s = spare_cores.machine_busy_seconds(stat)
    assert busy_s == pytest.approx(161 / ticks)  # idle, iowait left out
    threads = [spare_cores.spare_threads(2, load) for load in (0.0, 0.4, 0.6, 1.7, 5.0)]
    assert threads == [2, 2, 1, 1, 1]
    assert spare_cores.spare_threads(16, 4.2) == 12
    busy = iter([0.0, 1.5, 1.5])  # others used 1.5 cores over the first second, none after
    clock = iter([0.0, 1.0, 2.0])
    monkeypatch.setattr(spare_cores, "machine_busy_seconds", lambda: next(busy))
    monkeypatch.setattr(spare_cores.time, "monotonic", lambda: next(clock))
    monkeypatch.setattr(spare_cores.time, "process_time", lambda: 0.0)
    monkeypatch.setattr(spare_cores.time, "sleep", lambda s: None)
    before = torch.get_num_threads()
    try:
        spare = spare_cores.SpareCores(2)
        assert torch.get_num_threads() == 1
        assert spare.update() == 2 and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_best_of_n_keeps_only_pairs_across_the_threshold_human_pairs_set(tiny_llama, tmp_path):
    from train.best_of_n import Candidates, calibrated_threshold, synthetic_pairs

    params = methods.get("reward").params(epochs=2, batch_size=2, learning_rate=1e-2)
    out = tmp_path / "rm"
    methods.get("reward").train(str(tiny_llama), PAIRS, [], out, params)
    good, bad = "A kind, full answer number 7.", "No."
    logged = [
        Candidates(user("Question 7?"), [bad, good]),  # one good, one bad: a pair
        Candidates(user("Question 8?"), ["No.", "No!"]),  # both bad: best vs worst, no pair
    ]
    rows, threshold = synthetic_pairs(
        "http://engine.invalid", "policy", [], 2, str(tiny_llama), out, n=2,
        min_margin=0.0, logged=logged, anchors=PAIRS,
    )  # fmt: skip
    model, tokenizer = load_reward_model(str(tiny_llama), out)
    chosen = reward_scores(model, tokenizer, [p["prompt"] + p["chosen"] for p in PAIRS])
    rejected = reward_scores(model, tokenizer, [p["prompt"] + p["rejected"] for p in PAIRS])
    assert threshold == pytest.approx(calibrated_threshold(chosen, rejected), abs=0.05)
    assert rows == [{"prompt": user("Question 7?"), "chosen": assistant(good),
                     "rejected": assistant(bad)}]  # fmt: skip
    unanchored, none = synthetic_pairs(
        "http://engine.invalid", "policy", [], 2, str(tiny_llama), out, n=2,
        min_margin=0.0, logged=logged,
    )  # fmt: skip
    assert none is None and len(unanchored) == 2  # without anchors both bad answers pair up
