"""Ranks of a torchrun launch: who does which share of the work, and how they meet.

Generation needs no collective maths between GPUs, only a little coordination (rank 0's
list of missing keys, each rank's report, the end), so it uses the gloo backend over TCP:
the same on CPUs and GPUs, on one machine or several sharing a filesystem. Training
all-reduces gradients every step, so on GPUs it uses NCCL (gloo on CPUs).
torch is imported only when there is more than one rank.
"""
from __future__ import annotations

import logging
import math
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Sequence, TypeVar

log = logging.getLogger(__name__)

# Training ranks meet at every step, so a rank left waiting this long means the ranks
# stopped meeting (one took a step the others did not, or is stuck): fail within minutes,
# naming the stage, instead of holding every GPU for days. The longest healthy waits are
# ranks finishing their share of features or variants at different times and rank 0
# checking the variant store while the others wait; a run that expects longer ones sets
# the environment variable (seconds). Generation and the feature cache resume, so a rerun
# after such a timeout redoes no finished work.
DEFAULT_COLLECTIVE_TIMEOUT = timedelta(minutes=30)
TIMEOUT_VARIABLE = "ARTSIM_COLLECTIVE_TIMEOUT_S"

# Signals a launcher passes on to torchrun, which stops its ranks on any of them.
FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


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

Shareable = TypeVar("Shareable", bound=Sequence)


def rank_share(items: Shareable, ranks: Ranks) -> Shareable:
    """This rank's share of `items`: every world_size-th one from its rank. The one place ranks
    split work (generate's batches, the training batches, evaluation items), so that the ranks'
    shares are disjoint and together whole, in the same order on every rank."""
    return items[ranks.rank::ranks.world_size]  # type: ignore[return-value]


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
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={processes}",
        "-m",
        module,
    ]


def relaunch_as_ranks(processes: int | str, module: str, device: str = "auto") -> int | None:
    """Run `python -m module` again as several ranks when `processes` asks for more than
    one and this process is not a rank already: torchrun's exit status once it is done
    (see run_under_torchrun); None when this process is to do the work itself."""
    if under_torchrun():
        return None
    count = processes_wanted(processes, device)
    if count <= 1:
        return None
    log.info("relaunching %s as %d ranks under torchrun", module, count)
    return run_under_torchrun(count, module)


def run_under_torchrun(processes: int, module: str) -> int:
    """Run `python -m module` as `processes` ranks under torchrun and wait for it to end.

    SIGINT, SIGTERM and SIGHUP sent to this process are passed on to torchrun (once:
    torchrun stops its ranks, escalating to SIGKILL after its grace period, and a second
    signal would cut that short), so stopping a stage stops its ranks. torchrun runs in
    its own process group, so that a Ctrl-C in the terminal reaches it only through
    here; on Linux the kernel also signals it if this process dies unannounced (SIGKILL).
    Returns torchrun's exit status, or 128 + the signal's number when stopped by one,
    as a shell reports a process ended by a signal.
    """
    stopped_by: list[int] = []
    child: subprocess.Popen | None = None

    def forward(signum: int, _frame: Any) -> None:
        if stopped_by:
            log.warning("%s: already stopping the ranks", signal.Signals(signum).name)
            return
        stopped_by.append(signum)
        if child is not None:
            child.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in FORWARDED_SIGNALS}
    try:
        child = subprocess.Popen(torchrun_command(processes, module), process_group=0,
                                 preexec_fn=_die_with_parent())
        if stopped_by:  # a signal came while torchrun was starting
            child.send_signal(stopped_by[0])
        status = child.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 128 + stopped_by[0] if stopped_by else status


def _die_with_parent() -> Callable[[], None] | None:
    """A preexec_fn asking Linux to send the child SIGTERM when its parent dies (None elsewhere)."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    set_parent_death_signal = 1  # PR_SET_PDEATHSIG in <linux/prctl.h>

    def ask() -> None:
        libc.prctl(set_parent_death_signal, signal.SIGTERM)
    return ask


def collective_timeout(environ: dict[str, str] | None = None) -> timedelta:
    """How long a rank waits at a collective for the others: ARTSIM_COLLECTIVE_TIMEOUT_S
    (seconds) when set, else DEFAULT_COLLECTIVE_TIMEOUT."""
    env = os.environ if environ is None else environ
    raw = env.get(TIMEOUT_VARIABLE, "").strip()
    if not raw:
        return DEFAULT_COLLECTIVE_TIMEOUT
    try:
        seconds = float(raw)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"{TIMEOUT_VARIABLE}={raw!r}: the collective timeout must be a positive number of seconds")
    return timedelta(seconds=seconds)


class RanksStoppedMeeting(RuntimeError):
    """A rank waited longer than the collective timeout for the others."""


@contextmanager
def process_group(ranks: Ranks, backend: str = "gloo", stage: str | None = None) -> Iterator[None]:
    """The ranks' process group for the duration of the block (nothing when alone).

    A collective that times out in the block is raised again as RanksStoppedMeeting,
    naming `stage` (by default this program's name); with NCCL its watchdog aborts the
    rank instead, after the log line that names the stage and the timeout.
    """
    if not ranks.launched:
        yield
        return
    import torch
    import torch.distributed as dist

    stage = stage or Path(sys.argv[0]).stem
    timeout = collective_timeout()
    if "nccl" in backend:
        # One GPU per rank: NCCL (and object collectives over it) use the current device.
        torch.cuda.set_device(ranks.local_rank)
    log.info("%s: rank %d of %d, %s, collectives time out after %s (%s)", stage, ranks.rank, ranks.world_size,
             backend, timeout, TIMEOUT_VARIABLE)
    dist.init_process_group(backend=backend, timeout=timeout)
    try:
        yield
        # Ranks leave together: one that tears its group down while another still holds it
        # open (rank 0 assembling a stage's output) can abort in gloo's threads at exit.
        dist.barrier()
    except RuntimeError as exc:  # gloo raises a bare RuntimeError: "Timed out waiting 1800000ms for recv ..."
        if "timed out" not in str(exc).lower():
            raise
        raise RanksStoppedMeeting(
            f"{stage}: rank {ranks.rank} of {ranks.world_size} waited more than {timeout} for the other ranks at a "
            "collective: the ranks stopped meeting (one took a step the others did not, or is stuck). "
            f"If a wait this long is expected, set {TIMEOUT_VARIABLE} (seconds)."
        ) from exc
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
