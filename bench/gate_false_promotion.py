"""Promotion gate: how often it promotes a candidate no better than the live model (p = 0.5).

Simulates the arena of the loop's first round: a candidate against the live model, which is the
base model and so the leaderboard's anchor, the candidate winning a decisive vote with chance `p`
and a share of the votes being ties (the simulated raters vote `tie` when both answers have the
trait and `both_bad` when neither has it, so ties are common: 0.3 and 0.6). After every vote the
leaderboard is recomputed as the gateway does (`feedback.leaderboard.leaderboard`, anchor = the
base model, seed 0, 100 bootstrap rounds unless --rounds says otherwise) and `train.gate.decide`
is asked, as `flywheel loop` does. The loop polls every few seconds, so it may look less often:
a look after every vote is the worst case for false promotions.

Rows (--rows): `served` are the fields of the gateway's `LeaderboardRow` (serve/protocol.py),
what the loop reads from GET /v1/arena/leaderboard; `full` are the leaderboard's own rows,
with wins, losses and ties, which the gate uses when they are there.

The leaderboard depends only on the counts (wins, losses, ties): not on the order of the votes,
and `tie` and `both_bad` count the same; so each state is computed once, and cached.

    python -m bench.gate_false_promotion [--gates 2000] [--ties 0.3 0.6] [--rows served full]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field, fields
from functools import cache

import numpy as np

from feedback.leaderboard import leaderboard
from train.gate import GatePolicy, decide

CANDIDATE, LIVE = "candidate@1", "base"  # round 1: the live model is the base, the anchor
BENCH_POLICY = GatePolicy(min_battles=16, decide_after=24, win_rate=0.6, max_battles=40)
POLICIES = {"defaults": GatePolicy(), "bench": BENCH_POLICY}  # bench: bench/loop.py's settings


@cache
def served_fields() -> tuple[str, ...]:
    """The leaderboard fields the gateway serves (and so the loop's gate sees)."""
    from serve.protocol import LeaderboardRow

    return tuple(LeaderboardRow.model_fields)


@dataclass
class Boards:
    """Leaderboard rows (candidate, live) per count state, computed once each."""

    rounds: int = 100
    rows: dict = field(default_factory=dict)
    decisions: dict = field(default_factory=dict)

    def standings(self, state: tuple[int, int, int]) -> tuple[dict, dict]:
        if state not in self.rows:
            wins, losses, ties = state
            battles = (
                [(CANDIDATE, LIVE, "a")] * wins
                + [(CANDIDATE, LIVE, "b")] * losses
                + [(CANDIDATE, LIVE, "tie")] * ties
            )
            table = {
                r.model: r.to_dict() for r in leaderboard(battles, rounds=self.rounds, anchor=LIVE)
            }
            self.rows[state] = (table[CANDIDATE], table[LIVE])
        return self.rows[state]

    def action(self, policy: GatePolicy, rows: str, state: tuple[int, int, int]) -> str:
        key = (policy, rows, state)
        if key not in self.decisions:
            candidate, live = self.standings(state)
            if rows == "served":
                keep = served_fields()
                candidate, live = (
                    {k: v for k, v in r.items() if k in keep} for r in (candidate, live)
                )
            self.decisions[key] = decide(candidate, live, policy).action
        return self.decisions[key]


def simulate(
    policy: GatePolicy,
    p: float,
    ties: float,
    gates: int,
    *,
    rows: str = "served",
    seed: int = 0,
    boards: Boards | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(promoted, battles at the decision) for `gates` independent gates, one vote at a time."""
    boards = boards or Boards()
    top = policy.max_battles
    rng = np.random.default_rng([seed, round(p * 1000), round(ties * 1000)])
    tie = rng.random((gates, top)) < ties
    win = ~tie & (rng.random((gates, top)) < p)
    counts = np.stack(
        [np.cumsum(win, axis=1), np.cumsum(~tie & ~win, axis=1), np.cumsum(tie, axis=1)], axis=2
    )
    promoted = np.zeros(gates, dtype=bool)
    battles = np.full(gates, top)
    open_ = np.ones(gates, dtype=bool)
    for n in range(1, top + 1):
        which = np.flatnonzero(open_)
        if not which.size:
            break
        states, inverse = np.unique(counts[which, n - 1], axis=0, return_inverse=True)
        actions = np.array([boards.action(policy, rows, tuple(map(int, s))) for s in states])
        action = actions[inverse.ravel()]
        done = which[action != "wait"]
        promoted[which[action == "promote"]] = True
        battles[done] = n
        open_[done] = False
    if open_.any():
        raise RuntimeError(f"{open_.sum()} gates still undecided after {top} battles")
    return promoted, battles


def cell(promoted: np.ndarray, battles: np.ndarray) -> str:
    return f"{promoted.mean():.1%} · {np.median(battles):.0f}"


def describe(policy: GatePolicy) -> str:
    return ", ".join(f"{f.name} {getattr(policy, f.name)}" for f in fields(policy))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--gates", type=int, default=2000, help="simulated gates per cell (default: %(default)s)"
    )
    parser.add_argument(
        "--ties",
        type=float,
        nargs="+",
        default=[0.3, 0.6],
        help="tie shares (default: %(default)s)",
    )
    parser.add_argument(
        "--p",
        type=float,
        nargs="+",
        default=[0.5, 0.6, 0.7, 0.8, 0.9],
        help="the candidate's chance to win a decisive vote; 0.5: as good as the live model "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--rows",
        nargs="+",
        choices=["served", "full"],
        default=["served", "full"],
        help="served: the gateway's rows; full: with wins, losses, ties (default: %(default)s)",
    )
    parser.add_argument(
        "--policies",
        nargs="+",
        choices=list(POLICIES),
        default=list(POLICIES),
        help="defaults: GatePolicy(); bench: bench/loop.py's (default: %(default)s)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=100,
        help="bootstrap rounds (default and gateway: %(default)s)",
    )
    parser.add_argument("--seed", type=int, default=0, help="(default: %(default)s)")
    args = parser.parse_args()

    started = time.perf_counter()
    boards = Boards(rounds=args.rounds)
    header = ["policy", "ties", "rows"] + [f"p = {p:g}" for p in args.p]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for name in args.policies:
        policy = POLICIES[name]
        for ties in args.ties:
            for rows in args.rows:
                cells = [cell(*simulate(policy, p, ties, args.gates, rows=rows, seed=args.seed,
                                        boards=boards)) for p in args.p]  # fmt: skip
                print(f"| {name} | {ties:.0%} | {rows} | " + " | ".join(cells) + " |", flush=True)
    print()
    print(
        "Each cell: the share of gates that promoted · the median battles to the decision "
        f"(promote or retire), over {args.gates} simulated gates; at p = 0.5 the share is the "
        f"false-promotion rate (95 % Monte-Carlo margin at 5 %: ±"
        f"{1.96 * (0.05 * 0.95 / args.gates) ** 0.5:.1%})."
    )
    for name in args.policies:
        where = " (bench/loop.py's settings)" if name == "bench" else " (GatePolicy())"
        print(f"- {name}{where}: {describe(POLICIES[name])}")
    print(
        f"- {args.rounds} bootstrap rounds per leaderboard, {len(boards.rows)} count states, "
        f"seed {args.seed}, {time.perf_counter() - started:.0f} s"
    )


if __name__ == "__main__":
    main()
