"""Exports: exact TRL rows per format, dedup, contested pairs, split, filters, snapshot, files."""

import io
import json

import pytest

from feedback import Exchange, Store
from feedback.export_files import arrow_schema, jsonl_lines, parquet_bytes, parquet_metadata
from feedback.exports import (
    COLUMNS,
    EXPORT_SCHEMA,
    FORMATS,
    export_rows,
    export_snapshot,
    kto_weights,
    row_split,
)
from tests.unit.feedback_rows import P1, P2, P3_TEXT, ask, build_store


@pytest.fixture
def store() -> Store:
    return build_store()


def test_dpo_rows_exactly(store):
    export = export_rows(store, "dpo")
    assert export.rows == [
        {"prompt": P1, "chosen": ask("4"), "rejected": ask("five")},
        {"prompt": P2, "chosen": ask("Paris."), "rejected": ask("London.")},
        {"prompt": P1, "chosen": ask("2 + 2 = 4."), "rejected": ask("five")},  # the edit
    ]
    assert export.counts["contested"] == 1


def test_reward_rows_are_the_dpo_pairs(store):
    assert export_rows(store, "reward").rows == export_rows(store, "dpo").rows


def test_kto_rows_exactly(store):
    export = export_rows(store, "kto")
    assert export.rows == [
        {"prompt": P1, "completion": ask("4"), "label": True},  # net +2
        {"prompt": P2, "completion": ask("London."), "label": False},
        {"prompt": P3_TEXT, "completion": ask("Yes."), "label": True},
        {"prompt": P1, "completion": ask("2 + 2 = 4."), "label": True},  # the edit
    ]
    assert export.counts["unusable"] == 1


def test_sft_rows_exactly(store):
    assert export_rows(store, "sft").rows == [
        {"messages": [*P1, *ask("4")]},
        {"messages": [*P3_TEXT, *ask("Yes.")]},
        {"messages": [*P1, *ask("2 + 2 = 4.")]},
    ]


def test_contested_pair_is_left_out_but_one_raters_view_keeps_it(store):
    prompts = [row["prompt"] for row in export_rows(store, "dpo").rows]
    assert P3_TEXT not in prompts
    alice = export_rows(store, "dpo", rater="alice").rows
    assert {"prompt": P3_TEXT, "chosen": ask("Yes."), "rejected": ask("No.")} in alice
    assert len(alice) == 3


def test_identical_answers_in_two_exchanges_count_as_one_answer(store):
    store.log_exchanges([Exchange("a3", "base", "base", P1, "4")])
    store.add_rating("a3", -1, rater="carol")  # a1 and a3 are the same answer: net +1
    labels = [(r["completion"][0]["content"], r["label"]) for r in export_rows(store, "kto").rows]
    assert labels.count(("4", True)) == 1 and ("4", False) not in labels


def test_filter_by_model_matches_requested_or_engine_name(store):
    pair = [{"prompt": P2, "chosen": ask("Paris."), "rejected": ask("London.")}]
    assert export_rows(store, "dpo", model="tone").rows == pair
    assert export_rows(store, "dpo", model="tone@2").rows == pair  # either answer's model
    assert export_rows(store, "kto", model="tone@2").rows == [
        {"prompt": P2, "completion": ask("London."), "label": False}
    ]
    assert export_rows(store, "sft", model="nobody").rows == []


def test_filter_by_rater(store):
    assert export_rows(store, "sft", rater="bob").rows == [
        {"messages": [*P1, *ask("4")]},
        {"messages": [*P1, *ask("five")]},  # bob alone liked it
        {"messages": [*P3_TEXT, *ask("Yes.")]},
    ]


def test_filter_since_keeps_later_judgements(store):
    with store.transaction() as db:
        db.execute("update comparisons set created_at = '2020-01-01T00:00:00.000+00:00'")
        db.execute(
            "update comparisons set created_at = '2030-06-01T00:00:00.000+00:00' where id = 5"
        )
    expected = [
        {"prompt": P2, "chosen": ask("Paris."), "rejected": ask("London.")},
        {"prompt": P1, "chosen": ask("2 + 2 = 4."), "rejected": ask("five")},  # edited now
    ]
    assert export_rows(store, "dpo", since="2021-01-01").rows == expected
    assert export_rows(store, "dpo", since="2029-12-31T23:00:00Z").rows == expected[:1]
    assert export_rows(store, "dpo", since="2030-06-01T02:00:00+02:00").rows == expected[:1]


def test_filters_are_parameters_not_sql(store):
    assert export_rows(store, "dpo", rater="alice' or '1'='1").rows == []
    assert export_rows(store, "dpo", model="x' or 1=1 --").rows == []


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"fmt": "orpo"}, "unknown export format"),
        ({"split": "test"}, "unknown split"),
        ({"since": "last week"}, "ISO 8601"),
        ({"eval_fraction": 1.5}, "between 0 and 1"),
    ],
)
def test_bad_arguments_say_what_to_use(store, kwargs, message):
    kwargs = {"fmt": "dpo", **kwargs}
    with pytest.raises(ValueError, match=message):
        export_rows(store, kwargs.pop("fmt"), **kwargs)


def many_prompts_store(n: int = 60) -> Store:
    store = Store(None)
    for i in range(n):
        prompt = [{"role": "user", "content": f"question {i}"}]
        store.log_exchanges(
            [
                Exchange(f"g{i}", "m", "m", prompt, "good"),
                Exchange(f"b{i}", "m", "m", prompt, "bad"),
            ]
        )
        store.add_comparison(f"g{i}", f"b{i}", "a")
        store.add_edit(f"b{i}", "better")  # a second row with the same prompt
    return store


def test_split_is_deterministic_and_no_prompt_is_in_both():
    store = many_prompts_store()
    train = export_rows(store, "dpo", split="train", eval_fraction=0.25)
    evals = export_rows(store, "dpo", split="eval", eval_fraction=0.25)
    every = export_rows(store, "dpo", split="all", eval_fraction=0.25)
    key = lambda row: json.dumps(row["prompt"])  # noqa: E731
    assert {key(r) for r in train.rows}.isdisjoint({key(r) for r in evals.rows})
    assert len(train.rows) + len(evals.rows) == len(every.rows) == 120
    assert 10 <= len(evals.rows) // 2 <= 20  # about a quarter of 60 prompts
    assert train.counts["eval"] == len(evals.rows) == evals.counts["eval"]
    assert export_rows(store, "dpo", split="eval", eval_fraction=0.25).rows == evals.rows
    assert all(row_split("dpo", r, 0.25) == "eval" for r in evals.rows)
    assert export_rows(store, "dpo", split="eval", eval_fraction=0).rows == []


def test_a_rows_split_does_not_change_as_data_grows():
    store = many_prompts_store(20)
    before = export_rows(store, "sft", split="eval", eval_fraction=0.3).rows
    store.log_exchanges([Exchange("new", "m", "m", [{"role": "user", "content": "new"}], "x")])
    store.add_edit("new", "y")
    after = export_rows(store, "sft", split="eval", eval_fraction=0.3).rows
    assert before and all(row in after for row in before)


def test_snapshot_is_stable_and_changes_with_data_and_format(store):
    first = export_rows(store, "dpo")
    assert (
        export_rows(store, "dpo").snapshot == first.snapshot == export_snapshot("dpo", first.rows)
    )
    assert export_rows(store, "reward").snapshot != first.snapshot  # same rows, other format
    store.add_comparison("m2", "m1", "a", rater="erin")  # contests the P2 pair: rows change
    assert export_rows(store, "dpo").snapshot != first.snapshot
    assert len(first.snapshot) == 64


def test_export_schema_and_columns_are_pinned(store):
    """Clients and training rely on these names: a change needs a new EXPORT_SCHEMA."""
    assert EXPORT_SCHEMA == "flywheel.export/1"
    assert COLUMNS == {
        "dpo": ("prompt", "chosen", "rejected"),
        "kto": ("prompt", "completion", "label"),
        "reward": ("prompt", "chosen", "rejected"),
        "sft": ("messages",),
    }
    for fmt in FORMATS:
        export = export_rows(store, fmt)
        assert export.rows and all(tuple(row) == COLUMNS[fmt] for row in export.rows)
        for row in export.rows:
            for column in set(COLUMNS[fmt]) - {"label"}:
                assert all(set(m) == {"role", "content"} for m in row[column])
                assert all(isinstance(m["content"], str) for m in row[column])
        assert arrow_schema(fmt).names == list(COLUMNS[fmt])


def test_kto_weights_follow_the_papers_range():
    def rows(desirable: int, undesirable: int) -> list[dict]:
        return [{"label": True}] * desirable + [{"label": False}] * undesirable

    assert kto_weights(rows(5, 5)) == (1.0, 1.0)
    assert kto_weights(rows(6, 5)) == (1.0, 1.0)  # 1.2: already in range
    assert kto_weights(rows(3, 0)) == (1.0, 1.0)  # one-sided: nothing to balance
    for d, u in [(1, 9), (9, 1), (2, 3), (100, 7)]:
        wd, wu = kto_weights(rows(d, u))
        assert 1 <= (d * wd) / (u * wu) <= 4 / 3
        assert min(wd, wu) == 1.0  # the larger side keeps weight 1
        # TRL's KTOTrainer checks the same bounds, rounded to 2 decimals, and warns outside them
        assert round(u * wu / d, 2) <= wd <= round(u * wu / d * 1.33, 2)


def test_kto_export_metadata_carries_the_weights(store):
    export = export_rows(store, "kto")
    assert json.loads(export.metadata()["kto_weights"]) == list(kto_weights(export.rows))


def test_jsonl_and_parquet_hold_the_rows_and_parquet_the_metadata(store, tmp_path):
    import pyarrow.parquet as pq

    for fmt in FORMATS:
        export = export_rows(store, fmt)
        lines = b"".join(jsonl_lines(export.rows)).decode().split("\n")
        assert [json.loads(line) for line in lines if line] == export.rows
        data = parquet_bytes(export)
        assert pq.read_table(io.BytesIO(data)).to_pylist() == export.rows
        meta = parquet_metadata(data)
        assert meta == export.metadata()
        assert (meta["schema"], meta["format"], meta["snapshot"]) == (
            EXPORT_SCHEMA,
            fmt,
            export.snapshot,
        )
    empty = export_rows(Store(None), "kto")
    assert pq.read_table(io.BytesIO(parquet_bytes(empty))).num_rows == 0


def test_files_load_with_datasets(store, tmp_path):
    from datasets import load_dataset

    for fmt in FORMATS:
        export = export_rows(store, fmt)
        (tmp_path / f"{fmt}.jsonl").write_bytes(b"".join(jsonl_lines(export.rows)))
        (tmp_path / f"{fmt}.parquet").write_bytes(parquet_bytes(export))
        for kind in ("json", "parquet"):
            suffix = "jsonl" if kind == "json" else "parquet"
            data = load_dataset(
                kind,
                data_files=str(tmp_path / f"{fmt}.{suffix}"),
                split="train",
                cache_dir=str(tmp_path / "cache"),
            )
            assert data.column_names == list(COLUMNS[fmt])
            assert data.to_list() == export.rows
