"""Checkpoints of the training stages: what keys them, what a damaged one does, the RNGs they restore.
That a resumed run ends where an uninterrupted one does is tested per stage (tests/finetune, tests/siamese)."""
from __future__ import annotations

import logging
import os
import random
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from artsim.learn import resume
from artsim.learn.resume import EpochCheckpoint, ResumableEpochs, files_fingerprint, restore_rng, rng_state
from artsim.learn.training import BestEpoch


def _tree(root: Path) -> Path:
    (root / "code" / "__pycache__").mkdir(parents=True)
    (root / "code" / "a.py").write_text("a = 1\n")
    (root / "code" / "__pycache__" / "a.pyc").write_bytes(b"compiled")
    (root / "shard.bin").write_bytes(b"x" * 4096)
    return root


def test_the_fingerprint_follows_content_names_and_what_is_missing(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    deps = [root / "code", root / "shard.bin", root / "absent"]
    before = files_fingerprint(deps, "siamese")
    assert files_fingerprint(deps, "siamese") == before
    assert files_fingerprint(deps, "finetune") != before  # the salt: stage, params, torch
    (root / "code" / "__pycache__" / "a.pyc").write_bytes(b"recompiled")
    assert files_fingerprint(deps, "siamese") == before  # bytecode decides nothing
    (root / "code" / "a.py").write_text("a = 2\n")
    changed = files_fingerprint(deps, "siamese")
    assert changed != before
    (root / "code" / "a.py").rename(root / "code" / "b.py")
    assert files_fingerprint(deps, "siamese") not in {before, changed}
    (root / "absent").write_text("now here")
    assert files_fingerprint(deps, "siamese") != files_fingerprint(deps[:2], "siamese")


def test_large_files_are_fingerprinted_by_size_and_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(resume, "CONTENT_HASHED_BYTES", 1024)
    shard = _tree(tmp_path) / "shard.bin"
    before = files_fingerprint([shard])
    stamp = shard.stat().st_mtime_ns
    shard.write_bytes(b"y" * 4096)  # same size: only the time tells
    os.utime(shard, ns=(stamp, stamp))
    assert files_fingerprint([shard]) == before
    os.utime(shard, ns=(stamp + 1, stamp + 1))
    assert files_fingerprint([shard]) != before


def _saved(tmp_path: Path, fingerprint: str = "f" * 8) -> EpochCheckpoint:
    checkpoint = EpochCheckpoint(tmp_path / "checkpoints", fingerprint)
    checkpoint.save({"history": [{"train_mse": 0.5}], "weights": torch.arange(4.0)})
    return checkpoint


def test_a_checkpoint_round_trips_and_is_gone_once_discarded(tmp_path: Path) -> None:
    checkpoint = _saved(tmp_path)
    state = checkpoint.load()
    assert state["history"] == [{"train_mse": 0.5}]
    assert torch.equal(state["weights"], torch.arange(4.0))
    assert [path.name for path in checkpoint.path.parent.iterdir()] == ["checkpoint.pt"]  # no partial file left
    checkpoint.discard()
    assert not checkpoint.path.parent.exists()
    assert checkpoint.load() is None


def test_only_the_writer_saves_or_discards(tmp_path: Path) -> None:
    reader = EpochCheckpoint(tmp_path, "f" * 8, writer=False)
    reader.save({"history": []})
    assert not reader.path.exists()
    _saved(tmp_path)
    EpochCheckpoint(tmp_path / "checkpoints", "f" * 8, writer=False).discard()
    assert _saved(tmp_path).load() is not None


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty", "another run's"])
def test_a_damaged_or_foreign_checkpoint_is_reported_and_ignored(tmp_path: Path, damage: str,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    checkpoint = _saved(tmp_path)
    data = checkpoint.path.read_bytes()
    if damage == "another run's":
        _saved(tmp_path, "g" * 8).path.replace(checkpoint.path)
    else:
        damaged = {"truncated": data[: len(data) // 2], "garbage": b"not a zip file", "empty": b""}[damage]
        checkpoint.path.write_bytes(damaged)
    with caplog.at_level(logging.WARNING):
        assert checkpoint.load() is None
    assert "training starts from the first epoch" in caplog.text


def test_a_checkpoint_that_would_run_code_is_refused(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    checkpoint = EpochCheckpoint(tmp_path, "f" * 8)
    checkpoint.path.parent.mkdir(parents=True)
    torch.save({"fingerprint": "f" * 8, "payload": Path("/etc/passwd")}, checkpoint.path)  # not plain data
    assert checkpoint.load() is None


def test_abandoned_checkpoints_of_other_runs_are_removed_when_a_run_starts(tmp_path: Path) -> None:
    old, recent = _saved(tmp_path, "old"), _saved(tmp_path, "recent")
    cut_short = tmp_path / "checkpoints" / "cut-short"
    cut_short.mkdir()
    (cut_short / ".checkpoint.pt.123").write_bytes(b"half a save")
    long_ago = time.time() - resume.ABANDONED_AFTER_S - 60
    for folder in (old.path.parent, cut_short):
        os.utime(folder, (long_ago, long_ago))
    _saved(tmp_path, "new")
    assert not old.path.parent.exists() and not cut_short.exists()
    assert recent.load() is not None


def test_restored_generators_draw_what_they_would_have_drawn() -> None:
    torch.manual_seed(1), np.random.seed(2), random.seed(3), np.random.normal()  # a cached gaussian too
    saved = rng_state()
    expected = (torch.rand(3), np.random.normal(size=3), random.random())
    torch.manual_seed(9), np.random.seed(9), random.seed(9)
    restore_rng(saved)
    drawn = (torch.rand(3), np.random.normal(size=3), random.random())
    assert torch.equal(drawn[0], expected[0])
    assert np.array_equal(drawn[1], expected[1])
    assert drawn[2] == expected[2]


def _offered(model: nn.Module, best: BestEpoch, history: list, epoch: int, key: tuple | None) -> None:
    with torch.no_grad():
        model.weight.add_(1.0)
    history.append({"val_mse": float(epoch)})
    best.offer(epoch, key, model, history[-1])


@pytest.mark.parametrize("best_is_last", [True, False])
def test_resuming_restores_the_parts_the_best_epoch_and_replays_the_history(tmp_path: Path, best_is_last: bool) -> None:
    model, optimizer_model = nn.Linear(2, 2), nn.Linear(2, 2)
    optimizer = torch.optim.AdamW(optimizer_model.parameters(), lr=0.1)
    optimizer_model(torch.ones(1, 2)).sum().backward()
    optimizer.step()
    checkpoint = EpochCheckpoint(tmp_path, "f" * 8)
    best, history = BestEpoch(), []
    saving = ResumableEpochs(checkpoint, model, optimizer=optimizer)
    for epoch in range(2):
        _offered(model, best, history, epoch, None if best_is_last else (-float(epoch),))
        saving.epoch_done(best, history)

    fresh, fresh_optimizer = nn.Linear(2, 2), torch.optim.AdamW(nn.Linear(2, 2).parameters(), lr=0.1)
    restored, replayed = BestEpoch(), []
    first = ResumableEpochs(checkpoint, fresh, optimizer=fresh_optimizer).resume(restored, [], replayed.append)
    assert first == 2
    assert replayed == history
    assert torch.equal(fresh.weight, model.weight)
    assert restored.epoch == (1 if best_is_last else 0)
    assert torch.equal(restored.state["weight"], best.state["weight"])
    assert fresh_optimizer.state_dict()["state"][0]["step"] == optimizer.state_dict()["state"][0]["step"]
    assert ResumableEpochs(None, fresh).resume(BestEpoch(), [], None) == 0  # no checkpoint: from the start
    # A checkpoint of other parts (another loop's) is not half applied: the run starts afresh.
    assert ResumableEpochs(checkpoint, nn.Linear(2, 2)).resume(BestEpoch(), [], None) == 0
