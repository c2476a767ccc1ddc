"""The promotion gate: does the arena say a candidate beats the live model?

A candidate is promoted only on evidence from people's votes, and the gate is built so that one
no better than the live model is promoted at most `alpha` (5 %) of the time, although the loop
asks again after every vote. The old rule (a raw win rate of 60 % after `decide_after` battles,
or a rating interval above the live model's, asked after every vote) promoted equal models 12 to
22 % of the time (bench/gate_false_promotion.py; docs/gate.md has the figures).

The evidence is the candidate's net wins (wins minus losses) after `k` decisive votes; ties and
`both_bad` votes are left out: they say nothing about which model is better, and at the arena's
tie shares (30-60 %) counting them half would only dilute the test. For a candidate no better
than the live model, the net wins are a fair ±1 random walk (or one drifting down), and the gate
promotes the first time it reaches the bar `promotion_bar(max_battles, alpha)[k]`: a one-sided
sequential test, its bars computed exactly on that walk, with `alpha` spent over the looks by
Lan and DeMets' Pocock-type function alpha * ln(1 + (e - 1) * k / max_battles) (it spends early,
which suits an arena where ties keep `k` well below `max_battles`). The walk is checked at every
`k` up to `max_battles`, so the chance it ever reaches the bar is at most `alpha`, however often
the gate is asked; and a bar never falls as `k` grows, so ties, which only slow the walk down,
cannot raise that chance, whatever their share.

Rows without counts (the gateway's leaderboard rows carry `battles` and `win_rate`, ties counting
half, but not wins, losses and ties) give the net wins as (2 * win_rate - 1) * battles, and the
bar is then taken at `k = battles`: as the bar never falls this is a valid test too, but a weaker
one (with 60 % ties, 3 battles in 5 carry no information, yet still raise the bar).

Promotion also asks: at least `decide_after` battles; at least `win_rate` of the decisive votes
won (of the battles, ties counting half, when the row has no counts), a floor on the size of the
win besides the evidence for it (the bar itself asks more than 60 % up to ~100 votes); and, when
the live model is on the board, a Bradley–Terry rating above its rating. The counts are the
candidate's against every opponent it met: in the loop's first round, the live model (the base)
alone, and the 5 % holds as stated; later the arena also pairs it with the base and other served
models (feedback/arena.py: half of an unsettled candidate's battles are against the live model),
and the rating, which weighs whom it beat, keeps wins over a weaker base from promoting it.

It is retired when its rating interval lies wholly below the live model's (the intervals are
honest with few battles: feedback/leaderboard.py), as soon as the bar is out of reach within
`max_battles` even if it won every battle left, or at `max_battles`; never before `min_battles`.
Intervals no longer promote: a 95 % interval checked after every vote is not a 95 % test.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any, Literal

import numpy as np


@dataclass(frozen=True)
class GatePolicy:
    min_battles: int = field(default=20, metadata={"help": "battles before any decision"})
    win_rate: float = field(
        default=0.6,
        metadata={
            "help": "promote only if the candidate also won at least this share of the "
            "decisive votes (ties left out)"
        },
    )
    decide_after: int = field(
        default=40, metadata={"help": "battles before a promotion is considered"}
    )
    max_battles: int = field(
        default=100, metadata={"help": "retire a candidate not promoted after this many"}
    )
    alpha: float = field(
        default=0.05,
        metadata={
            "help": "at most this chance of promoting a candidate no better than the live "
            "model, however often the gate looks up to --max-battles"
        },
    )


@dataclass(frozen=True)
class Decision:
    action: Literal["promote", "retire", "wait"]
    reason: str
    evidence: dict[str, Any]


@lru_cache(maxsize=64)
def promotion_bar(max_battles: int, alpha: float) -> tuple[int, ...]:
    """`bar[k]`: the net wins that promote after `k` decisive votes, for k = 0..max_battles.

    Exact on the fair ±1 walk: at each `k`, the lowest bar (never below the last one) that keeps
    the chance of having reached a bar by `k` within alpha * ln(1 + (e - 1) * k / max_battles).
    A bar above `k` cannot be reached; it spends nothing and leaves its alpha to later looks.
    """
    if max_battles < 1 or not 0 < alpha < 1:
        raise ValueError(f"need max_battles >= 1 and 0 < alpha < 1, got {max_battles}, {alpha}")
    size = max_battles
    dist = np.zeros(2 * size + 1)  # P(net wins = m, bar not reached yet), index m + size
    dist[size] = 1.0
    spent, bar, last = 0.0, [1], 1  # bar[0]: no vote yet, nothing to reach
    for k in range(1, size + 1):
        step = np.zeros_like(dist)
        step[1:] += 0.5 * dist[:-1]
        step[:-1] += 0.5 * dist[1:]
        dist = step
        allowed = alpha * math.log(1 + (math.e - 1) * k / size)
        tail = np.cumsum(dist[::-1])[::-1]  # tail[m + size] = P(net wins >= m)
        b = last
        while b <= k and spent + tail[b + size] > allowed * (1 + 1e-12):
            b += 1
        if b <= k:
            spent += tail[b + size]
            dist[b + size :] = 0.0
        bar.append(b)
        last = b
    return tuple(bar)


def _bar(policy: GatePolicy, k: int) -> int:
    """The bar after `k` looks; past the budget, one more per look: reaching it there means the
    bar at `max_battles` was reached (net wins move by one at most), so it spends no alpha."""
    bar = promotion_bar(policy.max_battles, policy.alpha)
    top = policy.max_battles
    return bar[k] if k <= top else bar[top] + (k - top)


@dataclass(frozen=True)
class _Record:
    battles: int
    wins: int | None  # None: the row has no counts (the gateway's rows)
    losses: int | None
    ties: int | None
    net: int  # wins - losses
    looks: int  # the bar's index: decisive votes, or battles when the row has no counts
    share: float  # decisive votes won, or win rate with ties half when the row has no counts

    @classmethod
    def of(cls, row: dict[str, Any]) -> _Record:
        battles = int(row["battles"])
        if all(row.get(key) is not None for key in ("wins", "losses", "ties")):
            wins, losses, ties = int(row["wins"]), int(row["losses"]), int(row["ties"])
            decisive = wins + losses
            share = wins / decisive if decisive else 0.5
            return cls(battles, wins, losses, ties, wins - losses, decisive, share)
        rate = float(row["win_rate"])  # (wins + ties / 2) / battles, to 4 decimals
        net = round((2 * rate - 1) * battles)
        return cls(battles, None, None, None, net, battles, rate)

    @property
    def counted(self) -> bool:
        return self.wins is not None

    def describe(self) -> str:
        if self.counted:
            return (
                f"won {self.wins}, lost {self.losses}, {self.ties} ties or both bad "
                f"({self.share:.0%} of the {self.looks} decisive votes)"
            )
        return f"win rate {self.share:.0%} with ties counting half (the row has no counts)"

    def votes(self) -> str:
        return f"{self.looks} decisive votes" if self.counted else f"{self.looks} battles"

    def clears(self, policy: GatePolicy) -> bool:
        return (
            self.battles >= policy.decide_after
            and self.looks > 0
            and self.net >= _bar(policy, self.looks)
            and self.share >= policy.win_rate
        )

    def within_reach(self, policy: GatePolicy) -> int | None:
        """Fewest further wins (ties padding the count up to `decide_after`) that would promote
        by `max_battles`; None when none would."""
        left = policy.max_battles - self.battles
        for wins in range(left + 1):
            looks = self.looks + wins
            if self.counted:  # ties, which change nothing here, pad up to decide_after
                battles = max(self.battles + wins, min(policy.decide_after, policy.max_battles))
                share = (self.wins + wins) / looks if looks else 0.5
            else:
                battles = self.battles + wins
                share = (self.share * self.battles + wins) / battles if battles else 0.5
            ahead = _Record(battles, None, None, None, self.net + wins, looks, share)
            if ahead.clears(policy):
                return wins
        return None


def decide(
    candidate: dict[str, Any] | None, incumbent: dict[str, Any] | None, policy: GatePolicy
) -> Decision:
    """`candidate`/`incumbent` are leaderboard rows: rating, ci_low, ci_high, battles, win_rate,
    and, when present, wins, losses and ties (then ties are left out of the test) and `raters`,
    how many different people voted (said with every promotion or retirement)."""
    decision = _decide(candidate, incumbent, policy)
    raters = (candidate or {}).get("raters")
    if decision.action != "wait" and raters is not None:
        people = "1 rater" if raters == 1 else f"{raters} different raters"
        return Decision(decision.action, f"{decision.reason} (votes from {people})",
                        decision.evidence)  # fmt: skip
    return decision


def _decide(
    candidate: dict[str, Any] | None, incumbent: dict[str, Any] | None, policy: GatePolicy
) -> Decision:
    evidence: dict[str, Any] = {
        "candidate": candidate,
        "incumbent": incumbent,
        "policy": asdict(policy),
    }
    battles = candidate["battles"] if candidate else 0
    if candidate is None or battles < policy.min_battles:
        return Decision("wait", f"{battles}/{policy.min_battles} battles so far", evidence)
    record = _Record.of(candidate)
    bar = _bar(policy, record.looks)
    evidence["test"] = {
        "net_wins": record.net,
        "looks": record.looks,
        "looks_are": "decisive votes" if record.counted else "battles",
        "bar": bar,
        "alpha": policy.alpha,
    }
    against = f"against the bar of {bar} net wins for {record.votes()}"
    behind = incumbent is not None and candidate["rating"] <= incumbent["rating"]
    if record.clears(policy) and not behind:
        return Decision(
            "promote",
            f"after {battles} battles: {record.describe()}, {record.net} net wins reach the "
            f"bar of {bar} for {record.votes()}, which a candidate no better than the live "
            f"model reaches by battle {policy.max_battles} with at most {policy.alpha:.0%} "
            "chance",
            evidence,
        )
    if incumbent is not None and candidate["ci_high"] < incumbent["ci_low"]:
        return Decision(
            "retire",
            f"rating {candidate['rating']:.0f}: its 95 % interval "
            f"[{candidate['ci_low']:.0f}, {candidate['ci_high']:.0f}] lies below the live "
            f"model's [{incumbent['ci_low']:.0f}, {incumbent['ci_high']:.0f}] "
            f"after {battles} battles ({record.describe()})",
            evidence,
        )
    if battles >= policy.max_battles:
        return Decision(
            "retire",
            f"not promoted after {battles} battles: {record.describe()}, {record.net} net "
            f"wins {against}",
            evidence,
        )
    if record.within_reach(policy) is None:
        return Decision(
            "retire",
            f"cannot be promoted within {policy.max_battles} battles: after {battles} "
            f"({record.describe()}, {record.net} net wins), even winning all "
            f"{policy.max_battles - battles} left would not reach the bar",
            evidence,
        )
    later = (
        f"; promotion is considered from battle {policy.decide_after}"
        if battles < policy.decide_after
        else ""
    )
    if record.clears(policy):  # and behind: its wins came against other models
        later = (
            f", but its rating {candidate['rating']:.0f} is not above the live model's "
            f"{incumbent['rating']:.0f}"
        )
    return Decision(
        "wait",
        f"undecided after {battles} battles: {record.describe()}, {record.net} net wins "
        f"{against}{later}",
        evidence,
    )
