"""Seconds per DPO step: our job vs a plain TRL `DPOTrainer` with the default `DPOConfig`.

Same data, model (the default SmolLM2-135M-Instruct), LoRA and batch size, in one run,
alternating which goes first. "Total" counts everything from the trainer's construction to the
last step (tokenizing, the reference log-probs we precompute), divided by the steps; "steady"
is the mean time between steps after the first.

    python -m bench.train [--pairs 64] [--steps 8] [--batch 8] [--repeats 2]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

TOPICS = ["rain", "tea", "chess", "bridges", "owls", "maps", "bread", "tides", "glass", "jazz"]


def make_pairs(count: int) -> list[dict]:
    """Preference pairs in the shape people produce: a helpful answer over a curt one."""
    pairs = []
    for i in range(count):
        topic = TOPICS[i % len(TOPICS)]
        pairs.append(
            {
                "prompt": [{"role": "user", "content": f"Tell me something about {topic} ({i})."}],
                "chosen": [
                    {
                        "role": "assistant",
                        "content": f"Happy to! {topic.capitalize()} are a fine subject: here is "
                        f"a short, friendly overview with one surprising fact number {i}, and a "
                        "suggestion for where to read more.",
                    }
                ],
                "rejected": [{"role": "assistant", "content": f"{topic}. Look it up."}],
            }
        )
    return pairs


class StepClock:
    def __init__(self) -> None:
        self.marks: list[float] = []

    def callback(self):
        from transformers import TrainerCallback

        clock = self

        class Mark(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                clock.marks.append(time.perf_counter())

        return Mark()

    def steady(self) -> float:
        gaps = [b - a for a, b in zip(self.marks, self.marks[1:], strict=False)]
        return statistics.mean(gaps) if gaps else float("nan")


def run_ours(model_path: str, pairs: list[dict], steps: int, batch: int) -> tuple[float, float]:
    from train import dpo

    clock = StepClock()
    params = dpo.DpoParams(max_steps=steps, batch_size=batch)

    def on_log(step: int, total: int, row: dict) -> None:
        if "loss" in row:  # logged at every step (logging_steps=1)
            clock.marks.append(time.perf_counter())

    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        dpo.train(model_path, pairs, [], Path(out) / "adapter", params, on_log)
    total = (clock.marks[-1] - started) / steps
    return total, clock.steady()


def run_plain(model_path: str, pairs: list[dict], steps: int, batch: int) -> tuple[float, float]:
    """TRL as its docs show it: default DPOConfig, the same LoRA and batch."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    from train import lora

    clock = StepClock()
    started = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForCausalLM.from_pretrained(model_path)
    params = lora.TrainParams()
    with tempfile.TemporaryDirectory() as out:
        config = DPOConfig(
            output_dir=out,
            per_device_train_batch_size=batch,
            max_steps=steps,
            report_to=[],
            use_cpu=not torch.cuda.is_available(),  # required on a CPU with the default bf16
        )
        trainer = DPOTrainer(
            model=model,
            args=config,
            train_dataset=Dataset.from_list(pairs),
            processing_class=tokenizer,
            peft_config=lora.lora_config(params, model),
            callbacks=[clock.callback()],
        )
        trainer.train()
    total = (clock.marks[-1] - started) / steps
    return total, clock.steady()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=64)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    from serve.default_model import prepare
    from serve.hardware import choose_dtype, cpu_threads

    model_path = str(prepare())
    pairs = make_pairs(args.pairs)
    print(f"dtype chosen for ours: {choose_dtype()}, threads: {cpu_threads()}")
    results: dict[str, list[tuple[float, float]]] = {"ours": [], "plain TRL": []}
    runners = {"ours": run_ours, "plain TRL": run_plain}
    for repeat in range(args.repeats):
        order = ["ours", "plain TRL"] if repeat % 2 == 0 else ["plain TRL", "ours"]
        for name in order:
            total, steady = runners[name](model_path, pairs, args.steps, args.batch)
            results[name].append((total, steady))
            print(f"repeat {repeat + 1} {name:>9}: {total:6.2f} s/step total, {steady:6.2f} steady")
    print()
    for i, label in ((0, "total"), (1, "steady")):
        ours = [r[i] for r in results["ours"]]
        plain = [r[i] for r in results["plain TRL"]]
        ratios = [o / p for o, p in zip(ours, plain, strict=True)]
        print(
            f"{label:>6}: ours {min(ours):.2f}/{statistics.median(ours):.2f} s/step, plain "
            f"{min(plain):.2f}/{statistics.median(plain):.2f} (min/median); ratio ours/plain "
            f"min {min(ratios):.2f}, median {statistics.median(ratios):.2f} (goal <= 0.7)"
        )


if __name__ == "__main__":
    main()
