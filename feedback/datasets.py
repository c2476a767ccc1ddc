"""Training rows built from stored judgements, in the conversational formats TRL takes."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from feedback.exports import export_rows
from feedback.store import Store


def dpo_pairs(store: Store) -> list[dict[str, Any]]:
    """`{prompt, chosen, rejected}` rows: every DPO row of `feedback.exports` (both splits).

    Decisive comparisons and edits; ties and both-bad votes say nothing about which answer to
    prefer, contested pairs contradict themselves, so both are left out; the same
    (prompt, chosen, rejected) judged twice counts once.
    """
    return export_rows(store, "dpo", split="all").rows


def snapshot_hash(rows: list[dict[str, Any]]) -> str:
    """A stable hash of a dataset, recorded with every adapter trained on it."""
    digest = hashlib.sha256()
    for row in rows:
        digest.update(json.dumps(row, sort_keys=True).encode())
        digest.update(b"\n")
    return digest.hexdigest()
