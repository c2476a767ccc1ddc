"""Training data in exactly the columns TRL's trainers take (conversational form), versioned.

    export = export_rows(store, "dpo", split="train")
    export.rows        # [{"prompt": [...], "chosen": [...], "rejected": [...]}, ...]
    export.snapshot    # sha256 over schema, format and rows: training records it

Formats and their columns (pinned by a test; a change of columns is a new `EXPORT_SCHEMA`):

| format   | columns                         | TRL trainer      | from                            |
|----------|---------------------------------|------------------|---------------------------------|
| `dpo`    | prompt, chosen, rejected        | DPOTrainer       | decisive comparisons, edits     |
| `reward` | prompt, chosen, rejected        | RewardTrainer    | the same pairs as `dpo`         |
| `kto`    | prompt, completion, label       | KTOTrainer       | net thumbs per answer, edits    |
| `sft`    | messages                        | SFTTrainer       | net thumbs-up answers, edits    |

Every message is `{"role", "content"}` with text content; `prompt` is the whole conversation
before the answer (multi-turn included). The train/eval split is a hash of the prompt, so one
conversation never lands in both splits and the split of a row never changes as data grows.
The rules for which judgements become rows live in `feedback.training_rows`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from feedback import training_rows
from feedback.store import Store
from feedback.training_rows import Filters

EXPORT_SCHEMA = "flywheel.export/1"
COLUMNS: dict[str, tuple[str, ...]] = {
    "dpo": ("prompt", "chosen", "rejected"),
    "kto": ("prompt", "completion", "label"),
    "reward": ("prompt", "chosen", "rejected"),
    "sft": ("messages",),
}
FORMATS = tuple(COLUMNS)
SPLITS = ("train", "eval", "all")
DEFAULT_EVAL_FRACTION = 0.1
# What each format is built from: the fix when an export comes out empty.
SOURCES = {
    "dpo": "pick the better of two answers (Regenerate in the UI, the arena, or "
    "POST /v1/feedback/comparisons) or edit an answer",
    "kto": "rate answers with thumbs up or down (POST /v1/feedback/ratings) or edit an answer",
    "sft": "give answers a thumbs up (POST /v1/feedback/ratings) or edit an answer",
}
SOURCES["reward"] = SOURCES["dpo"]

_BUILDERS = {
    "dpo": training_rows.preference_rows,
    "reward": training_rows.preference_rows,
    "kto": training_rows.kto_rows,
    "sft": training_rows.sft_rows,
}


@dataclass(frozen=True)
class Export:
    """One export: its rows (TRL columns only) and what identifies and describes them."""

    format: str
    split: str
    rows: list[dict[str, Any]]
    snapshot: str
    eval_fraction: float = DEFAULT_EVAL_FRACTION
    counts: dict[str, int] = field(default_factory=dict)  # train, eval, contested, unusable
    schema: str = EXPORT_SCHEMA

    @property
    def columns(self) -> tuple[str, ...]:
        return COLUMNS[self.format]

    def metadata(self) -> dict[str, str]:
        """Everything but the rows, as strings: Parquet schema metadata and HTTP headers."""
        meta = {
            "schema": self.schema,
            "format": self.format,
            "split": self.split,
            "snapshot": self.snapshot,
            "rows": str(len(self.rows)),
            "eval_fraction": str(self.eval_fraction),
            "counts": json.dumps(self.counts, sort_keys=True),
        }
        if self.format == "kto":
            meta["kto_weights"] = json.dumps(list(kto_weights(self.rows)))
        return meta

    def filename(self, kind: str = "jsonl") -> str:
        return f"flywheel-{self.format}-{self.split}-{self.snapshot[:12]}.{kind}"


def export_rows(
    store: Store,
    fmt: str,
    *,
    split: str = "all",
    since: str | None = None,
    model: str | None = None,
    rater: str | None = None,
    eval_fraction: float = DEFAULT_EVAL_FRACTION,
) -> Export:
    """The rows of one format and split, deduplicated, in the order they were judged.

    `since` (ISO 8601) keeps judgements made at or after that time, `model` those about answers
    of that model (requested or engine name), `rater` one rater's. Raises ValueError on a bad
    argument, with a message that names the fix.
    """
    if fmt not in COLUMNS:
        raise ValueError(f"unknown export format {fmt!r}: use one of {', '.join(FORMATS)}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}: use one of {', '.join(SPLITS)}")
    if not 0 <= eval_fraction <= 1:
        raise ValueError(f"eval_fraction must be between 0 and 1, got {eval_fraction}")
    built = _BUILDERS[fmt](store, Filters.parse(since, model, rater))
    splits = [split_of(key, eval_fraction) for key, _ in built.rows]
    rows = [row for (_, row), s in zip(built.rows, splits, strict=True) if split in ("all", s)]
    counts = {
        "train": splits.count("train"),
        "eval": splits.count("eval"),
        "contested": built.contested,
        "unusable": built.unusable,
    }
    return Export(fmt, split, rows, export_snapshot(fmt, rows), eval_fraction, counts)


def split_of(prompt_key: str, eval_fraction: float = DEFAULT_EVAL_FRACTION) -> str:
    """`eval` for a fixed `eval_fraction` of prompts, chosen by their hash; else `train`."""
    position = int(prompt_key[:15], 16) / 16**15  # uniform in [0, 1)
    return "eval" if position < eval_fraction else "train"


def row_split(fmt: str, row: dict[str, Any], eval_fraction: float = DEFAULT_EVAL_FRACTION) -> str:
    """The split of one exported row (its prompt: the `messages` before the answer for sft)."""
    prompt = row["messages"][:-1] if fmt == "sft" else row["prompt"]
    return split_of(training_rows.prompt_key(prompt), eval_fraction)


def export_snapshot(fmt: str, rows: list[dict[str, Any]]) -> str:
    """sha256 over the export schema, the format and the rows, in order."""
    digest = hashlib.sha256(f"{EXPORT_SCHEMA}\n{fmt}\n".encode())
    for row in rows:
        digest.update(json.dumps(row, sort_keys=True, ensure_ascii=False).encode())
        digest.update(b"\n")
    return digest.hexdigest()


# The KTO paper (Ethayarajh et al. 2024, eq. 8) keeps
# (n_desirable * desirable_weight) / (n_undesirable * undesirable_weight) within [1, 4/3];
# we aim at the middle and up-weight the smaller side, leaving the larger one at 1.
KTO_TARGET_RATIO = 7 / 6


def kto_weights(rows: list[dict[str, Any]]) -> tuple[float, float]:
    """`(desirable_weight, undesirable_weight)` for KTOConfig, from the labels' counts.

    Counts already within the paper's range keep (1.0, 1.0), and so does a one-sided dataset
    (there is nothing to balance against).
    """
    desirable = sum(1 for row in rows if row["label"])
    undesirable = len(rows) - desirable
    if not desirable or not undesirable:
        return 1.0, 1.0
    ratio = desirable / undesirable
    if 1 <= ratio <= 4 / 3:
        return 1.0, 1.0
    if ratio < 1:  # fewer desirable: weigh each more
        return round(KTO_TARGET_RATIO / ratio, 4), 1.0
    return 1.0, round(ratio / KTO_TARGET_RATIO, 4)
