"""`flywheel loop --param`: each job gets the parameters its method takes; a typo stops the loop
at once instead of after a round's worth of judgements."""

import subprocess
import sys

from train.loop import LATER_ROUND_DEFAULTS, ROUND_DEFAULTS, params_for, round_params


def test_a_dpo_only_parameter_is_not_sent_to_the_reward_job():
    params = {"epochs": 1, "sft_weight": 1.0, "beta": 0.2, "lora_layers": 15}
    assert params_for("reward", params) == {"epochs": 1, "lora_layers": 15}
    assert params_for("dpo", params) == params


def test_an_unknown_parameter_stops_the_loop_before_it_waits():
    result = subprocess.run(
        [sys.executable, "-m", "serve.cli", "loop", "--gateway", "http://127.0.0.1:9",
         "--param", "epochs=1", "--param", "sft_wieght=1"],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert result.returncode != 0
    assert "unknown dpo parameters: sft_wieght" in result.stderr


def test_a_round_uses_the_loop_defaults_unless_a_param_overrides_them():
    assert round_params("dpo", {}) == ROUND_DEFAULTS["dpo"]
    assert round_params("dpo", {"learning_rate": 5e-4})["learning_rate"] == 5e-4
    assert round_params("dpo", {"epochs": 1})["sft_weight"] == 1.0
    assert round_params("reward", {"sft_weight": 2.0, "learning_rate": 2e-4}) == {
        "epochs": 1,
        "learning_rate": 2e-4,
    }
    assert round_params("kto", {}) == {}  # no measured defaults: the method's own


def test_rounds_after_the_first_adapter_learn_at_half_the_rate_unless_a_param_says():
    first = round_params("dpo", {})
    later = round_params("dpo", {}, later=True)
    assert later["learning_rate"] == first["learning_rate"] / 2
    assert {k: v for k, v in later.items() if k != "learning_rate"} == {
        k: v for k, v in first.items() if k != "learning_rate"
    }
    assert round_params("dpo", {"learning_rate": 2e-4}, later=True)["learning_rate"] == 2e-4
    assert round_params("reward", {}, later=True) == round_params("reward", {})


def test_a_round_asks_the_gateway_whether_an_adapter_is_live(monkeypatch):
    """The loop keeps no state: a restarted loop must not train a later round at the first
    round's rate, so the job's rate follows the `live` card, not a counter."""
    import argparse

    from train import loop

    sent = []
    cards = {"data": [{"id": "base-model", "parent": None}, {"id": "live", "parent": None}]}

    def gateway(_args, method, path, body=None):
        if path == "/v1/models":
            return cards
        sent.append(body)
        return {"id": "j1", "status": "succeeded", "adapter": f"loop@{len(sent)}"}

    monkeypatch.setattr(loop, "call", gateway)
    args = argparse.Namespace(method="dpo", name="loop", base="live", synthetic_pairs=0, poll=0)
    loop.train_candidate(args, {})
    cards["data"][1] = {"id": "live", "root": "loop@1", "parent": "base-model"}
    loop.train_candidate(args, {})
    rates = [body["params"]["learning_rate"] for body in sent]
    assert rates == [
        ROUND_DEFAULTS["dpo"]["learning_rate"],
        LATER_ROUND_DEFAULTS["dpo"]["learning_rate"],
    ]


def test_the_loop_defaults_are_valid_parameters_of_their_methods():
    from train.methods import get

    for method, defaults in [*ROUND_DEFAULTS.items(), *LATER_ROUND_DEFAULTS.items()]:
        params = get(method).params(**defaults)
        assert {k: getattr(params, k) for k in defaults} == defaults


def test_the_gates_own_votes_do_not_start_the_next_round(monkeypatch):
    """Round 2 waits for `--threshold` judgements made after round 1's gate decided, however
    many arena votes the gate needed."""
    import argparse

    from train import loop
    from train.gate import Decision

    world = {"judgements": 0, "started_at": []}

    def people_judge(_seconds):  # each poll, one more judgement from a person
        world["judgements"] += 1

    def train(_args, _params):
        world["started_at"].append(world["judgements"])
        return f"loop@{len(world['started_at'])}"

    def gate(_args, _candidate, _policy, _health=None):
        world["judgements"] += 40  # the arena battles the gate watched
        return Decision("promote", "won", {})

    monkeypatch.setattr(loop, "judgement_count", lambda _args: world["judgements"])
    monkeypatch.setattr(loop, "train_candidate", train)
    monkeypatch.setattr(loop, "gate", gate)
    monkeypatch.setattr(loop.time, "sleep", people_judge)
    gate_fields = {f.name: f.default for f in loop.fields(loop.GatePolicy)}
    args = argparse.Namespace(
        method="dpo", param=[], synthetic_pairs=0, threshold=4, rounds=2, poll=1,
        health_prompts=0, **gate_fields,
    )  # fmt: skip
    assert loop.run_loop(args) == 0
    assert world["started_at"] == [4, 48]  # 4 judgements, 40 gate votes, then 4 more
