"""The recipe: every parameter a job leaves unset, chosen from its data and its starting point.

`flywheel train`, `POST /v1/train/jobs`, the Training tab and `flywheel loop` all start the same
job, so a user who sets nothing gets the recipe the loop was measured with, whichever door they
used. The fixed part lives in each method's parameter defaults (train/dpo.py); what depends on
the job is decided here, and said in the job's log:

- **Continuing an adapter** (`--base live` or a named adapter) halves DPO's learning rate: the
  first round has to move the base model far on a few dozen pairs, later rounds refine an
  adapter that already shows the trait (measured: docs/experiments.md, "Before the protocol":
  at the full rate throughout, `exclaims` round 2 looped, 44 % of its 512-token answers
  healthy against the base's 55 %).
- **`max_length` 0** (whole answers) becomes the longest prompt + answer in the rows, in tokens,
  rounded up to 16 and at most `WHOLE_ANSWER_CAP`: no answer is cut, so the model sees where
  each one ends, and no step pays for padding beyond the longest row.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

from train.lora import TrainParams

CONTINUE_LR_FACTOR = 0.5
HALVED_WHEN_CONTINUING = ("dpo",)
"""The methods whose rate was measured over rounds; the others keep theirs."""
WHOLE_ANSWER_CAP = 512
"""Tokens: past this a row is cut even under "whole answers" (a step's cost grows with it)."""


def row_tokens(row: dict[str, Any], count: Callable[[list[dict]], int]) -> int:
    """The longest conversation a row trains on: prompt + chosen/rejected/completion/messages."""
    prompt = row.get("prompt") or []
    answers = [row[k] for k in ("chosen", "rejected", "completion") if row.get(k)]
    conversations = [prompt + a for a in answers] or [row.get("messages") or prompt]
    return max(count(c) for c in conversations)


def choose(
    method: str,
    params: TrainParams,
    given: set[str],
    rows: list[dict[str, Any]],
    continuing: bool,
    count: Callable[[list[dict]], int],
) -> tuple[TrainParams, list[str]]:
    """`params` with the job-dependent choices made for every field not in `given`, and one
    line per choice saying what was chosen and why (for the job's log)."""
    changes: dict[str, Any] = {}
    notes: list[str] = []
    if continuing and method in HALVED_WHEN_CONTINUING and "learning_rate" not in given:
        changes["learning_rate"] = params.learning_rate * CONTINUE_LR_FACTOR
        notes.append(
            f"learning rate {changes['learning_rate']:g}: continuing an adapter, half the "
            "first round's"
        )
    if params.max_length == 0 and rows:
        longest = max(row_tokens(r, count) for r in rows)
        changes["max_length"] = min(WHOLE_ANSWER_CAP, -(-longest // 16) * 16)
        cut = " (longer rows are cut)" if longest > WHOLE_ANSWER_CAP else ""
        notes.append(
            f"max_length {changes['max_length']}: whole answers, the longest row has "
            f"{longest} tokens{cut}"
        )
    return dataclasses.replace(params, **changes), notes


def chat_token_counter(model_path: str) -> Callable[[list[dict]], int]:
    """Tokens of a conversation as the trainers see it: the model's chat template applied.
    The tokenizer loads on the first count (a job that cuts at a fixed length needs none)."""
    from train.lora import load_tokenizer

    tokenizer = functools.cache(lambda: load_tokenizer(model_path))

    def count(messages: list[dict]) -> int:
        encoded = tokenizer().apply_chat_template(messages, tokenize=True, return_dict=True)
        return len(encoded["input_ids"])

    return count


def summary(method: str) -> str:
    """The recipe of `method` in one line: its defaults, and what the job decides."""
    from train.methods import get

    defaults = get(method).params()
    parts = [f"learning_rate={defaults.learning_rate:g}", f"epochs={defaults.epochs:g}"]
    length = defaults.max_length
    parts.append(f"max_length={length}" if length else "max_length=0 (whole answers)")
    for knob in ("beta", "sft_weight"):
        if hasattr(defaults, knob):
            parts.append(f"{knob}={getattr(defaults, knob):g}")
    if method in HALVED_WHEN_CONTINUING:
        parts.append(f"(learning rate x{CONTINUE_LR_FACTOR:g} continuing an adapter)")
    return " ".join(parts)
