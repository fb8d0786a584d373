"""What the two training stages share: seeding, where and how they run (device, precision,
ranks), the best-epoch bookkeeping and per-epoch logging.

A stage runs single-process, or as one rank of a `torchrun` launch: then the model is
wrapped in DistributedDataParallel, each rank takes its share of every global batch, and
the figures of an epoch are summed over ranks, so both ways give the same numbers.
"""
from __future__ import annotations

import contextlib
import copy
import functools
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim.lr_scheduler import LambdaLR

from artsim.core.distributed import ALONE, Ranks, rank_share
from artsim.params import TrainingRun

EpochLogger = Callable[[dict[str, float]], None]


def make_deterministic(seed: int) -> None:
    """Seed every RNG training touches and forbid non-deterministic kernels.

    That makes a run repeat bit for bit on one machine (same torch, same thread count),
    not across machines: oneDNN's convolutions and ATen's vectorised kernels are picked by
    the CPU's instruction set (ONEDNN_MAX_CPU_ISA, ATEN_CPU_CAPABILITY) and round
    differently, as does another thread count. Forcing portable kernels (oneDNN off) makes
    training about 10x slower, so instead follow_recipe keeps those rounding differences
    from growing into different models; bench/seeds.py measures what is left.
    """
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    # CUDA has kernels without deterministic versions; there, warn instead of failing.
    torch.use_deterministic_algorithms(True, warn_only=torch.cuda.is_available())


def follow_recipe(optimizer: torch.optim.Optimizer, total_steps: int, warmup_fraction: float,
                  grad_clip: float | None) -> LambdaLR:
    """Make every `optimizer.step()` clip the gradient norm to `grad_clip` (None: no clip),
    and move each group's learning rate along a linear warm-up over the first
    `warmup_fraction` of `total_steps`, then a cosine decay to zero.

    Why: on a few images, full-size steps from the first one on, and a last epoch still at
    full learning rate, turn float rounding (which differs between CPUs) into different
    models; a gentle start and a quiet end keep runs on two machines close. Done with
    optimizer hooks, so the training loops keep calling `scaler.step(optimizer)`; a step the
    GradScaler skips (fp16 overflow) does not advance the schedule either.
    """
    warmup = max(1, round(warmup_fraction * total_steps)) if warmup_fraction > 0 else 0
    schedule = LambdaLR(optimizer, functools.partial(warmup_cosine, warmup=warmup, total=max(total_steps, 1)))
    parameters = [p for group in optimizer.param_groups for p in group["params"]]

    def clip(*_: Any) -> None:
        # The GradScaler unscales before optimizer.step, so this sees the true gradients.
        nn.utils.clip_grad_norm_(parameters, grad_clip)

    def advance(*_: Any) -> None:
        schedule.step()

    if grad_clip is not None:
        optimizer.register_step_pre_hook(clip)
    optimizer.register_step_post_hook(advance)
    return schedule


def warmup_cosine(step: int, warmup: int, total: int) -> float:
    """The learning-rate factor of step `step` (0-based, of `total`): (step + 1) / warmup for
    the first `warmup` steps, then half a cosine from 1 toward 0, which it reaches one step
    after the last (so that the last step still moves a little)."""
    if step < warmup:
        return (step + 1) / warmup
    decay_steps = max(total - warmup, 0) + 1
    return 0.5 * (1.0 + math.cos(math.pi * min(step - warmup + 1, decay_steps) / decay_steps))


def dvclive_epoch_logger(live: Any) -> EpochLogger:
    """Log each epoch's figures to a dvclive `Live` as one step."""
    def log_epoch(metrics: dict[str, float]) -> None:
        for name, value in metrics.items():
            live.log_metric(name, value)
        live.next_step()
    return log_epoch


# ---------------------------------------------------------------------------
# Where and how a training stage runs
# ---------------------------------------------------------------------------

AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class Runtime:
    """This process's device, numeric precision and place among the ranks."""

    device: torch.device
    precision: str = "fp32"  # resolved: fp32 | bf16 | fp16
    channels_last: bool = False
    ranks: Ranks = ALONE

    @property
    def compute_dtype(self) -> torch.dtype:
        return AUTOCAST_DTYPES.get(self.precision, torch.float32)

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=AUTOCAST_DTYPES[self.precision])

    def grad_scaler(self) -> torch.amp.GradScaler:
        # fp16 gradients underflow without loss scaling; bf16 and fp32 do not need it.
        return torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")

    def describe(self) -> str:
        """What decides the numbers a run here gives, beside its inputs: the device's kind and the precision."""
        return f"{self.device.type} {self.precision}"

    def to_device(self, images: Tensor) -> Tensor:
        return images.to(self.device, memory_format=self.memory_format, non_blocking=True)


def resolve_runtime(run: TrainingRun, block: str, ranks: Ranks = ALONE, gpu_available: bool | None = None) -> Runtime:
    """The Runtime `run` asks for on this machine; refuses GPU-only settings on a CPU,
    naming the `block.precision` key, before any work."""
    gpu = torch.cuda.is_available() if gpu_available is None else gpu_available
    device = torch.device("cuda", ranks.local_rank) if gpu else torch.device("cpu")
    precision = run.precision
    if precision == "auto":
        precision = ("bf16" if torch.cuda.is_bf16_supported() else "fp16") if gpu else "fp32"
    if not gpu and precision != "fp32":
        raise ValueError(f"{block}.precision: {precision} needs a GPU and this machine has none; "
                         "use fp32 or auto (CPU runs stay fp32)")
    return Runtime(device, precision, run.channels_last, ranks)


def process_group_backend() -> str:
    # On GPUs, NCCL for the CUDA tensors (DDP's gradients) and gloo for the CPU ones
    # (sum_over_ranks, object collectives), which NCCL alone refuses.
    return "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"


def distribute(module: nn.Module, runtime: Runtime) -> nn.Module:
    """`module` wrapped for data-parallel training when launched as several ranks."""
    if not runtime.ranks.launched:
        return module
    if runtime.device.type == "cuda":
        # Batch statistics over the global batch, as a single process would compute them.
        # (SyncBatchNorm has no CPU kernel: on CPUs each rank normalises its own share.)
        module = nn.SyncBatchNorm.convert_sync_batchnorm(module)
        return DistributedDataParallel(module, device_ids=[runtime.device.index])
    return DistributedDataParallel(module)


def sum_over_ranks(values: list[float], ranks: Ranks) -> list[float]:
    """Element-wise sum of `values` over all ranks (the values themselves when alone)."""
    if not ranks.launched:
        return values
    import torch.distributed as dist

    total = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(total)
    return total.tolist()


def share_of(count: int, ranks: Ranks) -> range:
    """This rank's slice of `count` items in evaluation."""
    return rank_share(range(count), ranks)


# ---------------------------------------------------------------------------
# Epochs
# ---------------------------------------------------------------------------

@dataclass
class BestEpoch:
    """Remembers the weights of the best epoch seen so far (higher key is better)."""

    epoch: int = -1
    key: tuple[float, ...] | None = None
    state: dict[str, Tensor] = field(default_factory=dict)
    figures: dict[str, float] = field(default_factory=dict)

    def offer(self, epoch: int, key: tuple[float, ...] | None, model: nn.Module, figures: dict[str, float]) -> None:
        # Without validation data (key None) every epoch supersedes the last.
        if key is None or self.key is None or key > self.key:
            self.epoch, self.key, self.figures = epoch, key, dict(figures)
            self.state = copy.deepcopy(unwrapped(model).state_dict())

    def state_dict(self, weights: bool = True) -> dict[str, Any]:
        """What a checkpoint keeps of it (artsim.learn.resume); without `weights` when they are
        the model's own (the best epoch is the last one run)."""
        return {"epoch": self.epoch, "key": self.key, "figures": self.figures, "state": self.state if weights else None}

    def load_state_dict(self, saved: dict[str, Any], model: nn.Module) -> None:
        self.epoch, self.key, self.figures = saved["epoch"], saved["key"], dict(saved["figures"])
        weights = saved["state"] if saved["state"] is not None else unwrapped(model).state_dict()
        self.state = copy.deepcopy(weights)


def unwrapped(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, DistributedDataParallel) else model


def freeze_batchnorm(module: nn.Module) -> None:
    """Keep BatchNorm on its running statistics: a few samples per batch estimate them badly."""
    for layer in module.modules():
        if isinstance(layer, nn.modules.batchnorm._BatchNorm):
            layer.eval()
