"""A rater with a hidden preference who uses only the public HTTP API, as a person would.

Per prompt it chats with the live model, presses Regenerate up to a few times, and as soon as
one answer has its trait and another has not, it picks the better one (a comparison); now and
then it also gives a thumbs up or down. With `edits=True`, when no answer it read has the trait,
it corrects by hand the first one it can instead of moving on (`Preference.edit`: one judgement,
a DPO pair that differs only where the trait does), and an answer that loops it cuts as soon as
it reads it, if what is left has the trait (a person deletes a loop in an answer it likes, too).
In the arena it asks for a battle and votes by its preference. Every judgement is a plain
`POST` a UI or OpenAI-client user could send.

By default it reads at most 4 answers per prompt and never edits (bench/protocol.py's realistic
rater), and it never picks or votes for an answer that visibly repeats itself in what it read (a
line said twice, a looping phrase: `train/answer_health.repeats_itself`), whatever its trait: a
person does not call a loop the better answer. It counts as an answer without the trait, so it
can still be the one turned down (`picks_loops=True`: the rater from before 2026-12-06).

`answer_tokens` is how far it reads each answer: a rater who sees 128 tokens never sees
whether a list ends or loops on. `noise=0.15` makes the noisy rater: it flips that share of
its picks and thumbs, as a person who misreads or disagrees would; its arena votes stay honest,
so the gate still judges by the preference.

`shuffled=True` makes a control rater: it sees the same pairs but picks a winner by coin flip
(its training labels carry no preference), while its arena votes stay honest, so the gate
faces a candidate trained on noise. A control rater makes no edits: an edit cannot be shuffled.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from dataclasses import dataclass, field

import httpx

from bench.preferences import Preference, verdict
from bench.protocol import RATER
from train.answer_health import before_the_loop, repeats_itself

SAMPLING = {"max_tokens": 128, "temperature": 0.7}


def answer_text(answer: dict) -> str:
    """The text of a chat completion ("" for an empty one)."""
    return answer["choices"][0]["message"]["content"] or ""


@dataclass
class RaterTally:
    judgements: int = 0
    comparisons: int = 0
    ratings: int = 0
    edits: int = 0
    votes: int = 0
    answers_read: int = 0
    last_judgement_at: float = 0.0
    vote_counts: dict[str, int] = field(default_factory=dict)


class SimulatedRater:
    def __init__(
        self,
        client: httpx.AsyncClient,
        preference: Preference,
        *,
        shuffled: bool = False,
        edits: bool = False,
        noise: float = 0.0,
        max_answers: int = 4,
        thumbs_every: int = 8,
        concurrency: int = 16,
        answer_tokens: int = RATER["answer_tokens"],
        picks_loops: bool = RATER["picks_loops"],
        seed: int = 0,
        name: str = "simulated-rater",
    ):
        self.client = client
        self.preference = preference
        self.shuffled = shuffled
        self.edits = edits and not shuffled
        self.noise = 0.5 if shuffled else noise  # the share of picks and thumbs flipped
        self.max_answers = max_answers
        self.thumbs_every = thumbs_every
        self.concurrency = concurrency
        self.sampling = {**SAMPLING, "max_tokens": answer_tokens}
        self.picks_loops = picks_loops
        self.rng = random.Random(seed)
        self.name = name
        self.posting = 0  # judgements being sent: never cut off (see `_close_the_rest`)
        self.tally = RaterTally()

    async def _post(self, path: str, body: dict) -> dict:
        resp = await self.client.post(path, json=body)
        if resp.status_code >= 400:
            raise RuntimeError(f"POST {path} -> {resp.status_code}: {resp.text[:300]}")
        return resp.json()

    async def _ask(self, prompt: str) -> dict:
        self.tally.answers_read += 1
        return await self._post(
            "/v1/chat/completions",
            {"model": "live", "messages": [{"role": "user", "content": prompt}], **self.sampling},
        )

    def likes(self, text: str) -> bool:
        """The answer has the trait and, unless this rater picks loops, does not visibly loop."""
        return self.preference.has_trait(text) and self._would_pick(text)

    def _would_pick(self, text: str) -> bool:
        return self.picks_loops or not repeats_itself(text)

    def _judged(self) -> None:
        self.tally.judgements += 1
        self.tally.last_judgement_at = time.perf_counter()

    async def _judge_prompt(self, prompt: str, budget: list[int]) -> None:
        """Regenerate until one answer has the trait and one has not; then pick (and rate).
        With `edits`: cut a loop as soon as one is read; if no answer has the trait, edit one."""
        answers = list(await asyncio.gather(self._ask(prompt), self._ask(prompt)))
        while True:
            texts = [answer_text(a) for a in answers]
            traits = [self.preference.has_trait(t) for t in texts]
            cut = self._loop_to_cut(answers, texts, traits) if self.edits else None
            liked = [trait and self._would_pick(t) for t, trait in zip(texts, traits, strict=True)]
            with_trait = [a for a, good in zip(answers, liked, strict=True) if good]
            without = [a for a, good in zip(answers, liked, strict=True) if not good]
            if cut is not None:
                await self._send_edit(*cut, budget)
                return
            if with_trait and without:
                break
            if budget[0] <= 0:
                return  # a person stops regenerating once done judging, too
            if len(answers) >= self.max_answers:
                if self.edits and not with_trait:
                    await self._edit(answers, budget)
                return
            answers.append(await self._ask(prompt))
        if budget[0] <= 0:
            return
        budget[0] -= 1
        self.posting += 1  # in the same step as the budget: no await in between
        try:
            await self._send_judgements(with_trait[0], without[0], budget)
        finally:
            self.posting -= 1

    def _loop_to_cut(
        self, answers: list[dict], texts: list[str], traits: list[bool]
    ) -> tuple[dict, str] | None:
        """An answer that loops and whose fix only deletes the loop: a person who edits deletes
        a loop on sight rather than regenerate or pick it, and the pair differs only where it
        should stop. An answer with the trait is cut where its loop starts, if what is left
        keeps the trait; one without it gets the preference's fix, if that is such a cut."""
        for answer, text, trait in zip(answers, texts, traits, strict=True):
            if not repeats_itself(text):
                continue
            fixed = before_the_loop(text) if trait else self.preference.edit(text)
            if fixed is not None and text.startswith(fixed) and self.preference.has_trait(fixed):
                return answer, fixed
        return None

    async def _edit(self, answers: list[dict], budget: list[int]) -> None:
        """Correct by hand the first answer the preference knows how to fix (one judgement)."""
        for answer in answers:
            fixed = self.preference.edit(answer_text(answer))
            if fixed is not None:
                await self._send_edit(answer, fixed, budget)
                return

    async def _send_edit(self, answer: dict, fixed: str, budget: list[int]) -> None:
        """Send one edit, if the budget has a judgement left (one judgement)."""
        if budget[0] <= 0:
            return
        budget[0] -= 1
        self.posting += 1
        try:
            await self._post(
                "/v1/feedback/edits",
                {"completion_id": answer["id"], "content": fixed, "rater": self.name},
            )
        finally:
            self.posting -= 1
        self.tally.edits += 1
        self._judged()

    async def _send_judgements(self, better: dict, worse: dict, budget: list[int]) -> None:
        """The pick between two answers, and now and then a thumb on one of them."""
        if self.noise and self.rng.random() < self.noise:
            better, worse = worse, better
        a, b = (better, worse) if self.rng.random() < 0.5 else (worse, better)
        winner = "a" if a is better else "b"
        await self._post(
            "/v1/feedback/comparisons",
            {"completion_ids": [a["id"], b["id"]], "winner": winner, "rater": self.name,
             "source": "ui"},
        )  # fmt: skip
        self.tally.comparisons += 1
        self._judged()
        if self.thumbs_every and self.tally.comparisons % self.thumbs_every == 0 and budget[0] > 0:
            budget[0] -= 1
            rated = self.rng.choice([better, worse])
            up = rated is better  # as the pick, flipped or not: one person, one opinion
            await self._post(
                "/v1/feedback/ratings",
                {"completion_id": rated["id"], "value": 1 if up else -1, "rater": self.name},
            )
            self.tally.ratings += 1
            self._judged()

    async def _close_the_rest(self, workers: list[asyncio.Task], done) -> None:
        """Once `done()`, cancel the answers still being generated, as a person closes the tabs.

        Judgements being sent are let through first. The gateway stops the engine requests of
        the cancelled ones, so answers nobody will read do not slow the training that follows.
        """
        finished = False
        while not all(w.done() for w in workers):
            failed = any(w.done() and not w.cancelled() and w.exception() for w in workers)
            finished = finished or await done()
            if failed or (finished and not self.posting):
                for worker in workers:
                    worker.cancel()
                break
            await asyncio.sleep(0.05 if finished else 0.5)
        for worker in workers:
            with contextlib.suppress(asyncio.CancelledError):
                await worker  # a worker's own error is raised here

    async def judge(self, prompts: list[str], count: int) -> None:
        """Make exactly `count` judgements (comparisons, a few thumbs, edits) on these prompts."""
        budget = [count]
        queue = list(prompts)
        self.rng.shuffle(queue)
        position = 0

        async def worker() -> None:
            nonlocal position
            while budget[0] > 0:
                if position >= len(queue):
                    self.rng.shuffle(queue)
                    position = 0
                prompt = queue[position]
                position += 1
                await self._judge_prompt(prompt, budget)

        async def spent() -> bool:
            return budget[0] <= 0

        workers = [asyncio.create_task(worker()) for _ in range(self.concurrency)]
        await self._close_the_rest(workers, spent)

    def vote_between(self, a: str, b: str) -> str:
        """ "a", "b", "tie" (both liked) or "both_bad" (neither): `Preference.judge`, with the
        answers this rater will not pick (`likes`) counted as lacking the trait."""
        return verdict(self.likes(a), self.likes(b))

    async def vote(self, prompt: str) -> str:
        """One arena battle: read both anonymous answers, vote by the (honest) preference."""
        battle = await self._post(
            "/v1/arena/battles",
            {
                "messages": [{"role": "user", "content": prompt}],
                "rater": self.name,
                **self.sampling,
            },
        )
        a, b = (r["text"] for r in battle["responses"])
        winner = self.vote_between(a, b)
        self.posting += 1
        try:
            await self._post(
                f"/v1/arena/battles/{battle['battle_id']}/vote",
                {"winner": winner, "rater": self.name},
            )
        finally:
            self.posting -= 1
        self.tally.votes += 1
        self.tally.vote_counts[winner] = self.tally.vote_counts.get(winner, 0) + 1
        self._judged()
        return winner

    async def vote_until(self, prompts: list[str], done) -> None:
        """Vote in battles, `concurrency` at a time, until `await done()` is true."""

        async def worker() -> None:
            while True:
                await self.vote(self.rng.choice(prompts))

        workers = [asyncio.create_task(worker()) for _ in range(self.concurrency)]
        await self._close_the_rest(workers, done)
