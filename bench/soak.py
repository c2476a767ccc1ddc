"""Soak: mixed load on the real stack for half an hour; every error counted, memory tracked.

For `--minutes`, all through the public HTTP API, as people and OpenAI clients would:

- `--chat-clients` chat clients ask the live model short questions, half of them streaming;
  every answer gets a thumbs rating, and every other question is asked twice and the two
  answers compared (the comparisons a DPO job trains on);
- one DPO training job starts after `--train-after-s` on the comparisons stored by then; its
  adapter is hot-loaded as a candidate, and from then on `--voters` arena voters battle it
  against the base model;
- faults are injected on purpose every `--inject-every-s` (malformed JSON, an unknown model,
  a vote on a battle that does not exist): each must get its documented 4xx, and is counted
  apart from the load.

Any other non-2xx answer, a stream that does not end with `[DONE]`, or a timeout is an error
(goal: 0). Every `--sample-s` the resident memory (VmRSS) of the gateway process and of the
engine's process tree is read from /proc (the training job's own process is not counted; it
exits). Growth compares the median of the last `--window-min` minutes with the median of the
first `--window-min` minutes after `--warmup-min` (allocators and caches fill first); the goal
is < 10 %.

    python -m bench.soak [--minutes 30] [--chat-clients 8] [--voters 2]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import statistics
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.sse import sse_events
from bench.stack import running_stack, stack_pids
from bench.turnaround import ASKS, SUBJECTS

ANSWER = {"max_tokens": 48, "temperature": 0.8}


@dataclass
class Tally:
    ok: Counter = field(default_factory=Counter)  # kind -> 2xx answers
    errors: Counter = field(default_factory=Counter)  # "kind status" -> unexpected answers
    injected: Counter = field(default_factory=Counter)  # kind -> faults sent
    injected_as_documented: Counter = field(default_factory=Counter)
    error_samples: list[str] = field(default_factory=list)
    job: dict = field(default_factory=dict)

    def error(self, kind: str, status: int | str, detail: str = "") -> None:
        self.errors[f"{kind} {status}"] += 1
        if len(self.error_samples) < 10:
            self.error_samples.append(f"{kind} {status} {detail[:200]}")


class Soak:
    def __init__(self, client: httpx.AsyncClient, until: float, tally: Tally):
        self.client = client
        self.until = until
        self.tally = tally
        self.prompts = itertools.cycle(
            [ask.format(s) for ask in ASKS for s in SUBJECTS]
        )  # fmt: skip

    def running(self) -> bool:
        return time.monotonic() < self.until

    async def _post(self, kind: str, path: str, body: dict) -> dict | None:
        try:
            resp = await self.client.post(path, json=body)
        except httpx.HTTPError as exc:
            self.tally.error(kind, type(exc).__name__, str(exc))
            return None
        if resp.status_code >= 300:
            self.tally.error(kind, resp.status_code, resp.text)
            return None
        self.tally.ok[kind] += 1
        return resp.json()

    async def _ask(self, prompt: str, stream: bool) -> str | None:
        """One answer of the live model; its completion id, or None after an error."""
        body = {"model": "live", "messages": [{"role": "user", "content": prompt}], **ANSWER}
        if not stream:
            reply = await self._post("chat", "/v1/chat/completions", body)
            return reply and reply["id"]
        completion_id, ended = None, False
        try:
            async with self.client.stream(
                "POST", "/v1/chat/completions", json={**body, "stream": True}
            ) as resp:
                if resp.status_code != 200:
                    await resp.aread()
                    self.tally.error("stream", resp.status_code, resp.text)
                    return None
                async for event in sse_events(resp):
                    completion_id = completion_id or event.get("id")
                    ended = ended or any(c.get("finish_reason") for c in event["choices"])
        except (httpx.HTTPError, ValueError) as exc:
            self.tally.error("stream", type(exc).__name__, str(exc))
            return None
        if not (completion_id and ended):
            self.tally.error("stream", "cut", f"id={completion_id} finished={ended}")
            return None
        self.tally.ok["stream"] += 1
        return completion_id

    async def chatter(self, number: int) -> None:
        """Ask, rate each answer; every other question twice, then compare the two answers."""
        stream = number % 2 == 1
        for turn in itertools.count():
            if not self.running():
                return
            prompt = next(self.prompts)
            if turn % 2:
                ids = await asyncio.gather(self._ask(prompt, stream), self._ask(prompt, stream))
                if all(ids):
                    body = {"completion_ids": list(ids), "winner": "ab"[turn % 4 // 2],
                            "rater": "soak", "source": "ui"}  # fmt: skip
                    await self._post("comparison", "/v1/feedback/comparisons", body)
            elif completion_id := await self._ask(prompt, stream):
                body = {"completion_id": completion_id, "value": 1 - 2 * (turn % 3 == 0),
                        "rater": "soak"}  # fmt: skip
                await self._post("rating", "/v1/feedback/ratings", body)

    async def voter(self) -> None:
        """Arena battles once a second model (the job's adapter) is served."""
        while self.running() and not self.tally.job.get("adapter"):
            await asyncio.sleep(2)
        while self.running():
            body = {"messages": [{"role": "user", "content": next(self.prompts)}],
                    "rater": "soak", **ANSWER}  # fmt: skip
            battle = await self._post("battle", "/v1/arena/battles", body)
            if battle:
                winner = ("a", "b", "tie")[len(battle["responses"][0]["text"]) % 3]
                vote = {"winner": winner, "rater": "soak"}
                await self._post("vote", f"/v1/arena/battles/{battle['battle_id']}/vote", vote)
            else:
                await asyncio.sleep(1)

    async def trainer(self, after_s: float, steps: int) -> None:
        """One DPO job on the comparisons stored so far; wait for it to end."""
        await asyncio.sleep(after_s)
        body = {"method": "dpo", "name": "soak", "params": {"max_steps": steps}}
        job = await self._post("train", "/v1/train/jobs", body)
        if not job:
            return
        started = time.monotonic()
        while self.running():
            await asyncio.sleep(5)
            try:
                job = (await self.client.get(f"/v1/train/jobs/{job['id']}")).json()
            except httpx.HTTPError as exc:
                self.tally.error("train-poll", type(exc).__name__, str(exc))
                continue
            if job["status"] in ("succeeded", "failed", "cancelled"):
                break
        self.tally.job = {
            "status": job["status"], "adapter": job.get("adapter"),
            "seconds": round(time.monotonic() - started), "error": job.get("error"),
        }  # fmt: skip
        if job["status"] not in ("succeeded", "queued", "running"):  # unfinished: reported
            self.tally.error("train", job["status"], str(job.get("error")))

    async def injector(self, every_s: float) -> None:
        """Bad requests on purpose: each must be refused with its documented status."""
        faults = [
            ("malformed JSON", 400, lambda: self.client.post(
                "/v1/chat/completions", content=b'{"model": "live", "messages": [',
                headers={"content-type": "application/json"})),
            ("unknown model", 404, lambda: self.client.post(
                "/v1/chat/completions",
                json={"model": f"no-such-{uuid.uuid4().hex[:6]}",
                      "messages": [{"role": "user", "content": "hi"}]})),
            ("unknown battle", 404, lambda: self.client.post(
                f"/v1/arena/battles/{uuid.uuid4().hex}/vote", json={"winner": "a"})),
        ]  # fmt: skip
        while self.running():
            for kind, status, send in faults:
                self.tally.injected[kind] += 1
                try:
                    resp = await send()
                except httpx.HTTPError as exc:
                    self.tally.error(f"injected {kind}", type(exc).__name__, str(exc))
                    continue
                if resp.status_code == status and "error" in resp.json():
                    self.tally.injected_as_documented[kind] += 1
                else:
                    self.tally.error(f"injected {kind}", resp.status_code, resp.text)
            await asyncio.sleep(every_s)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def process_tree(pid: int) -> list[int]:
    """The process and all its descendants (from /proc; vLLM runs its engine core as a child)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    tree, todo = [], [pid]
    while todo:
        tree.append(current := todo.pop())
        todo.extend(children.get(current, []))
    return tree


async def sample_memory(gateway: int, engine: int, every_s: float, until: float,
                        samples: list[tuple[float, float, float]]) -> None:  # fmt: skip
    started = time.monotonic()
    while time.monotonic() < until:
        engine_mib = 0.0
        for pid in process_tree(engine):
            with contextlib.suppress(OSError):  # exited between listing and reading
                engine_mib += rss_mib(pid)
        samples.append(((time.monotonic() - started) / 60, rss_mib(gateway), engine_mib))
        await asyncio.sleep(every_s)


def growth(samples: list[tuple[float, float, float]], column: int, warmup_min: float,
           window_min: float) -> dict:  # fmt: skip
    end = samples[-1][0]
    first = [s[column] for s in samples if warmup_min <= s[0] < warmup_min + window_min]
    last = [s[column] for s in samples if s[0] > end - window_min]
    start_mib, end_mib = statistics.median(first), statistics.median(last)
    return {"start_mib": round(start_mib), "end_mib": round(end_mib),
            "peak_mib": round(max(s[column] for s in samples)),
            "growth_pct": round(100 * (end_mib - start_mib) / start_mib, 1)}  # fmt: skip


async def soak(url: str, gateway: int, engine: int, args) -> tuple[Tally, list]:
    tally, samples = Tally(), []
    until = time.monotonic() + args.minutes * 60
    async with httpx.AsyncClient(base_url=url, timeout=args.timeout_s) as client:
        load = Soak(client, until, tally)
        await asyncio.gather(
            sample_memory(gateway, engine, args.sample_s, until, samples),
            *(load.chatter(i) for i in range(args.chat_clients)),
            *(load.voter() for _ in range(args.voters)),
            load.trainer(args.train_after_s, args.train_steps),
            load.injector(args.inject_every_s),
        )
    return tally, samples


def report(tally: Tally, samples: list, args) -> None:
    print(f"\nsoak: {args.minutes} min, {args.chat_clients} chat clients, {args.voters} voters")
    print(f"  requests answered 2xx: {sum(tally.ok.values())} {dict(tally.ok)}")
    print(f"  training job: {tally.job}")
    sent, documented = sum(tally.injected.values()), sum(tally.injected_as_documented.values())
    print(f"  faults injected: {sent}, refused as documented: {documented} {dict(tally.injected)}")
    print(f"  unexpected errors: {sum(tally.errors.values())} {dict(tally.errors)}")
    for sample in tally.error_samples:
        print(f"    {sample}")
    for name, column in (("gateway", 1), ("engine", 2)):
        g = growth(samples, column, args.warmup_min, args.window_min)
        print(f"  {name} RSS: {g['start_mib']} MiB -> {g['end_mib']} MiB "
              f"(peak {g['peak_mib']}): {g['growth_pct']:+.1f} % (goal < 10 %)")  # fmt: skip
    print("  RSS per minute (gateway, engine MiB):")
    for minute in range(int(samples[-1][0]) + 1):
        row = [s for s in samples if minute <= s[0] < minute + 1]
        if row and minute % 3 == 0:
            print(f"    {minute:3d}  {row[0][1]:7.0f}  {row[0][2]:7.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--chat-clients", type=int, default=8)
    parser.add_argument("--voters", type=int, default=2)
    parser.add_argument("--train-after-s", type=float, default=120)
    parser.add_argument("--train-steps", type=int, default=8)
    parser.add_argument("--inject-every-s", type=float, default=20)
    parser.add_argument("--sample-s", type=float, default=10)
    parser.add_argument("--warmup-min", type=float, default=3)
    parser.add_argument("--window-min", type=float, default=3)
    parser.add_argument("--timeout-s", type=float, default=300, help="per request")
    args = parser.parse_args()
    with running_stack() as stack:
        gateway, engine = stack_pids(stack)
        tally, samples = asyncio.run(soak(stack.url, gateway, engine, args))
    report(tally, samples, args)
    if tally.errors or sum(tally.injected_as_documented.values()) != sum(tally.injected.values()):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
