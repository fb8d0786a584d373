"""Ranks of a torchrun launch: who does which share of the work, and how they meet.

Generation needs no collective maths between GPUs, only a little coordination (rank 0's
list of missing keys, each rank's report, the end), so it uses the gloo backend over TCP:
the same on CPUs and GPUs, on one machine or several sharing a filesystem. Training
all-reduces gradients every step, so on GPUs it uses NCCL (gloo on CPUs).
torch is imported only when there is more than one rank.
"""
from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Iterator

# Ranks that finish their share wait for the slowest one at the final gather, which on a
# full WikiArt sweep can be hours later: the default 30-minute collective timeout would
# kill a healthy run.
COLLECTIVE_TIMEOUT = timedelta(days=7)


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def launched(self) -> bool:
        return self.world_size > 1


ALONE = Ranks()  # a process not launched by torchrun


def ranks_from_env(environ: dict[str, str] | None = None) -> Ranks:
    """This process's place in a torchrun launch (a lone process is rank 0 of 1)."""
    env = os.environ if environ is None else environ
    return Ranks(int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1)), int(env.get("LOCAL_RANK", 0)))


def under_torchrun(environ: dict[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    return "WORLD_SIZE" in env


def processes_wanted(processes: int | str, device: str) -> int:
    """`generate.processes` as a number: `auto` is one process per visible GPU (1 on a CPU)."""
    if processes != "auto":
        return int(processes)
    if device == "cpu":
        return 1
    import torch

    return max(1, torch.cuda.device_count()) if torch.cuda.is_available() else 1


def torchrun_command(processes: int, module: str) -> list[str]:
    """Relaunch `python -m module` as `processes` ranks on this machine."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}", "-m", module]


@contextmanager
def process_group(ranks: Ranks, backend: str = "gloo") -> Iterator[None]:
    if not ranks.launched:
        yield
        return
    import torch.distributed as dist

    dist.init_process_group(backend=backend, timeout=COLLECTIVE_TIMEOUT)
    try:
        yield
    finally:
        dist.destroy_process_group()


def broadcast_from_main(value: Any, ranks: Ranks) -> Any:
    """Rank 0's `value`, on every rank."""
    if not ranks.launched:
        return value
    import torch.distributed as dist

    box = [value if ranks.is_main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_to_all(value: Any, ranks: Ranks) -> list[Any]:
    """Every rank's `value`, in rank order, on every rank; also waits for all ranks to get here."""
    if not ranks.launched:
        return [value]
    import torch.distributed as dist

    gathered: list[Any] = [None] * ranks.world_size
    dist.all_gather_object(gathered, value)
    return gathered
