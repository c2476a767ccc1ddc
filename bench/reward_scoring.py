"""Best-of-n's scoring pass: the reward model with its LoRA merged (as `load_reward_model` loads
it now) against the same adapter left unmerged as a PeftModel, side by side in one process.

Both score the same answers of ~130 tokens (the loop's answers run to 128) in the dtype
training picks on this CPU, in length-sorted batches of 8, as `reward_scores` does; the
sides alternate so that drift in the machine's load hits both. Needs a trained reward
adapter, e.g. the folder a reward job leaves in its data folder:

    python -m bench.reward_scoring --adapter <data>/runs/job-1/adapter [--answers 48] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path


def conversations(count: int) -> list[list[dict[str, str]]]:
    sentence = "The bicycle was invented in the nineteenth century. "
    return [
        [
            {"role": "user", "content": f"Tell me about the history of the bicycle, part {i}."},
            {"role": "assistant", "content": sentence * 12},
        ]
        for i in range(count)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--adapter", type=Path, required=True, help="a reward job's adapter")
    parser.add_argument("--answers", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import torch
    from peft import PeftModel

    from common.default_model import prepare
    from common.hardware import choose_dtype
    from train.evaluation import reward_scores
    from train.reward import load_reward_model, load_scoring_model

    model_path = str(prepare())
    merged, tokenizer = load_reward_model(model_path, args.adapter)
    dtype = getattr(torch, choose_dtype())
    base = load_scoring_model(model_path, dtype, None, tokenizer.pad_token_id)
    unmerged = PeftModel.from_pretrained(base, str(args.adapter)).eval()
    sides = {"unmerged": unmerged, "merged": merged}
    convs = conversations(args.answers)
    scores = {name: reward_scores(model, tokenizer, convs[:8]) for name, model in sides.items()}
    times: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(args.repeats):
        for name, model in sides.items():
            started = time.perf_counter()
            scores[name] = reward_scores(model, tokenizer, convs)
            times[name].append(time.perf_counter() - started)
    gap = max(abs(a - b) for a, b in zip(scores["merged"], scores["unmerged"], strict=True))
    print(f"{args.answers} answers, {dtype}, {args.repeats} repeats; largest score gap {gap:.3f}")
    for name, seconds in times.items():
        print(f"{name}: min {min(seconds):.1f} s, median {statistics.median(seconds):.1f} s")
    ratio = min(times["unmerged"]) / min(times["merged"])
    print(f"merged is {ratio:.2f}x as fast (min over min)")


if __name__ == "__main__":
    main()
