"""Decisions that depend on the machine, read at run time, never guessed.

On CPUs without native bfloat16 (AVX2-only), vLLM emulates bf16 and runs ~3.5x slower than
float32 (measured on a 2-core AVX2 machine), so bf16 is chosen only where the CPU advertises it.
NVIDIA cards have bf16 from compute capability 8.0 (Ampere) on; a T4 (7.5) or a V100 (7.0) gets
float16 instead.
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


BF16_COMPUTE_CAPABILITY = 8.0


def gpu_compute_capabilities() -> list[float]:
    """Each GPU's compute capability (`nvidia-smi --query-gpu=compute_cap`); [] if unknown."""
    smi = shutil.which("nvidia-smi")
    if not smi:
        return []
    out = subprocess.run(
        [smi, "--query-gpu=compute_cap", "--format=csv,noheader"], capture_output=True, text=True
    )
    try:
        return [float(line) for line in out.stdout.split()] if out.returncode == 0 else []
    except ValueError:  # a driver too old to know the field
        return []


def choose_dtype(
    cpuinfo: str | None = None,
    cuda: bool | None = None,
    capabilities: list[float] | None = None,
) -> str:
    """bfloat16 where the hardware has it (GPUs of compute capability 8.0 and up, CPUs with
    native bf16); float16 on older GPUs or where the capability cannot be read; float32 on
    other CPUs."""
    if cuda if cuda is not None else has_cuda():
        caps = gpu_compute_capabilities() if capabilities is None else capabilities
        return "bfloat16" if caps and min(caps) >= BF16_COMPUTE_CAPABILITY else "float16"
    flags = cpu_flags(cpuinfo)
    return "bfloat16" if any(flag in flags for flag in BF16_CPU_FLAGS) else "float32"


def cpu_threads() -> int:
    """Threads for torch in training: every core this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1
