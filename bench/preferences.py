"""Hidden preferences for the simulated rater: each one a trait a program can check in an answer.

The rater prefers an answer with the trait over one without; two answers that agree on it are
a tie. The same check judges the held-out win rate, so the benchmark asks exactly the question
the fine-tuning literature asks: does the tuned model win by the preference that made its data?

When regenerating brings no answer with the trait, a person who cares can still fix one by hand:
the rater may then edit an answer (`Preference.edit`: the smallest change that gives it the trait,
as a person would make it in the Chat tab's editor), and that edit is one judgement. An edit whose
result the preference itself would not pick is never sent.

An answer that loops is the one exception to "only when regenerating fails": a person who edits
deletes a loop on sight, and for `list-no-repeats` that edit is the list cut where it starts to
repeat (`_loop_cut`), a pair that differs only where the list should have stopped.

`list-no-repeats` is `list` as a person would judge it: tuned towards any list, the model
learnt lists that name an item twice and loop on at length (docs/experiments.md, "Before the
protocol": the collapse was repetition); a person would not pick those, so this rater does
not either.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from bench import traits
from train.answer_health import repeats_itself

LIST_MARKER = re.compile(r"^[ \t]*(?:[-*•]|\d+[.)])[ \t]+", re.MULTILINE)
LIST_LINE = re.compile(LIST_MARKER.pattern + r"\S", re.MULTILINE)
"""A bullet or numbered line with something on it: an empty "2." is no item."""
NUMBER_ONLY = re.compile(r"[ \t]*\d+\.")
"""A line up to a full stop that is only a list number ("2."): no sentence ends there."""
WORD = re.compile(r"\b\w+\b")
CLEAN_END = (".", "!", "?", '"', ")")
"""How a finished line ends: a cut list keeps no heading or half line after its last item."""
SENTENCE = re.compile(r"[^.!?]*[.!?]+(?=\s|$)")
"""A finished sentence: text up to `.`, `!` or `?` followed by a space or the end."""


def _no_fix(text: str) -> None:
    """A preference without a hand fix: its rater only regenerates and picks."""
    return None


def verdict(good_a: bool, good_b: bool) -> str:
    """A vote between two answers, each good or not: "a", "b", "tie" or "both_bad"."""
    if good_a != good_b:
        return "a" if good_a else "b"
    return "tie" if good_a else "both_bad"


@dataclass(frozen=True)
class Preference:
    name: str
    description: str
    has_trait: Callable[[str], bool]
    ask: str  # how a person would ask for the trait outright (bench/trait_health.py)
    fix: Callable[[str], str | None] = _no_fix  # a person's edit towards the trait (None: can't)
    kind: str = ""  # format, length, tone or content: what the protocol spreads its choice over

    def edit(self, text: str) -> str | None:
        """The answer as the rater would correct it; None if its fix does not give the trait."""
        fixed = self.fix(text)
        return fixed if fixed is not None and self.has_trait(fixed) else None

    def judge(self, a: str, b: str) -> str:
        """The arena vote: "a", "b", "tie" (both have the trait) or "both_bad" (neither)."""
        return verdict(self.has_trait(a), self.has_trait(b))

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


def sentences(text: str) -> list[str]:
    """The finished sentences of an answer, each stripped: an answer cut at the token limit
    loses its unfinished tail, as a person editing it would drop it."""
    return [m.group().strip() for m in SENTENCE.finditer(text) if m.group().strip()]


def statements(text: str) -> list[str]:
    """What a person keeps of an answer to rewrite it as a list: the finished sentences of each
    line, its list numbers and bullets dropped, two words or more (a stray "2." says nothing).
    Without this, an answer that already was a short list came back numbered twice, its old
    numbers as items ("1. 1.", "3. 2."), and the adapter learnt exactly that.

    A line with no full stop is a statement too when another line follows it (a poem's line, a
    bullet without one), unless it ends with ":" (an intro or a heading): without poem lines, a
    poem could not be edited into a list, and the adapter numbered empty lines for poems."""
    lines = [LIST_MARKER.sub("", line).strip() for line in text.splitlines()]
    lines = [line for line in lines if line]
    kept: list[str] = []
    for i, line in enumerate(lines):
        finished = sentences(line)
        if not finished and i < len(lines) - 1 and not line.endswith(":"):
            finished = [line.rstrip(",;-–— ")]
        kept += [s for s in finished if len(WORD.findall(s)) >= 2]
    return kept


CLAUSE_BREAK = re.compile(r"(?<=\w)[,;:]\s|\s[-–—]\s")
LIST_WORDS = 40
LIST_ITEMS = 4


def _point(sentence: str) -> str:
    """A sentence as a list item: its main clause, if that says something (4 words or more)."""
    clause = CLAUSE_BREAK.split(sentence, maxsplit=1)[0].rstrip(".!?")
    return (clause if len(clause.split()) >= 4 else sentence.rstrip(".!?")) + "."


def _as_list(text: str, unique: bool = False) -> str | None:
    """The answer as a short numbered list: the main clause of each of its first sentences, up
    to four points and 40 words (each point said once, if `unique`).

    Short, as a person writes a list, and short enough that the whole list and its end fit in
    the loop's 96-token training cut: edits that kept whole sentences were cut before the list
    ended, so the adapter learnt lists that never end, and looped at length as its base does."""
    points = [_point(sentence) for sentence in statements(text)]
    if unique:
        points = list(dict.fromkeys(points))
    points = _first_within(points, LIST_WORDS)[:LIST_ITEMS]
    return "\n".join(f"{i}. {p}" for i, p in enumerate(points, 1)) if len(points) >= 3 else None


def _loop_cut(text: str) -> str | None:
    """A list with its loop deleted, as a person would fix it by hand: the answer's lines up to
    the first one that says again what was said (or up to four items and 40 words, so the edit
    and its end fit in the loop's training cut), blank and empty-numbered lines at the end
    dropped. The edit is a prefix of the answer, so the pair it makes differs only in the loop:
    where the list should have stopped."""
    kept: list[str] = []
    items = 0
    for line in text.splitlines():
        is_item = bool(LIST_LINE.match(line))
        longer = "\n".join([*kept, line])
        too_long = items == LIST_ITEMS or len(WORD.findall(longer)) > LIST_WORDS
        if repeats_itself(longer) or (is_item and too_long):
            break
        kept.append(line)
        items += is_item
    else:
        return None  # nothing to cut: no loop, or a list short enough already
    while kept and not LIST_LINE.match(kept[-1]) and not kept[-1].strip().endswith(CLEAN_END):
        kept.pop()
    return "\n".join(kept).rstrip() or None


def _list_without_repeats(text: str) -> str | None:
    """The loop of a list cut, if that leaves a list; else the answer rewritten as a list."""
    cut = _loop_cut(text)
    return cut if cut is not None and _is_list_without_repeats(cut) else _as_list(text, unique=True)


def _first_within(parts: list[str], words: int) -> list[str]:
    """The first parts, as many as fit in `words` words together."""
    kept: list[str] = []
    for part in parts:
        if len(WORD.findall(" ".join([*kept, part]))) > words:
            break
        kept.append(part)
    return kept


def _shortened(text: str) -> str | None:
    """The answer's first sentences, as many as fit in 50 words."""
    return " ".join(_first_within(sentences(text), 50)) or None


def _first_sentence_exclaimed(text: str) -> str | None:
    """The answer with the full stop of its first statement made an exclamation mark (not the
    full stop of a list number: "1!" is no exclamation)."""
    for sentence in SENTENCE.finditer(text):
        end = sentence.end() - 1
        line_start = text.rfind("\n", 0, end) + 1
        if text[end] == "." and not NUMBER_ONLY.fullmatch(text, line_start, end + 1):
            return text[:end] + "!" + text[end + 1 :]
    return None


PREFERENCES = {
    p.name: p
    for p in (
        Preference(
            "list",
            "a list of at least three bullet or numbered lines",
            _is_list,
            "Answer with a numbered list.",
            _as_list,
            "format",
        ),
        Preference(
            "list-no-repeats",
            "a list of at least three bullet or numbered lines, none said twice, no phrase looping",
            _is_list_without_repeats,
            "Answer with a numbered list.",
            _list_without_repeats,
            "format",
        ),
        Preference(
            "brief",
            "5 to 50 words that end with a full stop, ! or ?",
            _is_brief,
            "Answer in one or two short sentences.",
            _shortened,
            "length",
        ),
        Preference(
            "exclaims",
            "contains an exclamation mark",
            _exclaims,
            "Answer with enthusiasm, with exclamation marks!",
            _first_sentence_exclaimed,
            "tone",
        ),
        Preference(
            "example",
            'gives an example ("for example", "for instance", "e.g.", "such as")',
            traits.gives_example,
            "Give an example in your answer.",
            kind="content",
        ),
        Preference(
            "you",
            'addresses the reader as "you"',
            traits.addresses_reader,
            "Speak to me directly, as you.",
            kind="tone",
        ),
        Preference(
            "no-hedging",
            "no hedging words (may, might, can, could, perhaps, often, usually, some …)",
            traits.avoids_hedging,
            "Answer plainly, without hedging words like may, might or often.",
            kind="tone",
        ),
        Preference(
            "paragraphs",
            "three paragraphs or more, separated by blank lines",
            traits.in_paragraphs,
            "Answer in three short paragraphs.",
            kind="format",
        ),
        Preference(
            "quote",
            "quotes something in quotation marks",
            traits.quotes,
            "Include a quotation in quotation marks.",
            kind="format",
        ),
        Preference(
            "short-sentences",
            f"two sentences or more, none over {traits.SHORT_SENTENCE_WORDS} words",
            traits.short_sentences,
            "Answer in short sentences.",
            kind="length",
        ),
        Preference(
            "source",
            "names where a claim comes from (research, a study, experts, according to …)",
            traits.names_source,
            "Say where your facts come from.",
            kind="content",
        ),
        Preference(
            "figures",
            "gives a figure: a digit outside list numbers (a year, a size, a count)",
            traits.gives_figures,
            "Include numbers: a year, a size or a count.",
            kind="content",
        ),
        Preference(
            "analogy",
            'explains by comparison ("imagine", "like a", "similar to")',
            traits.uses_analogy,
            "Explain it with an analogy.",
            kind="content",
        ),
    )
}
