"""Seconds per DPO step of a whole job: ours vs a plain TRL `DPOTrainer` with a default `DPOConfig`.

Both sides get the same pairs, model (the default SmolLM2-135M-Instruct), LoRA (train/lora.py's),
batch size, max_length and number of epochs, and train a whole job (3 epochs by default, as
`flywheel train` does), so the reference log-probs we compute up front are amortised as in a real
job. "Ours" is `train.dpo.train` with its defaults, exactly what `flywheel train --method dpo`
runs (without held-out rows, which the plain side has no use for). Each run is a fresh process
(no state carried from one side to the other); the sides alternate, so drift in the machine's load
hits both. Per run:

- job s/step: from loading the model to the last step's end, divided by the steps (loading,
  tokenizing, the reference pass, every step);
- steady s/step: mean time between steps after the first;
- CPU s/step: the process's CPU time over the job, divided by the steps: what the job costs the
  machine (threads spinning while they wait for a core included).

Each run also says how many steps ran with how many torch threads, and the load average.

    python -m bench.train [--pairs 32] [--epochs 3] [--batch 8] [--repeats 2] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TOPICS = ["rain", "tea", "chess", "bridges", "owls", "maps", "bread", "tides", "glass", "jazz"]
SIDES = ("ours", "plain")
MEASURES = ("job", "steady", "cpu")


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


class Clock:
    """Step-end marks and the process's CPU time at the last one."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.cpu_started = time.process_time()
        self.marks: list[float] = []
        self.cpu = 0.0
        self.threads: list[int] = []  # torch threads at each step's end

    def mark(self) -> None:
        import torch

        self.marks.append(time.perf_counter())
        self.cpu = time.process_time() - self.cpu_started
        self.threads.append(torch.get_num_threads())

    def callback(self):
        from transformers import TrainerCallback

        clock = self

        class Mark(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                clock.mark()

        return Mark()

    def result(self) -> dict[str, float]:
        steps = len(self.marks)
        gaps = [b - a for a, b in zip(self.marks, self.marks[1:], strict=False)]
        return {
            "steps": steps,
            "job": (self.marks[-1] - self.started) / steps,
            "steady": statistics.mean(gaps) if gaps else float("nan"),
            "cpu": self.cpu / steps,
            "threads": "/".join(f"{self.threads.count(n)}x{n}" for n in sorted(set(self.threads))),
        }


def run_ours(
    model_path: str, pairs: list[dict], epochs: float, batch: int, threads: int
) -> dict[str, float]:
    """`flywheel train --method dpo`: train/dpo.py with its defaults."""
    from train import dpo

    clock = Clock()
    params = dpo.DpoParams(epochs=epochs, batch_size=batch, threads=threads)

    def on_log(step: int, total: int, row: dict) -> None:
        if "loss" in row:  # logged at every step (logging_steps=1), right after it ends
            clock.mark()

    with tempfile.TemporaryDirectory() as out:
        metrics = dpo.train(model_path, pairs, [], Path(out) / "adapter", params, on_log)
    # that it still learns: the last step's loss and reward accuracy
    return {**clock.result(), **{k: metrics[k] for k in ("loss", "rewards/accuracies")}}


def run_plain(
    model_path: str, pairs: list[dict], epochs: float, batch: int, threads: int
) -> dict[str, float]:
    """TRL as its docs show it: the default DPOConfig, given only our LoRA, batch and length."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    from train import lora

    if threads:
        torch.set_num_threads(threads)
    clock = Clock()
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForCausalLM.from_pretrained(model_path)
    params = lora.TrainParams()
    with tempfile.TemporaryDirectory() as out:
        config = DPOConfig(
            output_dir=out,
            per_device_train_batch_size=batch,
            num_train_epochs=epochs,
            max_length=params.max_length,
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
    return clock.result()


def run_side(side: str, args: argparse.Namespace) -> dict[str, float]:
    from common.default_model import prepare

    runner = run_ours if side == "ours" else run_plain
    return runner(str(prepare()), make_pairs(args.pairs), args.epochs, args.batch, args.threads)


def spawn(side: str, args: argparse.Namespace) -> dict[str, Any]:
    """One side in a fresh process; its result and the load average around it."""
    sizes = ["--pairs", str(args.pairs), "--epochs", str(args.epochs), "--batch", str(args.batch)]
    command = [sys.executable, "-m", "bench.train", "--side", side, *sizes]
    command += ["--threads", str(args.threads)]
    load_before = os.getloadavg()[0]
    env = {**os.environ, "TQDM_DISABLE": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"{side} failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return {**result, "load": (load_before + os.getloadavg()[0]) / 2}


def describe(r: dict[str, Any]) -> str:
    line = (
        f"{r['steps']} steps, {r['job']:6.2f} s/step job, {r['steady']:6.2f} steady, "
        f"{r['cpu']:6.2f} CPU s/step; steps x threads {r['threads']}, load {r['load']:.1f}"
    )
    if "loss" in r:
        line += f"; last loss {r['loss']:.4f}, reward accuracy {r['rewards/accuracies']:.2f}"
    return line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=32)
    parser.add_argument("--epochs", type=float, default=3)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--first", choices=SIDES, default="ours", help="side of the first run")
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch threads for both sides (0: each its own choice: ours the free cores, plain "
        "torch's default); to tell the work saved from the thread choice",
    )
    parser.add_argument("--side", choices=SIDES, help=argparse.SUPPRESS)  # one run, as JSON
    args = parser.parse_args()
    if args.side:
        print(json.dumps(run_side(args.side, args)))
        return

    from common.hardware import choose_dtype, cpu_threads

    print(
        f"{args.pairs} pairs x {args.epochs:g} epochs, batch {args.batch}; dtype chosen for ours: "
        f"{choose_dtype()}; cores: {cpu_threads()}, torch threads: {args.threads or 'own choice'}"
        f"; load average {os.getloadavg()[0]:.1f}"
    )
    results: dict[str, list[dict[str, Any]]] = {side: [] for side in SIDES}
    first = SIDES.index(args.first)
    for repeat in range(args.repeats):
        order = SIDES[first:] + SIDES[:first]
        for side in order if repeat % 2 == 0 else order[::-1]:
            r = spawn(side, args)
            results[side].append(r)
            print(f"repeat {repeat + 1} {side:>5}: {describe(r)}", flush=True)
    print()
    for measure in MEASURES:
        ours = [r[measure] for r in results["ours"]]
        plain = [r[measure] for r in results["plain"]]
        ratios = [o / p for o, p in zip(ours, plain, strict=True)]  # runs next to each other
        print(
            f"{measure:>6}: ours {min(ours):.2f}/{statistics.median(ours):.2f} s/step, plain "
            f"{min(plain):.2f}/{statistics.median(plain):.2f} (min/median); ratio ours/plain "
            f"{min(ours) / min(plain):.2f} of the mins, median of pairs "
            f"{statistics.median(ratios):.2f} (goal <= 0.7)"
        )


if __name__ == "__main__":
    main()
