"""Durability under `kill -9`: what the gateway acknowledged is in flywheel.db after a restart.

Each round runs two loads together on the real stack: ratings ingest (like bench/ingest.py:
`--clients` HTTP clients posting thumbs) and chat traffic (`--chat-clients`, half of them
streaming, short answers). Then the gateway is killed with SIGKILL (found as the engine's
parent: /health names the engine's pid): `--rounds` times after `--load-s` seconds, then
`--targeted` times the instant a client has read a whole answer (the worst moment for the
exchange log). After each kill the stack is started again on the same data dir and the
database file is read directly:

- every rating answered 201 must be there (group commit answers after COMMIT; WAL with
  `synchronous=FULL`): lost must be 0, else the run fails;
- every exchange whose answer the client received completely is looked up too. The exchange
  log writes answers after they are sent (an in-memory queue drained by a writer thread), so
  a kill can lose the ones still queued: counted and printed, not hidden.

    python -m bench.durability [--rounds 2] [--targeted 1] [--load-s 15] [--clients 32]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sqlite3
import statistics
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import httpx

from bench.sse import sse_events
from bench.stack import RunningStack, running_stack, stack_pids


@dataclass
class Load:
    """What the clients sent and what the gateway acknowledged, until it died."""

    rater: str
    ratings_sent: int = 0
    rating_ids: set[int] = field(default_factory=set)  # answered 201
    chats_sent: int = 0
    exchange_ids: set[str] = field(default_factory=set)  # answer received completely
    received_at: dict[str, float] = field(default_factory=dict)
    running: bool = True
    gateway: int = 0
    kill_on_answer_after: float = float("inf")  # targeted round: the first answer from then on
    killed_at: float | None = None

    def kill(self) -> None:
        """SIGKILL the gateway now (no await in between: an answer just read stays that fresh)."""
        if self.killed_at is None:
            os.kill(self.gateway, signal.SIGKILL)
            self.killed_at = time.monotonic()
            self.running = False


async def rate(url: str, completion_id: str, load: Load, clients: int) -> None:
    body = {"completion_id": completion_id, "value": 1, "rater": load.rater}

    async def worker(session: aiohttp.ClientSession) -> None:
        while load.running:
            load.ratings_sent += 1
            try:
                async with session.post(f"{url}/v1/feedback/ratings", json=body) as resp:
                    data = await resp.json()
                    if resp.status == 201:
                        load.rating_ids.add(data["id"])
            except (aiohttp.ClientError, TimeoutError):
                return  # the gateway is gone

    timeout = aiohttp.ClientTimeout(total=60)
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(*(worker(session) for _ in range(clients)))


async def chat(url: str, load: Load, clients: int) -> None:
    async def worker(client: httpx.AsyncClient, stream: bool) -> None:
        while load.running:
            load.chats_sent += 1
            body = {
                "model": "base",
                "messages": [{"role": "user", "content": f"Say a word. ({uuid.uuid4().hex[:6]})"}],
                "max_tokens": 8,
                "stream": stream,
            }
            try:
                if stream:
                    completion_id, done = None, False
                    async with client.stream("POST", "/v1/chat/completions", json=body) as r:
                        async for event in sse_events(r):
                            completion_id = completion_id or event.get("id")
                        done = r.status_code == 200  # ended with the stream, not cut off
                else:
                    r = await client.post("/v1/chat/completions", json=body)
                    completion_id, done = r.json().get("id"), r.status_code == 200
            except (httpx.HTTPError, ValueError):
                return  # the gateway is gone (a cut stream raises too)
            if done and completion_id and load.killed_at is None:
                load.exchange_ids.add(completion_id)
                load.received_at[completion_id] = time.monotonic()
                if load.received_at[completion_id] >= load.kill_on_answer_after:
                    load.kill()

    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        await asyncio.gather(*(worker(client, i % 2 == 1) for i in range(clients)))


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def load_and_kill(
    stack: RunningStack, completion_id: str, args, targeted: bool
) -> tuple[Load, dict]:
    """Both loads, then the kill: at `load_s`, or (targeted) on the first answer after it."""
    gateway, engine = stack_pids(stack)
    load = Load(rater=f"dur-{uuid.uuid4().hex[:8]}", gateway=gateway)
    tasks = [
        asyncio.create_task(rate(stack.url, completion_id, load, args.clients)),
        asyncio.create_task(chat(stack.url, load, args.chat_clients)),
    ]
    queued = None
    if targeted:
        load.kill_on_answer_after = time.monotonic() + args.load_s
        for _ in range(int(args.load_s * 10) + 600):  # an answer comes in seconds; else kill
            if load.killed_at is not None:
                break
            await asyncio.sleep(0.1)
    else:
        await asyncio.sleep(args.load_s)
        async with httpx.AsyncClient(timeout=10) as client:  # never block the clients' loop
            queued = (await client.get(f"{stack.url}/health")).json()["exchange_log_queue"]
    load.kill()
    killed = load.killed_at
    await asyncio.wait_for(asyncio.gather(*tasks), 90)
    deadline = time.monotonic() + 60  # the engine follows its parent (PR_SET_PDEATHSIG)
    while alive(engine) and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
    return load, {"killed": killed, "queue_at_kill": queued, "targeted": targeted}


def check(db: Path, load: Load, killed: float) -> dict:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        ratings = {
            r for (r,) in conn.execute("select id from ratings where rater = ?", [load.rater])
        }
        wanted = sorted(load.exchange_ids)
        found = set()
        for i in range(0, len(wanted), 500):
            part = wanted[i : i + 500]
            marks = ",".join("?" * len(part))
            found |= {
                e for (e,) in conn.execute(f"select id from exchanges where id in ({marks})", part)
            }
    lost_exchanges = load.exchange_ids - found
    return {
        "ratings_found": len(load.rating_ids & ratings),
        "ratings_lost": len(load.rating_ids - ratings),
        # committed, but the kill cut the answer: the client may retry (a duplicate), never lose
        "ratings_unacked_stored": len(ratings - load.rating_ids),
        "exchanges_found": len(found),
        "exchanges_lost": len(lost_exchanges),
        "lost_ms_before_kill": sorted(
            round((killed - load.received_at[e]) * 1000) for e in lost_exchanges
        ),
    }


def commit_latency(url: str, completion_id: str, samples: int = 40) -> float:
    """p50 of one rating round trip on an idle gateway: HTTP + one group commit (fsync)."""
    times = []
    with httpx.Client(base_url=url, timeout=30) as client:
        for _ in range(samples):
            started = time.perf_counter()
            client.post("/v1/feedback/ratings", json={"completion_id": completion_id, "value": 1})
            times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def exposure_ms(stack: RunningStack, db: Path, samples: int = 20) -> dict[str, list[float]]:
    """How long an answer the client already has stays only in the exchange log's queue.

    Per answer: from the client's last byte until its row is readable in flywheel.db (polled
    every millisecond through a second connection, as WAL allows); a kill inside that window
    loses the exchange.
    """
    out: dict[str, list[float]] = {"json": [], "stream": []}
    with contextlib.closing(sqlite3.connect(db)) as conn, httpx.Client(timeout=60) as client:
        for i in range(2 * samples):
            stream = i % 2 == 1
            body = {
                "model": "base",
                "messages": [{"role": "user", "content": f"One word. ({i})"}],
                "max_tokens": 4,
                "stream": stream,
            }
            url = f"{stack.url}/v1/chat/completions"
            if stream:
                with client.stream("POST", url, json=body) as r:
                    text = r.read().decode()
                completion_id = text.split('"id":"', 1)[1].split('"', 1)[0]
            else:
                completion_id = client.post(url, json=body).json()["id"]
            received = time.perf_counter()
            query = "select 1 from exchanges where id = ?"
            while conn.execute(query, [completion_id]).fetchone() is None:
                time.sleep(0.001)
            out["stream" if stream else "json"].append((time.perf_counter() - received) * 1000)
    return out


def first_exchange(stack: RunningStack) -> str:
    body = {"model": "base", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 8}
    reply = httpx.post(f"{stack.url}/v1/chat/completions", json=body, timeout=120).json()
    httpx.get(f"{stack.url}/v1/feedback/counts", timeout=30)  # waits until it is logged
    return reply["id"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="kills after --load-s of load")
    parser.add_argument(
        "--targeted", type=int, default=1, help="then kills the instant a chat answer arrives"
    )
    parser.add_argument("--load-s", type=float, default=15, help="seconds of load before the kill")
    parser.add_argument("--clients", type=int, default=32, help="concurrent rating clients")
    parser.add_argument("--chat-clients", type=int, default=16, help="concurrent chat clients")
    args = parser.parse_args()

    kinds = [False] * args.rounds + [True] * args.targeted  # each kill is followed by a restart
    rows = []
    with tempfile.TemporaryDirectory(prefix="flywheel-durability-") as tmp:
        data_dir = Path(tmp)
        db = data_dir / "flywheel.db"
        # running_stack makes its own temp dir; a later --data-dir wins, so every start shares one
        keep = ["--data-dir", str(data_dir)]
        with running_stack(keep) as stack:
            completion_id = first_exchange(stack)
            commit_ms = commit_latency(stack.url, completion_id)
            exposed = exposure_ms(stack, db)
            load, kill = asyncio.run(load_and_kill(stack, completion_id, args, kinds[0]))
        for round_ in range(1, len(kinds) + 1):
            started = time.monotonic()
            with running_stack(keep) as stack:  # the restart, on the same data dir
                restart_s = time.monotonic() - started
                rows.append(
                    {"round": round_, "load": load, **kill, **check(db, load, kill["killed"])}
                )
                rows[-1]["restart_s"] = restart_s
                print(f"  round {round_}: {rows[-1] | {'load': None}}", flush=True)
                if round_ < len(kinds):
                    load, kill = asyncio.run(
                        load_and_kill(stack, completion_id, args, kinds[round_])
                    )
    report(rows, commit_ms, exposed, args)


def report(rows: list[dict], commit_ms: float, exposed: dict, args) -> None:
    print(
        f"\n{args.clients} rating clients + {args.chat_clients} chat clients (half streaming); "
        "kill -9 of the gateway under load; restart on the same data dir"
    )
    print("\n| kill | ratings sent | acknowledged (201) | found | lost | stored, not acknowledged "
          "| answers received | exchanges found | lost | queue at kill | restart |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        load: Load = r["load"]
        when = "on an answer" if r["targeted"] else f"after {args.load_s:.0f} s"
        queued = "—" if r["queue_at_kill"] is None else r["queue_at_kill"]
        print(f"| {r['round']}, {when} | {load.ratings_sent:,} | {len(load.rating_ids):,} | "
              f"{r['ratings_found']:,} | {r['ratings_lost']} | {r['ratings_unacked_stored']} | "
              f"{len(load.exchange_ids):,} | {r['exchanges_found']:,} | {r['exchanges_lost']} | "
              f"{queued} | {r['restart_s']:.0f} s |")  # fmt: skip
        if r["lost_ms_before_kill"]:
            print(f"    lost exchanges were received {r['lost_ms_before_kill']} ms before the kill")
    print(f"\none rating round trip on the idle gateway (HTTP + one commit with fsync): "
          f"p50 {commit_ms:.1f} ms")  # fmt: skip
    for kind, times in exposed.items():
        print(
            f"answer received -> its exchange readable in flywheel.db ({kind}, idle, "
            f"{len(times)} answers): p50 {statistics.median(times):.1f} ms, max {max(times):.1f} ms"
        )
    if any(r["ratings_lost"] for r in rows):
        raise SystemExit("LOST acknowledged ratings")


if __name__ == "__main__":
    main()
