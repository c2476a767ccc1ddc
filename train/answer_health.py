"""Did tuning break the model? Answers that are empty, loop on themselves or stop mid-word.

A preference can be "won" by degenerate text (an empty answer is certainly brief), so the gate
(train/health_check.py) retires a candidate whose long answers are less healthy than the live
model's, and the benchmark reports the same share, tuned against base, next to every win rate:
one definition for both, here.
"""

from __future__ import annotations

import re

WORD = re.compile(r"\w+")
CLEAN_ENDINGS = (".", "!", "?", '"', ")", "*", "`", ":")
LIST_MARKER = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s*")


def is_repetitive(text: str, n: int = 4, max_repeats: int = 3) -> bool:
    """Some run of `n` words occurs more than `max_repeats` times."""
    words = WORD.findall(text.lower())
    counts: dict[tuple[str, ...], int] = {}
    for i in range(len(words) - n + 1):
        gram = tuple(words[i : i + n])
        counts[gram] = counts.get(gram, 0) + 1
        if counts[gram] > max_repeats:
            return True
    return False


def _what_it_says(part: str) -> str:
    """A line or sentence with its list number, outer spaces and case set aside."""
    return LIST_MARKER.sub("", part).strip().lower()


def has_repeated_line(text: str) -> bool:
    """Some line occurs twice, list numbers and case aside: a list that names an item again."""
    seen: set[str] = set()
    for line in text.splitlines():
        key = _what_it_says(line)
        if key in seen:
            return True
        if key:
            seen.add(key)
    return False


def repeats_itself(text: str) -> bool:
    """What a reader notices even in a short answer: a line said twice, or a looping phrase."""
    return has_repeated_line(text) or is_repetitive(text)


BREAK = re.compile(r"[.!?](?=\s|$)|\n")
"""Where a person deleting a loop would cut: after a finished sentence or at a line's end."""


def before_the_loop(text: str) -> str | None:
    """An answer that repeats itself, cut where its loop starts, as a person deletes a loop: up
    to the last finished sentence or line before one said again or a looping phrase (None if
    it does not loop, or loops from its first sentence)."""
    if not repeats_itself(text):
        return None
    kept, said, start = None, set(), 0
    for boundary in BREAK.finditer(text):
        piece = _what_it_says(text[start : boundary.end()])
        start = boundary.end()
        if piece in said or repeats_itself(text[: boundary.end()]):
            break
        if piece:  # not a blank line, nor a bare list number ("4.")
            said.add(piece)
            kept = text[: boundary.end()].rstrip()
    return kept


def ends_cleanly(text: str, finish_reason: str | None) -> bool:
    """The model chose to stop, or it was cut off right after a finished sentence."""
    return finish_reason == "stop" or text.rstrip().endswith(CLEAN_ENDINGS)


def is_healthy(text: str, finish_reason: str | None) -> bool:
    return fault(text, finish_reason) is None


def fault(text: str, finish_reason: str | None) -> str | None:
    """What is wrong with an answer, the first that applies: "empty", "repetitive",
    "unfinished" (cut off mid-sentence); None for a healthy one."""
    if not text.strip():
        return "empty"
    if is_repetitive(text):
        return "repetitive"
    if not ends_cleanly(text, finish_reason):
        return "unfinished"
    return None
