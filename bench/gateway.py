"""Gateway overhead: the same engine called directly and through the gateway, in one run.

For each concurrency level, rounds alternate direct / gateway (so drift in machine load hits
both sides alike); each round sends `concurrency` streaming requests of exactly `--tokens`
tokens (ignore_eos) and measures aggregate throughput and each request's time to first token.
Printed per level: throughput ratio gateway/direct (min and median over rounds) and the
gateway's added time to first token at p50 and p99. A first phase isolates the gateway's own
latency from generation noise: `--probes` sequential one-token requests, alternating sides,
streamed (time to first token) and whole (time to the answer).

    python -m bench.gateway [--levels 1 16 64] [--rounds 3] [--tokens 128] [--probes 100]
    python -m bench.gateway --under-writes     # the probes quiet, then beside writes

`--under-writes` measures what the store's writes cost the gateway's event loop: the probes'
added time to first token, quiet and then while 4 clients post ratings without pause and an
import of `--import-rows` DPO rows (one transaction holding the store's lock) runs, in one run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time

import httpx

from bench.sse import sse_events
from bench.stack import engine_headers, running_stack

PROMPT = [{"role": "user", "content": "Tell me a long story about a lighthouse keeper."}]


async def one_stream(client: httpx.AsyncClient, url: str, model: str, tokens: int):
    body = {"model": model, "messages": PROMPT, "max_tokens": tokens, "ignore_eos": True,
            "stream": True, "stream_options": {"include_usage": True}}  # fmt: skip
    started = time.perf_counter()
    ttft, generated = None, 0
    async with client.stream("POST", f"{url}/v1/chat/completions", json=body) as resp:
        resp.raise_for_status()
        async for event in sse_events(resp):
            deltas = [c.get("delta") or {} for c in event["choices"]]
            if ttft is None and any(d.get("content") for d in deltas):
                ttft = time.perf_counter() - started
            if event.get("usage"):
                generated = event["usage"]["completion_tokens"]
    return ttft, generated


async def one_round(url: str, model: str, concurrency: int, tokens: int):
    limits = httpx.Limits(max_connections=concurrency + 4)
    # the engine's key on both paths (the keyless gateway ignores it): the same request each way
    async with httpx.AsyncClient(timeout=600, limits=limits, headers=engine_headers()) as client:
        started = time.perf_counter()
        results = await asyncio.gather(
            *[one_stream(client, url, model, tokens) for _ in range(concurrency)]
        )
        elapsed = time.perf_counter() - started
    return sum(g for _, g in results) / elapsed, [t for t, _ in results]


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


async def bench_level(stack, model: str, concurrency: int, rounds: int, tokens: int) -> dict:
    ratios, direct_ttft, gateway_ttft = [], [], []
    await one_round(stack.engine_url, model, concurrency, 8)  # warm both paths
    await one_round(stack.url, model, concurrency, 8)
    for _ in range(rounds):
        direct, d_ttft = await one_round(stack.engine_url, model, concurrency, tokens)
        gateway, g_ttft = await one_round(stack.url, model, concurrency, tokens)
        ratios.append(gateway / direct)
        direct_ttft += d_ttft
        gateway_ttft += g_ttft
        print(f"  c={concurrency:<3} direct {direct:7.1f} tok/s  gateway {gateway:7.1f} tok/s  "
              f"ratio {gateway / direct:.3f}", flush=True)  # fmt: skip
    return {
        "concurrency": concurrency,
        "ratio_min": min(ratios),
        "ratio_median": statistics.median(ratios),
        "added_ttft_p50_ms": (percentile(gateway_ttft, 0.5) - percentile(direct_ttft, 0.5)) * 1e3,
        "added_ttft_p99_ms": (percentile(gateway_ttft, 0.99) - percentile(direct_ttft, 0.99)) * 1e3,
        "direct_ttft_p50_ms": percentile(direct_ttft, 0.5) * 1e3,
    }


async def probe_latency(stack, model: str, probes: int) -> dict:
    """Sequential 1-token streams, alternating direct/gateway: the gateway's added TTFT."""
    direct, gateway = [], []
    async with httpx.AsyncClient(timeout=60, headers=engine_headers()) as client:
        for i in range(probes * 2):
            url = stack.engine_url if i % 2 == 0 else stack.url
            ttft, _ = await one_stream(client, url, model, 1)
            (direct if i % 2 == 0 else gateway).append(ttft)
    return {
        "probes": probes,
        "added_p50_ms": (statistics.median(gateway) - statistics.median(direct)) * 1e3,
        "added_p99_ms": (percentile(gateway, 0.99) - percentile(direct, 0.99)) * 1e3,
        "direct_p50_ms": statistics.median(direct) * 1e3,
    }


async def whole_latency(stack, model: str, probes: int) -> dict:
    """Sequential 1-token whole (non-streamed) answers, alternating: the gateway's added time.

    A whole answer is where the gateway listens for its client leaving (serve/client_gone.py).
    """
    body = {"model": model, "messages": PROMPT, "max_tokens": 1}
    direct, gateway = [], []
    async with httpx.AsyncClient(timeout=60, headers=engine_headers()) as client:
        for i in range(probes * 2):
            url = stack.engine_url if i % 2 == 0 else stack.url
            started = time.perf_counter()
            (await client.post(f"{url}/v1/chat/completions", json=body)).raise_for_status()
            (direct if i % 2 == 0 else gateway).append(time.perf_counter() - started)
    return {
        "added_p50_ms": (statistics.median(gateway) - statistics.median(direct)) * 1e3,
        "added_p99_ms": (percentile(gateway, 0.99) - percentile(direct, 0.99)) * 1e3,
        "direct_p50_ms": statistics.median(direct) * 1e3,
    }


def import_file(rows: int) -> bytes:
    """JSON Lines DPO rows, each its own conversation (an import stores every one)."""
    lines = [
        json.dumps({"prompt": [{"role": "user", "content": f"Question {i}: {'why ' * 40}?"}],
                    "chosen": [{"role": "assistant", "content": f"Because {i}. " * 20}],
                    "rejected": [{"role": "assistant", "content": f"No {i}. " * 20}]})
        for i in range(rows)
    ]  # fmt: skip
    return ("\n".join(lines) + "\n").encode()


async def under_writes(stack, model: str, probes: int, rows: int) -> dict:
    """The probes' added TTFT quiet, then beside a stream of ratings and one big import."""
    quiet = await probe_latency(stack, model, probes)
    async with httpx.AsyncClient(base_url=stack.url, timeout=600) as client:
        body = {"model": model, "messages": PROMPT, "max_tokens": 1}
        answer = (await client.post("/v1/chat/completions", json=body)).json()
        done, ratings = asyncio.Event(), [0]

        async def rate() -> None:
            while not done.is_set():
                vote = {"completion_id": answer["id"], "value": 1, "rater": "bench"}
                if (await client.post("/v1/feedback/ratings", json=vote)).status_code == 201:
                    ratings[0] += 1

        async def load() -> float:
            started = time.perf_counter()
            resp = await client.post("/v1/feedback/import", params={"format": "dpo"},
                                     content=import_file(rows))  # fmt: skip
            resp.raise_for_status()
            return time.perf_counter() - started

        raters = [asyncio.create_task(rate()) for _ in range(4)]
        importing = asyncio.create_task(load())
        busy = await probe_latency(stack, model, probes)
        import_s = await importing
        done.set()
        await asyncio.gather(*raters)
    return {"quiet": quiet, "busy": busy, "ratings": ratings[0], "import_rows": rows,
            "import_s": import_s}  # fmt: skip


async def main_async(args) -> tuple[dict, list[dict]]:
    with running_stack() as stack:
        models = httpx.get(f"{stack.engine_url}/v1/models", headers=stack.engine_headers).json()
        model = models["data"][0]["id"]
        probe = await probe_latency(stack, model, args.probes)
        if args.under_writes:
            return await under_writes(stack, model, args.probes, args.import_rows), []
        probe["whole"] = await whole_latency(stack, model, args.probes)
        print(f"  probes: {probe}", flush=True)
        levels = [await bench_level(stack, model, c, args.rounds, args.tokens) for c in args.levels]
        return probe, levels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 16, 64], help="concurrency")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per side and level")
    parser.add_argument("--tokens", type=int, default=128, help="tokens per answer")
    parser.add_argument("--probes", type=int, default=100, help="1-token requests per side")
    parser.add_argument(
        "--under-writes", action="store_true",
        help="only the probes: quiet, then beside ratings and an import",
    )  # fmt: skip
    parser.add_argument("--import-rows", type=int, default=50_000, help="rows of that import")
    args = parser.parse_args()
    probe, rows = asyncio.run(main_async(args))
    if args.under_writes:
        report_under_writes(probe)
        return
    print(f"\nadded time to first token, {probe['probes']} sequential 1-token requests per side: "
          f"p50 {probe['added_p50_ms']:+.2f} ms, p99 {probe['added_p99_ms']:+.2f} ms "
          f"(direct p50 {probe['direct_p50_ms']:.1f} ms)")  # fmt: skip
    whole = probe["whole"]
    print(f"added time to a whole 1-token answer, as many per side: "
          f"p50 {whole['added_p50_ms']:+.2f} ms, p99 {whole['added_p99_ms']:+.2f} ms "
          f"(direct p50 {whole['direct_p50_ms']:.1f} ms)")  # fmt: skip
    print("\n| streams | throughput gateway/direct (min / median) | added TTFT p50 "
          "| added TTFT p99 | direct TTFT p50 |")  # fmt: skip
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['concurrency']} | {r['ratio_min']:.3f} / {r['ratio_median']:.3f} "
              f"| {r['added_ttft_p50_ms']:+.1f} ms | {r['added_ttft_p99_ms']:+.1f} ms "
              f"| {r['direct_ttft_p50_ms']:.0f} ms |")  # fmt: skip


def report_under_writes(result: dict) -> None:
    quiet, busy = result["quiet"], result["busy"]
    print(f"\nbeside the writes: {result['ratings']} ratings acknowledged, an import of "
          f"{result['import_rows']} rows in {result['import_s']:.1f} s")  # fmt: skip
    print("\n| probes (sequential 1-token streams) | added TTFT p50 | added TTFT p99 | "
          "direct TTFT p50 |\n|---|---|---|---|")  # fmt: skip
    for name, r in (("quiet", quiet), ("beside ratings and an import", busy)):
        print(f"| {name} | {r['added_p50_ms']:+.1f} ms | {r['added_p99_ms']:+.1f} ms "
              f"| {r['direct_p50_ms']:.1f} ms |")  # fmt: skip


if __name__ == "__main__":
    main()
