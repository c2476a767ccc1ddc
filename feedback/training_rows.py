"""Which stored judgements become which training rows: the rules behind every export format.

Two kinds of signal are stored:

- *preferences* (`dpo`, `reward`): a decisive side-by-side vote (winner a or b) prefers one answer
  to another for the same conversation; an edit prefers the rater's corrected answer to the
  original. Ties and both-bad votes prefer nothing and are left out. A pair judged both ways
  (two raters disagreeing, or one changing their mind) is *contested* and left out too.
- *verdicts on one answer* (`kto`, `sft`): thumbs add up per answer (the same conversation and
  the same text), and each edit counts as one thumbs-up for the edited text. A positive net
  vote is desirable, a negative one undesirable, zero says nothing.

Conversations are normalised to `[{role, content}]` with text content; a conversation that has
no such form (a plain-completion prompt, images, tool calls) cannot be a row and is counted as
unusable. Filters (`since`, `model`, `rater`) are SQL parameters, never spliced into the text.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from feedback.store import Store

ROLES = ("system", "user", "assistant")
Messages = list[dict[str, str]]


@dataclass(frozen=True)
class Filters:
    """Which judgements count. `since` keeps judgements made at or after that time; `model`
    keeps those about answers from that model (the name asked for or the engine's name; for a
    comparison, either answer); `rater` keeps one rater's judgements."""

    since: str | None = None
    model: str | None = None
    rater: str | None = None

    @classmethod
    def parse(cls, since: str | None = None, model: str | None = None, rater: str | None = None):
        return cls(_normalise_time(since) if since else None, model or None, rater or None)

    def where(
        self, judgement: str, exchanges: tuple[str, ...], *fixed: str
    ) -> tuple[str, list[Any]]:
        """An SQL `where` clause on the aliased tables (plus `fixed` conditions), its parameters."""
        clauses: list[str] = list(fixed)
        params: list[Any] = []
        if self.since:
            clauses.append(f"{judgement}.created_at >= ?")
            params.append(self.since)
        if self.rater:
            clauses.append(f"{judgement}.rater = ?")
            params.append(self.rater)
        if self.model:
            either = " or ".join(f"{x}.model = ? or {x}.engine_model = ?" for x in exchanges)
            clauses.append(f"({either})")
            params.extend([self.model] * 2 * len(exchanges))
        return (" where " + " and ".join(clauses)) if clauses else "", params


def _normalise_time(value: str) -> str:
    """An ISO 8601 time in the stored form (UTC, milliseconds), so text comparison is exact."""
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(
            f"since={value!r} is not an ISO 8601 time; use e.g. 2026-01-31 or 2026-01-31T12:00:00Z"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).isoformat(timespec="milliseconds")


# -- conversations ---------------------------------------------------------------------------


def message_text(content: Any) -> str | None:
    """The text of a message's content: a string, or OpenAI text parts joined as vLLM joins them."""
    if isinstance(content, str):
        return content
    if (
        isinstance(content, list)
        and content
        and all(
            isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
            for p in content
        )
    ):
        return "\n".join(p["text"] for p in content)
    return None


def canonical_messages(messages: Any) -> Messages | None:
    """`[{role, content}]` with text content, or None when the conversation has no such form."""
    if not isinstance(messages, list) or not messages:
        return None
    out = []
    for message in messages:
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            return None
        text = message_text(message.get("content"))
        if text is None:
            return None
        out.append({"role": message["role"], "content": text})
    return out


def canonical_prompt(messages: Any) -> Messages | None:
    """A conversation prefix an answer can follow: canonical, not ending with an answer."""
    prompt = canonical_messages(messages)
    if prompt is None or prompt[-1]["role"] == "assistant":
        return None
    return prompt


def prompt_key(prompt: Messages) -> str:
    """sha256 of the canonical prompt: the identity behind dedup and the train/eval split."""
    text = json.dumps(prompt, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def answer(text: str) -> Messages:
    return [{"role": "assistant", "content": text}]


# -- preferences: dpo, reward ----------------------------------------------------------------


@dataclass
class Built:
    rows: list[tuple[str, dict[str, Any]]]  # (prompt key, row), in judgement order
    contested: int = 0  # pairs judged both ways, left out
    unusable: int = 0  # judgements on conversations that cannot be training rows


def preference_rows(store: Store, filters: Filters) -> Built:
    """`{prompt, chosen, rejected}` from decisive comparisons, then from edits."""
    judged: list[tuple[Any, str, str]] = []  # (messages, chosen, rejected), in order
    where, params = filters.where("c", ("a", "b"), "c.winner in ('a', 'b')")
    sql = f"""
        select c.prompt, c.winner, a.completion as text_a, b.completion as text_b
        from comparisons c
        join exchanges a on a.id = c.exchange_a
        join exchanges b on b.id = c.exchange_b
        {where} order by c.id
    """
    for c in store.query(sql, params):
        texts = (c["text_a"] or "", c["text_b"] or "")
        chosen, rejected = texts if c["winner"] == "a" else texts[::-1]
        judged.append((json.loads(c["prompt"]), chosen, rejected))
    where, params = filters.where("e", ("x",))
    sql = f"""
        select x.messages, e.content, x.completion
        from edits e join exchanges x on x.id = e.exchange_id
        {where} order by e.id
    """
    for e in store.query(sql, params):
        judged.append((json.loads(e["messages"]), e["content"], e["completion"] or ""))

    built = Built(rows=[])
    pairs: list[tuple[str, Messages, str, str]] = []
    directions: dict[tuple, set[tuple[str, str]]] = defaultdict(set)
    for messages, chosen, rejected in judged:
        prompt = canonical_prompt(messages)
        if prompt is None:
            built.unusable += 1
            continue
        if chosen.strip() == rejected.strip():
            continue  # the same answer twice prefers nothing
        key = prompt_key(prompt)
        pairs.append((key, prompt, chosen, rejected))
        directions[(key, *sorted((chosen, rejected)))].add((chosen, rejected))
    contested = {pair for pair, seen in directions.items() if len(seen) > 1}
    built.contested = len(contested)
    seen_rows: set[tuple[str, str, str]] = set()
    for key, prompt, chosen, rejected in pairs:
        if (key, *sorted((chosen, rejected))) in contested or (key, chosen, rejected) in seen_rows:
            continue
        seen_rows.add((key, chosen, rejected))
        row = {"prompt": prompt, "chosen": answer(chosen), "rejected": answer(rejected)}
        built.rows.append((key, row))
    return built


# -- verdicts on one answer: kto, sft --------------------------------------------------------


def net_votes(store: Store, filters: Filters) -> tuple[list[tuple[str, Messages, str, int]], int]:
    """(prompt key, prompt, answer text, net vote) per distinct answer, first judged first;
    and how many judgements were on unusable conversations."""
    votes: list[tuple[Any, str, int]] = []
    where, params = filters.where("r", ("x",))
    sql = f"""
        select x.messages, x.completion, r.value
        from ratings r join exchanges x on x.id = r.exchange_id
        {where} order by r.id
    """
    votes += [
        (json.loads(r["messages"]), r["completion"] or "", r["value"])
        for r in store.query(sql, params)
    ]
    where, params = filters.where("e", ("x",))
    sql = f"""
        select x.messages, e.content
        from edits e join exchanges x on x.id = e.exchange_id
        {where} order by e.id
    """
    votes += [(json.loads(e["messages"]), e["content"], 1) for e in store.query(sql, params)]

    tally: dict[tuple[str, str], list] = {}  # insertion order: first judged first
    unusable = 0
    for messages, text, value in votes:
        prompt = canonical_prompt(messages)
        if prompt is None:
            unusable += 1
            continue
        key = prompt_key(prompt)
        entry = tally.setdefault((key, text), [prompt, 0])
        entry[1] += value
    return [(key, prompt, text, net) for (key, text), (prompt, net) in tally.items()], unusable


def kto_rows(store: Store, filters: Filters) -> Built:
    """`{prompt, completion, label}`: a net thumbs-up is desirable, a net thumbs-down not."""
    answers, unusable = net_votes(store, filters)
    rows = [
        (key, {"prompt": prompt, "completion": answer(text), "label": net > 0})
        for key, prompt, text, net in answers
        if net != 0
    ]
    return Built(rows=rows, unusable=unusable)


def sft_rows(store: Store, filters: Filters) -> Built:
    """`{messages}`: the whole conversation ending with an answer people liked on balance."""
    answers, unusable = net_votes(store, filters)
    rows = [
        (key, {"messages": [*prompt, *answer(text)]})
        for key, prompt, text, net in answers
        if net > 0
    ]
    return Built(rows=rows, unusable=unusable)
