"""Every rank takes every step, and ranks that stop meeting fail in minutes, naming the stage."""
from __future__ import annotations

import sys
import textwrap
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from artsim.core.distributed import DEFAULT_COLLECTIVE_TIMEOUT, TIMEOUT_VARIABLE, Ranks, collective_timeout
from artsim.learn.batches import ShuffledBatches
from artsim.siamese.batches import GroupedPairBatches
from tests.support.rank_processes import run_to_deadline


def shares_per_rank(make, world_size: int) -> list[list[list[int]]]:
    return [list(make(Ranks(rank, world_size))) for rank in range(world_size)]


@pytest.mark.parametrize(("n_items", "batch_size", "world_size"),
                         [(18, 6, 2), (19, 6, 2), (20, 6, 2), *((n, 16, 8) for n in range(1, 50))])
def test_every_rank_takes_every_step_of_grouped_pairs(n_items: int, batch_size: int, world_size: int) -> None:
    groups = np.random.default_rng(n_items).integers(0, max(1, n_items // 3), n_items)
    shares = shares_per_rank(lambda r: GroupedPairBatches(groups, batch_size, 0, r.rank, r.world_size), world_size)
    batches = GroupedPairBatches(groups, batch_size, 0).global_batches()
    # The same number of steps on every rank (an empty share included)...
    assert [len(rank_shares) for rank_shares in shares] == [len(batches)] * world_size
    # ...and together the shares of a step are that step's global batch.
    for step, batch in enumerate(batches):
        assert sorted(i for rank_shares in shares for i in rank_shares[step]) == sorted(batch.tolist())


@pytest.mark.parametrize(("n_items", "batch_size", "world_size"), [(9, 3, 2), (9, 8, 2), (19, 6, 2), (17, 16, 8)])
def test_every_rank_takes_every_step_of_shuffled_images(n_items: int, batch_size: int, world_size: int) -> None:
    shares = shares_per_rank(lambda r: ShuffledBatches(n_items, batch_size, 0, r), world_size)
    alone = ShuffledBatches(n_items, batch_size, 0)
    assert [len(rank_shares) for rank_shares in shares] == [len(alone)] * world_size
    for step, batch in enumerate(alone.global_batches()):
        assert sorted(i for rank_shares in shares for i in rank_shares[step]) == sorted(batch.tolist())
    alone.set_epoch(1)
    assert not np.array_equal(
        np.concatenate(alone.global_batches()), np.concatenate(ShuffledBatches(n_items, batch_size, 0).global_batches())
    )


def test_the_collective_timeout_is_minutes_and_can_be_set() -> None:
    assert timedelta(minutes=5) <= collective_timeout({}) == DEFAULT_COLLECTIVE_TIMEOUT <= timedelta(hours=1)
    assert collective_timeout({TIMEOUT_VARIABLE: "7200"}) == timedelta(hours=2)
    for bad in ("0", "-3", "ten", "nan"):
        with pytest.raises(ValueError, match=TIMEOUT_VARIABLE):
            collective_timeout({TIMEOUT_VARIABLE: bad})


def test_ranks_that_stop_meeting_fail_naming_the_stage(tmp_path: Path) -> None:
    # Rank 1 skips a step that rank 0 takes, as an uneven sampler made it do.
    (tmp_path / "uneven.py").write_text(textwrap.dedent("""
        import time
        import torch
        import torch.distributed as dist
        from artsim.core.distributed import process_group, ranks_from_env

        ranks = ranks_from_env()
        with process_group(ranks, "gloo", stage="uneven"):
            if ranks.rank == 0:
                dist.all_reduce(torch.ones(1))
            else:
                time.sleep(120)
    """))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "uneven.py"]
    result = run_to_deadline(command, tmp_path, deadline_s=90, collective_timeout_s="3")
    assert result.returncode != 0
    assert "uneven: rank 0 of 2 waited more than 0:00:03 for the other ranks" in result.stderr
