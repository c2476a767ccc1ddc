"""Is a tuned model's collapse its training's fault, or its trait's? The base model's own
answers with the trait, checked for health at 512 tokens.

The loop's `list` adapters loop on themselves at 512 tokens far more often than the base model
does (bench/loop.py's collapse check). Tuning towards a trait makes the model write the kind of
answer that has it; if the base model's own answers of that kind loop as often, the adapter
inherits their fault, and the cure is a rater who, like a person, does not pick a looping
answer, not a different trainer. So this samples the base model at 512 tokens on the held-out
prompts twice: as asked, and with the trait asked for outright (the preference's `ask`, e.g.
"Answer with a numbered list."), and reports the health and faults of the answers that have the
trait against those that have not.

    python -m bench.trait_health --preference list

Results go to docs/trait_health/<preference>.json (answers included, to read).
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

from bench.loop import LONG_ANSWER_TOKENS, base_engine_name, describe_faults, sample_answers
from bench.preferences import PREFERENCES, Preference
from bench.prompts import held_out_prompts
from bench.stack import running_stack
from train.answer_health import fault

RESULTS = Path(__file__).resolve().parent.parent / "docs" / "trait_health"
FAULTS = ("empty", "repetitive", "unfinished")


def health_by_trait(preference: Preference, answers: list[dict[str, Any]]) -> dict[str, Any]:
    """For the answers with the trait and those without: how many, healthy share, each fault."""
    groups: dict[str, Any] = {}
    for name, wanted in (("with_trait", True), ("without_trait", False)):
        group = [a for a in answers if preference.has_trait(a["text"]) == wanted]
        faults = [fault(a["text"], a["finish_reason"]) for a in group]
        groups[name] = {
            "answers": len(group),
            "healthy": faults.count(None) / len(group) if group else None,
            "faults": {f: faults.count(f) / len(group) for f in FAULTS} if group else {},
        }
    return groups


def describe(groups: dict[str, Any]) -> str:
    parts = []
    for name, g in groups.items():
        if g["answers"]:
            parts.append(
                f"{name.replace('_', ' ')}: {g['answers']} answers, healthy {g['healthy']:.0%} "
                f"({describe_faults(g['faults'])})"
            )
        else:
            parts.append(f"{name.replace('_', ' ')}: none")
    return "; ".join(parts)


async def measure(engine_url: str, model: str, preference: Preference, n: int) -> dict[str, Any]:
    prompts = held_out_prompts()
    result: dict[str, Any] = {
        "preference": preference.name,
        "ask": preference.ask,
        "answers_per_prompt": n,
        "max_tokens": LONG_ANSWER_TOKENS,
    }
    conditions = {
        "as_asked": prompts,
        "trait_asked_for": [f"{p} {preference.ask}" for p in prompts],
    }
    for condition, asked in conditions.items():
        per_prompt = await sample_answers(engine_url, model, asked, n, 5, LONG_ANSWER_TOKENS)
        answers = [
            {"prompt": p, **a} for p, per in zip(asked, per_prompt, strict=True) for a in per
        ]
        groups = health_by_trait(preference, answers)
        print(f"{condition}: {describe(groups)}", flush=True)
        result[condition] = {**groups, "answers": answers}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preference", choices=list(PREFERENCES), default="list")
    parser.add_argument("--samples", type=int, default=2, help="answers per held-out prompt")
    args = parser.parse_args()
    preference = PREFERENCES[args.preference]
    with running_stack() as stack:
        model = base_engine_name(stack)
        result = asyncio.run(measure(stack.engine_url, model, preference, args.samples))
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{preference.name}.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"written: {out}")


if __name__ == "__main__":
    main()
