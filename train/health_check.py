"""The gate's first question: does the candidate still write healthy answers at full length?

A preference can be won by degenerate text: tuned towards a trait on a few dozen pairs, a model
learns to show it in answers that loop, stop mid-sentence or say nothing, and arena voters who
read only the first lines (or a simulated rater who checks only the trait) promote it. So before
its battles count, the candidate answers prompts nobody trained on, let run to 512 tokens, and
is retired if the share of healthy answers (train/answer_health.py: not empty, not looping, not
cut off mid-sentence) falls more than a margin below the live model's, measured the same way.

Both models answer the same prompts with the same seeds, so most of the sampling noise is
shared. The probes go through the gateway with `"store": false`: they are never logged, so
they never become ratings or training data.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

from train.answer_health import fault

LONG_ANSWER_TOKENS = 512
"""Where answers may run. At the usual 128-token limit most answers of any model are cut, so a
clean end there mostly measures length; at 512 an answer that does not end rambles or loops."""
FAULTS = ("empty", "repetitive", "unfinished")

HEALTH_PROMPTS = [
    "What is a lighthouse for?",
    "Explain how a refrigerator keeps food cold.",
    "Give me some advice for a job interview.",
    "Write a short poem about autumn leaves.",
    "What are the pros and cons of living in a city?",
    "How does a compass work?",
    "Tell me a fun fact about octopuses.",
    "Why do we need bridges?",
    "Describe a thunderstorm in a few sentences.",
    "What should a beginner know about knitting?",
    "Write a very short story about a lost umbrella.",
    "How can I get better at writing emails?",
    "What is a museum?",
    "Explain tides to a ten-year-old.",
    "Give me some tips for a long flight.",
    "Write a short poem about a quiet morning.",
    "What are the pros and cons of working from home?",
    "How does a microwave oven heat food?",
    "Tell me a fun fact about giraffes.",
    "Why is sleep important for students?",
    "Describe a busy market in a few sentences.",
    "What should a beginner know about photography?",
    "Write a very short story about a friendly robot dog.",
    "How can I learn to play the guitar?",
    "What is a glacier?",
    "Explain how airplanes stay in the air.",
    "Give me some tips for keeping houseplants alive.",
    "Write a short poem about the sea at night.",
    "What are the pros and cons of online shopping?",
    "How does a bicycle gear work?",
    "Tell me a fun fact about honey.",
    "Why do leaves change colour in autumn?",
]
"""Prompts of the kinds people ask, on subjects apart from the benchmark's (bench/prompts.py)."""


@dataclass(frozen=True)
class Health:
    """How one model's long answers fared: the healthy share and the share of each fault."""

    model: str
    healthy: float
    answers: int
    faults: dict[str, float]
    max_tokens: int = LONG_ANSWER_TOKENS

    def to_dict(self) -> dict:
        return asdict(self)


Chat = Callable[[dict], dict]
"""`POST /v1/chat/completions` on the gateway: a request body in, the response body out."""


def measure(
    chat: Chat,
    model: str,
    prompts: list[str],
    per_prompt: int = 2,
    seed: int = 0,
    concurrency: int = 16,
    max_tokens: int = LONG_ANSWER_TOKENS,
) -> Health:
    """`per_prompt` answers per prompt from `model` through the gateway, not logged."""

    def answers(i: int, prompt: str) -> list[tuple[str, str | None]]:
        body = {
            "model": model,
            "messages": [{"role": "user", "content": prompt}],
            "n": per_prompt,
            "max_tokens": max_tokens,
            "temperature": 0.7,
            "seed": seed + i,
            "store": False,
        }
        choices = chat(body)["choices"]
        return [(c["message"]["content"] or "", c.get("finish_reason")) for c in choices]

    with ThreadPoolExecutor(concurrency) as pool:
        found = [f for per in pool.map(answers, range(len(prompts)), prompts) for f in per]
    faults = [fault(text, finish) for text, finish in found]
    return Health(
        model=model,
        healthy=faults.count(None) / len(faults),
        answers=len(faults),
        faults={name: faults.count(name) / len(faults) for name in FAULTS},
        max_tokens=max_tokens,
    )


def describe(health: Health) -> str:
    faults = ", ".join(f"{name} {share:.0%}" for name, share in health.faults.items())
    return f"{health.healthy:.0%} of {health.answers} healthy ({faults})"


def verdict(candidate: Health, live: Health, margin: float) -> tuple[bool, str]:
    """Whether the candidate may go on to the arena, and why, with both figures."""
    passed = candidate.healthy >= live.healthy - margin
    words = "within" if passed else "more than"
    return passed, (
        f"{candidate.max_tokens}-token answers: {candidate.model} {describe(candidate)}, "
        f"live {live.model} {describe(live)}: {words} {margin:.0%} of the live model's"
    )
