import sqlite3

import pytest

from feedback import Exchange, InvalidJudgement, Store, UnknownExchange
from feedback.migrations import migrations


def exchange(id_: str, prompt: str = "hi", completion: str = "hello") -> Exchange:
    return Exchange(
        id=id_,
        model="m",
        engine_model="m",
        messages=[{"role": "user", "content": prompt}],
        completion=completion,
    )


@pytest.fixture
def store() -> Store:
    s = Store(None)
    s.log_exchanges([exchange("a", completion="one"), exchange("b", completion="two")])
    return s


def test_blank_database_gets_every_table_and_records_the_migration(tmp_path):
    store = Store(tmp_path / "f.db")
    assert {"exchanges", "ratings", "comparisons", "adapters", "jobs"} <= set(
        store.db.table_names()
    )
    applied = [row["name"] for row in store.db["migrations"].rows]
    assert applied == [m.name for m in migrations._migrations]


def test_reopening_applies_nothing_twice(tmp_path):
    Store(tmp_path / "f.db").close()
    store = Store(tmp_path / "f.db")
    assert store.db["migrations"].count == len(migrations._migrations)


def test_file_database_uses_wal_and_full_sync(tmp_path):
    store = Store(tmp_path / "f.db")
    assert store.db.execute("pragma journal_mode").fetchone()[0] == "wal"
    assert store.db.execute("pragma synchronous").fetchone()[0] == 2  # FULL


def test_acknowledged_rating_is_visible_to_another_connection(tmp_path):
    store = Store(tmp_path / "f.db")
    store.log_exchanges([exchange("x")])
    store.add_rating("x", 1, reasons=["helpful"], comment="good")
    other = sqlite3.connect(tmp_path / "f.db")
    assert other.execute("select exchange_id, value, comment from ratings").fetchall() == [
        ("x", 1, "good")
    ]


def test_logging_the_same_exchange_twice_keeps_the_first(store):
    store.log_exchanges([exchange("a", completion="changed")])
    assert store.exchange("a")["completion"] == "one"
    assert store.counts()["exchanges"] == 2


def test_rating_an_unknown_completion_names_the_id(store):
    with pytest.raises(UnknownExchange, match="'nope'"):
        store.add_rating("nope", 1)


@pytest.mark.parametrize("value", [0, 2, -2])
def test_rating_value_must_be_a_thumb(store, value):
    with pytest.raises(InvalidJudgement):
        store.add_rating("a", value)


def test_comparison_is_stored_with_its_prompt(store):
    store.add_comparison("a", "b", "b", rater="r1", source="ui")
    [row] = store.comparisons()
    assert row["prompt"] == [{"role": "user", "content": "hi"}]
    assert (row["winner"], row["completion_a"], row["completion_b"]) == ("b", "one", "two")


def test_comparison_of_answers_to_different_prompts_is_refused(store):
    store.log_exchanges([exchange("c", prompt="something else")])
    with pytest.raises(InvalidJudgement, match="different conversations"):
        store.add_comparison("a", "c", "a")


def test_comparison_needs_two_different_known_answers(store):
    with pytest.raises(InvalidJudgement):
        store.add_comparison("a", "a", "a")
    with pytest.raises(UnknownExchange):
        store.add_comparison("a", "missing", "a")
    with pytest.raises(InvalidJudgement, match="winner"):
        store.add_comparison("a", "b", "c")


def test_job_metrics_accumulate_in_order(store):
    job = store.create_job("dpo", {"lr": 1})
    store.append_job_metrics(job, 1, 3, {"loss": 0.7})
    store.append_job_metrics(job, 2, 3, {"loss": 0.5})
    store.update_job(job, status="succeeded")
    row = store.job(job)
    assert [m["loss"] for m in row["metrics"]] == [0.7, 0.5]
    assert (row["step"], row["total_steps"], row["status"]) == (2, 3, "succeeded")
    assert row["finished_at"]


def open_at_once(path, openers: int) -> list[BaseException]:
    """`openers` threads, each with its own connection, open the same database together."""
    import threading

    errors: list[BaseException] = []
    start = threading.Barrier(openers)

    def open_it() -> None:
        try:
            start.wait()
            Store(path).close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(openers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def test_processes_opening_a_new_database_at_once_all_migrate_it(tmp_path):
    """Hardening 20: openers of a new database all saw m001 pending; all but one failed
    ("database is locked", or "table already exists")."""
    for attempt in range(10):
        path = tmp_path / f"race-{attempt}" / "flywheel.db"
        assert open_at_once(path, 6) == []
        assert Store(path).counts() is not None
