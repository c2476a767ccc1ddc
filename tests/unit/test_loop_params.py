"""`flywheel loop --param`: each job gets the parameters its method takes; a typo stops the loop
at once instead of after a round's worth of judgements."""

import subprocess
import sys

from train.loop import params_for


def test_a_dpo_only_parameter_is_not_sent_to_the_reward_job():
    params = {"epochs": 1, "sft_weight": 1.0, "beta": 0.2, "lora_layers": 15}
    assert params_for("reward", params) == {"epochs": 1, "lora_layers": 15}
    assert params_for("dpo", params) == params


def test_an_unknown_parameter_stops_the_loop_before_it_waits():
    result = subprocess.run(
        [sys.executable, "-m", "cli", "loop", "--gateway", "http://127.0.0.1:9",
         "--param", "epochs=1", "--param", "sft_wieght=1"],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert result.returncode != 0
    assert "unknown dpo parameters: sft_wieght" in result.stderr


def test_a_round_sends_only_its_param_values_and_leaves_the_rest_to_the_recipe(monkeypatch):
    """One recipe: a loop round's job is the job any door starts, plus the --param values."""
    import argparse

    from train import loop

    sent = []

    def gateway(_args, method, path, body=None):
        sent.append(body)
        return {"id": 1, "status": "succeeded", "adapter": f"loop@{len(sent)}"}

    monkeypatch.setattr(loop, "call", gateway)
    args = argparse.Namespace(method="dpo", name="loop", base="live", synthetic_pairs=0, poll=0)
    loop.train_candidate(args, {})
    loop.train_candidate(args, {"epochs": 1, "sft_weight": 2.0})
    assert [body["params"] for body in sent] == [{}, {"epochs": 1, "sft_weight": 2.0}]
    assert all(body["base"] == "live" for body in sent)


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
