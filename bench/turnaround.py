"""From "64 new comparisons stored" to "the candidate adapter answers in the running engine".

Starts the real stack, asks the default model each prompt twice, stores one comparison per
prompt (the longer answer wins: a simple, consistent preference), then runs `flywheel train
--method dpo` with its defaults against the running gateway and asks the new adapter a question.
Prints the seconds of each phase; the goal on this machine is <= 5 minutes end to end.

    python -m bench.turnaround [--comparisons 64]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time

import httpx

from bench.stack import running_stack
from feedback import Store

SUBJECTS = ["rain", "tea", "chess", "bridges", "owls", "maps", "bread", "tides", "glass", "jazz",
            "bees", "trains", "clouds", "paper", "salt", "ice"]  # fmt: skip
ASKS = ["Tell me about {}.", "Why do people like {}?", "Give one fact about {}.",
        "Describe {} in two sentences."]  # fmt: skip


async def collect(url: str, count: int) -> None:
    prompts = [ASKS[i // len(SUBJECTS) % len(ASKS)].format(SUBJECTS[i % len(SUBJECTS)])
               for i in range(count)]  # fmt: skip
    limit = asyncio.Semaphore(16)
    async with httpx.AsyncClient(base_url=url, timeout=300) as client:

        async def ask(prompt: str, seed: int) -> dict:
            body = {"model": "base", "messages": [{"role": "user", "content": prompt}],
                    "max_tokens": 64, "temperature": 1.0, "seed": seed}  # fmt: skip
            async with limit:
                return (await client.post("/v1/chat/completions", json=body)).json()

        async def judge(i: int, prompt: str) -> None:
            a, b = await asyncio.gather(ask(prompt, 2 * i), ask(prompt, 2 * i + 1))
            text_a, text_b = (x["choices"][0]["message"]["content"] for x in (a, b))
            winner = "a" if len(text_a) >= len(text_b) else "b"
            body = {"completion_ids": [a["id"], b["id"]], "winner": winner}
            resp = await client.post("/v1/feedback/comparisons", json=body)
            resp.raise_for_status()

        await asyncio.gather(*(judge(i, p) for i, p in enumerate(prompts)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--comparisons", type=int, default=64)
    args = parser.parse_args()
    with running_stack() as stack:
        started = time.perf_counter()
        asyncio.run(collect(stack.url, args.comparisons))
        stored = time.perf_counter()
        print(f"{args.comparisons} comparisons collected in {stored - started:.0f} s")
        command = [sys.executable, "-m", "cli", "train", "--method", "dpo",
                   "--name", "turnaround", "--data-dir", str(stack.data_dir),
                   "--gateway", stack.url]  # fmt: skip
        subprocess.run(command, check=True)
        trained = time.perf_counter()
        body = {"model": "turnaround", "messages": [{"role": "user", "content": "Hi!"}],
                "max_tokens": 16}  # fmt: skip
        answer = httpx.post(f"{stack.url}/v1/chat/completions", json=body, timeout=120).json()
        answered = time.perf_counter()
        job = Store(stack.data_dir / "flywheel.db").jobs()[0]
        steps, rows = job["step"], job["config"]["train_rows"]
        print(f"train + register: {trained - stored:.0f} s ({steps} steps on {rows} pairs)")
        print(f"first answer from {answer['model']}: {answered - trained:.1f} s")
        print(f"last comparison -> candidate answering: {answered - stored:.0f} s (goal <= 300 s)")


if __name__ == "__main__":
    main()
