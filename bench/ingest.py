"""Ratings ingest through HTTP: ratings/s with concurrent clients, and proof that none is lost.

Every rating that got a 201 is counted; afterwards the database is read directly and must hold
exactly that many ratings from this run (acknowledged means durable: synchronous=FULL, WAL).

    python -m bench.ingest [--clients 32] [--ratings 20000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import time
import uuid

import aiohttp
import httpx

from bench.stack import running_stack


async def post_ratings(url: str, completion_id: str, rater: str, total: int, clients: int):
    """`clients` workers share `total` ratings; returns (acknowledged, refused, seconds)."""
    remaining = total
    acknowledged = refused = 0

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal remaining, acknowledged, refused
        while remaining > 0:
            remaining -= 1
            body = {"completion_id": completion_id, "value": 1, "rater": rater}
            async with session.post(f"{url}/v1/feedback/ratings", json=body) as resp:
                await resp.read()
                if resp.status == 201:
                    acknowledged += 1
                else:
                    refused += 1

    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(clients)))
        return acknowledged, refused, time.perf_counter() - started


def stored(db_path, rater: str) -> int:
    with sqlite3.connect(db_path) as conn:
        return conn.execute("select count(*) from ratings where rater = ?", [rater]).fetchone()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=32, help="concurrent HTTP clients")
    parser.add_argument("--ratings", type=int, default=20_000, help="ratings per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    with running_stack() as stack:
        reply = httpx.post(
            f"{stack.url}/v1/chat/completions",
            json={
                "model": "base",
                "messages": [{"role": "user", "content": "Hi"}],
                "max_tokens": 8,
            },
            timeout=120,
        ).json()
        rates = []
        print(
            f"{'round':>5} {'ratings/s':>10} {'acked':>7} {'refused':>7} {'stored':>7} {'lost':>5}"
        )
        for round_ in range(1, args.rounds + 1):
            rater = f"bench-{uuid.uuid4().hex[:8]}"
            acked, refused, seconds = asyncio.run(
                post_ratings(stack.url, reply["id"], rater, args.ratings, args.clients)
            )
            in_db = stored(stack.data_dir / "flywheel.db", rater)
            rates.append(acked / seconds)
            print(
                f"{round_:>5} {acked / seconds:>10.0f} {acked:>7} {refused:>7} {in_db:>7} "
                f"{acked - in_db:>5}"
            )
            if in_db < acked:
                raise SystemExit(f"LOST {acked - in_db} acknowledged ratings")
        print(
            f"ratings/s with {args.clients} clients: min {min(rates):.0f}, "
            f"median {statistics.median(rates):.0f} (goal >= 2000)"
        )


if __name__ == "__main__":
    main()
