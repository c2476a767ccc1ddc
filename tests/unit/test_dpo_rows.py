"""DPO rows from comparisons: the rules `flywheel train --method dpo` trains on."""

from feedback import Store
from feedback.exports import export_rows, export_snapshot
from tests.unit.feedback_rows import store_with

PROMPT = [{"role": "user", "content": "hi"}]


def dpo_pairs(store: Store) -> list[dict]:
    return export_rows(store, "dpo").rows


def snapshot_hash(rows: list[dict]) -> str:
    return export_snapshot("dpo", rows)


def test_winner_becomes_chosen_in_conversational_form():
    store = store_with("short", "long answer")
    store.add_comparison("c0", "c1", "b")
    assert dpo_pairs(store) == [
        {
            "prompt": PROMPT,
            "chosen": [{"role": "assistant", "content": "long answer"}],
            "rejected": [{"role": "assistant", "content": "short"}],
        }
    ]


def test_ties_and_both_bad_are_not_preferences():
    store = store_with("x", "y")
    store.add_comparison("c0", "c1", "tie")
    store.add_comparison("c0", "c1", "both_bad")
    assert dpo_pairs(store) == []


def test_the_same_judgement_twice_counts_once():
    store = store_with("x", "y")
    store.add_comparison("c0", "c1", "a")
    store.add_comparison("c1", "c0", "b")
    assert len(dpo_pairs(store)) == 1


def test_identical_answers_make_no_pair():
    store = store_with("same", "same")
    store.add_comparison("c0", "c1", "a")
    assert dpo_pairs(store) == []


def test_snapshot_hash_is_stable_and_sees_every_change():
    rows = [{"prompt": PROMPT, "chosen": "a", "rejected": "b"}]
    assert snapshot_hash(rows) == snapshot_hash([dict(rows[0])])
    assert snapshot_hash(rows) != snapshot_hash([{**rows[0], "chosen": "c"}])
    assert snapshot_hash(rows) != snapshot_hash(rows + rows)
