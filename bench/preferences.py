"""Hidden preferences for the simulated rater: each one a trait a program can check in an answer.

The rater prefers an answer with the trait over one without; two answers that agree on it are
a tie. The same check judges the held-out win rate, so the benchmark asks exactly the question
the fine-tuning literature asks: does the tuned model win by the preference that made its data?

`list-no-repeats` is `list` as a person would judge it: tuned towards any list, the model
learnt lists that name an item twice and loop on at length (docs/benchmarks.md, "What the
`list` collapse is"); a person would not pick those, so this rater does not either.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from bench.answer_health import repeats_itself

LIST_LINE = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+\S", re.MULTILINE)
WORD = re.compile(r"\b\w+\b")


@dataclass(frozen=True)
class Preference:
    name: str
    description: str
    has_trait: Callable[[str], bool]
    ask: str  # how a person would ask for the trait outright (bench/trait_health.py)

    def judge(self, a: str, b: str) -> str:
        """The arena vote: "a", "b", "tie" (both have the trait) or "both_bad" (neither)."""
        trait_a, trait_b = self.has_trait(a), self.has_trait(b)
        if trait_a != trait_b:
            return "a" if trait_a else "b"
        return "tie" if trait_a else "both_bad"

    def score(self, candidate: str, base: str) -> float:
        """1 for a win, 0.5 for a tie, 0 for a loss (the win-rate convention: ties count half)."""
        return {"a": 1.0, "b": 0.0}.get(self.judge(candidate, base), 0.5)


def _is_list(text: str) -> bool:
    return len(LIST_LINE.findall(text)) >= 3


def _is_list_without_repeats(text: str) -> bool:
    return _is_list(text) and not repeats_itself(text)


def _is_brief(text: str) -> bool:
    words = len(WORD.findall(text))
    return 5 <= words <= 50 and text.rstrip().endswith((".", "!", "?"))


def _exclaims(text: str) -> bool:
    return "!" in text


PREFERENCES = {
    p.name: p
    for p in (
        Preference(
            "list",
            "a list of at least three bullet or numbered lines",
            _is_list,
            "Answer with a numbered list.",
        ),
        Preference(
            "list-no-repeats",
            "a list of at least three bullet or numbered lines, none said twice, no phrase looping",
            _is_list_without_repeats,
            "Answer with a numbered list.",
        ),
        Preference(
            "brief",
            "5 to 50 words that end with a full stop, ! or ?",
            _is_brief,
            "Answer in one or two short sentences.",
        ),
        Preference(
            "exclaims",
            "contains an exclamation mark",
            _exclaims,
            "Answer with enthusiasm, with exclamation marks!",
        ),
    )
}
