"""Which settings learn most in one round? Round 1 retrained on the same judgements, per setting.

A loop round's win rate mixes two kinds of luck: the rater's (which prompts it judged, which
answers it read) and the setting's. Here the rater judges once, a reward model is trained once,
and then each setting trains its own round-1 DPO adapter on exactly those judgements and the
same best-of-n pairs (logged answers, scored by that one reward model), so the settings differ
only in themselves. Each adapter answers the held-out prompts `--samples` times (against the
same base answers); the table gives win rate, trait and healthy shares, and the DPO job's
seconds from start to the adapter answering.

    python -m bench.ablate --preference brief --data-dir /tmp/abl-brief \\
        --try "max_length=96" --try "max_length=0 epochs=2"

Only the protocol's tuning preferences may be ablated (bench/protocol.py: a held-out result
must never choose a default), with its realistic rater (at most 4 answers read, no edits) and,
like the loop's default, no synthetic pairs. The data folder is kept: a second run on it skips
the judging and the reward model. The base model's answers and health come from bench.loop's
cache, so the two benchmarks compare against the same sample. "healthy at 512 tokens" is the
collapse check (bench.loop.LONG_ANSWER_TOKENS). Results go to
docs/ablations/protocol/<preference>.json (appended per setting; what the runs from before the
protocol showed: docs/experiments.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from bench.loop import (
    LONG_ANSWER_TOKENS,
    answer_stats,
    base_answers,
    base_engine_name,
    first_answer,
    get,
    job_progress,
    judgement_count,
    long_answer_health,
    sample_answers,
    win_rate,
)
from bench.loop_report import long_health
from bench.preferences import PREFERENCES
from bench.prompts import held_out_prompts, train_prompts
from bench.protocol import RATER, TUNING
from bench.simulated_rater import SAMPLING, SimulatedRater
from bench.stack import RunningStack, running_stack
from train.loop import parse_params, settings_line

RESULTS = Path(__file__).resolve().parent.parent / "docs" / "ablations" / "protocol"


def say(message: str) -> None:
    print(f"bench.ablate: {message}", file=sys.stderr, flush=True)


def run_job(stack: RunningStack, body: dict[str, Any]) -> dict[str, Any]:
    resp = httpx.post(f"{stack.url}/v1/train/jobs", json=body, timeout=60)
    if resp.status_code >= 400:
        raise SystemExit(f"POST /v1/train/jobs -> {resp.status_code}: {resp.text[:500]}")
    job = resp.json()
    while job["status"] in ("queued", "running"):
        time.sleep(0.5)
        job = get(stack, f"/v1/train/jobs/{job['id']}")
    if job["status"] != "succeeded":
        raise SystemExit(f"job {job['id']} {job['status']}: {job.get('error')}")
    return job


async def judged_once(stack: RunningStack, args: argparse.Namespace) -> None:
    """The rater's round-1 judgements and, for best-of-n, one reward model, unless the data
    folder has them."""
    preference = PREFERENCES[args.preference]
    if judgement_count(stack) < args.judgements:
        say(f"the rater makes {args.judgements} judgements")
        async with httpx.AsyncClient(base_url=stack.url, timeout=900) as client:
            rater = SimulatedRater(
                client, preference, edits=RATER["edits"], noise=RATER["noise"],
                max_answers=RATER["max_answers"], answer_tokens=args.answer_tokens,
                picks_loops=args.picks_loops, seed=args.seed,
            )  # fmt: skip
            await rater.judge(train_prompts(), args.judgements - judgement_count(stack))
        say(f"the rater read {rater.tally.answers_read} answers, edited {rater.tally.edits}")
    if args.synthetic_pairs and not any(
        j["method"] == "reward" for j in get(stack, "/v1/train/jobs")
    ):
        say("training the reward model")
        run_job(stack, {"method": "reward", "params": parse_params(args.reward.split())})


async def ablate(stack: RunningStack, args: argparse.Namespace) -> None:
    preference = PREFERENCES[args.preference]
    await judged_once(stack, args)
    base, base_health = await base_answers(
        stack, base_engine_name(stack), held_out_prompts(), args.samples, fresh=False
    )
    base_stats = {**answer_stats(preference, base), **base_health}
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{preference.name}.json"
    results = json.loads(out.read_text()) if out.is_file() else []
    for setting in args.try_:
        params = parse_params(setting.split("#")[0].split())  # after a '#': a note on the setting
        say(f"training with {params}")
        started = time.perf_counter()
        body = {
            "method": "dpo",
            "name": "ablation",
            "params": params,
            "samples": 0,
            "synthetic_pairs": args.synthetic_pairs,
        }  # fmt: skip  (as the loop's job)
        job = await asyncio.to_thread(run_job, stack, body)
        await asyncio.to_thread(first_answer, stack, job["adapter"])
        seconds = time.perf_counter() - started
        tuned = await sample_answers(
            stack.engine_url, job["adapter"], held_out_prompts(), args.samples, seed=1
        )
        collapse_check = await long_answer_health(
            stack.engine_url, job["adapter"], held_out_prompts()
        )
        healthy_long = collapse_check["healthy_long"]
        row = {
            "setting": setting,
            "judgements": args.judgements,
            "answer_tokens": args.answer_tokens,
            "rater_picks_loops": args.picks_loops,
            "samples": args.samples,
            "dpo_job_to_answering_s": round(seconds, 1),
            "train_rows": job["config"]["train_rows"],
            "synthetic_pairs": job["config"]["synthetic_pairs"],
            "held_out_win_rate": round(win_rate(preference, tuned, base), 4),
            "tuned": {**answer_stats(preference, tuned), **collapse_check},
            "base": base_stats,
            "progress": job_progress(stack, job["id"]),
        }
        say(
            f"{setting}: win rate {row['held_out_win_rate']:.0%}, trait "
            f"{row['tuned']['trait']:.0%} (base {row['base']['trait']:.0%}), healthy "
            f"{row['tuned']['healthy']:.0%} (base {row['base']['healthy']:.0%}), "
            f"at {LONG_ANSWER_TOKENS} tokens "
            f"{healthy_long:.0%} (base {base_stats['healthy_long']:.0%}), {seconds:.0f} s"
        )
        results.append(row)
        out.write_text(json.dumps(results, indent=2))
    print(
        "| setting | DPO job → answering s | win rate | trait | healthy | "
        f"at {LONG_ANSWER_TOKENS} tokens |"
    )
    print("|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| `{r['setting']}` | {r['dpo_job_to_answering_s']:.0f} | "
            f"{r['held_out_win_rate']:.0%} | {r['tuned']['trait']:.0%} | "
            f"{r['tuned']['healthy']:.0%} | {long_health(r['tuned'], r['base'])} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--preference", choices=TUNING, default="brief",
        help="a tuning preference (the held-out ones never choose a setting)",
    )  # fmt: skip
    parser.add_argument("--data-dir", type=Path, required=True, help="kept between runs")
    parser.add_argument("--judgements", type=int, default=64)
    parser.add_argument(
        "--synthetic-pairs", type=int, default=0,
        help="best-of-n pairs per job, as `flywheel loop --synthetic-pairs` (default: none)",
    )  # fmt: skip
    parser.add_argument("--samples", type=int, default=4, help="answers per held-out prompt")
    parser.add_argument(
        "--answer-tokens", type=int, default=RATER["answer_tokens"],
        help="how far the rater reads each answer, in tokens (a new --data-dir for each: the "
        f"judgements differ); the held-out win rate is judged at {SAMPLING['max_tokens']} "
        "either way",
    )  # fmt: skip
    parser.add_argument(
        "--picks-loops", action="store_true",
        help="the rater from before 2026-12-06, which may pick a visibly looping answer with "
        "the trait (a new --data-dir: the judgements differ)",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--reward",
        default=settings_line("reward", {}),
        help="the reward model's params (default: the loop's, %(default)s)",
    )
    parser.add_argument(
        "--try", dest="try_", action="append", required=True, metavar="'K=V K=V'",
        help="a setting: DPO params separated by spaces, then '# a note' (repeatable)",
    )  # fmt: skip
    args = parser.parse_args()
    with running_stack(data_dir=args.data_dir) as stack:
        asyncio.run(ablate(stack, args))


if __name__ == "__main__":
    main()
