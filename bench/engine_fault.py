"""Engine fault: `kill -9` (or SIGSTOP: a hang) of the vLLM engine under 16 streams, with an
adapter registered.

Measured, in one run on the real stack:
- every stream in flight ends promptly with an OpenAI-shaped error event (none hangs past
  `--hang-s`, none is cut without a word, none finishes as if nothing happened);
- requests sent during the outage get a clean error (503 with Retry-After) or an answer;
- the supervisor restarts the engine and loads every registered adapter again;
- recovery: kill -> engine ready (/health), kill -> first answer from the base model, and
  from the adapter; then `--streams` requests on each succeed.

    python -m bench.engine_fault [--streams 16] [--hang-s 30]
    python -m bench.engine_fault --fault stop   # the engine hangs: alive, silent (SIGSTOP)

A stopped engine is never sent SIGCONT: the gateway must notice the hang (no /health answer for
HUNG_AFTER_S), end what waits on it, and start a new engine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.hotswap import make_adapters
from bench.sse import sse_events
from bench.stack import running_stack

ADAPTER = "ef"
FAULTS = {"kill": signal.SIGKILL, "stop": signal.SIGSTOP}


@dataclass
class StreamEnd:
    model: str
    outcome: str  # error_event | finished | cut | hang | http_<status>
    code: str | None = None
    seconds_after_kill: float | None = None


async def long_stream(
    client: httpx.AsyncClient, model: str, started: asyncio.Event, killed: dict
) -> StreamEnd:
    """A long answer; returns how it ended once the engine is killed under it."""
    body = {"model": model, "messages": [{"role": "user", "content": "Tell a long story."}],
            "max_tokens": 1500, "ignore_eos": True, "stream": True}  # fmt: skip
    last: dict = {}
    try:
        async with client.stream("POST", "/v1/chat/completions", json=body) as resp:
            if resp.status_code != 200:
                await resp.aread()
                return StreamEnd(model, f"http_{resp.status_code}")
            async for event in sse_events(resp):
                last = event
                started.set()
    except httpx.HTTPError:
        return StreamEnd(model, "cut", seconds_after_kill=_since_kill(killed))
    if "error" in last:
        return StreamEnd(model, "error_event", last["error"].get("code"), _since_kill(killed))
    finished = any(c.get("finish_reason") for c in last.get("choices") or [])
    return StreamEnd(model, "finished" if finished else "cut", None, _since_kill(killed))


def _since_kill(killed: dict) -> float | None:
    return time.monotonic() - killed["at"] if "at" in killed else None


@dataclass
class Probes:
    """Requests during the outage, one model at a time, until each model answers again."""

    statuses: Counter = field(default_factory=Counter)
    first_ok: dict[str, float] = field(default_factory=dict)  # model -> seconds after the kill
    unclean: list[str] = field(default_factory=list)  # a non-OpenAI-shaped error


async def probe(client: httpx.AsyncClient, model: str, killed: float, probes: Probes) -> None:
    body = {"model": model, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}
    while model not in probes.first_ok:
        try:
            resp = await client.post("/v1/chat/completions", json=body, timeout=30)
        except httpx.HTTPError as exc:
            probes.unclean.append(f"{model}: {type(exc).__name__}")
            await asyncio.sleep(0.25)
            continue
        probes.statuses[f"{model} {resp.status_code}"] += 1
        if resp.status_code == 200:
            probes.first_ok[model] = time.monotonic() - killed
            return
        error = resp.json().get("error") if "json" in resp.headers.get("content-type", "") else None
        if not (isinstance(error, dict) and {"message", "type", "code"} <= error.keys()):
            probes.unclean.append(f"{model}: {resp.status_code} {resp.text[:200]}")
        await asyncio.sleep(0.25)


async def watch_engine(url: str, old_pid: int, killed: float, engine_name: str) -> dict:
    """Seconds after the kill at which /health shows the new engine ready, then the adapter."""
    seen: dict = {}
    async with httpx.AsyncClient(base_url=url, timeout=5) as client:
        while "adapter_loaded" not in seen:
            try:
                health = (await client.get("/health")).json()
            except httpx.HTTPError:
                await asyncio.sleep(0.2)
                continue
            engine = health["engine"]
            if engine["pid"] != old_pid and engine["state"] == "ready":
                seen.setdefault("engine_ready", time.monotonic() - killed)
                if engine_name in health["adapters_loaded"]:
                    seen["adapter_loaded"] = time.monotonic() - killed
            seen.setdefault("states", []).append(engine["state"])
            await asyncio.sleep(0.2)
    return seen


async def after_recovery(client: httpx.AsyncClient, models: list[str], n: int) -> Counter:
    body = {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 8}
    replies = await asyncio.gather(
        *(client.post("/v1/chat/completions", json={**body, "model": m}) for m in models * n)
    )
    return Counter(f"{m} {r.status_code}" for m, r in zip(models * n, replies, strict=True))


async def run(url: str, adapter: str, engine_name: str, args) -> dict:
    models = ["base", adapter]
    async with httpx.AsyncClient(base_url=url, timeout=None) as client:
        engine = (await client.get("/health")).json()["engine"]
        killed: dict = {}
        started = [asyncio.Event() for _ in range(args.streams)]
        streams = [
            asyncio.create_task(long_stream(client, models[i % 2], started[i], killed))
            for i in range(args.streams)
        ]
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in started)), 300)
        await asyncio.sleep(1)  # every stream is generating
        os.kill(engine["pid"], FAULTS[args.fault])
        killed["at"] = time.monotonic()
        print(f"{args.fault}: the engine (pid {engine['pid']}) under {args.streams} streams",
              flush=True)  # fmt: skip
        watcher = asyncio.create_task(watch_engine(url, engine["pid"], killed["at"], engine_name))
        probes = Probes()
        probing = [asyncio.create_task(probe(client, m, killed["at"], probes)) for m in models]
        await asyncio.wait(streams, timeout=args.hang_s)
        ends = []
        for i, task in enumerate(streams):
            if task.done():
                ends.append(task.result())
            else:  # still open `hang_s` after the kill
                task.cancel()
                ends.append(StreamEnd(models[i % 2], "hang", seconds_after_kill=args.hang_s))
        print(f"streams ended: {Counter(e.outcome for e in ends)}", flush=True)
        await asyncio.wait_for(asyncio.gather(*probing), 600)
        print(f"answering again: {probes.first_ok}", flush=True)
        recovered = await asyncio.wait_for(watcher, 600)
        after = await after_recovery(client, models, args.streams // 2)
    return {"ends": ends, "probes": probes, "recovered": recovered, "after": after}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--streams", type=int, default=16, help="concurrent streams at the kill")
    parser.add_argument("--hang-s", type=float, default=30, help="a stream open longer is a hang")
    parser.add_argument(
        "--fault", choices=list(FAULTS), default="kill",
        help="kill: kill -9 of the engine; stop: SIGSTOP, the engine hangs (default: kill)",
    )  # fmt: skip
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        print("making an adapter ...", flush=True)
        (path,) = make_adapters(1, Path(tmp))
        with running_stack() as stack:
            added = httpx.post(
                f"{stack.url}/v1/adapters", json={"name": ADAPTER, "path": str(path)}, timeout=300
            )
            added.raise_for_status()
            engine_name = added.json()["engine_name"]
            result = asyncio.run(run(stack.url, ADAPTER, engine_name, args))
    report(result, args)


def report(result: dict, args) -> None:
    ends: list[StreamEnd] = result["ends"]
    probes: Probes = result["probes"]
    recovered = result["recovered"]
    outcomes = Counter(f"{e.outcome}" + (f" ({e.code})" if e.code else "") for e in ends)
    times = [e.seconds_after_kill for e in ends if e.seconds_after_kill is not None]
    fault = "kill -9 of" if args.fault == "kill" else "SIGSTOP (a hang) of"
    print(f"\n{args.streams} streams (half base, half adapter `{ADAPTER}`), {fault} the engine")
    print(f"streams: {dict(outcomes)}")
    if times:
        print(
            f"  kill -> stream ended: p50 {statistics.median(times):.2f} s, max {max(times):.2f} s"
        )
    print(f"requests during the outage: {dict(probes.statuses)}; unclean: {probes.unclean or 0}")
    states = [s for i, s in enumerate(recovered["states"]) if recovered["states"][i - 1 : i] != [s]]
    print(f"engine states seen after the kill: {' -> '.join(states)}")
    misleading = {k: n for k, n in probes.statuses.items() if k.endswith(" 404")}
    if misleading:
        print(f"  model_not_found for a registered model while the engine reloads it: {misleading}")
    print("\n| kill -> | seconds |\n|---|---|")
    print(f"| engine ready again (/health) | {recovered['engine_ready']:.1f} |")
    print(f"| adapter loaded again (/health) | {recovered['adapter_loaded']:.1f} |")
    for model, seconds in sorted(probes.first_ok.items()):
        print(f"| first answer from `{model}` | {seconds:.1f} |")
    print(f"\nafter recovery: {dict(result['after'])}")
    clean = all(e.outcome == "error_event" for e in ends) and not probes.unclean
    after_ok = all(key.endswith(" 200") for key in result["after"])
    if not (clean and after_ok):
        raise SystemExit(
            "FAILED: a stream or request did not end cleanly, or traffic did not recover"
        )


if __name__ == "__main__":
    main()
