"""Which process of a multi-process training launch this is, and what only the main one may do.

`accelerate launch` (DDP and FSDP through torchrun, DeepSpeed through its own launcher) starts
the same `flywheel train` once per device and tells each process who it is in RANK, LOCAL_RANK,
WORLD_SIZE and LOCAL_WORLD_SIZE. One job must still be one job: rank 0 alone reads the store,
creates the job row, writes progress rows, writes and renames the adapter folder, writes the
lineage and registers the adapter; the other ranks never open the store. Every rank trains on the
rows rank 0 read, sent to it over the process group: reading the store on each rank could give
different snapshots (a judgement arriving between two reads), and best-of-n sampling must run once.
A plain `flywheel train` is world size 1, and none of this costs it anything.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Ranks:
    """This process's place in the launch (all zeros and ones for a single process)."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    local_world_size: int = 1

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Ranks:
        world_size = int(env.get("WORLD_SIZE", 1))
        return cls(
            rank=int(env.get("RANK", 0)),
            local_rank=int(env.get("LOCAL_RANK", 0)),
            world_size=world_size,
            # torchrun sets LOCAL_WORLD_SIZE; without it, assume one machine
            local_world_size=int(env.get("LOCAL_WORLD_SIZE", world_size)),
        )

    @property
    def is_main(self) -> bool:
        """The one process that talks to the store and writes the adapter."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def threads(self, usable_cores: int) -> int:
        """Torch threads for this process: the machine's cores shared by the ranks on it.

        torchrun sets OMP_NUM_THREADS=1 for every rank (one thread each, cores left idle);
        all usable cores for every rank would oversubscribe them once per rank on the machine.
        """
        return max(1, usable_cores // self.local_world_size)

    def join(self) -> None:
        """Join the process group now, so that rank 0 can hand the job to the others.

        Through accelerate's `PartialState`, the same setup the Trainer does later (it reuses
        the group): gloo on CPUs, NCCL on GPUs, DeepSpeed's own when launched for it, and the
        Trainer's default timeout (`ddp_timeout`, 30 min), which also bounds how long the other
        ranks wait while rank 0 prepares the job (best-of-n sampling included).
        """
        if not self.distributed:
            return
        from datetime import timedelta

        import torch
        from accelerate import PartialState

        PartialState(cpu=not torch.cuda.is_available(), timeout=timedelta(seconds=1800))

    def share(self, value: T) -> T:
        """Rank 0's `value` on every rank (pickled over the process group); `value` alone."""
        if not self.distributed:
            return value
        import torch.distributed as dist

        box = [value if self.is_main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]
