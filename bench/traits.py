"""Traits of an answer that a program can check, for the preferences added with the held-out
protocol (bench/protocol.py): each a pattern a person would notice at a glance.

Each was chosen so that 5-50 % of the default model's answers show it (measured on 288 answers
of SmolLM2-135M-Instruct at 128 tokens, 96 prompts x 3, 2026-12-06; the figure is beside each):
rarer, and a rater who reads at most 4 answers per prompt seldom finds a pair; commoner, and
there is little to learn. None comes with a hand fix: the protocol's rater does not edit.
"""

from __future__ import annotations

import re

WORD = re.compile(r"\b\w+\b")
LIST_MARKER = re.compile(r"^[ \t]*(?:[-*•]|\d+[.)])[ \t]+", re.MULTILINE)
SENTENCE = re.compile(r"[^.!?\n]+[.!?]")

EXAMPLE = re.compile(r"\b(?:for example|for instance|e\.g\.|such as)", re.IGNORECASE)
YOU = re.compile(r"\byou(?:r|rs|rself|rselves)?\b", re.IGNORECASE)
HEDGE = re.compile(
    r"\b(?:may|might|can|could|perhaps|possibly|probably|likely|often|usually|generally|"
    r"typically|sometimes|some|tends?)\b",
    re.IGNORECASE,
)
SOURCE = re.compile(
    r"\b(?:according to|research(?:ers)?|stud(?:y|ies)|scientists?|experts?|sources?|"
    r"published|universit(?:y|ies)|journal|survey)\b",
    re.IGNORECASE,
)
ANALOGY = re.compile(
    r"\b(?:imagine|like an?|think of (?:it|them|this) as|similar to|just like)\b", re.IGNORECASE
)
QUOTE = re.compile(r"[\"“][^\"”\n]{3,}[\"”]")
SHORT_SENTENCE_WORDS = 15


def gives_example(text: str) -> bool:
    """Says "for example", "for instance", "e.g." or "such as" (base: 7 %)."""
    return bool(EXAMPLE.search(text))


def addresses_reader(text: str) -> bool:
    """Speaks to the reader as "you" (base: 32 %)."""
    return bool(YOU.search(text))


def avoids_hedging(text: str) -> bool:
    """Has words and none of the hedges may, might, can, could, perhaps, often, usually, some …
    (base: 48 %)."""
    return bool(WORD.search(text)) and not HEDGE.search(text)


def in_paragraphs(text: str) -> bool:
    """Three paragraphs or more, separated by blank lines (base: 37 %)."""
    return len([p for p in re.split(r"\n\s*\n", text) if p.strip()]) >= 3


def quotes(text: str) -> bool:
    """Quotes something in quotation marks, three characters or more (base: 12 %)."""
    return bool(QUOTE.search(text))


def short_sentences(text: str) -> bool:
    """Two finished sentences or more, none over 15 words (base: 7 %)."""
    found = SENTENCE.findall(text)
    return len(found) >= 2 and max(len(WORD.findall(s)) for s in found) <= SHORT_SENTENCE_WORDS


def names_source(text: str) -> bool:
    """Points to where a claim comes from: research, a study, scientists, experts, "according
    to" … (base: 9 %)."""
    return bool(SOURCE.search(text))


def gives_figures(text: str) -> bool:
    """Has a digit outside list numbers: a year, a size, a count (base: 12 %)."""
    return bool(re.search(r"\d", LIST_MARKER.sub("", text)))


def uses_analogy(text: str) -> bool:
    """Explains by comparison: "imagine", "like a", "similar to", "think of it as" (base: 10 %)."""
    return bool(ANALOGY.search(text))
