"""Imports: round trips, all-or-nothing with row-numbered errors, no duplicates on re-import."""

import pytest

from feedback import Store
from feedback.export_files import jsonl_lines, parquet_bytes
from feedback.exports import FORMATS, export_rows
from feedback.imports import MAX_ERRORS, ImportRejected, exchange_id, import_bytes
from tests.unit.feedback_rows import P1, P2, PAIR, build_store, jsonl


def rejected(store: Store, fmt: str, data: bytes) -> ImportRejected:
    """Import must fail, store nothing, and name rows in every message."""
    before = store.counts()
    with pytest.raises(ImportRejected) as info:
        import_bytes(store, fmt, data)
    assert store.counts() == before
    return info.value


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("kind", ["jsonl", "parquet"])
def test_round_trip_gives_the_same_rows(fmt, kind):
    original = export_rows(build_store(), fmt)
    data = parquet_bytes(original) if kind == "parquet" else b"".join(jsonl_lines(original.rows))
    fresh = Store(None)
    report = import_bytes(fresh, fmt, data)
    assert report.rows == len(original.rows) and report.duplicates == 0
    again = export_rows(fresh, fmt)
    assert again.rows == original.rows
    assert again.snapshot == original.snapshot


def test_reimporting_the_same_file_adds_nothing():
    data = b"".join(jsonl_lines(export_rows(build_store(), "kto").rows))
    store = Store(None)
    first = import_bytes(store, "kto", data)
    counts = store.counts()
    second = import_bytes(store, "kto", data)
    assert store.counts() == counts
    assert (second.exchanges, second.ratings, second.duplicates) == (0, 0, first.rows)


def test_imported_rows_are_ordinary_exchanges_and_judgements():
    store = Store(None)
    report = import_bytes(store, "dpo", jsonl(PAIR))
    assert (report.exchanges, report.comparisons) == (2, 1)
    chosen = store.exchange(exchange_id(P1, "4"))
    assert chosen["id"].startswith("import-") and chosen["model"] == "import"
    assert chosen["messages"] == P1 and chosen["completion"] == "4"
    [comparison] = store.comparisons()
    assert (comparison["winner"], comparison["source"], comparison["rater"]) == (
        "a",
        "import",
        "import",
    )
    assert export_rows(store, "dpo", rater="import").rows == [PAIR]
    assert export_rows(store, "dpo", model="import").rows == [PAIR]


def test_an_sft_import_is_a_thumbs_up_that_kto_sees():
    store = Store(None)
    import_bytes(
        store, "sft", jsonl({"messages": [*P2, {"role": "assistant", "content": "Paris."}]})
    )
    assert export_rows(store, "kto").rows == [
        {"prompt": P2, "completion": [{"role": "assistant", "content": "Paris."}], "label": True}
    ]


def test_a_bad_json_line_is_named_by_its_line_and_nothing_is_stored():
    store = Store(None)
    error = rejected(store, "dpo", jsonl(PAIR, b'{"prompt": [', PAIR))
    assert error.errors == ["row 2: not valid JSON (Expecting value at column 13)"]


def test_a_line_nested_too_deeply_is_named_not_a_crash():
    """Hardening 13: the JSON decoder recurses per level; 100,000 `[` raised RecursionError."""
    store = Store(None)
    error = rejected(store, "dpo", jsonl(PAIR, b"[" * 100_000, PAIR))
    assert error.errors == ["row 2: not valid JSON (nested too deeply)"]


def test_missing_column_names_the_column_and_guesses_the_format():
    kto_row = {"prompt": P1, "completion": PAIR["chosen"], "label": True}
    error = rejected(Store(None), "dpo", jsonl(kto_row, kto_row))
    assert error.errors[0].startswith("row 1: missing column `chosen`, `rejected`")
    assert "look like kto: import with format kto" in error.errors[0]
    assert error.errors[1].startswith("row 2: missing column")


@pytest.mark.parametrize(
    "fmt, row, message",
    [
        (
            "dpo",
            {**PAIR, "chosen": [{"role": "user", "content": "4"}]},
            "`chosen` must be a list of one message with role assistant",
        ),
        ("dpo", {**PAIR, "rejected": "five"}, "`rejected` must be a list of one message"),
        ("dpo", {**PAIR, "rejected": PAIR["chosen"]}, "are the same answer"),
        ("reward", {**PAIR, "prompt": []}, "`prompt` must be a non-empty list of messages"),
        (
            "dpo",
            {**PAIR, "prompt": [{"role": "bot", "content": "hi"}]},
            "`prompt` message 1 has role 'bot'",
        ),
        (
            "dpo",
            {**PAIR, "prompt": [*P1, {"role": "assistant", "content": "4"}]},
            "must end with a user or system message",
        ),
        (
            "dpo",
            {**PAIR, "prompt": [{"role": "user", "content": "x", "tool_calls": [1]}]},
            "has field(s) tool_calls",
        ),
        (
            "kto",
            {"prompt": P1, "completion": PAIR["chosen"], "label": "yes"},
            "`label` must be true or false",
        ),
        (
            "kto",
            {"prompt": P1, "completion": [{"role": "assistant", "content": " "}], "label": True},
            "`completion` is an empty answer",
        ),
        ("sft", {"messages": P1}, "must be a conversation ending with the assistant answer"),
        ("sft", [1, 2], "expected an object with messages"),
    ],
)
def test_malformed_rows_are_named_by_row(fmt, row, message):
    error = rejected(Store(None), fmt, jsonl(PAIR if fmt != "sft" else {"x": 1}, row))
    assert any(e.startswith("row 2: ") and message in e for e in error.errors), error.errors


def test_one_bad_row_among_good_ones_stores_nothing():
    rows = [PAIR] * 5 + [{**PAIR, "chosen": []}] + [PAIR] * 5
    error = rejected(Store(None), "dpo", jsonl(*rows))
    assert error.errors == ["row 6: `chosen` must be a list of one message with role assistant"]
    assert error.total == 1


def test_errors_are_capped_and_counted():
    error = rejected(Store(None), "sft", jsonl(*([PAIR] * 50)))
    assert len(error.errors) == MAX_ERRORS and error.total == 50
    assert "… and 30 more" in str(error)
    assert [e.split(":")[0] for e in error.errors[:3]] == ["row 1", "row 2", "row 3"]


def test_empty_file_and_wrong_format_are_rejected():
    assert "no rows" in rejected(Store(None), "dpo", b"").errors[0]
    assert "no rows" in rejected(Store(None), "dpo", b"\n\n").errors[0]
    error = rejected(Store(None), "orpo", jsonl(PAIR))
    assert "unknown format 'orpo'" in error.errors[0]
    assert "neither Parquet nor UTF-8" in rejected(Store(None), "dpo", b"\xff\xfe\x00").errors[0]
    assert "not a readable Parquet file" in rejected(Store(None), "dpo", b"PAR1garbage").errors[0]


def test_a_parquet_file_in_another_format_is_rejected_by_row():
    sft = export_rows(build_store(), "sft")
    error = rejected(Store(None), "dpo", parquet_bytes(sft))
    assert error.errors[0].startswith("row 1: missing column `prompt`, `chosen`, `rejected`")
    assert "look like sft" in error.errors[0]


def test_a_big_import_is_written_in_batches_other_writers_can_come_between(monkeypatch):
    """Hardening 11: a whole file in one transaction held the store's lock for minutes (50,000
    rows: 283 s), and every rating and logged answer waited behind it."""
    import feedback.imports as imports

    monkeypatch.setattr(imports, "WRITE_BATCH", 100)
    store = Store(None)
    transactions = []
    real = store.transaction
    monkeypatch.setattr(store, "transaction", lambda: transactions.append(1) or real())
    rows = [{**PAIR, "chosen": [{"role": "assistant", "content": f"answer {i}"}]}
            for i in range(1050)]  # fmt: skip
    report = import_bytes(store, "dpo", jsonl(*rows))
    assert report.comparisons == 1050 and len(transactions) == 11
    assert import_bytes(store, "dpo", jsonl(*rows)).comparisons == 0  # a rerun completes it
