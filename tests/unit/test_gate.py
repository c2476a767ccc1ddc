"""The promotion gate decides from the arena's intervals and win rate, and says why."""

from train.gate import GatePolicy, decide

POLICY = GatePolicy(min_battles=10, win_rate=0.6, decide_after=20, max_battles=40)
LIVE = {"rating": 1000, "ci_low": 1000, "ci_high": 1000, "battles": 50, "win_rate": 0.5}


def row(rating, low, high, battles, win_rate):
    return {"rating": rating, "ci_low": low, "ci_high": high, "battles": battles,
            "win_rate": win_rate}  # fmt: skip


def test_waits_for_enough_battles():
    decision = decide(row(1300, 1200, 1400, 9, 0.9), LIVE, POLICY)
    assert decision.action == "wait" and "9/10" in decision.reason
    assert decide(None, LIVE, POLICY).action == "wait"


def test_promotes_when_the_interval_lies_above_live():
    decision = decide(row(1150, 1010, 1290, 12, 0.7), LIVE, POLICY)
    assert decision.action == "promote" and "above the live" in decision.reason
    assert decision.evidence["candidate"]["ci_low"] == 1010


def test_retires_when_the_interval_lies_below_live():
    decision = decide(row(850, 700, 990, 12, 0.3), LIVE, POLICY)
    assert decision.action == "retire" and "below the live" in decision.reason


def test_win_rate_rule_after_enough_battles_and_budget():
    overlapping = dict(low=950, high=1100)
    assert (
        decide(row(1030, **overlapping, battles=19, win_rate=0.65), LIVE, POLICY).action == "wait"
    )
    promoted = decide(row(1030, **overlapping, battles=20, win_rate=0.65), LIVE, POLICY)
    assert promoted.action == "promote" and "65%" in promoted.reason
    undecided = decide(row(1010, **overlapping, battles=39, win_rate=0.55), LIVE, POLICY)
    assert undecided.action == "wait"
    retired = decide(row(1010, **overlapping, battles=40, win_rate=0.55), LIVE, POLICY)
    assert retired.action == "retire" and "undecided after 40" in retired.reason
