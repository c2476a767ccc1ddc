"""The promotion gate: does the arena say a candidate beats the live model?

A candidate is promoted only on evidence from people's votes: either its rating's 95 % interval
lies wholly above the live model's, or, after enough battles, it wins at least a set share of
them (ties count half). It is retired when its interval lies wholly below, or when it is still
undecided after the battle budget. Until then the gate waits, and the arena keeps sending the
candidate against the live model (see feedback/arena.py's pairing).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal


@dataclass(frozen=True)
class GatePolicy:
    min_battles: int = field(default=20, metadata={"help": "votes before any decision"})
    win_rate: float = field(
        default=0.6, metadata={"help": "promote at this win rate after --decide-after battles"}
    )
    decide_after: int = field(
        default=40, metadata={"help": "battles before the win-rate rule applies"}
    )
    max_battles: int = field(
        default=100, metadata={"help": "retire a candidate still undecided after this many"}
    )


@dataclass(frozen=True)
class Decision:
    action: Literal["promote", "retire", "wait"]
    reason: str
    evidence: dict[str, Any]


def decide(
    candidate: dict[str, Any] | None, incumbent: dict[str, Any] | None, policy: GatePolicy
) -> Decision:
    """`candidate`/`incumbent` are leaderboard rows (rating, ci_low, ci_high, battles, win_rate)."""
    evidence = {"candidate": candidate, "incumbent": incumbent, "policy": asdict(policy)}
    battles = candidate["battles"] if candidate else 0
    if battles < policy.min_battles:
        return Decision("wait", f"{battles}/{policy.min_battles} battles so far", evidence)
    if incumbent is not None:
        if candidate["ci_low"] > incumbent["ci_high"]:
            return Decision(
                "promote",
                f"rating {candidate['rating']:.0f}: its 95 % interval "
                f"[{candidate['ci_low']:.0f}, {candidate['ci_high']:.0f}] lies above the live "
                f"model's [{incumbent['ci_low']:.0f}, {incumbent['ci_high']:.0f}] "
                f"after {battles} battles",
                evidence,
            )
        if candidate["ci_high"] < incumbent["ci_low"]:
            return Decision(
                "retire",
                f"rating {candidate['rating']:.0f}: its 95 % interval "
                f"[{candidate['ci_low']:.0f}, {candidate['ci_high']:.0f}] lies below the live "
                f"model's [{incumbent['ci_low']:.0f}, {incumbent['ci_high']:.0f}]",
                evidence,
            )
    rate = candidate["win_rate"]
    if battles >= policy.decide_after and rate >= policy.win_rate:
        return Decision(
            "promote",
            f"won {rate:.0%} of {battles} battles (the gate asks {policy.win_rate:.0%} "
            f"after {policy.decide_after})",
            evidence,
        )
    if battles >= policy.max_battles:
        return Decision(
            "retire",
            f"still undecided after {battles} battles: won {rate:.0%}, below the "
            f"{policy.win_rate:.0%} the gate asks",
            evidence,
        )
    return Decision("wait", f"undecided after {battles} battles (win rate {rate:.0%})", evidence)
