"""The loop benchmark's result files: where they go, how a run is named, and the tables and
plot `python -m bench.loop --plot` makes from a folder of them (bench/loop.py runs the loop).

Each file is one run of one preference: its settings, the base model's figures and one entry
per round. The tables: every run's rounds; per preference, min and median over its repeats;
and the protocol's headline, per split (tuning, held-out), over each preference's first run.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from bench.loop_plot import win_rate_svg
from bench.protocol import split_of
from train.health_check import LONG_ANSWER_TOKENS

RESULTS = Path(__file__).resolve().parent.parent / "docs" / "loop" / "protocol"
LEGACY_RESULTS = RESULTS.parent
"""Where the runs from before the held-out protocol were kept (their plot: docs/loop-win-rate.svg;
removed from the repository, restorable from git: docs/experiments.md)."""


def plot_path(results: Path) -> Path:
    return (
        results.parent / "loop-win-rate.svg"
        if results == LEGACY_RESULTS
        else results / "win-rate.svg"
    )


def long_health(tuned: dict[str, float], base: dict[str, float]) -> str:
    """ "tuned / base" of the 512-token collapse check; runs from before it was measured: —."""
    if "healthy_long" not in tuned or "healthy_long" not in base:
        return "—"
    return f"{tuned['healthy_long']:.0%} / {base['healthy_long']:.0%}"


def result_path(
    preference: str,
    control: bool,
    seed: int,
    edits: bool = False,
    noise: float = 0.0,
    results: Path = RESULTS,
) -> Path:
    suffix = ("-control" if control else "") + ("-edits" if edits else "")
    suffix += f"-noise{round(noise * 100)}" if noise else ""
    return results / f"{preference}{suffix}{f'-seed{seed}' if seed else ''}.json"


def rater_kind(result: dict[str, Any]) -> str:
    """The preference, and whether its rater also edited, was noisy or picked loops: runs that
    differ in any of them are no repeats. (Runs from before 2026-12-06 say nothing of loops
    and picked them; they are kept in their own --results folders.)"""
    settings = result["settings"]
    noise = settings.get("noise", 0)
    return (
        result["preference"]
        + (" (edits)" if settings.get("edits") else "")
        + (f" (noise {noise:.0%})" if noise else "")
        + (" (picks loops)" if settings.get("picks_loops") else "")
    )


def run_name(result: dict[str, Any]) -> str:
    seed = result["settings"].get("seed", 0)
    shuffled = " (shuffled)" if result["control"] else ""
    return rater_kind(result) + shuffled + (f" seed {seed}" if seed else "")


def health_vs_base(runs: list[tuple[dict[str, Any], dict[str, Any]]]) -> list[float]:
    """Tuned minus base healthy share at 512 tokens, for each (run, round) that measured it."""
    return [
        x["tuned"]["healthy_long"] - r["base"]["healthy_long"]
        for r, x in runs
        if "healthy_long" in x["tuned"] and "healthy_long" in r["base"]
    ]


def repeat_summary(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per preference (and rater kind) and round, over its runs with honest labels: win rate
    min and median, the slowest turnaround, and the lowest 512-token health beside the base
    (where measured)."""
    groups: dict[tuple[str, int], list[tuple[dict, dict]]] = {}
    for r in results:
        if not r["control"]:
            for x in r["rounds"]:
                groups.setdefault((rater_kind(r), x["round"]), []).append((r, x))
    rows = []
    for (preference, number), runs in sorted(groups.items()):
        rates = [x["held_out_win_rate"] for _, x in runs]
        long = health_vs_base(runs)
        rows.append(
            {
                "preference": preference,
                "round": number,
                "runs": len(runs),
                "win_rate_min": min(rates),
                "win_rate_median": statistics.median(rates),
                "slowest_turnaround_s": max(x["last_judgement_to_answer_s"] for _, x in runs),
                "worst_long_health_vs_base": min(long) if long else None,
                "long_health_runs": len(long),
            }
        )
    return rows


def win_rate_ceiling(base_trait: float) -> float:
    """The best held-out win rate a preference allows: every tuned answer has the trait and the
    base's answers that have it too still tie (half a win), so 1 - base/2. A preference that
    half the base model's answers already show cannot reach 80 %."""
    return 1 - base_trait / 2


HEALTH_MARGIN = 0.05
"""The protocol's health goal: at 512 tokens, at most 5 points below the base."""


def split_summary(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The protocol's headline: per split (tuning, held-out), rater kind and round, over the
    preferences' first runs (seed 0; repeats and controls are left out, so each preference
    counts once): win rate min and median, how many stay within 5 points of the base's health
    at 512 tokens, and the slowest last judgement -> answering."""
    groups: dict[tuple[str, str, int], list[tuple[dict, dict]]] = {}
    for r in results:
        if r["control"] or r["settings"].get("seed", 0):
            continue
        kind = rater_kind(r).removeprefix(r["preference"]).strip() or "realistic"
        for x in r["rounds"]:
            groups.setdefault((split_of(r["preference"]), kind, x["round"]), []).append((r, x))
    rows = []
    for (split, kind, number), runs in sorted(groups.items()):
        rates = [x["held_out_win_rate"] for _, x in runs]
        health = health_vs_base(runs)
        rows.append(
            {
                "split": split,
                "rater": kind,
                "round": number,
                "preferences": sorted(r["preference"] for r, _ in runs),
                "win_rate_min": min(rates),
                "win_rate_median": statistics.median(rates),
                "healthy_within_margin": sum(h >= -HEALTH_MARGIN for h in health),
                "health_measured": len(health),
                "slowest_turnaround_s": max(x["last_judgement_to_answer_s"] for _, x in runs),
            }
        )
    return rows


def edit_note(round_: dict[str, Any]) -> str:
    """What the judgements column adds for a round whose rater edited answers."""
    return f", {round_['edits']} of them edits" if round_.get("edits") else ""


def report(folder: Path = RESULTS) -> None:
    """Redraw the plot and print the tables from every result file in `folder`."""
    results = [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]
    series = {run_name(r): [0.5] + [x["held_out_win_rate"] for x in r["rounds"]] for r in results}
    plot = plot_path(folder)
    plot.write_text(win_rate_svg(series, "flywheel loop: held-out win rate against base"))
    print("| preference | round | judgements made (used) | synthetic pairs | training s | "
          "last judgement → answering s | win rate vs base | trait tuned / base | "
          f"healthy tuned / base | healthy at {LONG_ANSWER_TOKENS} tokens | "
          "arena votes | gate | best possible win rate |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        name = run_name(r)
        for x in r["rounds"]:
            print(
                f"| {name} | {x['round']} | {x['judgements_made']} ({x['human_pairs_used']})"
                f"{edit_note(x)} | "
                f"{x['synthetic_pairs']} | {x['training_s'] or '—'} | "
                f"{x['last_judgement_to_answer_s']:.0f} | {x['held_out_win_rate']:.0%} | "
                f"{x['tuned']['trait']:.0%} / {r['base']['trait']:.0%} | "
                f"{x['tuned']['healthy']:.0%} / {r['base']['healthy']:.0%} | "
                f"{long_health(x['tuned'], r['base'])} | "
                f"{x['arena_votes']} | {x['gate']['action']} | "
                f"{win_rate_ceiling(r['base']['trait']):.0%} |"
            )
    print(
        "\n| preference | round | runs | win rate min / median | slowest last judgement → "
        f"answering s | healthy at {LONG_ANSWER_TOKENS} tokens, worst run, tuned − base |"
    )
    print("|---|---|---|---|---|---|")  # fmt: skip
    for row in repeat_summary(results):
        worst = row["worst_long_health_vs_base"]
        runs = row["long_health_runs"]
        worst_text = "—" if worst is None else f"{worst * 100:+.0f} points ({runs} of the runs)"
        print(
            f"| {row['preference']} | {row['round']} | {row['runs']} | "
            f"{row['win_rate_min']:.0%} / {row['win_rate_median']:.0%} | "
            f"{row['slowest_turnaround_s']:.0f} | {worst_text} |"
        )
    print(
        "\n| split | rater | round | preferences | win rate min / median | "
        f"healthy at {LONG_ANSWER_TOKENS} tokens within {HEALTH_MARGIN:.0%} of base | "
        "slowest last judgement → answering s |"
    )
    print("|---|---|---|---|---|---|---|")  # fmt: skip
    for row in split_summary(results):
        print(
            f"| {row['split']} | {row['rater']} | {row['round']} | "
            f"{len(row['preferences'])}: {', '.join(row['preferences'])} | "
            f"{row['win_rate_min']:.0%} / {row['win_rate_median']:.0%} | "
            f"{row['healthy_within_margin']} of {row['health_measured']} | "
            f"{row['slowest_turnaround_s']:.0f} |"
        )
    print(f"\nplot: {plot}")
