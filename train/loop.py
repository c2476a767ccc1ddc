"""`flywheel loop`: new judgements -> train -> candidate -> arena -> promote or retire, unattended.

The loop is a client of the running gateway, like the UI: it starts training jobs with
`POST /v1/train/jobs`, reads the arena's leaderboard, and hands each decision to
`POST /v1/loop/decisions`, which carries it out and records it with its reason. It holds no
state of its own, so it can be stopped and started at any time.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import fields
from typing import Any

from common.gateway_client import GatewayRefused, add_gateway_arguments, call
from train import health_check, recipe
from train.gate import Decision, GatePolicy, decide
from train.health_check import HEALTH_PROMPTS, Health

JUDGEMENTS = ("ratings", "comparisons", "edits")


def say(message: str) -> None:
    print(f"flywheel loop: {message}", file=sys.stderr, flush=True)


def add_loop_arguments(parser: argparse.ArgumentParser) -> None:
    add_gateway_arguments(parser)
    parser.add_argument(
        "--method",
        choices=["dpo", "kto", "sft"],
        default="dpo",
        help="training method for each round (default: %(default)s)",
    )
    parser.add_argument("--name", default="loop", help="adapter name (versions: loop@1, @2, …)")
    parser.add_argument(
        "--base",
        default="base",
        help="each round starts from: base (a fresh LoRA on all judgements) or live (continue "
        "the live adapter on the judgements made since it was trained, and sample best-of-n "
        "pairs from it: the iterative-DPO recipe; the reference stays the base model) "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--threshold",
        type=int,
        default=16,
        help="new judgements that start a round; the gate's own arena votes are not counted "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a training hyperparameter for each job, e.g. --param max_steps=20 (repeatable); "
        "unset ones follow the recipe every training job runs: "
        f"dpo {settings_line('dpo', {})}; reward {settings_line('reward', {})} "
        "(measured: docs/training.md, the recipe)",
    )
    parser.add_argument(
        "--synthetic-pairs",
        type=int,
        default=0,
        metavar="N",
        help="dpo: train a reward model each round and add N best-of-n pairs (default: 0)",
    )
    parser.add_argument(
        "--health-prompts",
        type=int,
        default=len(HEALTH_PROMPTS),
        metavar="N",
        help="before its arena battles count, the candidate answers N prompts twice at "
        f"{health_check.LONG_ANSWER_TOKENS} tokens, as the live model does; 0: no check "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--health-margin",
        type=float,
        default=0.05,
        help="retire a candidate whose healthy share of those answers is more than this below "
        "the live model's (default: %(default)s)",
    )
    parser.add_argument(
        "--health-max-tokens",
        type=int,
        default=health_check.LONG_ANSWER_TOKENS,
        metavar="N",
        help="how far those answers may run: at the usual 128 most answers of any model are "
        "cut, so a clean end measures length; at 512 one that does not end rambles or loops "
        "(default: %(default)s)",
    )
    parser.add_argument("--rounds", type=int, default=0, help="stop after N rounds (0: never)")
    parser.add_argument(
        "--poll", type=float, default=5.0, help="seconds between checks (default: %(default)s)"
    )
    for f in fields(GatePolicy):
        parser.add_argument(
            "--" + f.name.replace("_", "-"),
            type=type(f.default),
            default=f.default,
            help=f"{f.metadata['help']} (default: %(default)s)",
        )


def parse_params(pairs: list[str]) -> dict[str, Any]:
    """`KEY=VALUE` strings as typed values: int, then float, then true/false, else the text."""
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"flywheel loop: --param {pair!r} must look like key=value")
        for cast in (int, float):
            try:
                params[key] = cast(value)
                break
            except ValueError:
                continue
        else:
            params[key] = {"true": True, "false": False}.get(value.lower(), value)
    return params


def params_for(method: str, params: dict[str, Any]) -> dict[str, Any]:
    """The --param values a method takes: a DPO knob (e.g. sft_weight) is not the reward model's."""
    from train.methods import get

    names = {f.name for f in fields(get(method).params)}
    return {k: v for k, v in params.items() if k in names}


def settings_line(method: str, params: dict[str, Any]) -> str:
    """What a round's `method` job trains with: the recipe, and the --param values over it."""
    line = recipe.summary(method)
    given = params_for(method, params)
    return line + "".join(f", {k}={v} (--param)" for k, v in given.items())


def judgement_count(args) -> int:
    counts = call(args, "GET", "/v1/feedback/counts")
    return sum(counts.get(k, 0) for k in JUDGEMENTS)


def run_job(args, body: dict[str, Any]) -> dict[str, Any]:
    """Start a training job and follow it to its end."""
    job = call(args, "POST", "/v1/train/jobs", body)
    say(f"job {job['id']}: {body['method']} training started")
    last_step = -1
    while job["status"] in ("queued", "running"):
        time.sleep(args.poll)
        job = call(args, "GET", f"/v1/train/jobs/{job['id']}")
        if job.get("step") != last_step and job.get("total_steps"):
            last_step = job["step"]
            say(f"job {job['id']}: step {job['step']}/{job['total_steps']}")
    if job["status"] != "succeeded":
        say(f"job {job['id']} {job['status']}: {job.get('error')}")
    return job


def train_candidate(args, params: dict[str, Any]) -> str | None:
    """One round's training; the new candidate's engine name, or None if it failed.

    With --synthetic-pairs, a reward model is trained on the comparisons first, and the DPO
    job adds best-of-n pairs it scores (the iterative-DPO recipe). With --base live both
    continue their predecessors on the judgements made since those were trained, so every
    round costs about the same, however many rounds came before.
    """
    if args.synthetic_pairs:
        reward_base = "live" if args.base == "live" else "base"
        reward_params = params_for("reward", params)
        reward = run_job(args, {"method": "reward", "base": reward_base, "params": reward_params})
        if reward["status"] != "succeeded":
            return None
    body = {
        "method": args.method,
        "name": args.name,
        "base": args.base,
        "params": params_for(args.method, params),  # unset ones: the recipe, as any job
        "samples": 0,  # the candidate's answers are judged in the arena; it answers 8 s sooner
    }
    if args.synthetic_pairs and args.method == "dpo":
        body["synthetic_pairs"] = args.synthetic_pairs
    job = run_job(args, body)
    if job["status"] != "succeeded":
        return None
    say(f"job {job['id']} done: candidate {job['adapter']} is answering")
    return job["adapter"]


def live_version(args) -> str:
    """What `live` serves now: an adapter version, or the base model's name."""
    models = call(args, "GET", "/v1/models")["data"]  # the `live` alias card names its version
    return next((m["root"] for m in models if m["id"] == "live"), models[0]["id"])


def record(args, candidate: str, decision: Decision) -> Decision:
    """Have the gateway carry out the decision and keep it with its reason and evidence."""
    call(
        args,
        "POST",
        "/v1/loop/decisions",
        {
            "candidate": candidate,
            "action": decision.action,
            "reason": decision.reason,
            "evidence": decision.evidence,
        },
    )
    return decision


def health_gate(args, candidate: str, measured: dict[str, Health]) -> tuple[bool, dict]:
    """Whether the candidate's long answers are within the margin of the live model's health,
    and the evidence: both figures, the margin and the verdict in words.

    The live model's figures are measured once per version (`measured` remembers them)."""
    prompts = HEALTH_PROMPTS[: args.health_prompts]
    live = live_version(args)

    def chat(body: dict) -> dict:
        return call(args, "POST", "/v1/chat/completions", body, timeout=900)

    if live not in measured:
        say(f"health check: {live} (live) answers {len(prompts)} prompts x2, up to "
            f"{args.health_max_tokens} tokens")  # fmt: skip
        measured[live] = health_check.measure(
            chat, live, prompts, max_tokens=args.health_max_tokens
        )
    say(f"health check: {candidate} answers the same prompts")
    measured[candidate] = health_check.measure(
        chat, candidate, prompts, max_tokens=args.health_max_tokens
    )
    passed, reason = health_check.verdict(measured[candidate], measured[live], args.health_margin)
    say(f"health check: {reason}")
    evidence = {"candidate": measured[candidate].to_dict(), "live": measured[live].to_dict(),
                "margin": args.health_margin, "reason": reason}  # fmt: skip
    return passed, evidence


def gate(args, candidate: str, policy: GatePolicy, health: dict | None = None) -> Decision:
    """Watch the leaderboard until the gate decides; then have the gateway act on it.

    `health`: the candidate's and the live model's health figures, kept with the decision."""
    last_reason = None
    while True:
        board = call(args, "GET", "/v1/arena/leaderboard")
        rows = {row["model"]: row for row in board["data"]}
        decision = decide(rows.get(candidate), rows.get(live_version(args)), policy)
        if decision.action != "wait":
            if health is not None:
                decision = Decision(
                    decision.action,
                    f"{decision.reason}; {health['reason']}",
                    {**decision.evidence, "health": health},
                )
            return record(args, candidate, decision)
        if decision.reason != last_reason:
            say(f"{candidate}: waiting for arena votes ({decision.reason})")
            last_reason = decision.reason
        time.sleep(args.poll)


def run_loop(args: argparse.Namespace) -> int:
    policy = GatePolicy(**{f.name: getattr(args, f.name) for f in fields(GatePolicy)})
    params = parse_params(args.param)
    unknown = sorted(set(params) - set(params_for(args.method, params)))
    if unknown:  # refused now, not after a round's worth of judgements
        raise SystemExit(f"flywheel loop: unknown {args.method} parameters: {', '.join(unknown)}")
    if not 0 <= args.health_prompts <= len(HEALTH_PROMPTS):
        raise SystemExit(
            f"flywheel loop: --health-prompts takes 0 (no check) to {len(HEALTH_PROMPTS)}"
        )
    rounds = 0
    judged: set[str] = set()  # candidates the gate has decided on
    measured: dict[str, Health] = {}  # long-answer health by model version
    seen = judgement_count(args)
    say(f"{seen} judgements so far; a round starts after {args.threshold} new ones")
    say(f"each round trains {args.method} with {settings_line(args.method, params)}")
    if args.synthetic_pairs:
        say(f"and first a reward model with {settings_line('reward', params)}")
    while not args.rounds or rounds < args.rounds:
        while (now := judgement_count(args)) - seen < args.threshold:
            time.sleep(args.poll)
        seen = now
        rounds += 1
        say(f"round {rounds}: {now} judgements")
        try:
            candidate = train_candidate(args, params)
            if candidate is None:
                continue
            if candidate in judged:  # the registry keeps identical weights as one version
                say(f"round {rounds}: the weights equal {candidate}'s, already judged: no gate")
                continue
            passed, health = True, None
            if args.health_prompts:
                passed, health = health_gate(args, candidate, measured)
            if passed:
                decision = gate(args, candidate, policy, health)
            else:  # retired before any of its battles count
                reason = f"less healthy than the live model: {health['reason']}"
                decision = record(args, candidate, Decision("retire", reason, {"health": health}))
            judged.add(candidate)
            # The gate's own arena votes are its verdict on this round: they train the next
            # round but do not start it, or every gate would set off a round of its own.
            seen = judgement_count(args)
        except GatewayRefused as exc:
            say(f"round {rounds} stopped: {exc}")
            continue
        say(f"round {rounds}: {decision.action} {candidate}: {decision.reason}")
    return 0
