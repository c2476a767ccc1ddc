"""Rater statistics: counts per rater and agreement on shared judgements."""

from feedback import Store
from feedback.raters import rater_stats
from tests.unit.feedback_rows import store_with

PROMPT = [{"role": "user", "content": "Hi"}]


def _store_with_answers(n: int) -> Store:
    return store_with(*(f"answer {i}" for i in range(n)), prompt=PROMPT, prefix="x")


def test_counts_and_agreement_per_rater():
    store = _store_with_answers(4)
    # thumbs on x0: ann and bob agree, cat disagrees
    store.add_rating("x0", 1, rater="ann")
    store.add_rating("x0", 1, rater="bob")
    store.add_rating("x0", -1, rater="cat")
    # the pair (x1, x2): ann and bob agree even with the sides swapped; cat says tie
    store.add_comparison("x1", "x2", "a", rater="ann")
    store.add_comparison("x2", "x1", "b", rater="bob")
    store.add_comparison("x1", "x2", "tie", rater="cat")
    store.add_edit("x3", "a better answer", rater="ann")
    store.add_rating("x3", -1)  # nobody else judged x3: no agreement data

    rows = {r["rater"]: r for r in rater_stats(store)}
    assert rows["ann"] == {
        "rater": "ann",
        "ratings": 1,
        "comparisons": 1,
        "edits": 1,
        "arena_votes": 0,
        "shared": 4,  # x0 against bob and cat, the pair against bob and cat
        "agreement": 0.5,
    }
    assert rows["cat"]["agreement"] == 0.0
    assert rows["(anonymous)"]["shared"] == 0 and rows["(anonymous)"]["agreement"] is None


def test_a_rater_changing_their_mind_counts_once():
    store = _store_with_answers(1)
    store.add_rating("x0", -1, rater="ann")
    store.add_rating("x0", 1, rater="ann")  # the latest judgement stands
    store.add_rating("x0", 1, rater="bob")
    rows = {r["rater"]: r for r in rater_stats(store)}
    assert rows["ann"]["agreement"] == 1.0 and rows["ann"]["ratings"] == 2


def test_one_answer_rated_under_30000_names_is_counted_in_linear_time():
    """Hardening 7: agreement was computed pair by pair (30,000 raters: ~450 million pairs)."""
    import time

    from feedback.raters import _agreement

    judgements = {f"rater{i}": (1 if i % 3 else -1) for i in range(30_000)}
    agree: dict[str, int] = {r: 0 for r in judgements}
    compared: dict[str, int] = {r: 0 for r in judgements}
    started = time.perf_counter()
    _agreement({"x0": judgements}, agree, compared)
    assert time.perf_counter() - started < 1
    assert compared["rater1"] == 29_999
    assert agree["rater1"] == 20_000 - 1 and agree["rater0"] == 10_000 - 1
