"""Ordered schema migrations. Never edit one that has shipped: add a new function below.

sqlite-utils' `Migrations` applies each function together with its record in one transaction;
we keep the records in a table named `migrations`, as the design says.
"""

import json

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations


class FlywheelMigrations(Migrations):
    migrations_table = "migrations"


migrations = FlywheelMigrations("flywheel")


@migrations()
def m001_initial(db: Database) -> None:
    db["exchanges"].create(
        {
            "id": str,  # the OpenAI response id (chatcmpl-...)
            "model": str,  # the name the client asked for
            "engine_model": str,  # the name the engine served (base or adapter@version)
            "messages": str,  # JSON list of the request's messages (the conversation prefix)
            "completion": str,
            "params": str,  # JSON of the sampling parameters
            "usage": str,  # JSON of the usage block, when the engine sent one
            "finish_reason": str,
            "latency_ms": float,
            "stream": int,
            "api_key_id": int,
            "created_at": str,
        },
        pk="id",
    )
    db["exchanges"].create_index(["created_at"])
    db["ratings"].create(
        {
            "id": int,
            "exchange_id": str,
            "value": int,  # +1 thumbs up, -1 thumbs down
            "reasons": str,  # JSON list
            "comment": str,
            "rater": str,
            "created_at": str,
        },
        pk="id",
        foreign_keys=[("exchange_id", "exchanges", "id")],
    )
    db["ratings"].create_index(["exchange_id"])
    db["comparisons"].create(
        {
            "id": int,
            "prompt": str,  # JSON of the shared conversation prefix
            "exchange_a": str,
            "exchange_b": str,
            "winner": str,  # a | b | tie | both_bad
            "rater": str,
            "source": str,  # ui | api | arena
            "created_at": str,
        },
        pk="id",
        foreign_keys=[("exchange_a", "exchanges", "id"), ("exchange_b", "exchanges", "id")],
    )
    db["adapters"].create(
        {
            "id": int,
            "name": str,
            "version": int,
            "engine_name": str,  # name@version: each version gets its own engine name
            "base_model": str,
            "path": str,
            "sha256": str,
            "parent": str,
            "job_id": int,
            "dataset_hash": str,
            "hyperparameters": str,  # JSON
            "metrics": str,  # JSON
            "status": str,  # candidate | live | retired
            "created_at": str,
        },
        pk="id",
    )
    db["adapters"].create_index(["name", "version"], unique=True)
    db["jobs"].create(
        {
            "id": int,
            "method": str,  # dpo | kto | reward | sft
            "config": str,  # JSON
            "status": str,  # queued | running | succeeded | failed | cancelled
            "step": int,
            "total_steps": int,
            "metrics": str,  # JSON list of logged rows, in order
            "error": str,
            "adapter": str,  # engine name of the adapter it produced
            "log_path": str,
            "created_at": str,
            "finished_at": str,
        },
        pk="id",
    )


@migrations()
def m002_promotions(db: Database) -> None:
    """Every change of the `live` alias, so a rollback knows what was live before."""
    db["promotions"].create(
        {
            "id": int,
            "engine_name": str,  # the version made live; null: the base model
            "previous": str,  # the version live before; null: the base model
            "kind": str,  # promote | rollback
            "reason": str,
            "created_at": str,
        },
        pk="id",
    )
    db["adapters"].create_index(["status"])


@migrations()
def m003_api_keys(db: Database) -> None:
    """API keys: only a hash of each secret is stored, looked up by its non-secret prefix."""
    db["api_keys"].create(
        {
            "id": int,
            "name": str,
            "prefix": str,  # the first characters of the secret: for lookup and display
            "hash": str,  # sha256 of the whole secret
            "role": str,  # user | admin
            "rpm": int,  # requests per minute; null or 0: unlimited
            "created_at": str,
            "revoked_at": str,
        },
        pk="id",
    )
    db["api_keys"].create_index(["prefix"], unique=True)


@migrations()
def m004_arena_and_edits(db: Database) -> None:
    """Anonymous arena battles, raters' corrected answers, and indexes for export filters."""
    db["battles"].create(
        {
            "id": str,  # unguessable: a rater must not enumerate other people's battles
            "messages": str,  # JSON: the shared conversation prefix of the first turn
            "model_a": str,  # engine names, hidden from the rater until the vote
            "model_b": str,
            "exchange_a": str,  # the latest turn's answers
            "exchange_b": str,
            "history_a": str,  # JSON: each side's whole conversation, for multi-turn battles
            "history_b": str,
            "turns": int,
            "status": str,  # generating | ready | voted | failed
            "winner": str,  # a | b | tie | both_bad, once voted
            "rater": str,
            "api_key_id": int,
            "comparison_id": int,
            "created_at": str,
            "voted_at": str,
        },
        pk="id",
    )
    db["battles"].create_index(["status", "voted_at"])
    db["edits"].create(
        {
            "id": int,
            "exchange_id": str,
            "content": str,  # what the answer should have been, written by a rater
            "rater": str,
            "created_at": str,
        },
        pk="id",
        foreign_keys=[("exchange_id", "exchanges", "id")],
    )
    db["edits"].create_index(["exchange_id"])
    db["comparisons"].create_index(["created_at"])
    db["ratings"].create_index(["created_at"])


@migrations()
def m005_gate_decisions(db: Database) -> None:
    """What the promotion gate decided about each candidate, and why (shown in the UI and API)."""
    db["decisions"].create(
        {
            "id": int,
            "candidate": str,  # engine name of the candidate version
            "incumbent": str,  # the live model it was measured against
            "action": str,  # promote | retire
            "reason": str,
            "evidence": str,  # JSON: ratings, intervals, battles, win rate at decision time
            "created_at": str,
        },
        pk="id",
    )


@migrations()
def m006_key_raters(db: Database) -> None:
    """A key may carry the rater name its judgements are stored under, set by an admin."""
    db["api_keys"].add_column("rater", str)


@migrations()
def m007_counted_battles(db: Database) -> None:
    """Whether a battle counts for the leaderboard and the gate: one a user key steered (named
    models, its own sampling) is stored and voted on, but never counted (hardening #4)."""
    db["battles"].add_column("counted", int, not_null_default=1)
    db["battles"].create_index(["api_key_id", "created_at"])


@migrations()
def m008_battle_history_tails(db: Database) -> None:
    """A battle's conversation is stored once: each side's history keeps only what follows it
    (it was stored three times, every copy fsync'd: hardening #6)."""
    for row in list(db.query("select id, messages, history_a, history_b from battles")):
        skip = len(json.loads(row["messages"]))
        db["battles"].update(
            row["id"],
            {side: json.dumps(json.loads(row[side])[skip:]) for side in ("history_a", "history_b")},
        )


@migrations()
def m009_job_process(db: Database) -> None:
    """The process group a job's child runs in, so a gateway restarted after a crash can stop
    a child left running (hardening #10)."""
    db["jobs"].add_column("pgid", int)


@migrations()
def m010_tool_calls(db: Database) -> None:
    """An answer's tool calls, which the exchange log dropped (hardening #19)."""
    db["exchanges"].add_column("tool_calls", str)


@migrations()
def m011_comparison_pairs(db: Database) -> None:
    """Comparisons looked up by their two answers (an import checks each row against them):
    without it a 50,000-row import scanned the table once per row."""
    db["comparisons"].create_index(["exchange_a", "exchange_b"])
