"""The LM head's log-probs on a CPU: TRL's chunked kernel against plain ops (train/lm_head.py).

Two measurements, each side by side in one run, by turns, min and median over the repeats:

- `head`: the forward and backward of the head alone, for the answer tokens of one DPO batch
  (8 pairs of ~120-token answers: 1,900 tokens by default) with the default model's head
  (vocab 49,152 x 576, bf16 autocast as on a CPU with native bf16);
- `steps` (with `--steps`): whole `train.dpo.train` jobs on pairs shaped like the loop's (answers
  of 100-110 words), the same job with TRL's head or with ours: seconds per step after the first.

    python -m bench.lm_head [--tokens 1900] [--repeats 3] [--steps] [--job-steps 5]
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import random
import statistics
import tempfile
import time
from pathlib import Path

WORDS = ("the", "a", "of", "light", "plant", "water", "energy", "sun", "leaf", "green", "sugar")


def head_seconds(tokens: int, repeats: int) -> dict[str, list[float]]:
    import torch
    from trl.kernels.chunked_logprob import ChunkedLogProbFunction

    from train.lm_head import plain_log_probs

    torch.manual_seed(0)
    weight = (torch.randn(49152, 576) * 0.05).bfloat16()
    targets = torch.randint(0, weight.shape[0], (tokens,))
    outputs = ("log_probs", "entropy", "mean_logits", "is_top1")  # what TRL's DPO asks for
    sides = {"trl": ChunkedLogProbFunction.apply, "ours": plain_log_probs}
    times: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(repeats):
        for name, function in sides.items():
            hidden = torch.randn(tokens, 576, requires_grad=True)
            started = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16):
                out = function(hidden, weight, None, targets, 1.0, 32768, None, 1.0, outputs)
            out[0].sum().backward()
            times[name].append(time.perf_counter() - started)
    return times


def loop_shaped_pairs(count: int) -> list[dict]:
    rng = random.Random(0)

    def text(words: int) -> str:
        return " ".join(rng.choice(WORDS) for _ in range(words)).capitalize() + "."

    return [
        {
            "prompt": [{"role": "user", "content": f"Explain thing number {i} to me, please."}],
            "chosen": [{"role": "assistant", "content": text(110)}],
            "rejected": [{"role": "assistant", "content": text(100)}],
        }
        for i in range(count)
    ]


def step_seconds(job_steps: int, repeats: int) -> dict[str, list[float]]:
    """Seconds per step after the first, of whole DPO jobs with TRL's head and with ours."""
    from transformers import TrainerCallback

    from common.default_model import default_model_dir
    from train import dpo, lm_head, lora

    marks: list[float] = []

    class Marks(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            marks.append(time.perf_counter())

    run_init = lora.Run.__init__

    def with_marks(self, *args, **kwargs):
        run_init(self, *args, **kwargs)
        self.callbacks.append(Marks())

    lora.Run.__init__ = with_marks
    heads = {"trl": contextlib.nullcontext, "ours": lm_head.cpu_lm_head}
    times: dict[str, list[float]] = {name: [] for name in heads}
    rows = loop_shaped_pairs(8 * job_steps)
    try:
        for _ in range(repeats):
            for name, head in heads.items():
                dpo.cpu_lm_head = head
                marks.clear()
                params = dpo.DpoParams(
                    epochs=1, max_steps=job_steps, sft_weight=1.0, eval_each_epoch=False
                )
                with tempfile.TemporaryDirectory() as out:
                    dpo.train(str(default_model_dir()), rows, [], Path(out), params)
                times[name].append(statistics.mean(b - a for a, b in itertools.pairwise(marks)))
    finally:
        lora.Run.__init__ = run_init
        dpo.cpu_lm_head = lm_head.cpu_lm_head
    return times


def report(what: str, times: dict[str, list[float]]) -> None:
    for name, values in times.items():
        shown = ", ".join(f"{v:.2f}" for v in values)
        low, mid = min(values), statistics.median(values)
        print(f"{what} {name}: {shown} s (min {low:.2f}, median {mid:.2f})")
    ratios = [o / t for o, t in zip(times["ours"], times["trl"], strict=True)]
    print(f"{what} ours/trl: min {min(ratios):.2f}, median {statistics.median(ratios):.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=1900, help="answer tokens in the batch")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", action="store_true", help="also time whole DPO jobs")
    parser.add_argument("--job-steps", type=int, default=5, help="steps per timed job")
    args = parser.parse_args()
    report("head", head_seconds(args.tokens, args.repeats))
    if args.steps:
        report("step", step_seconds(args.job_steps, max(1, args.repeats - 1)))


if __name__ == "__main__":
    main()
