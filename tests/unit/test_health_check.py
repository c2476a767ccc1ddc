"""The gate's health check: a candidate whose long answers degenerate is retired before the
arena, with both models' figures in the decision."""

from __future__ import annotations

import argparse
import itertools

import pytest

from train import loop
from train.health_check import Health, verdict

HEALTHY = "Octopuses have three hearts. They are clever animals."
LOOPING = "Octopuses are great and " * 30


def health(model: str, healthy: float) -> Health:
    return Health(model, healthy, 64, {"empty": 0.0, "repetitive": 1 - healthy, "unfinished": 0})


def test_a_candidate_within_the_margin_passes_one_beyond_it_does_not():
    live = health("base", 0.60)
    assert verdict(health("c@1", 0.56), live, 0.05)[0]
    passed, reason = verdict(health("c@1", 0.50), live, 0.05)
    assert not passed
    assert "c@1 50% of 64 healthy" in reason and "live base 60% of 64 healthy" in reason
    assert "repetitive 50%" in reason and "more than 5%" in reason


class FakeGateway:
    """Just enough of the gateway for one loop round: a job, models, answers, decisions."""

    def __init__(self, candidate_text: str, board: list[dict] | None = None) -> None:
        self.candidate_text = candidate_text
        self.board = board or []
        self.judgements = itertools.count(0, 20)
        self.chats: list[dict] = []
        self.decisions: list[dict] = []
        self.leaderboard_reads = 0

    def __call__(self, args, method: str, path: str, payload=None, timeout=300):
        if path == "/v1/feedback/counts":
            return {"comparisons": next(self.judgements)}
        if path == "/v1/models":
            return {"data": [{"id": "base-model", "root": "base-model"},
                             {"id": "live", "root": "base-model"}]}  # fmt: skip
        if path == "/v1/train/jobs":
            return {"id": 1, "status": "succeeded", "adapter": "c@1"}
        if path == "/v1/chat/completions":
            self.chats.append(payload)
            text = self.candidate_text if payload["model"] == "c@1" else HEALTHY
            choice = {"message": {"content": text}, "finish_reason": "stop"}
            return {"choices": [choice] * payload["n"]}
        if path == "/v1/arena/leaderboard":
            self.leaderboard_reads += 1
            return {"data": self.board}
        if path == "/v1/loop/decisions":
            self.decisions.append(payload)
            return {}
        raise AssertionError(f"unexpected {method} {path}")


def run_one_round(monkeypatch, gateway: FakeGateway, *flags: str) -> argparse.Namespace:
    monkeypatch.setattr(loop, "call", gateway)
    parser = argparse.ArgumentParser()
    loop.add_loop_arguments(parser)
    args = parser.parse_args(["--rounds", "1", "--poll", "0", *flags])
    loop.run_loop(args)
    return args


def test_a_candidate_that_loops_is_retired_before_any_battle(monkeypatch):
    gateway = FakeGateway(LOOPING)
    run_one_round(monkeypatch, gateway, "--health-prompts", "4")
    [decision] = gateway.decisions
    assert (decision["candidate"], decision["action"]) == ("c@1", "retire")
    assert "less healthy than the live model" in decision["reason"]
    figures = decision["evidence"]["health"]
    assert figures["candidate"]["healthy"] == 0.0 and figures["live"]["healthy"] == 1.0
    assert gateway.leaderboard_reads == 0  # it never went to the arena
    # every probe: 2 answers at full length, not logged (never rated, never trained on)
    assert {(c["n"], c["max_tokens"], c["store"]) for c in gateway.chats} == {(2, 512, False)}
    assert len(gateway.chats) == 2 * 4  # live once, the candidate once, 4 prompts each


@pytest.mark.parametrize("flags", [("--health-prompts", "0"), ()])
def test_a_healthy_candidate_or_no_check_goes_on_to_the_arena(monkeypatch, flags):
    won = {"rating": 1100, "ci_low": 1050, "ci_high": 1150, "battles": 60, "wins": 50,
           "losses": 5, "ties": 5, "win_rate": 0.875}  # fmt: skip
    lost = {**won, "rating": 1000, "ci_low": 950, "ci_high": 1040, "wins": 5, "losses": 50,
            "win_rate": 0.125}  # fmt: skip
    gateway = FakeGateway(HEALTHY, [{"model": "c@1", **won}, {"model": "base-model", **lost}])
    run_one_round(monkeypatch, gateway, *flags)
    [decision] = gateway.decisions
    assert decision["action"] == "promote" and gateway.leaderboard_reads >= 1
    if flags:  # no check: no probes, no health figures
        assert gateway.chats == [] and "health" not in decision["evidence"]
    else:  # both figures kept with the arena's decision
        assert decision["evidence"]["health"]["candidate"]["healthy"] == 1.0
        assert "512-token answers" in decision["reason"]


def test_more_health_prompts_than_there_are_is_refused_at_once(monkeypatch):
    with pytest.raises(SystemExit, match="--health-prompts takes 0"):
        run_one_round(monkeypatch, FakeGateway(HEALTHY), "--health-prompts", "99")
