"""Training rows built from stored judgements, in the conversational formats TRL takes."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from feedback.store import Store


def dpo_pairs(store: Store) -> list[dict[str, Any]]:
    """`{prompt, chosen, rejected}` rows from decisive comparisons.

    Ties and both-bad votes say nothing about which answer to prefer, so they are left out;
    the same (prompt, chosen, rejected) judged twice counts once.
    """
    rows, seen = [], set()
    for c in store.comparisons():
        if c["winner"] not in ("a", "b"):
            continue
        chosen, rejected = (
            (c["completion_a"], c["completion_b"])
            if c["winner"] == "a"
            else (c["completion_b"], c["completion_a"])
        )
        if chosen == rejected:
            continue
        key = (json.dumps(c["prompt"], sort_keys=True), chosen, rejected)
        if key in seen:
            continue
        seen.add(key)
        rows.append(
            {
                "prompt": c["prompt"],
                "chosen": [{"role": "assistant", "content": chosen}],
                "rejected": [{"role": "assistant", "content": rejected}],
            }
        )
    return rows


def snapshot_hash(rows: list[dict[str, Any]]) -> str:
    """A stable hash of a dataset, recorded with every adapter trained on it."""
    digest = hashlib.sha256()
    for row in rows:
        digest.update(json.dumps(row, sort_keys=True).encode())
        digest.update(b"\n")
    return digest.hexdigest()
