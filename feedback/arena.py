"""Anonymous arena battles: two served models answer the same messages, named only after one vote.

A battle moves `generating -> ready -> voted` (or `failed`). The server enforces what Chatbot
Arena's users asked for: one vote per battle, no vote before both answers exist, and the models'
names revealed only by the vote. A single-turn vote is also stored as a comparison (source
`arena`), so it becomes training data like any other side-by-side judgement.
"""

from __future__ import annotations

import json
import math
import random
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from feedback.errors import FeedbackError, InvalidJudgement
from feedback.leaderboard import Standing, leaderboard
from feedback.store import WINNERS, Store, now

COUNTED_VOTES = "status = 'voted' and counted = 1"
"""The battles the leaderboard and the gate read: voted, and not steered by a user key."""


class UnknownBattle(FeedbackError):
    def __init__(self, battle_id: str):
        super().__init__(f"no battle {battle_id!r}: start one with POST /v1/arena/battles")


class BattleNotReady(FeedbackError):
    """The battle's state forbids the request (answers still coming, already voted, failed)."""


class Arena:
    """Battle records in the store. Model names leave this class only through `vote`."""

    def __init__(self, store: Store):
        self.store = store
        self._cached: tuple[tuple, list[Standing]] | None = None

    def new(
        self,
        messages: list[dict[str, Any]],
        model_a: str,
        model_b: str,
        rater: str | None = None,
        api_key_id: int | None = None,
        counted: bool = True,
    ) -> dict[str, Any]:
        """A battle not stored yet (`save` stores it once the engine has taken the prompt: a
        prompt it refuses costs no write). `counted=False`: stored and voted on, left off the
        leaderboard."""
        if model_a == model_b:
            raise InvalidJudgement("a battle needs two different models")
        return {
            "id": "battle-" + secrets.token_urlsafe(12),
            "messages": messages,
            "model_a": model_a,
            "model_b": model_b,
            "history_a": messages,
            "history_b": messages,
            "turns": 0,
            "status": "generating",
            "rater": rater,
            "api_key_id": api_key_id,
            "counted": int(counted),
            "created_at": now(),
        }

    def save(self, battle: dict[str, Any]) -> None:
        """Store a new battle. The conversation is stored once: each side's history is kept as
        what follows it (`history_a`/`history_b` columns), never as another copy of it."""
        row = {**battle, "messages": json.dumps(battle["messages"])}
        row["history_a"] = row["history_b"] = "[]"
        with self.store.transaction() as db:
            db["battles"].insert(row)

    def open(self, messages: list[dict[str, Any]], model_a: str, model_b: str, **kw: Any) -> str:
        """`new` and `save` at once: the new battle's id."""
        battle = self.new(messages, model_a, model_b, **kw)
        self.save(battle)
        return battle["id"]

    def get(self, battle_id: str) -> dict[str, Any]:
        """The battle with each side's whole history (the conversation, then what followed)."""
        rows = self.store.query("select * from battles where id = ?", [battle_id])
        if not rows:
            raise UnknownBattle(battle_id)
        row = rows[0]
        row["messages"] = json.loads(row["messages"])
        for side in ("history_a", "history_b"):
            row[side] = row["messages"] + json.loads(row[side])
        return row

    def _tail(self, battle: dict[str, Any], history: list[dict[str, Any]]) -> str:
        return json.dumps(history[len(battle["messages"]) :])

    def begin_turn(self, battle_id: str, messages: list[dict[str, Any]]) -> dict[str, Any]:
        """Continue a ready battle: each side keeps its own history, plus the new messages."""
        with self.store.transaction() as db:
            battle = self.get(battle_id)
            self._require(battle, "ready", "continue")
            history_a = battle["history_a"] + messages
            history_b = battle["history_b"] + messages
            db["battles"].update(
                battle_id,
                {
                    "status": "generating",
                    "history_a": self._tail(battle, history_a),
                    "history_b": self._tail(battle, history_b),
                },
            )
        return {**battle, "history_a": history_a, "history_b": history_b}

    def record_answers(
        self, battle_id: str, exchange_a: dict[str, Any], exchange_b: dict[str, Any]
    ) -> None:
        """Both answers exist (each `{id, completion}`): the battle is open for its vote."""
        with self.store.transaction() as db:
            battle = self.get(battle_id)
            db["battles"].update(
                battle_id,
                {
                    "status": "ready",
                    "exchange_a": exchange_a["id"],
                    "exchange_b": exchange_b["id"],
                    "history_a": self._tail(
                        battle,
                        battle["history_a"]
                        + [{"role": "assistant", "content": exchange_a["completion"]}],
                    ),
                    "history_b": self._tail(
                        battle,
                        battle["history_b"]
                        + [{"role": "assistant", "content": exchange_b["completion"]}],
                    ),
                    "turns": battle["turns"] + 1,
                },
            )

    def fail(self, battle_id: str) -> None:
        with self.store.transaction() as db:
            db.execute(
                "update battles set status = 'failed' where id = ? and status = 'generating'",
                [battle_id],
            )

    def vote(self, battle_id: str, winner: str, rater: str | None = None) -> dict[str, Any]:
        """Record the one vote and reveal the models; single-turn votes become comparisons."""
        if winner not in WINNERS:
            raise InvalidJudgement(f"winner must be one of {', '.join(WINNERS)}")
        with self.store.transaction() as db:
            battle = self.get(battle_id)
            self._require(battle, "ready", "vote on")
            rater = rater or battle["rater"]
            comparison_id = None
            if battle["turns"] == 1:  # later turns answer different histories: not a clean pair
                comparison_id = self.store.add_comparison(
                    battle["exchange_a"], battle["exchange_b"], winner, rater, source="arena"
                )
            db["battles"].update(
                battle_id,
                {
                    "status": "voted",
                    "winner": winner,
                    "rater": rater,
                    "comparison_id": comparison_id,
                    "voted_at": now(),
                },
            )
        return {**battle, "status": "voted", "winner": winner, "comparison_id": comparison_id}

    @staticmethod
    def _require(battle: dict[str, Any], status: str, action: str) -> None:
        if battle["status"] == status:
            return
        why = {
            "generating": "its answers are still being generated; wait for both",
            "voted": "it has already been voted on (one vote per battle); start a new battle",
            "failed": "its answers could not be generated; start a new battle",
        }.get(battle["status"], f"it is {battle['status']}")
        raise BattleNotReady(f"cannot {action} battle {battle['id']}: {why}")

    # -- what the leaderboard and the pairing read -----------------------------------------

    def results(self, since: str | None = None) -> list[tuple[str, str, str]]:
        """Every counted voted battle as `(model_a, model_b, winner)`, oldest first."""
        sql = f"select model_a, model_b, winner from battles where {COUNTED_VOTES}"
        params: list[Any] = []
        if since:
            sql += " and voted_at >= ?"
            params.append(since)
        rows = self.store.query(sql + " order by voted_at", params)
        return [(r["model_a"], r["model_b"], r["winner"]) for r in rows]

    def standings(
        self, since: str | None = None, rounds: int = 100, anchor: str | None = None
    ) -> list[Standing]:
        """The Bradley–Terry leaderboard, recomputed only when a vote has come in since."""
        mark = self.store.query(
            f"select count(*) as n, max(voted_at) as last from battles where {COUNTED_VOTES}"
        )[0]
        key = (since, rounds, anchor, mark["n"], mark["last"])
        if self._cached is None or self._cached[0] != key:
            self._cached = (key, leaderboard(self.results(since), rounds=rounds, anchor=anchor))
        return self._cached[1]

    def battles_per_model(self) -> dict[str, int]:
        rows = self.store.query(
            f"""select model, count(*) as n from (
                   select model_a as model from battles where {COUNTED_VOTES}
                   union all
                   select model_b from battles where {COUNTED_VOTES})
               group by model"""
        )
        return {r["model"]: r["n"] for r in rows}

    def raters_per_model(self, since: str | None = None) -> dict[str, int]:
        """How many different raters voted in each model's counted battles (anonymous votes
        count as one rater): the gate says how many people its evidence comes from."""
        after = " and voted_at >= ?" if since else ""
        rows = self.store.query(
            f"""select model, count(distinct coalesce(rater, '')) as n from (
                   select model_a as model, rater from battles where {COUNTED_VOTES}{after}
                   union all
                   select model_b, rater from battles where {COUNTED_VOTES}{after})
               group by model""",
            [since, since] if since else [],
        )
        return {r["model"]: r["n"] for r in rows}

    def battles_in_last_hour(self, api_key_id: int) -> int:
        since = (datetime.now(UTC) - timedelta(hours=1)).isoformat(timespec="milliseconds")
        rows = self.store.query(
            "select count(*) as n from battles where api_key_id = ? and created_at >= ?",
            [api_key_id, since],
        )
        return rows[0]["n"]


# -- pairing -------------------------------------------------------------------------------

FOCUS_SHARE = 0.5  # how often an unsettled candidate is sent against the live model
SETTLED_AFTER = 10  # a candidate needs at least this many battles before its interval counts


def choose_pair(
    models: list[str],
    battles: dict[str, int],
    unsettled: list[str],
    incumbent: str,
    rng: random.Random,
) -> tuple[str, str]:
    """Two different models, in random order (so position says nothing about identity).

    Chatbot Arena's users asked for fair pairing of new models (FastChat #2173): half of the
    battles go to a candidate whose rating is not yet separated from the live model's, against
    that live model (`incumbent`); the rest are drawn with weight 1/sqrt(1 + battles), so
    models with few battles catch up without starving the others.
    """
    if len(models) < 2:
        raise InvalidJudgement(
            "the arena needs at least two served models: register an adapter "
            "(flywheel train, or POST /v1/adapters)"
        )
    focus = [m for m in unsettled if m in models and m != incumbent]
    if focus and incumbent in models and rng.random() < FOCUS_SHARE:
        pair = [rng.choice(focus), incumbent]
    else:
        weights = {m: 1 / math.sqrt(1 + battles.get(m, 0)) for m in models}
        first = _weighted(weights, rng)
        del weights[first]
        pair = [first, _weighted(weights, rng)]
    rng.shuffle(pair)
    return pair[0], pair[1]


def _weighted(weights: dict[str, float], rng: random.Random) -> str:
    names = sorted(weights)
    return rng.choices(names, weights=[weights[n] for n in names])[0]
