"""Arena battles in the store, pairing, and equal pacing of the two sides."""

import random

import pytest

from feedback import Exchange, InvalidJudgement, Store
from feedback.arena import Arena, BattleNotReady, UnknownBattle, choose_pair
from serve.battle_streams import Pacer

PROMPT = [{"role": "user", "content": "Name a colour."}]


@pytest.fixture
def arena():
    return Arena(Store(None))


def _answer(arena: Arena, battle_id: str, a: str = "Red.", b: str = "Blue.") -> tuple[str, str]:
    battle = arena.get(battle_id)
    ids = (f"chatcmpl-{battle_id}-{battle['turns']}-a", f"chatcmpl-{battle_id}-{battle['turns']}-b")
    arena.store.log_exchanges(
        Exchange(id=i, model=m, engine_model=m, messages=h, completion=t)
        for i, m, h, t in zip(
            ids,
            (battle["model_a"], battle["model_b"]),
            (battle["history_a"], battle["history_b"]),
            (a, b),
            strict=True,
        )
    )
    arena.record_answers(
        battle_id, {"id": ids[0], "completion": a}, {"id": ids[1], "completion": b}
    )
    return ids


def test_vote_reveals_models_and_stores_a_comparison(arena):
    battle_id = arena.open(PROMPT, "base", "tuned@1", rater="ann")
    _answer(arena, battle_id)
    battle = arena.vote(battle_id, "b")
    assert (battle["model_a"], battle["model_b"], battle["winner"]) == ("base", "tuned@1", "b")
    comparisons = arena.store.comparisons()
    assert [(c["winner"], c["source"], c["rater"]) for c in comparisons] == [("b", "arena", "ann")]
    assert arena.results() == [("base", "tuned@1", "b")]
    assert arena.battles_per_model() == {"base": 1, "tuned@1": 1}


def test_one_vote_per_battle_and_none_before_the_answers(arena):
    battle_id = arena.open(PROMPT, "base", "tuned@1")
    with pytest.raises(BattleNotReady, match="still being generated"):
        arena.vote(battle_id, "a")
    _answer(arena, battle_id)
    arena.vote(battle_id, "tie")
    with pytest.raises(BattleNotReady, match="one vote per battle"):
        arena.vote(battle_id, "a")
    with pytest.raises(BattleNotReady):
        arena.begin_turn(battle_id, [{"role": "user", "content": "more"}])
    assert arena.results() == [("base", "tuned@1", "tie")]


def test_failed_battle_cannot_be_voted_and_bad_input_is_refused(arena):
    battle_id = arena.open(PROMPT, "base", "tuned@1")
    arena.fail(battle_id)
    with pytest.raises(BattleNotReady, match="could not be generated"):
        arena.vote(battle_id, "a")
    with pytest.raises(UnknownBattle):
        arena.vote("battle-nope", "a")
    with pytest.raises(InvalidJudgement):
        arena.open(PROMPT, "base", "base")
    ready = arena.open(PROMPT, "base", "tuned@1")
    _answer(arena, ready)
    with pytest.raises(InvalidJudgement, match="winner"):
        arena.vote(ready, "both_good")


def test_multi_turn_keeps_each_sides_history(arena):
    battle_id = arena.open(PROMPT, "base", "tuned@1")
    _answer(arena, battle_id, "Red.", "Blue.")
    follow_up = [{"role": "user", "content": "Why?"}]
    arena.begin_turn(battle_id, follow_up)
    with pytest.raises(BattleNotReady):
        arena.vote(battle_id, "a")  # the second turn is still being generated
    _answer(arena, battle_id, "Because.", "Sky.")
    battle = arena.get(battle_id)
    assert battle["turns"] == 2
    assert [m["content"] for m in battle["history_a"]] == [
        "Name a colour.",
        "Red.",
        "Why?",
        "Because.",
    ]
    assert [m["content"] for m in battle["history_b"]] == [
        "Name a colour.",
        "Blue.",
        "Why?",
        "Sky.",
    ]
    voted = arena.vote(battle_id, "a")
    assert voted["comparison_id"] is None  # different histories: counted in the arena only
    assert arena.results() == [("base", "tuned@1", "a")]


def test_standings_follow_the_votes(arena):
    for _ in range(6):
        battle_id = arena.open(PROMPT, "base", "tuned@1")
        _answer(arena, battle_id)
        arena.vote(battle_id, "b")
    first = {s.model: s for s in arena.standings(anchor="base", rounds=20)}
    assert first["tuned@1"].rating > first["base"].rating == 1000
    battle_id = arena.open(PROMPT, "base", "tuned@1")
    _answer(arena, battle_id)
    arena.vote(battle_id, "a")
    second = {s.model: s for s in arena.standings(anchor="base", rounds=20)}
    assert second["tuned@1"].battles == 7  # recomputed after the new vote, not served stale


def test_pairing_sends_unsettled_candidates_against_live():
    rng = random.Random(0)
    models = ["base", "old@1", "new@1"]
    pairs = [
        choose_pair(models, {"base": 50, "old@1": 50}, ["new@1"], "old@1", rng) for _ in range(400)
    ]
    assert all(a != b for a, b in pairs)
    with_new = [p for p in pairs if "new@1" in p]
    against_live = [p for p in with_new if "old@1" in p]
    assert len(with_new) > 0.6 * len(pairs)  # half focused, and the weights favour few battles
    assert len(against_live) > 0.5 * len(pairs)
    assert 0.35 < sum(p[0] == "new@1" for p in with_new) / len(with_new) < 0.65  # side random


def test_pairing_weights_favour_models_with_few_battles():
    rng = random.Random(1)
    models = ["a", "b", "c"]
    pairs = [choose_pair(models, {"a": 0, "b": 400, "c": 400}, [], "b", rng) for _ in range(600)]
    share_a = sum("a" in p for p in pairs) / len(pairs)
    assert share_a > 0.8
    with pytest.raises(InvalidJudgement, match="at least two"):
        choose_pair(["base"], {}, [], "base", rng)


def test_pacer_keeps_sides_within_slack_and_releases_everything():
    pacer = Pacer(slack=5)
    out = pacer.add("a", "0123456789")
    assert out == [("a", "01234")]  # b has sent nothing: a may lead by 5
    out = pacer.add("b", "xy")
    assert out == [("b", "xy"), ("a", "56")]
    out = pacer.finish("b")  # b is done: a flows freely
    assert out == [("a", "789")]
    sent = "".join(t for s, t in [("a", "01234"), ("a", "56"), ("a", "789")])
    assert sent == "0123456789"


def test_a_steered_battle_is_voted_on_but_never_counted(arena):
    """Hardening 4: a user key could name both models, set temperature 0 and vote without
    limit; the loop promoted from those votes."""
    for rater, counted in (("ann", True), ("bob", True), ("rigger", False), ("rigger", False)):
        battle_id = arena.open(PROMPT, "base", "tuned@1", rater=rater, counted=counted)
        _answer(arena, battle_id)
        arena.vote(battle_id, "b")
    assert len(arena.store.comparisons()) == 4  # every vote is kept as a judgement
    assert arena.results() == [("base", "tuned@1", "b")] * 2  # only drawn battles count
    assert arena.battles_per_model() == {"base": 2, "tuned@1": 2}
    assert [s.battles for s in arena.standings()] == [2, 2]
    assert arena.raters_per_model() == {"base": 2, "tuned@1": 2}


def test_battles_in_the_last_hour_are_counted_per_key(arena):
    for key in (7, 7, 8):
        arena.open(PROMPT, "base", "tuned@1", api_key_id=key)
    assert (arena.battles_in_last_hour(7), arena.battles_in_last_hour(8)) == (2, 1)
    arena.store.db.execute("update battles set created_at = '2020-01-01T00:00:00.000+00:00'")
    assert arena.battles_in_last_hour(7) == 0


def test_a_user_keys_battle_rate_is_capped_and_what_it_steers_is_known():
    """Hardening 4: battles per hour per user key; named models or sampling steer a battle."""
    import asyncio
    from types import SimpleNamespace

    from serve.errors import RateLimited
    from serve.protocol import BattleRequest
    from serve.routes.arena import _check_battle_rate, _steered

    messages = [{"role": "user", "content": "hi"}]
    assert not _steered(BattleRequest(messages=messages, max_tokens=64))  # length: the reader's
    assert _steered(BattleRequest(messages=messages, temperature=0))
    assert _steered(BattleRequest(messages=messages, models=["base", "tuned"]))
    arena = Arena(Store(None))
    services = SimpleNamespace(arena=arena, settings=SimpleNamespace(arena_battles_per_hour=2))
    for _ in range(2):
        asyncio.run(_check_battle_rate(services, 7))
        arena.open(PROMPT, "base", "tuned@1", api_key_id=7)
    with pytest.raises(RateLimited, match="2 arena battles in the last hour, the limit is 2"):
        asyncio.run(_check_battle_rate(services, 7))
    asyncio.run(_check_battle_rate(services, 8))  # another key is not held back


def test_a_battles_conversation_is_stored_once_and_only_once_the_engine_took_it(tmp_path):
    """Hardening 6: the messages were stored three times (JSON-escaped, fsync'd), before the
    engine had even accepted the prompt."""
    import json

    arena = Arena(Store(tmp_path / "f.db"))
    long_prompt = [{"role": "user", "content": "Marker. " + "x" * 100_000}]
    battle = arena.new(long_prompt, "base", "tuned@1")
    assert arena.store.query("select count(*) as n from battles")[0]["n"] == 0  # not yet
    arena.save(battle)  # the route saves when the engine sends the first token
    _answer(arena, battle["id"], "Red.", "Blue.")
    arena.begin_turn(battle["id"], [{"role": "user", "content": "Why?"}])
    _answer(arena, battle["id"], "Because.", "Sky.")
    [row] = arena.store.query("select * from battles")
    stored = json.dumps(row)
    assert stored.count("Marker.") == 1  # once, in `messages`
    assert [m["content"] for m in json.loads(row["history_a"])] == ["Red.", "Why?", "Because."]
    assert arena.get(battle["id"])["history_b"][0] == long_prompt[0]


def test_battles_stored_with_whole_histories_keep_them_after_the_upgrade(tmp_path):
    """m008 turns the stored whole histories into what follows the conversation."""
    import json

    from sqlite_utils import Database

    from feedback.migrations import migrations

    db = Database(tmp_path / "old.db")
    migrations.apply(db, stop_before="m008_battle_history_tails")
    whole = [*PROMPT, {"role": "assistant", "content": "Red."}]
    db["battles"].insert({"id": "battle-old", "messages": json.dumps(PROMPT), "model_a": "base",
                          "model_b": "tuned@1", "history_a": json.dumps(whole),
                          "history_b": json.dumps(PROMPT), "turns": 1, "status": "ready",
                          "counted": 1, "created_at": "2026-12-01T00:00:00.000+00:00"})  # fmt: skip
    db.close()
    battle = Arena(Store(tmp_path / "old.db")).get("battle-old")
    assert (battle["history_a"], battle["history_b"]) == (whole, PROMPT)
