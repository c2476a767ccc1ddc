"""The arena on the real engine: anonymous battles, one vote each, the reveal, the leaderboard."""

from __future__ import annotations

import json

import httpx
import pytest

from feedback import Store
from tests.polling import wait_for

pytestmark = pytest.mark.integration

PROMPT = [{"role": "user", "content": "Name a fruit."}]


@pytest.fixture(scope="module")
def contender(stack, trained_adapter) -> str:
    """The trained weights under a name of this module's own (other tests delete theirs)."""
    assert trained_adapter.result.returncode == 0, trained_adapter.result.stderr[-2000:]
    store = Store(stack.data_dir / "flywheel.db")
    [row] = [r for r in store.adapters(True) if r["name"] == trained_adapter.name][:1]
    resp = httpx.post(
        f"{stack.api}/adapters", json={"name": "arena-x", "path": row["path"]}, timeout=300
    )
    assert resp.status_code == 201, resp.text
    return resp.json()["engine_name"]


@pytest.fixture(scope="module")
def base_name(stack) -> str:
    return httpx.get(f"{stack.api}/models").json()["data"][0]["id"]


def battle(stack, **body) -> httpx.Response:
    body = {"messages": PROMPT, "max_tokens": 12, **body}
    return httpx.post(f"{stack.api}/arena/battles", json=body, timeout=300)


def vote(stack, battle_id: str, winner: str) -> httpx.Response:
    return httpx.post(f"{stack.api}/arena/battles/{battle_id}/vote", json={"winner": winner})


def without_texts(body: dict) -> str:
    """The response as JSON minus the answers' own words (a model may name itself in those)."""
    return json.dumps({**body, "responses": [{**r, "text": ""} for r in body["responses"]]})


def sse_events(response: httpx.Response):
    buffer = b""
    for chunk in response.iter_bytes():
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            if line.startswith(b"data: ") and line != b"data: [DONE]":
                yield json.loads(line[6:])


def test_a_battle_hides_the_models_until_the_vote(stack, contender, base_name):
    resp = battle(stack, models=["base", "arena-x"])
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["status"] == "ready" and body["turns"] == 1
    assert [len(r["text"]) > 0 for r in body["responses"]] == [True, True]
    hidden = without_texts(body)
    assert contender not in hidden and "arena-x" not in hidden and base_name not in hidden
    state = httpx.get(f"{stack.api}/arena/battles/{body['battle_id']}").json()
    assert "models" not in state and contender not in json.dumps(state)

    revealed = vote(stack, body["battle_id"], "b")
    assert revealed.status_code == 200, revealed.text
    assert set(revealed.json()["models"].values()) == {base_name, contender}
    assert revealed.json()["comparison_id"] is not None  # single turn: also a training pair
    again = vote(stack, body["battle_id"], "a")
    assert again.status_code == 409 and "one vote per battle" in again.json()["error"]["message"]
    assert vote(stack, "battle-unknown", "a").status_code == 404
    assert vote(stack, body["battle_id"], "sideways").status_code == 400


def test_streamed_battle_paces_both_sides_and_refuses_an_early_vote(stack, contender):
    body = {"messages": PROMPT, "max_tokens": 24, "models": ["base", "arena-x"], "stream": True}
    with httpx.stream("POST", f"{stack.api}/arena/battles", json=body, timeout=300) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        events = sse_events(resp)
        first = next(events)
        early = vote(stack, first["battle_id"], "a")
        assert early.status_code == 409 and "still being generated" in early.text
        rest = list(events)
    deltas = [first, *rest[:-1]]
    final = rest[-1]
    assert {e["side"] for e in deltas} == {"a", "b"}
    assert all(set(e) == {"battle_id", "side", "delta"} for e in deltas)  # no model names
    for side, response in zip("ab", final["responses"], strict=True):
        assert "".join(e["delta"] for e in deltas if e["side"] == side) == response["text"]
    assert vote(stack, final["battle_id"], "tie").status_code == 200


def test_a_client_that_leaves_mid_battle_leaves_no_votable_battle(stack, contender):
    body = {"messages": PROMPT, "max_tokens": 200, "models": ["base", "arena-x"], "stream": True}
    with httpx.stream("POST", f"{stack.api}/arena/battles", json=body, timeout=300) as resp:
        battle_id = next(sse_events(resp))["battle_id"]
    wait_for(
        lambda: httpx.get(f"{stack.api}/arena/battles/{battle_id}").json()["status"] == "failed",
        timeout=30,
    )
    assert vote(stack, battle_id, "a").status_code == 409


def test_a_client_that_gives_up_on_a_whole_battle_stops_both_answers(stack, contender):
    story = [{"role": "user", "content": "Write a very long story about a lighthouse."}]
    body = {"messages": story, "max_tokens": 1500, "models": ["base", "arena-x"]}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{stack.api}/arena/battles", json=body, timeout=3)
    store = Store(stack.data_dir / "flywheel.db")
    [last] = store.db.query("select id, status from battles order by rowid desc limit 1")
    wait_for(
        lambda: httpx.get(f"{stack.api}/arena/battles/{last['id']}").json()["status"] == "failed",
        timeout=10,
        what="the abandoned battle to be failed (both engine requests cancelled)",
    )
    assert vote(stack, last["id"], "a").status_code == 409


def test_multi_turn_battle_keeps_both_histories(stack, contender):
    first = battle(stack, models=["base", "arena-x"]).json()
    follow_up = {"messages": [{"role": "user", "content": "And another one?"}], "max_tokens": 12}
    resp = httpx.post(
        f"{stack.api}/arena/battles/{first['battle_id']}/turns", json=follow_up, timeout=300
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["turns"] == 2
    state = httpx.get(f"{stack.api}/arena/battles/{first['battle_id']}").json()
    for side, answer in zip("ab", first["responses"], strict=True):
        history = state["histories"][side]
        assert [m["role"] for m in history] == ["user", "assistant", "user", "assistant"]
        assert history[1]["content"] == answer["text"]
    voted = vote(stack, first["battle_id"], "a").json()
    assert voted["comparison_id"] is None  # the sides' histories differ: arena only


def test_the_arena_picks_two_models_and_the_leaderboard_counts_votes(stack, contender, base_name):
    before = httpx.get(f"{stack.api}/arena/leaderboard").json()
    for _ in range(3):
        body = battle(stack).json()  # the arena picks the pair
        assert vote(stack, body["battle_id"], "both_bad").status_code == 200
    board = httpx.get(f"{stack.api}/arena/leaderboard").json()
    assert board["battles"] == before["battles"] + 3
    rows = {r["model"]: r for r in board["data"]}
    assert rows[base_name]["rating"] == 1000 and rows[base_name]["status"] == "base"
    assert rows[contender]["status"] == "candidate"
    for row in board["data"]:
        assert row["ci_low"] <= row["rating"] <= row["ci_high"] and row["rank"] >= 1
        # the counts the gate's sequential test needs (train/gate.py): all three, summing up
        assert row["wins"] + row["losses"] + row["ties"] == row["battles"]
    bad = httpx.get(f"{stack.api}/arena/leaderboard", params={"rounds": 5})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "rounds"
