"""End to end: a training stage killed mid-run (a preempted GPU machine, a stopped job) loses only
the epoch it was in. Its next run resumes from the last epoch's checkpoint and writes what an
uninterrupted run writes; a finished run leaves no checkpoint behind (artsim.learn.resume)."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import torch

from tests.conftest import run_in as run

# The first epoch of the embedded default's finetune takes seconds; this only bounds a hang.
FIRST_CHECKPOINT_S = 600


def _checkpoints(user_cache: Path, stage: str) -> list[Path]:
    return sorted((user_cache / "checkpoints" / stage).rglob("checkpoint.pt"))


def test_a_killed_finetune_resumes_and_writes_what_the_uninterrupted_run_wrote(reproduced_workspace,
                                                                                 user_cache: Path) -> None:
    repo = reproduced_workspace.path
    assert _checkpoints(user_cache, "finetune") == []  # the shared repro's run removed its own
    assert _checkpoints(user_cache, "siamese") == []
    stage = [sys.executable, "-m", "stages.finetune"]
    killed = subprocess.Popen(stage, cwd=repo, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + FIRST_CHECKPOINT_S
    while not _checkpoints(user_cache, "finetune"):
        assert killed.poll() is None, "finetune ended before writing its first checkpoint"
        assert time.monotonic() < deadline, "no checkpoint after the first epoch"
        time.sleep(0.1)
    killed.kill()
    killed.wait()
    epochs_done = _epochs_in(_checkpoints(user_cache, "finetune")[0])

    resumed = run(stage, repo)
    assert f"{epochs_done} epochs done" in resumed.stderr
    assert _checkpoints(user_cache, "finetune") == []
    # Every output (weights, card, metrics, dvclive's curves) has the hash dvc.lock holds: the same files.
    assert json.loads(run(["dvc", "status", "--json"], repo).stdout or "{}") == {}


def _epochs_in(checkpoint: Path) -> int:
    return len(torch.load(checkpoint, weights_only=True)["history"])
