"""Hot-swap under load: 16 streams on `live` while new adapter versions are registered and promoted.

Per swap: seconds for the register call (validate + copy + load + probe), for the promote
call, and from the start of the register call to the first token served by the new version;
over the whole run: requests sent and requests failed (goal: 0).

    python -m bench.hotswap [--streams 16] [--swaps 3]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import httpx

from bench.sse import sse_events
from bench.stack import running_stack
from common.default_model import prepare


def make_adapters(count: int, folder: Path) -> list[Path]:
    """Random LoRA weights on the default model (different per seed: each is a new version)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    paths = []
    for seed in range(count):
        torch.manual_seed(seed)
        base = AutoModelForCausalLM.from_pretrained(prepare(), dtype=torch.float32)
        config = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"],
                            init_lora_weights=False, task_type="CAUSAL_LM")  # fmt: skip
        path = folder / f"adapter-{seed}"
        get_peft_model(base, config).save_pretrained(path)
        paths.append(path)
    return paths


class Traffic:
    """Streams on `live`, back to back, recording which version answered and when."""

    def __init__(self, url: str, streams: int):
        self.url, self.streams = url, streams
        self.first_token: dict[str, float] = {}  # engine model name -> first token time
        self.sent = self.failed = 0
        self.errors: list[str] = []
        self.running = True

    async def worker(self, client: httpx.AsyncClient) -> None:
        body = {"model": "live", "messages": [{"role": "user", "content": "Say something."}],
                "max_tokens": 24, "stream": True}  # fmt: skip
        while self.running:
            self.sent += 1
            try:
                async with client.stream("POST", f"{self.url}/v1/chat/completions", json=body) as r:
                    if r.status_code != 200:
                        raise RuntimeError(f"HTTP {r.status_code}: {(await r.aread())[:200]}")
                    async for event in sse_events(r):
                        self.first_token.setdefault(event["model"], time.perf_counter())
            except Exception as exc:
                self.failed += 1
                self.errors.append(f"{type(exc).__name__}: {exc}")

    async def run(self) -> None:
        async with httpx.AsyncClient(timeout=120) as client:
            await asyncio.gather(*[self.worker(client) for _ in range(self.streams)])


async def swap(client: httpx.AsyncClient, traffic: Traffic, path: Path) -> dict:
    started = time.perf_counter()
    added = await client.post("/v1/adapters", json={"name": "hs", "path": str(path)})
    added.raise_for_status()
    registered = time.perf_counter()
    (await client.post("/v1/adapters/hs/promote")).raise_for_status()
    promoted = time.perf_counter()
    engine_name = added.json()["engine_name"]
    while engine_name not in traffic.first_token:
        await asyncio.sleep(0.01)
    return {
        "version": engine_name,
        "register_s": registered - started,
        "promote_s": promoted - registered,
        "first_answer_s": traffic.first_token[engine_name] - started,
    }


async def main_async(args) -> tuple[list[dict], Traffic]:
    with tempfile.TemporaryDirectory() as tmp:
        print("making adapters ...", flush=True)
        paths = make_adapters(args.swaps + 1, Path(tmp))
        with running_stack() as stack:
            async with httpx.AsyncClient(base_url=f"{stack.url}", timeout=300) as client:
                first = await client.post(
                    "/v1/adapters", json={"name": "hs", "path": str(paths[0])}
                )
                first.raise_for_status()
                (await client.post("/v1/adapters/hs/promote")).raise_for_status()
                traffic = Traffic(stack.url, args.streams)
                load = asyncio.create_task(traffic.run())
                await asyncio.sleep(args.settle)
                results = []
                for path in paths[1:]:
                    results.append(await swap(client, traffic, path))
                    print(f"  {results[-1]}", flush=True)
                    await asyncio.sleep(args.settle)
                traffic.running = False
                await load
    return results, traffic


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--streams", type=int, default=16, help="concurrent streams on `live`")
    parser.add_argument("--swaps", type=int, default=3, help="new versions to promote")
    parser.add_argument("--settle", type=float, default=8, help="seconds of traffic between swaps")
    args = parser.parse_args()
    results, traffic = asyncio.run(main_async(args))
    print(f"\n{args.streams} streams on `live`; {traffic.sent} requests, {traffic.failed} failed")
    for error in traffic.errors[:5]:
        print(f"  {error}")
    print("\n| version | register (validate, copy, load, probe) | promote | call -> first answer |")
    print("|---|---|---|---|")
    for r in results:
        print(f"| {r['version']} | {r['register_s']:.2f} s | {r['promote_s'] * 1e3:.0f} ms "
              f"| {r['first_answer_s']:.2f} s |")  # fmt: skip


if __name__ == "__main__":
    main()
