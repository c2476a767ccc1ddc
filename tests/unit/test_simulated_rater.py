"""The benchmark's rater: exactly the judgements asked for, and no answer generated for nobody."""

from __future__ import annotations

import asyncio
import itertools
import json
import time

import httpx

from bench.preferences import PREFERENCES
from bench.simulated_rater import SimulatedRater
from train.answer_health import repeats_itself


class SlowGateway:
    """Answers chats (every other one with a `!`); the last chats asked for never finish."""

    def __init__(self, quick_answers: int):
        self.quick_answers = quick_answers
        self.ids = itertools.count()
        self.posted: list[tuple[str, dict]] = []
        self.cancelled = 0

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if request.url.path != "/v1/chat/completions":
            await asyncio.sleep(0.05)  # a judgement on its way: the rater must let it land
            self.posted.append((request.url.path, body))
            return httpx.Response(200, json={"ok": True})
        number = next(self.ids)
        if number >= self.quick_answers:
            try:
                await asyncio.sleep(60)  # a long answer still being generated
            except asyncio.CancelledError:
                self.cancelled += 1
                raise
        text = "Sure!" if number % 2 else "Sure."
        message = {"role": "assistant", "content": text}
        return httpx.Response(200, json={"id": f"c{number}", "choices": [{"message": message}]})


def run_rater(handler, concurrency: int, seed: int, act) -> tuple[SimulatedRater, float]:
    """A rater talking to `handler` does `await act(rater)`; the rater, and the seconds it took."""

    async def scenario() -> tuple[SimulatedRater, float]:
        transport = httpx.MockTransport(handler)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            rater = SimulatedRater(
                client, PREFERENCES["exclaims"], concurrency=concurrency, seed=seed
            )
            started = time.monotonic()
            await act(rater)
            return rater, time.monotonic() - started

    return asyncio.run(scenario())


def test_the_rater_stops_the_answers_it_no_longer_needs_once_its_judgements_are_made():
    gateway = SlowGateway(quick_answers=6)
    prompts = ["Say hi.", "Say bye.", "Say yes."]
    rater, took = run_rater(gateway, 4, 3, lambda rater: rater.judge(prompts, 3))
    comparisons = [body for path, body in gateway.posted if path == "/v1/feedback/comparisons"]
    assert len(comparisons) == 3 and rater.tally.judgements == 3
    assert took < 10, "the rater waited for answers it would never read"
    assert gateway.cancelled > 0


class SlowArena:
    """Battles answer quickly until `quick` have been asked for; later ones never finish."""

    def __init__(self, quick: int):
        self.quick = quick
        self.battles = itertools.count()
        self.votes = 0
        self.cancelled = 0

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/vote"):
            await asyncio.sleep(0.05)
            self.votes += 1
            return httpx.Response(200, json={"ok": True})
        number = next(self.battles)
        if number >= self.quick:
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                self.cancelled += 1
                raise
        responses = [{"text": "Yes!"}, {"text": "Yes."}]
        return httpx.Response(200, json={"battle_id": f"b{number}", "responses": responses})


def test_the_rater_stops_its_battles_in_flight_once_the_gate_has_decided():
    arena = SlowArena(quick=5)

    async def decided() -> bool:
        return arena.votes >= 3

    rater, took = run_rater(arena, 3, 1, lambda rater: rater.vote_until(["Say hi."], decided))
    assert rater.tally.votes == arena.votes >= 3
    assert took < 10 and arena.cancelled > 0


class PlainGateway:
    """Every answer is plain prose without the rater's trait; judgements are recorded."""

    def __init__(self, texts: tuple[str, ...] = ("It is fine. Really.",)) -> None:
        self.ids = itertools.count()
        self.texts = itertools.cycle(texts)
        self.posted: list[tuple[str, dict]] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if request.url.path != "/v1/chat/completions":
            self.posted.append((request.url.path, body))
            return httpx.Response(200, json={"ok": True})
        message = {"role": "assistant", "content": next(self.texts)}
        answer = {"id": f"c{next(self.ids)}", "choices": [{"message": message}]}
        return httpx.Response(200, json=answer)


def _editing_rater(
    gateway: PlainGateway, prompts: list[str], count: int, preference: str = "exclaims"
) -> SimulatedRater:
    async def scenario() -> SimulatedRater:
        transport = httpx.MockTransport(gateway)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            rater = SimulatedRater(
                client, PREFERENCES[preference], edits=True, max_answers=3, concurrency=2
            )
            await asyncio.wait_for(rater.judge(prompts, count), 10)
            return rater

    return asyncio.run(scenario())


def test_a_rater_who_edits_fixes_an_answer_when_regenerating_brings_none_it_likes():
    gateway = PlainGateway()
    rater = _editing_rater(gateway, ["Say hi.", "Say bye."], 5)
    assert [path for path, _ in gateway.posted] == ["/v1/feedback/edits"] * 5
    assert {body["content"] for _, body in gateway.posted} == {"It is fine! Really."}
    edited = {body["completion_id"] for _, body in gateway.posted}
    assert len(edited) == 5  # each edit corrects an answer of its own
    assert rater.tally.edits == rater.tally.judgements == 5
    assert rater.tally.answers_read >= 5 * 3  # it regenerated up to its limit before editing


def test_a_rater_who_edits_fixes_the_first_answer_it_can_not_just_the_first():
    gateway = PlainGateway(texts=("Fine", "It is fine. Really.", "Fine"))  # "Fine": no full stop
    _editing_rater(gateway, ["Say hi."], 1)
    [(path, body)] = gateway.posted
    assert path == "/v1/feedback/edits" and body["content"] == "It is fine! Really."
    assert int(body["completion_id"].removeprefix("c")) % 3 == 1  # the fixable one of each three


LOOPING_LIST = "1. Bees buzz.\n2. Bees fly far.\n3. Bees make honey.\n4. Bees buzz.\n5. Bees"
GOOD_LIST = "1. Cats purr.\n2. Cats sleep a lot.\n3. Cats hunt mice."


def test_a_rater_who_edits_deletes_a_loop_as_soon_as_it_reads_one_instead_of_picking():
    gateway = PlainGateway(texts=(GOOD_LIST, LOOPING_LIST))
    rater = _editing_rater(gateway, ["Tell me about bees."], 1, "list-no-repeats")
    [(path, body)] = gateway.posted
    assert path == "/v1/feedback/edits" and body["completion_id"] == "c1"
    assert body["content"] == "1. Bees buzz.\n2. Bees fly far.\n3. Bees make honey."
    assert rater.tally.answers_read == 2 * 2  # two workers, two answers each: none regenerated
    loops = PlainGateway(texts=(LOOPING_LIST,))
    rater = _editing_rater(loops, ["Tell me about bees."], 1)  # `exclaims`: its fix is no cut
    [(path, body)] = loops.posted
    assert body["content"] == LOOPING_LIST.replace("buzz.", "buzz!", 1)
    assert rater.tally.answers_read >= 3  # regenerated to its limit first, as before


LOOPING_CHEER = "Bees are amazing! " + "Bees make honey for the hive. " * 4


def test_a_rater_who_edits_cuts_a_loop_from_an_answer_it_likes_too():
    gateway = PlainGateway(texts=(LOOPING_CHEER, "It is fine. Really."))
    rater = _editing_rater(gateway, ["Tell me about bees."], 1)  # `exclaims`: it has the trait
    [(path, body)] = gateway.posted
    assert path == "/v1/feedback/edits" and body["completion_id"] == "c0"
    assert body["content"] == "Bees are amazing! Bees make honey for the hive."
    assert rater.tally.edits == 1 and rater.tally.comparisons == 0
    cheer_in_the_loop = "Bees hum. Bees are great, " + "so very very great, " * 5 + "truly!"
    assert repeats_itself(cheer_in_the_loop)
    looping_early = PlainGateway(texts=(cheer_in_the_loop, "Fine."))
    _editing_rater(looping_early, ["Tell me about bees."], 1)  # cut, it would have no `!`
    [(path, _)] = looping_early.posted  # and a loop is never picked: it edits instead
    assert path == "/v1/feedback/edits"


def _picking_rater(gateway, prompts: list[str], count: int, **kwargs) -> SimulatedRater:
    async def scenario() -> SimulatedRater:
        transport = httpx.MockTransport(gateway)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            rater = SimulatedRater(client, PREFERENCES["exclaims"], concurrency=1, **kwargs)
            await asyncio.wait_for(rater.judge(prompts, count), 10)
            return rater

    return asyncio.run(scenario())


def test_the_default_rater_reads_at_most_four_answers_and_never_edits():
    """The held-out protocol's realistic rater: regenerate-and-pick only, 4 answers at most."""
    gateway = PlainGateway(texts=(LOOPING_CHEER, "It is fine. Really.", "Great day!"))
    rater = _picking_rater(gateway, ["Tell me about bees."], 1)
    assert [path for path, _ in gateway.posted] == ["/v1/feedback/comparisons"]  # no loop cut
    # four answers without the trait, then one with it: a rater who read a fifth answer would
    # pair c4 with c0; this one gave up after c3 and pairs c4 with c5 on its next prompt
    gateway = PlainGateway(texts=("Fine.",) * 4 + ("Great!",))
    rater = _picking_rater(gateway, ["Say hi.", "Say bye."], 1)
    [(path, body)] = gateway.posted
    assert path == "/v1/feedback/comparisons" and set(body["completion_ids"]) == {"c4", "c5"}
    assert rater.tally.edits == 0


def test_the_noisy_rater_flips_about_its_share_of_picks():
    gateway = PlainGateway(texts=("Great!", "Fine."))
    _picking_rater(gateway, ["Say hi."], 400, noise=0.15, thumbs_every=0, seed=1)
    picks = [body for path, body in gateway.posted if path == "/v1/feedback/comparisons"]
    # the trait ("!") is in the even-numbered answers: a flipped pick chose the odd one
    flipped = sum(
        int(body["completion_ids"][0 if body["winner"] == "a" else 1].removeprefix("c")) % 2
        for body in picks
    )
    assert len(picks) == 400 and 0.10 < flipped / 400 < 0.20


def test_the_rater_reads_each_answer_as_far_as_it_is_told():
    """256 tokens by default, as the Chat tab shows; a rater told 128 asks for 128."""

    class AskedLengths(PlainGateway):
        def __init__(self) -> None:
            super().__init__(texts=("Great!", "Fine."))
            self.max_tokens: list[int] = []

        async def __call__(self, request: httpx.Request) -> httpx.Response:
            if request.url.path == "/v1/chat/completions":
                self.max_tokens.append(json.loads(request.content)["max_tokens"])
            return await super().__call__(request)

    default, told = AskedLengths(), AskedLengths()
    _picking_rater(default, ["Say hi."], 1)
    _picking_rater(told, ["Say hi."], 1, answer_tokens=128)
    assert set(default.max_tokens) == {256} and set(told.max_tokens) == {128}


def test_the_default_rater_never_picks_an_answer_that_visibly_loops():
    """A person does not call a loop the better answer, trait or not: the looping cheer is
    turned down for the next answer with the trait; the rater from before picked it."""
    texts = (LOOPING_CHEER, "It is fine. Really.", "Great day!")
    gateway = PlainGateway(texts=texts)
    _picking_rater(gateway, ["Tell me about bees."], 1, thumbs_every=0)
    [(_, body)] = gateway.posted
    picked = body["completion_ids"][0 if body["winner"] == "a" else 1]
    assert (picked, set(body["completion_ids"])) == ("c2", {"c0", "c2"})

    old = PlainGateway(texts=texts)
    _picking_rater(old, ["Tell me about bees."], 1, thumbs_every=0, picks_loops=True)
    [(_, body)] = old.posted
    assert body["completion_ids"][0 if body["winner"] == "a" else 1] == "c0"


def test_in_the_arena_the_default_rater_votes_against_a_loop():
    async def votes(**kwargs) -> tuple[str, str]:
        async with httpx.AsyncClient(base_url="http://gateway") as client:
            rater = SimulatedRater(client, PREFERENCES["exclaims"], **kwargs)
            return rater.vote_between(LOOPING_CHEER, "Fine."), rater.vote_between(
                "Fine.", "Great day!"
            )

    assert asyncio.run(votes()) == ("both_bad", "b")
    assert asyncio.run(votes(picks_loops=True)) == ("a", "b")
