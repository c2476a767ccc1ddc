"""Stores of answers and judgements shared by the feedback tests: `store_with` (answers to one
prompt), and `build_store` (judgements of every kind: two raters agreeing, one contesting, ties,
a multi-turn prompt, OpenAI content parts, a raw completion) with the rows built from it."""

import json

from feedback import Exchange, Store


def store_with(*completions: str, prompt: list[dict] | None = None, prefix: str = "c") -> Store:
    """A store of answers `{prefix}0`, `{prefix}1`, ... to one prompt, by one model."""
    store = Store(None)
    messages = prompt or [{"role": "user", "content": "hi"}]
    store.log_exchanges(
        Exchange(id=f"{prefix}{i}", model="m", engine_model="m", messages=messages, completion=t)
        for i, t in enumerate(completions)
    )
    return store


P1 = [{"role": "user", "content": "What is 2+2?"}]
P2 = [  # multi-turn: the whole prefix is the prompt
    {"role": "system", "content": "Answer in one word."},
    {"role": "user", "content": "Capital of Italy?"},
    {"role": "assistant", "content": "Rome."},
    {"role": "user", "content": "And of France?"},
]
P3 = [{"role": "user", "content": [{"type": "text", "text": "Is water wet?"}]}]  # OpenAI parts
P3_TEXT = [{"role": "user", "content": "Is water wet?"}]
RAW = [{"role": "prompt", "content": "Once upon"}]  # a plain /v1/completions prompt


def ask(text: str) -> list[dict]:
    return [{"role": "assistant", "content": text}]


def build_store() -> Store:
    store = Store(None)
    rows = [
        ("a1", P1, "4", "base", "base"),
        ("a2", P1, "five", "base", "base"),
        ("m1", P2, "Paris.", "tone", "tone@1"),
        ("m2", P2, "London.", "tone", "tone@2"),
        ("c1", P3, "Yes.", "base", "base"),
        ("c2", P3, "No.", "base", "base"),
        ("raw", RAW, " a time", "base", "base"),
    ]
    store.log_exchanges(
        Exchange(id=i, model=m, engine_model=e, messages=msgs, completion=text)
        for i, msgs, text, m, e in rows
    )
    store.add_comparison("a1", "a2", "a", rater="alice")  # 1
    store.add_comparison("a2", "a1", "b", rater="bob")  # 2: the same judgement again
    store.add_comparison("a1", "a2", "tie", rater="carol")  # 3: no preference
    store.add_comparison("a1", "a2", "both_bad", rater="dave")  # 4: no preference
    store.add_comparison("m1", "m2", "a", rater="alice")  # 5
    store.add_comparison("c1", "c2", "a", rater="alice")  # 6: contested ...
    store.add_comparison("c1", "c2", "b", rater="bob")  # 7: ... by bob
    store.add_edit("a2", "2 + 2 = 4.", rater="carol")
    store.add_rating("a1", 1, rater="alice")
    store.add_rating("a1", 1, rater="bob")
    store.add_rating("a2", -1, rater="alice")
    store.add_rating("a2", 1, rater="bob")  # a2 nets zero: says nothing
    store.add_rating("m2", -1, rater="carol")
    store.add_rating("raw", 1, rater="alice")  # no conversation: unusable
    store.add_rating("c1", 1, rater="bob")
    return store


PAIR = {
    "prompt": P1,
    "chosen": [{"role": "assistant", "content": "4"}],
    "rejected": [{"role": "assistant", "content": "five"}],
}


def jsonl(*rows) -> bytes:
    return b"".join(
        (row if isinstance(row, bytes) else json.dumps(row).encode()) + b"\n" for row in rows
    )
