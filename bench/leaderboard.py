"""Leaderboard speed: Bradley–Terry fit plus bootstrap rounds on synthetic arena battles.

Goal (from the issue): 100,000 battles among ~10 models, fit + 100 rounds, under 2 s. The time
covers the whole call, from the list of `(model_a, model_b, winner)` tuples to the sorted table.

    python -m bench.leaderboard [--battles 100000] [--models 10] [--rounds 100] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from feedback.leaderboard import leaderboard


def synthetic_battles(count: int, models: int, seed: int = 0) -> list[tuple[str, str, str]]:
    """Random pairs, outcomes drawn from spread-out true ratings, about 20% ties or both_bad."""
    rng = np.random.default_rng(seed)
    names = [f"model-{i:02d}" for i in range(models)]
    true = rng.normal(1000, 150, models)
    a = rng.integers(0, models, count)
    b = (a + rng.integers(1, models, count)) % models  # never a self-battle
    p = 1 / (1 + 10 ** ((true[b] - true[a]) / 400))
    tie = 0.4 * np.minimum(p, 1 - p)  # keeps the expected score of `a` equal to p
    u = rng.random(count)
    code = np.where(u < p - tie / 2, 0, np.where(u < p + tie / 2, 2, 1))  # 0 a, 1 b, 2 tie
    code[(code == 2) & (rng.random(count) < 0.3)] = 3
    winners = ("a", "b", "tie", "both_bad")
    return [(names[i], names[j], winners[w]) for i, j, w in zip(a, b, code, strict=True)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--battles", type=int, default=100_000, help="number of battles")
    parser.add_argument("--models", type=int, default=10, help="number of models")
    parser.add_argument("--rounds", type=int, default=100, help="bootstrap rounds")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls (min and median)")
    args = parser.parse_args()

    battles = synthetic_battles(args.battles, args.models)
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        table = leaderboard(battles, rounds=args.rounds, seed=0)
        times.append(time.perf_counter() - start)
    for row in table:
        print(f"{row.rank:3d}  {row.model:12s} {row.rating:7.1f}  [{row.ci_low:7.1f}, "
              f"{row.ci_high:7.1f}]  {row.battles:6d} battles")  # fmt: skip
    print(
        f"{args.battles} battles, {args.models} models, {args.rounds} rounds: "
        f"min {min(times):.3f} s, median {statistics.median(times):.3f} s "
        f"over {args.repeats} runs (goal: < 2 s)"
    )


if __name__ == "__main__":
    main()
