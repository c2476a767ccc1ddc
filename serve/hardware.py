"""Decisions that depend on the machine, read at run time, never guessed.

On CPUs without native bfloat16 (AVX2-only), vLLM emulates bf16 and runs ~3.5x slower than
float32 (measured, see FACTS.md), so bf16 is chosen only where the CPU advertises it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_flags(cpuinfo: str | None = None) -> set[str]:
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def has_cuda() -> bool:
    """True where an NVIDIA driver answers; decides the `gpu` extra and the engine dtype."""
    smi = shutil.which("nvidia-smi")
    if not smi:
        return False
    return subprocess.run([smi], capture_output=True).returncode == 0


def choose_dtype(cpuinfo: str | None = None, cuda: bool | None = None) -> str:
    """bfloat16 on GPUs and on CPUs with native bf16, float32 elsewhere."""
    if cuda if cuda is not None else has_cuda():
        return "bfloat16"
    flags = cpu_flags(cpuinfo)
    return "bfloat16" if any(flag in flags for flag in BF16_CPU_FLAGS) else "float32"


def cpu_threads() -> int:
    """Threads for torch in training: every core this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1
