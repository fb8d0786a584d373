"""Training that survives being stopped (a killed job, a preempted GPU machine, a closed laptop).

After each epoch the main rank writes one checkpoint holding everything later epochs depend on:
the weights, the optimizer, the learning-rate schedule, the loss scaler, every RNG the process
draws from, the best epoch so far and the per-epoch history. The next run of the same stage on
the same inputs starts after the last epoch written and ends where an uninterrupted run ends
(bit for bit on the same machine: the resume tests of tests/finetune and tests/siamese).

The checkpoint lives outside the workspace, as the other caches do (artsim.core.cache_dirs), in a
folder named by a fingerprint of everything that decides the stage's output
(`files_fingerprint` of its DVC deps), so a changed input or param never resumes an old run. The
stage removes it once its outputs are written. A checkpoint that does not load (cut short, written
by another torch, from another run) is reported and training starts afresh: a checkpoint is a
cache, never trusted over a clean start.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import shutil
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from artsim.core.cache_dirs import default_cache
from artsim.learn.training import BestEpoch, EpochLogger

log = logging.getLogger(__name__)

CHECKPOINT_FILE = "checkpoint.pt"
# Files up to this size are fingerprinted by content; larger ones (image shards, weights at
# WikiArt's scale) by size and modification time, as reading them all would take minutes.
CONTENT_HASHED_BYTES = 64 * 2**20
# Another run's checkpoint untouched this long is taken for abandoned and removed.
ABANDONED_AFTER_S = 14 * 24 * 3600


class Stateful(Protocol):
    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> Any: ...


def files_fingerprint(paths: Iterable[Path], salt: str = "", recorded: Mapping[Path, str] | None = None) -> str:
    """A digest of `paths` (files, or folders walked in name order): each file's path, and its
    content up to CONTENT_HASHED_BYTES, else its size and modification time; a missing path counts
    as missing. A path in `recorded` counts by the hash given there instead (what dvc.lock records
    of another stage's output: it survives a copy of the workspace, a `dvc pull`). `salt` adds what
    else decides the result (the stage's name, its params, torch's version, the device)."""
    digest = hashlib.sha256(salt.encode())
    recorded = recorded or {}
    for path in paths:
        if path in recorded:
            digest.update(os.fsencode(path) + b"\0recorded:" + recorded[path].encode())
            continue
        for file in _files_under(Path(path)):
            digest.update(os.fsencode(file) + b"\0")
            digest.update(_file_digest(file))
    return digest.hexdigest()


def _files_under(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(file for file in path.rglob("*") if file.is_file() and "__pycache__" not in file.parts)
    return [path]


def _file_digest(file: Path) -> bytes:
    try:
        status = file.stat()
    except OSError:
        return b"missing"
    if status.st_size > CONTENT_HASHED_BYTES:
        return f"{status.st_size}:{status.st_mtime_ns}".encode()
    with open(file, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").digest()


@dataclass(frozen=True)
class EpochCheckpoint:
    """Where one run's checkpoint is kept: `root`/`fingerprint`/checkpoint.pt. Only the writer
    (the main rank) saves and removes it; every rank loads it."""

    root: Path
    fingerprint: str
    writer: bool = True

    @property
    def path(self) -> Path:
        return self.root / self.fingerprint / CHECKPOINT_FILE

    @classmethod
    def for_stage(cls, stage: str, deps: Iterable[Path], params: Mapping[str, Any], runtime: str,
                  recorded: Mapping[Path, str] | None = None, writer: bool = True,
                  root: Path | None = None) -> EpochCheckpoint:
        """The checkpoint of `stage` run on `deps` (those in `recorded` by their recorded hash) with
        `params` (its DVC deps and params values) on `runtime` (device and precision: a checkpoint of
        another holds other states), under `root` (default: the user cache's `checkpoints`)."""
        salt = json.dumps({"stage": stage, "params": params, "torch": torch.__version__, "runtime": runtime},
                          sort_keys=True, default=str)
        return cls((root or default_cache("checkpoints")) / stage, files_fingerprint(deps, salt, recorded), writer)

    def load(self) -> dict[str, Any] | None:
        """The saved state, or None when there is none or it does not load (reported)."""
        if not self.path.is_file():
            return None
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=True)
            if state.get("fingerprint") != self.fingerprint:
                raise ValueError("it belongs to another run")
        except Exception as exc:  # a torn or foreign file: start afresh rather than fail
            log.warning("checkpoint %s does not load (%s): training starts from the first epoch", self.path, exc)
            return None
        return state

    def save(self, state: dict[str, Any]) -> None:
        if not self.writer:
            return
        folder = self.path.parent
        if not folder.is_dir():
            self._remove_abandoned()
            folder.mkdir(parents=True, exist_ok=True)
        partial = folder / f".{CHECKPOINT_FILE}.{os.getpid()}"
        torch.save({**state, "fingerprint": self.fingerprint}, partial)
        os.replace(partial, self.path)  # a reader sees the old checkpoint or the new one, never half

    def discard(self) -> None:
        if self.writer:
            shutil.rmtree(self.path.parent, ignore_errors=True)

    def _remove_abandoned(self) -> None:
        if not self.root.is_dir():
            return
        now = time.time()
        for folder in self.root.iterdir():
            try:  # another run may be removing it too
                # A folder's time moves with every checkpoint renamed into it (and a save cut short).
                abandoned = folder.is_dir() and now - folder.stat().st_mtime > ABANDONED_AFTER_S
            except OSError:
                continue
            if abandoned:
                log.info("removing checkpoint %s: untouched for %d days", folder, ABANDONED_AFTER_S // 86400)
                shutil.rmtree(folder, ignore_errors=True)


class ResumableEpochs:
    """The epoch loop's side of a checkpoint: `resume` restores the model (unwrapped), the other
    `parts` (optimizer, schedule, scaler, ...), the RNGs, the best epoch and the history, replays
    the history to the epoch logger, and names the first epoch still to run; `epoch_done` saves
    them."""

    def __init__(self, checkpoint: EpochCheckpoint | None, model: nn.Module, **parts: Stateful) -> None:
        self.checkpoint = checkpoint
        self.model = model
        self.parts: dict[str, Stateful] = {"model": model, **parts}

    def resume(self, best: BestEpoch, history: list[dict[str, float]], on_epoch: EpochLogger | None) -> int:
        state = self.checkpoint.load() if self.checkpoint is not None else None
        if state is None:
            return 0
        if set(state.get("parts", {})) != set(self.parts):
            log.warning("checkpoint %s holds %s, not %s: training starts from the first epoch", self.checkpoint.path,
                        sorted(state.get("parts", {})), sorted(self.parts))
            return 0
        for name, part in self.parts.items():
            part.load_state_dict(state["parts"][name])
        best.load_state_dict(state["best"], self.model)
        restore_rng(state["rng"])
        history.extend(state["history"])
        if on_epoch is not None:
            for figures in history:
                on_epoch(figures)
        log.info("resuming from %s: %d epochs done", self.checkpoint.path, len(history))
        return len(history)

    def epoch_done(self, best: BestEpoch, history: list[dict[str, float]]) -> None:
        if self.checkpoint is None:
            return
        self.checkpoint.save({
            "parts": {name: part.state_dict() for name, part in self.parts.items()},
            # The best epoch's weights are the model's own when it is the last one run.
            "best": best.state_dict(weights=best.epoch != len(history) - 1),
            "rng": rng_state(),
            "history": history,
        })


def rng_state() -> dict[str, Any]:
    """Every generator training may draw from, in a form torch.load(weights_only=True) reads."""
    numpy_state = np.random.get_state(legacy=False)
    return {
        "python": random.getstate(),
        "numpy_key": torch.from_numpy(numpy_state["state"]["key"].astype(np.int64)),
        "numpy_rest": [numpy_state["state"]["pos"], numpy_state["has_gauss"], numpy_state["gauss"]],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def restore_rng(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    pos, has_gauss, gauss = state["numpy_rest"]
    np.random.set_state({"bit_generator": "MT19937", "has_gauss": has_gauss, "gauss": gauss,
                         "state": {"key": state["numpy_key"].numpy().astype(np.uint32), "pos": pos}})
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
