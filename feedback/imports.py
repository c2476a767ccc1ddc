"""Import training files (JSON Lines or Parquet, in the export formats) as ordinary judgements.

All or nothing: every row is checked first and any problem rejects the whole file, naming the
first `MAX_ERRORS` problems by row (1-based; in JSON Lines, the line number). A valid file is
then stored as if people had judged it, `WRITE_BATCH` rows per transaction: one transaction
for a whole file held the store's lock for minutes, and every rating and logged answer waited
behind it. A crash midway leaves the batches already committed; importing the file again
completes it (nothing is added twice):

- each (prompt, answer) becomes an exchange `import-<sha256 prefix>` with model `import`;
- a `dpo`/`reward` row becomes a comparison (chosen as a, winner a, source `import`);
- a `kto` row becomes a rating (+1 or -1), an `sft` row a +1 rating of its last message.

Ids derive from the content and a judgement already stored is not added again, so importing
the same file twice changes nothing; exports and training then see these rows like any other.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from feedback.errors import FeedbackError
from feedback.exports import COLUMNS, FORMATS
from feedback.store import Exchange, Store, now
from feedback.training_rows import ROLES, Messages, canonical_messages, message_text

MAX_ERRORS = 20
IMPORT_MODEL = "import"
DEFAULT_RATER = "import"
WRITE_BATCH = 500


class ImportRejected(FeedbackError):
    """The file was not imported; `errors` names the first problems, `total` counts them all."""

    def __init__(self, errors: list[str], total: int | None = None):
        self.errors = errors[:MAX_ERRORS]
        self.total = max(total or 0, len(errors))
        more = self.total - len(self.errors)
        listed = "; ".join(self.errors) + (f"; … and {more} more" if more else "")
        super().__init__(f"nothing imported, {self.total} problem(s): {listed}")


@dataclass
class ImportReport:
    format: str
    rows: int  # rows in the file
    exchanges: int  # new exchanges stored
    comparisons: int  # new comparisons stored
    ratings: int  # new ratings stored
    duplicates: int  # rows that were already stored

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- reading ---------------------------------------------------------------------------------


def read_rows(data: bytes) -> tuple[list[tuple[int, Any]], list[tuple[int, str]]]:
    """(row number, value) for each row of a Parquet or JSON Lines file; (row number, problem)
    for each line that is not JSON."""
    if data.startswith(b"PAR1"):
        import pyarrow.parquet as pq

        try:
            rows = pq.read_table(io.BytesIO(data)).to_pylist()
        except Exception as exc:  # pyarrow raises several types for damaged files
            raise ImportRejected([f"not a readable Parquet file ({exc})"]) from None
        return list(enumerate(rows, 1)), []
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ImportRejected(
            [f"neither Parquet nor UTF-8 JSON Lines (bad byte at offset {exc.start})"]
        ) from None
    rows, problems = [], []
    # "\n" only: JSON may hold U+2028 and friends raw, which splitlines() would cut at.
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            rows.append((number, json.loads(line)))
        except json.JSONDecodeError as exc:
            problems.append((number, f"not valid JSON ({exc.msg} at column {exc.colno})"))
        except RecursionError:  # the decoder recurses per level: 100,000 `[` end here
            problems.append((number, "not valid JSON (nested too deeply)"))
    return rows, problems


# -- checking --------------------------------------------------------------------------------


def _messages_problem(value: Any, column: str) -> str | None:
    if not isinstance(value, list) or not value:
        return f"`{column}` must be a non-empty list of messages {{role, content}}"
    for i, message in enumerate(value, 1):
        if not isinstance(message, dict):
            return f"`{column}` message {i} must be an object {{role, content}}"
        extra = sorted(k for k, v in message.items() if k not in ("role", "content") and v)
        if extra:
            return (
                f"`{column}` message {i} has field(s) {', '.join(extra)}; "
                "only role and text content can be imported"
            )
        if message.get("role") not in ROLES:
            return (
                f"`{column}` message {i} has role {message.get('role')!r}; "
                f"use one of {', '.join(ROLES)}"
            )
        if message_text(message.get("content")) is None:
            return f"`{column}` message {i} must have text `content`"
    return None


def _prompt(value: Any, column: str = "prompt") -> Messages | str:
    """The canonical prompt, or the problem with it."""
    problem = _messages_problem(value, column)
    if problem:
        return problem
    if value[-1]["role"] == "assistant":
        return f"`{column}` must end with a user or system message, not an assistant answer"
    return canonical_messages(value)


def _answer(value: Any, column: str) -> str | tuple[str]:
    """The answer's text as a 1-tuple, or the problem with it."""
    expected = f"`{column}` must be a list of one message with role assistant"
    if not isinstance(value, list) or len(value) != 1 or not isinstance(value[0], dict):
        return expected
    problem = _messages_problem(value, column)
    if problem or value[0]["role"] != "assistant":
        return f"{expected} ({problem})" if problem else expected
    text = message_text(value[0]["content"])
    return (text,) if text.strip() else f"`{column}` is an empty answer"


def _preference(row: dict) -> tuple | str:
    prompt = _prompt(row["prompt"])
    if isinstance(prompt, str):
        return prompt
    chosen, rejected = _answer(row["chosen"], "chosen"), _answer(row["rejected"], "rejected")
    for parsed in (chosen, rejected):
        if isinstance(parsed, str):
            return parsed
    if chosen[0].strip() == rejected[0].strip():
        return "`chosen` and `rejected` are the same answer"
    return prompt, chosen[0], rejected[0]


def _unpaired(row: dict) -> tuple | str:
    prompt = _prompt(row["prompt"])
    if isinstance(prompt, str):
        return prompt
    completion = _answer(row["completion"], "completion")
    if isinstance(completion, str):
        return completion
    if not isinstance(row["label"], bool):
        return f"`label` must be true or false, not {row['label']!r}"
    return prompt, completion[0], 1 if row["label"] else -1


def _conversation(row: dict) -> tuple | str:
    messages = row["messages"]
    problem = _messages_problem(messages, "messages")
    if problem:
        return problem
    if messages[-1]["role"] != "assistant" or len(messages) < 2:
        return "`messages` must be a conversation ending with the assistant answer to learn"
    prompt = _prompt(messages[:-1], "messages")
    if isinstance(prompt, str):
        return prompt.replace("must end with", "must have, before the final answer,")
    text = message_text(messages[-1]["content"])
    return (prompt, text, 1) if text.strip() else "`messages` ends with an empty answer"


CHECKS: dict[str, Callable[[dict], tuple | str]] = {
    "dpo": _preference,
    "reward": _preference,
    "kto": _unpaired,
    "sft": _conversation,
}


def check_rows(
    fmt: str, rows: list[tuple[int, Any]], problems: list[tuple[int, str]] | None = None
) -> list[tuple]:
    """The parsed rows, or ImportRejected naming the problems (with `problems` found earlier,
    e.g. lines that are not JSON) in row order, the first MAX_ERRORS of them."""
    if fmt not in CHECKS:
        raise ImportRejected([f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}"])
    problems = list(problems or [])
    columns = COLUMNS[fmt]
    hint = _format_hint(fmt, rows)
    parsed = []
    for number, row in rows:
        if not isinstance(row, dict):
            problems.append((number, f"expected an object with {', '.join(columns)}"))
            continue
        missing = [c for c in columns if c not in row]
        if missing:
            names = ", ".join(f"`{c}`" for c in missing)
            problems.append((number, f"missing column {names} ({fmt} rows have {hint})"))
            hint = ", ".join(columns)  # which format the rows look like: said once
            continue
        result = CHECKS[fmt](row)
        if isinstance(result, str):
            problems.append((number, result))
        else:
            parsed.append(result)
    if problems:
        problems.sort(key=lambda p: p[0])
        errors = [f"row {number}: {problem}" for number, problem in problems[:MAX_ERRORS]]
        raise ImportRejected(errors, total=len(problems))
    if not rows:
        raise ImportRejected([f"the file has no rows; a {fmt} file has rows with {hint}"])
    return parsed


def _format_hint(fmt: str, rows: list[tuple[int, Any]]) -> str:
    """`fmt`'s columns, and the format whose columns the first row has, when that differs."""
    hint = ", ".join(COLUMNS[fmt])
    first = rows[0][1] if rows else None
    if isinstance(first, dict):
        for other, columns in COLUMNS.items():
            if set(columns) <= set(first) and not set(COLUMNS[fmt]) <= set(first):
                return f"{hint}; these rows look like {other}: import with format {other}"
    return hint


# -- storing ---------------------------------------------------------------------------------


def exchange_id(prompt: Messages, text: str) -> str:
    canonical = json.dumps([prompt, text], sort_keys=True, separators=(",", ":"))
    return "import-" + hashlib.sha256(canonical.encode()).hexdigest()[:32]


def import_rows(
    store: Store,
    fmt: str,
    rows: list[tuple[int, Any]],
    *,
    rater: str = DEFAULT_RATER,
    problems: list[tuple[int, str]] | None = None,
) -> ImportReport:
    """Check every (row number, row) and store them all in one transaction, or nothing.

    `problems`: (row number, problem) found while reading, reported with the others.
    """
    parsed = check_rows(fmt, rows, problems)
    report = ImportReport(fmt, len(rows), 0, 0, 0, 0)
    created = now()

    def exchange(db, prompt: Messages, text: str) -> str:
        eid = exchange_id(prompt, text)
        if db.execute("select 1 from exchanges where id = ?", [eid]).fetchone() is None:
            row = Exchange(eid, IMPORT_MODEL, IMPORT_MODEL, prompt, text, created_at=created)
            db["exchanges"].insert(row.to_row())
            report.exchanges += 1
        return eid

    for start in range(0, len(parsed), WRITE_BATCH):
        with store.transaction() as db:  # one batch at a time: other writers get turns
            for item in parsed[start : start + WRITE_BATCH]:
                _store_row(db, fmt, item, rater, created, exchange, report)
    return report


def _store_row(db, fmt: str, item, rater: str, created: str, exchange, report) -> None:
    """One checked row: its answers as exchanges, then its comparison or its rating (a row
    already imported by the same rater is counted as a duplicate)."""
    if fmt in ("dpo", "reward"):
        prompt, chosen, rejected = item
        a, b = exchange(db, prompt, chosen), exchange(db, prompt, rejected)
        duplicate = (
            "select 1 from comparisons where exchange_a = ? and exchange_b = ? "
            "and winner = 'a' and source = 'import' and rater is ?",
            [a, b, rater],
        )
        row = {"prompt": json.dumps(prompt), "exchange_a": a, "exchange_b": b, "winner": "a",
               "rater": rater, "source": "import", "created_at": created}  # fmt: skip
        table = "comparisons"
    else:
        prompt, text, value = item
        eid = exchange(db, prompt, text)
        duplicate = (
            "select 1 from ratings where exchange_id = ? and value = ? and rater is ?",
            [eid, value, rater],
        )
        row = {"exchange_id": eid, "value": value, "reasons": "[]", "comment": None,
               "rater": rater, "created_at": created}  # fmt: skip
        table = "ratings"
    if db.execute(*duplicate).fetchone():
        report.duplicates += 1
        return
    db[table].insert(row)
    setattr(report, table, getattr(report, table) + 1)


def import_bytes(
    store: Store, fmt: str, data: bytes, *, rater: str = DEFAULT_RATER
) -> ImportReport:
    """Import a whole file's bytes (Parquet is recognised by its magic, else JSON Lines)."""
    rows, problems = read_rows(data)
    return import_rows(store, fmt, rows, rater=rater, problems=problems)


def import_file(
    store: Store, fmt: str, path: str | Path, *, rater: str = DEFAULT_RATER
) -> ImportReport:
    return import_bytes(store, fmt, Path(path).read_bytes(), rater=rater)
