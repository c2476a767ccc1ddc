"""The one write path to `flywheel.db`.

Connection policy: one connection per `Store`, shared across threads under a lock (sqlite3
connections are not safe for concurrent use); WAL so readers never block the writer;
`synchronous=FULL` so that anything we acknowledge survives a crash or power loss.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from feedback.errors import InvalidJudgement, UnknownExchange
from feedback.migrations import migrations

WINNERS = ("a", "b", "tie", "both_bad")
# Why a rater liked or disliked an answer: a fixed list, so reasons can be counted and filtered.
REASONS = (
    "helpful",
    "accurate",
    "clear",
    "well_formatted",
    "unhelpful",
    "wrong",
    "unclear",
    "too_long",
    "too_short",
    "off_topic",
    "unsafe",
    "other",
)


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass
class Exchange:
    """One request/answer pair as the gateway saw it."""

    id: str
    model: str
    engine_model: str
    messages: list[dict[str, Any]]
    completion: str
    params: dict[str, Any] = field(default_factory=dict)
    tool_calls: list[dict[str, Any]] | None = None  # the answer's tool calls, as OpenAI gives them
    usage: dict[str, Any] | None = None
    finish_reason: str | None = None
    latency_ms: float | None = None
    stream: bool = False
    api_key_id: int | None = None
    created_at: str = field(default_factory=now)

    def to_row(self) -> dict[str, Any]:
        row = asdict(self)
        for key in ("messages", "params", "usage", "tool_calls"):
            row[key] = json.dumps(row[key])
        row["stream"] = int(self.stream)
        return row


LOCK_WAIT_S = 30
"""How long a connection waits for another's write lock before giving up."""


def _use_wal(conn: sqlite3.Connection) -> None:
    """WAL mode. Switching a new database needs a moment alone with it, and SQLite answers
    "database is locked" at once, without its busy wait, while another opener migrates it:
    retried here for as long as a write would wait."""
    deadline = time.monotonic() + LOCK_WAIT_S
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class Store:
    """Exchanges, judgements, adapters and jobs. Migrated on open."""

    def __init__(self, path: str | Path | None):
        """`path=None` gives an in-memory database (tests)."""
        if path is None:
            conn = sqlite3.connect(":memory:", check_same_thread=False)
        else:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(str(path), check_same_thread=False, timeout=LOCK_WAIT_S)
            _use_wal(conn)
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        self.path = path
        self.db = Database(conn)
        self._lock = threading.RLock()
        with self._lock:
            self._migrate()

    def _migrate(self) -> None:
        """Apply pending migrations holding SQLite's write lock (`BEGIN IMMEDIATE`) throughout.

        Two processes opening a new database at once (the gateway and `flywheel train`) would
        otherwise both read "m001 pending", and the second to write fail ("table already
        exists", or "database is locked" when both upgrade a read to a write). Under the lock
        the second waits, then finds nothing pending.
        """
        if not migrations.pending(self.db):
            return
        conn = self.db.conn
        conn.execute("BEGIN IMMEDIATE")  # waits up to the connection's timeout for the lock
        try:
            migrations.apply(self.db)  # each migration nests as a savepoint
        except BaseException:
            conn.rollback()
            raise
        conn.execute("COMMIT")

    @contextmanager
    def transaction(self) -> Iterator[Database]:
        """One atomic unit of writes under the connection lock (nests through savepoints)."""
        with self._lock, self.db.atomic():
            yield self.db

    def close(self) -> None:
        with self._lock:
            self.db.close()

    # -- exchanges -------------------------------------------------------------------------

    def log_exchanges(self, exchanges: Iterable[Exchange]) -> int:
        """Store a batch in one transaction; an id logged twice keeps its first record."""
        rows = [e.to_row() for e in exchanges]
        if rows:
            with self.transaction() as db:
                db["exchanges"].insert_all(rows, ignore=True)
        return len(rows)

    def exchange(self, completion_id: str) -> dict[str, Any] | None:
        with self._lock:
            rows = list(self.db["exchanges"].rows_where("id = ?", [completion_id]))
        if not rows:
            return None
        row = rows[0]
        for key in ("messages", "params", "usage", "tool_calls"):
            row[key] = json.loads(row[key]) if row[key] else None
        return row

    def _require_exchange(self, completion_id: str) -> dict[str, Any]:
        row = self.exchange(completion_id)
        if row is None:
            raise UnknownExchange(completion_id)
        return row

    # -- judgements ------------------------------------------------------------------------

    def add_rating(
        self,
        completion_id: str,
        value: int,
        reasons: list[str] | None = None,
        comment: str | None = None,
        rater: str | None = None,
    ) -> int:
        if value not in (1, -1):
            raise InvalidJudgement("rating value must be 1 (thumbs up) or -1 (thumbs down)")
        unknown = sorted(set(reasons or ()) - set(REASONS))
        if unknown:
            raise InvalidJudgement(
                f"unknown reason(s) {', '.join(unknown)}; choose from {', '.join(REASONS)}"
            )
        self._require_exchange(completion_id)
        row = {
            "exchange_id": completion_id,
            "value": value,
            "reasons": json.dumps(reasons or []),
            "comment": comment,
            "rater": rater,
            "created_at": now(),
        }
        with self.transaction() as db:
            return db["ratings"].insert(row).last_pk

    def add_comparison(
        self,
        completion_a: str,
        completion_b: str,
        winner: str,
        rater: str | None = None,
        source: str = "api",
    ) -> int:
        """A side-by-side judgement; both answers must continue the same conversation."""
        if winner not in WINNERS:
            raise InvalidJudgement(f"winner must be one of {', '.join(WINNERS)}")
        if completion_a == completion_b:
            raise InvalidJudgement("a comparison needs two different completions")
        a = self._require_exchange(completion_a)
        b = self._require_exchange(completion_b)
        if a["messages"] != b["messages"]:
            raise InvalidJudgement(
                "the two completions answer different conversations; "
                "compare answers to the same messages"
            )
        row = {
            "prompt": json.dumps(a["messages"]),
            "exchange_a": completion_a,
            "exchange_b": completion_b,
            "winner": winner,
            "rater": rater,
            "source": source,
            "created_at": now(),
        }
        with self.transaction() as db:
            return db["comparisons"].insert(row).last_pk

    def add_edit(self, completion_id: str, content: str, rater: str | None = None) -> int:
        """What the answer should have been: an SFT row, and a DPO pair against the original."""
        if not content or not content.strip():
            raise InvalidJudgement("an edit needs the corrected answer's text")
        original = self._require_exchange(completion_id)
        if content.strip() == (original["completion"] or "").strip():
            raise InvalidJudgement("the edit is the same as the original answer")
        row = {
            "exchange_id": completion_id,
            "content": content,
            "rater": rater,
            "created_at": now(),
        }
        with self.transaction() as db:
            return db["edits"].insert(row).last_pk

    def query(self, sql: str, params: list[Any] | dict[str, Any] | None = None) -> list[dict]:
        """Rows of a read-only query (exports, statistics), taken under the connection's lock."""
        with self._lock:
            return [dict(r) for r in self.db.query(sql, params or [])]

    def comparisons(self) -> list[dict[str, Any]]:
        """Every comparison with both answers' text, oldest first."""
        sql = """
            select c.id, c.prompt, c.winner, c.rater, c.source, c.created_at,
                   a.completion as completion_a, b.completion as completion_b
            from comparisons c
            join exchanges a on a.id = c.exchange_a
            join exchanges b on b.id = c.exchange_b
            order by c.id
        """
        with self._lock:
            rows = [dict(r) for r in self.db.query(sql)]
        for row in rows:
            row["prompt"] = json.loads(row["prompt"])
        return rows

    def counts(self) -> dict[str, int]:
        with self._lock:
            return {
                name: self.db[name].count
                for name in (
                    "exchanges",
                    "ratings",
                    "comparisons",
                    "edits",
                    "battles",
                    "adapters",
                    "jobs",
                )
            }

    # -- adapters --------------------------------------------------------------------------

    def next_adapter_version(self, name: str) -> int:
        with self._lock:
            row = next(
                self.db.query("select max(version) as v from adapters where name = ?", [name])
            )
        return (row["v"] or 0) + 1

    def add_adapter(self, row: dict[str, Any]) -> dict[str, Any]:
        """Record an adapter version; returns the stored row."""
        row = {**row, "created_at": now()}
        for key in ("hyperparameters", "metrics"):
            if not isinstance(row.get(key), str | None):
                row[key] = json.dumps(row[key])
        with self.transaction() as db:
            pk = db["adapters"].insert(row).last_pk
            return db["adapters"].get(pk)

    def set_adapter_status(self, engine_name: str, status: str) -> None:
        with self.transaction() as db:
            db.execute(
                "update adapters set status = ? where engine_name = ?", [status, engine_name]
            )

    def adapters(self, include_retired: bool = False) -> list[dict[str, Any]]:
        where = None if include_retired else "status != 'retired'"
        with self._lock:
            return list(self.db["adapters"].rows_where(where, order_by="id"))

    def adapter(self, engine_name: str) -> dict[str, Any] | None:
        with self._lock:
            rows = list(self.db["adapters"].rows_where("engine_name = ?", [engine_name]))
        return rows[0] if rows else None

    def live_adapter(self) -> dict[str, Any] | None:
        """The one adapter version behind the `live` alias; None means the base model is live."""
        with self._lock:
            rows = list(self.db["adapters"].rows_where("status = 'live'", order_by="id desc"))
        return rows[0] if rows else None

    def promote_adapter(
        self, engine_name: str | None, kind: str = "promote", reason: str | None = None
    ) -> str | None:
        """Make `engine_name` (None: the base model) live in one transaction; return the old live.

        The previous live version stays loaded as a candidate, so a rollback is instant.
        """
        with self.transaction() as db:
            previous = self.live_adapter()
            previous_name = previous["engine_name"] if previous else None
            if previous_name:
                self.set_adapter_status(previous_name, "candidate")
            if engine_name:
                self.set_adapter_status(engine_name, "live")
            db["promotions"].insert(
                {
                    "engine_name": engine_name,
                    "previous": previous_name,
                    "kind": kind,
                    "reason": reason,
                    "created_at": now(),
                }
            )
        return previous_name

    def promotion_that_made_live(self, engine_name: str) -> dict[str, Any] | None:
        """The last real promotion of a version (a rollback restores, it does not promote)."""
        with self._lock:
            rows = list(
                self.db["promotions"].rows_where(
                    "engine_name = ? and kind = 'promote'",
                    [engine_name],
                    order_by="id desc",
                    limit=1,
                )
            )
        return rows[0] if rows else None

    def add_decision(
        self, candidate: str, incumbent: str, action: str, reason: str, evidence: dict
    ) -> dict[str, Any]:
        row = {
            "candidate": candidate,
            "incumbent": incumbent,
            "action": action,
            "reason": reason,
            "evidence": json.dumps(evidence),
            "created_at": now(),
        }
        with self.transaction() as db:
            pk = db["decisions"].insert(row).last_pk
        return {**row, "id": pk, "evidence": evidence}

    def decisions(self, limit: int = 100) -> list[dict[str, Any]]:
        rows = self.query("select * from decisions order by id desc limit ?", [limit])
        for row in rows:
            row["evidence"] = json.loads(row["evidence"])
        return rows

    # -- training jobs ---------------------------------------------------------------------

    def create_job(
        self,
        method: str,
        config: dict[str, Any],
        log_path: str | None = None,
        status: str = "running",
    ) -> int:
        row = {
            "method": method,
            "config": json.dumps(config),
            "status": status,
            "step": 0,
            "total_steps": None,
            "metrics": "[]",
            "log_path": log_path,
            "created_at": now(),
        }
        with self.transaction() as db:
            return db["jobs"].insert(row).last_pk

    def update_job(self, job_id: int, **fields: Any) -> None:
        if fields.get("status") in ("succeeded", "failed", "cancelled"):
            fields.setdefault("finished_at", now())
        with self.transaction() as db:
            db["jobs"].update(job_id, fields)

    def append_job_metrics(self, job_id: int, step: int, total: int, metrics: dict) -> None:
        """Record one logged row; the UI draws the live loss curve from these."""
        with self.transaction() as db:
            history = json.loads(db["jobs"].get(job_id)["metrics"])
            history.append({"step": step, **metrics})
            db["jobs"].update(
                job_id, {"step": step, "total_steps": total, "metrics": json.dumps(history)}
            )

    def jobs(self, limit: int = 50) -> list[dict[str, Any]]:
        """The newest jobs first, without their metrics history (that can be long)."""
        rows = self.query(
            """select id, method, config, status, step, total_steps, error, adapter,
                      created_at, finished_at
               from jobs order by id desc limit ?""",
            [limit],
        )
        for row in rows:
            row["config"] = json.loads(row["config"])
        return rows

    def job(self, job_id: int) -> dict[str, Any] | None:
        with self._lock:
            rows = list(self.db["jobs"].rows_where("id = ?", [job_id]))
        if not rows:
            return None
        row = rows[0]
        row["config"] = json.loads(row["config"])
        row["metrics"] = json.loads(row["metrics"])
        return row
