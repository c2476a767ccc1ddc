"""Rater statistics: counts per rater and agreement on shared judgements."""

from feedback import Exchange, Store
from feedback.raters import rater_stats

PROMPT = [{"role": "user", "content": "Hi"}]


def _store_with_answers(n: int) -> Store:
    store = Store(None)
    store.log_exchanges(
        Exchange(id=f"x{i}", model="m", engine_model="m", messages=PROMPT, completion=f"answer {i}")
        for i in range(n)
    )
    return store


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
