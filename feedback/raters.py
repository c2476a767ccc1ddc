"""Rater statistics: how much each rater judged, and how often they agree with the others.

Agreement is measured only where several raters judged the same thing: the same answer
(thumbs) or the same pair of answers (comparisons and single-turn arena votes). For each rater
it is the share of their judgements on shared items that match another rater's judgement of
the same item, counted per pair of raters. A rater who disagrees with everyone is worth a look
before their votes go into training data (Argilla #3347, #4282).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from feedback.store import Store

ANONYMOUS = "(anonymous)"


def _latest_judgements(rows: list[dict[str, Any]]) -> dict[Any, dict[str, Any]]:
    """item -> rater -> that rater's latest judgement of it (rows come oldest first)."""
    items: dict[Any, dict[str, Any]] = defaultdict(dict)
    for row in rows:
        items[row["item"]][row["rater"] or ANONYMOUS] = row["outcome"]
    return items


def _agreement(items: dict[Any, dict[str, Any]], agree: dict, compared: dict) -> None:
    """Per rater, over every pair of raters sharing an item: pairs compared and pairs that
    matched. Counted per outcome, linear in the judgements: a rater with outcome `o` on an
    item judged by `k` raters is in `k - 1` pairs, `count(o) - 1` of them matching. (Pair by
    pair it was quadratic: one answer rated under 30,000 names took minutes.)"""
    for judgements in items.values():
        outcomes = Counter(judgements.values())
        others = len(judgements) - 1
        for rater, outcome in judgements.items():
            compared[rater] += others
            agree[rater] += outcomes[outcome] - 1


def rater_stats(store: Store) -> list[dict[str, Any]]:
    """One row per rater: counts of each kind of judgement, shared items and agreement."""
    counts: dict[str, dict[str, int]] = defaultdict(
        lambda: {"ratings": 0, "comparisons": 0, "edits": 0, "arena_votes": 0}
    )
    for table, column, where in (
        ("ratings", "ratings", ""),
        ("comparisons", "comparisons", "where source != 'arena'"),
        ("edits", "edits", ""),
        ("battles", "arena_votes", "where status = 'voted'"),
    ):
        for row in store.query(f"select rater, count(*) as n from {table} {where} group by rater"):
            counts[row["rater"] or ANONYMOUS][column] = row["n"]

    ratings = store.query(
        "select exchange_id as item, rater, value as outcome from ratings order by id"
    )
    comparisons = store.query(
        """select min(exchange_a, exchange_b) || ' ' || max(exchange_a, exchange_b) as item,
                  rater,
                  case winner when 'a' then exchange_a when 'b' then exchange_b
                              else winner end as outcome
           from comparisons order by id"""
    )
    agree: dict[str, int] = defaultdict(int)
    compared: dict[str, int] = defaultdict(int)
    _agreement(_latest_judgements(ratings), agree, compared)
    _agreement(_latest_judgements(comparisons), agree, compared)

    return [
        {
            "rater": rater,
            **counts[rater],
            "shared": compared[rater],
            "agreement": round(agree[rater] / compared[rater], 3) if compared[rater] else None,
        }
        for rater in sorted(counts)
    ]
