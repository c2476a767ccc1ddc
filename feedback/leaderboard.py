"""Arena leaderboard: Bradley–Terry ratings with bootstrap intervals, the Chatbot Arena way.

Same maths as FastChat's `elo_analysis.py` (`compute_elo_mle_with_tie`, bootstrap by multinomial
weights over distinct outcomes, rank from intervals), but fitted on aggregated pair counts with a
batched Newton solver in numpy, so 100 bootstrap rounds cost milliseconds, not a process pool.

Choices, each for a reason:
- A tie and a `both_bad` vote are half a win for each side (Arena does this); they are counted
  together as `ties` in the table.
- Each model's log-strength has a Gaussian prior, sd 350 Elo points (`PRIOR_SD`), and the
  rating is the posterior mode (a penalised fit). 350 is the rating deviation Glicko gives an
  unrated player: weak, a difference between two new models has prior sd ~500 points, where a
  95:5 match is 1 sd; but a model with one battle won now reads +260, not +920 (the maximum
  likelihood is infinite there, and the old sd-4000 penalty only capped it). With hundreds of
  battles its pull is the prior's share of the information, ~0.1 %: a model 250 points from
  the mean with 1,600 battles moves 0.3 points (the tests match FastChat's unpenalised fit to
  0.5).
- The 95 % interval is the wider of two, on each side: the bootstrap percentile interval
  (FastChat's) and the Laplace one, the posterior's normal approximation, sd from the inverse
  Hessian of the penalised fit. With few battles the bootstrap is degenerate: a pair with one
  battle, or with every battle won, resamples the same outcome every round, and the interval
  used to be one point (1 win: 1920 [1920, 1920]); the Laplace interval says what few votes
  are worth (1 win: 1259 [608, 1911], 10 straight wins: [1074, 2036], against a model at
  1000). With hundreds of battles both measure the same spread and agree within a few %, so
  the bootstrap's is what shows; it also keeps the skew the normal would not.
- Ratings are `1000 + 400 * log10-strength`. With `anchor` present, every fit (the point estimate
  and each bootstrap round) is shifted so the anchor sits at exactly 1000; otherwise the mean
  rating is 1000.
- Models never connected by a chain of battles cannot be compared: the penalty centres each group
  on its own, so their ratings (and ranks across groups) share a scale but not an origin.
  Self-battles carry no information and are skipped; a lone model yields an empty table.
- A bootstrap round in which a model drew no battle says nothing about it: that round is left
  out of its interval (and out of everyone's when the anchor drew none), and without an anchor
  the round is shifted to agree on average with the point ratings of the models it did see, as
  "mean 1000" over fewer models would move everyone. FastChat keeps such rounds as they come,
  which drags the intervals of rarely seen models, and of those they played, towards 1000.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass

import numpy as np

SCALE = 400.0  # Elo points per factor of BASE in odds
BASE = 10.0
INIT = 1000.0
PRIOR_SD = 350.0  # Elo points: the prior sd of each model's rating (Glicko's unrated-player RD)
L2 = (SCALE / PRIOR_SD) ** 2  # the prior's precision on log10-strength (1.31)
WINNERS = ("a", "b", "tie", "both_bad")

_ALPHA = math.log(BASE)  # P(i beats j) = sigmoid(_ALPHA * (s_i - s_j)), s in log10 units
_Z95 = 1.959963984540054  # the normal's 97.5 % point: a 95 % interval is the point +- _Z95 sd
_TOL = 1e-10  # Newton stops when no strength moves more than this (4e-8 Elo points)
_MAX_ITER = 100


@dataclass(frozen=True)
class Standing:
    """One leaderboard row; `ties` includes `both_bad`, `win_rate` counts a tie as half."""

    model: str
    rating: float
    ci_low: float
    ci_high: float
    rank: int
    battles: int
    wins: int
    losses: int
    ties: int
    win_rate: float

    def to_dict(self) -> dict:
        return asdict(self)


def leaderboard(
    battles: Iterable[tuple[str, str, str]],
    *,
    rounds: int = 100,
    seed: int = 0,
    anchor: str | None = None,
) -> list[Standing]:
    """Standings sorted by rating, from `(model_a, model_b, winner)` battles.

    The 95% interval is the wider of the Laplace interval and the percentile interval of `rounds`
    bootstrap resamples (`rounds=0`: the Laplace interval alone).
    The result depends only on the multiset of battles and `seed`, not on their order.
    """
    if rounds < 0:
        raise ValueError(f"rounds must be >= 0, got {rounds}")
    cells = _count_cells(battles)
    if not cells:
        return []
    models = sorted({m for a, b, _ in cells for m in (a, b)})
    index = {m: i for i, m in enumerate(models)}
    n = len(models)

    keys = sorted(cells)
    counts = np.array([cells[k] for k in keys], dtype=np.float64)
    # one battle of cell k adds scores[k] to the (n*n) win-score matrix, and plays[k] to battles
    scores = np.zeros((len(keys), n * n))
    plays = np.zeros((len(keys), n))
    for k, (a, b, outcome) in enumerate(keys):
        i, j = index[a], index[b]
        plays[k, [i, j]] = 1.0
        if outcome == "a":
            scores[k, i * n + j] = 1.0
        else:  # "tie": half a win each way
            scores[k, i * n + j] = scores[k, j * n + i] = 0.5

    anchor_i = index.get(anchor) if anchor is not None else None
    wins = (counts @ scores).reshape(n, n)
    strength = fit_ratings(wins)
    point = _to_elo(strength, anchor_i)
    half = _Z95 * SCALE * posterior_sd(wins, strength, anchor_i)
    low, high = point - half, point + half  # the Laplace interval
    if rounds:
        rng = np.random.default_rng(seed)
        total = int(counts.sum())
        draws = rng.multinomial(total, counts / total, size=rounds).astype(np.float64)
        boot = fit_ratings((draws @ scores).reshape(rounds, n, n), start=strength)
        boot = _to_elo(boot, anchor_i)
        played = draws @ plays > 0
        if anchor_i is not None:
            played &= played[:, [anchor_i]]
        boot[~played] = np.nan
        if anchor_i is None:  # a round that missed a model: put it on the point's scale
            boot += np.nanmean(point - boot, axis=1, keepdims=True)  # (a no-op for full rounds)
        unseen = ~played.any(axis=0)
        boot[:, unseen] = point[unseen]  # absent from every round: the Laplace interval stands
        boot_low, boot_high = np.nanpercentile(boot, [2.5, 97.5], axis=0)
        low, high = np.minimum(low, boot_low), np.maximum(high, boot_high)
    rating, low, high = (np.round(x, 1) for x in (point, low, high))
    # rank from the reported (rounded) interval, so the table is consistent with itself
    rank = 1 + (low[None, :] > high[:, None]).sum(axis=1)

    stats = _tally(cells, models)
    rows = [
        Standing(
            model=m,
            rating=float(rating[i]),
            ci_low=float(low[i]),
            ci_high=float(high[i]),
            rank=int(rank[i]),
            **stats[m],
        )
        for i, m in enumerate(models)
    ]
    return sorted(rows, key=lambda r: (-r.rating, r.model))


def fit_ratings(wins: np.ndarray, *, start: np.ndarray | None = None, l2: float = L2) -> np.ndarray:
    """Penalised Bradley–Terry fit, log10-strengths centred by the penalty, batched over rows.

    `wins[..., i, j]` is the (possibly fractional) number of wins of i over j; the leading axes,
    if any, are independent problems solved together. Damped Newton with backtracking: the loss
    is strictly convex thanks to `l2`, so this converges from any start, in a handful of steps.
    """
    wins = np.asarray(wins, dtype=np.float64)
    batched = wins.ndim == 3
    w = wins if batched else wins[None]
    r, n, _ = w.shape
    games = w + w.transpose(0, 2, 1)
    s = np.zeros((r, n)) if start is None else np.broadcast_to(start, (r, n)).copy()
    eye = np.eye(n)

    def loss(s: np.ndarray) -> np.ndarray:
        diff = _ALPHA * (s[:, :, None] - s[:, None, :])
        return (w * np.logaddexp(0.0, -diff)).sum(axis=(1, 2)) + 0.5 * l2 * (s * s).sum(axis=1)

    current = loss(s)
    for _ in range(_MAX_ITER):
        p = 0.5 + 0.5 * np.tanh(0.5 * _ALPHA * (s[:, :, None] - s[:, None, :]))  # sigmoid
        grad = _ALPHA * (games * p - w).sum(axis=2) + l2 * s
        c = _ALPHA**2 * games * p * (1.0 - p)
        hess = (c.sum(axis=2)[:, :, None] + l2) * eye - c
        step = -np.linalg.solve(hess, grad[:, :, None])[:, :, 0]
        size = np.abs(step).max(axis=1)
        if size.max() < _TOL:
            break
        # near the optimum a full Newton step is right, and loss differences drown in rounding
        near = size < 1e-4
        s[near] += step[near]
        if near.any():
            current = np.where(near, loss(s), current)
        slope = (grad * step).sum(axis=1)  # negative: a descent direction
        t = np.ones(r)
        todo = ~near
        for _ in range(60):  # backtracking (Armijo), only for rows far from their optimum
            if not todo.any():
                break
            trial = loss(s + t[:, None] * step)
            take = todo & (trial <= current + 1e-4 * t * slope)
            s[take] += t[take, None] * step[take]
            current[take] = trial[take]
            todo &= ~take
            t[todo] *= 0.5
    return s if batched else s[0]


def posterior_sd(
    wins: np.ndarray, strength: np.ndarray, anchor: int | None = None, *, l2: float = L2
) -> np.ndarray:
    """Laplace approximation: each reported rating's posterior sd, in log10-strength units.

    The inverse of the penalised fit's Hessian at `strength` is the posterior covariance of the
    log-strengths; the sd is that of each model's strength minus the anchor's (0 for the anchor
    itself) or, without an anchor, minus the mean strength, as the ratings are reported.
    """
    wins = np.asarray(wins, dtype=np.float64)
    n = len(strength)
    games = wins + wins.T
    p = 0.5 + 0.5 * np.tanh(0.5 * _ALPHA * (strength[:, None] - strength[None, :]))
    c = _ALPHA**2 * games * p * (1.0 - p)
    cov = np.linalg.inv(np.diag(c.sum(axis=1) + l2) - c)
    origin = np.zeros(n)
    if anchor is not None:
        origin[anchor] = 1.0
    else:
        origin[:] = 1.0 / n
    contrast = np.eye(n) - origin[None, :]  # row i: e_i - origin
    var = np.einsum("ij,jk,ik->i", contrast, cov, contrast)
    return np.sqrt(np.maximum(var, 0.0))


def _count_cells(battles: Iterable[tuple[str, str, str]]) -> Counter:
    """Distinct (model_a, model_b, outcome) cells with their counts; outcome is `a` or `tie`.

    A `b` win becomes an `a` win of the swapped pair, `both_bad` a `tie` of the sorted pair:
    merged cells resample with the same multinomial law and make fewer, larger cells.
    """
    raw = Counter((a, b, w) for a, b, w in battles)
    cells: Counter = Counter()
    for (a, b, w), c in raw.items():
        if w not in WINNERS:
            raise ValueError(f"winner must be one of {WINNERS}, got {w!r}")
        if a == b:
            continue
        if w == "a":
            cells[a, b, "a"] += c
        elif w == "b":
            cells[b, a, "a"] += c
        else:
            lo, hi = sorted((a, b))
            cells[lo, hi, "tie"] += c
    return cells


def _tally(cells: Counter, models: list[str]) -> dict[str, dict]:
    stats = {m: {"battles": 0, "wins": 0, "losses": 0, "ties": 0} for m in models}
    for (a, b, outcome), c in cells.items():
        stats[a]["battles"] += c
        stats[b]["battles"] += c
        if outcome == "a":
            stats[a]["wins"] += c
            stats[b]["losses"] += c
        else:
            stats[a]["ties"] += c
            stats[b]["ties"] += c
    for s in stats.values():
        s["win_rate"] = round((s["wins"] + 0.5 * s["ties"]) / s["battles"], 4)
    return stats


def _to_elo(strength: np.ndarray, anchor: int | None) -> np.ndarray:
    """log10-strengths → Elo scale; each fit (row) shifted to its own anchor or mean."""
    origin = strength[..., [anchor]] if anchor is not None else strength.mean(-1, keepdims=True)
    return INIT + SCALE * (strength - origin)
