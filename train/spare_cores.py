"""How many torch threads a training step should use on a machine it shares with the engine.

Every torch op waits for its slowest thread: with more threads than free cores, one is always
queued behind another process, and the rest spin. Measured on 2 cores with a busy vLLM and
another job beside it: a DPO step took 3x the wall time, and 3x the CPU, with 2 threads as with
1. So the thread count follows the cores other processes leave free, read from /proc/stat and
re-decided at every step; on an idle machine all cores are used.
"""

from __future__ import annotations

import os
import time
from pathlib import Path


def machine_busy_seconds(stat: str | None = None) -> float:
    """CPU seconds all processes have used since boot, every core together (/proc/stat)."""
    if stat is None:
        try:
            stat = Path("/proc/stat").read_text()
        except OSError:
            return 0.0
    # cpu  user nice system idle iowait irq softirq steal ... (in USER_HZ, 100 per second)
    ticks = [int(x) for x in stat.splitlines()[0].split()[1:9]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def spare_threads(cores: int, others: float) -> int:
    """Torch threads that fit beside `others` cores' worth of other processes' work (at least 1)."""
    return max(1, min(cores, int(cores - others + 0.5)))


class SpareCores:
    """Torch threads following the cores other processes leave free, re-decided at every step.

    Every torch op waits for its slowest thread: with more threads than free cores, one is always
    queued behind another process, and the rest spin. Measured here (2 cores, a busy vLLM and
    another job beside it): a DPO step took 3x the wall time, and 3x the CPU, with 2 threads as
    with 1. On an idle machine all cores are used, as before.
    """

    def __init__(self, cores: int, sample_s: float = 0.2) -> None:
        self.cores = cores
        self.last = self._now()
        time.sleep(sample_s)  # the others' load before this process starts computing
        self.update()

    @staticmethod
    def _now() -> tuple[float, float, float]:
        return machine_busy_seconds(), time.process_time(), time.monotonic()

    def update(self) -> int:
        import torch

        now = self._now()
        busy, ours, wall = (a - b for a, b in zip(now, self.last, strict=True))
        self.last = now
        threads = spare_threads(self.cores, max(0.0, busy - ours) / wall) if wall > 0 else 1
        torch.set_num_threads(threads)
        return threads

    def callback(self):
        from transformers import TrainerCallback

        spare = self

        class Follow(TrainerCallback):
            def on_step_begin(self, args, state, control, **kwargs):
                spare.update()

        return Follow()
