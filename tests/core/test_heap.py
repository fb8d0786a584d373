"""Freed memory is handed back after a loop of large blocks (artsim.core.heap)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from artsim.core import heap
from tests.support.helpers import REPO_ROOT

# What evaluate's head does, in numpy: per call a few blocks of 8 MiB made and freed, a small result kept. Prints how
# much more is resident after the loop than before it, in MiB.
CHURN = """
import numpy as np
from artsim.core.heap import give_back_freed_memory
def resident():
    with open('/proc/self/statm') as handle:
        return int(handle.read().split()[1]) * 4096 / 2**20
kept, start = [], resident()
for _ in range(40):
    a = np.ones((2048, 1024), np.float32); b = a * 2; both = np.concatenate([a, b], 1); shifted = both - 1
    kept.append(shifted[:, 0].astype(np.float64)); kept.append([str(i) for i in range(300)])
    del a, b, both, shifted
"""
MEASURE = "print(resident() - start)\n"


def growth_after(churn: str) -> float:
    result = subprocess.run([sys.executable, "-c", churn + MEASURE], cwd=REPO_ROOT, capture_output=True, text=True,
                            check=True, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    return float(result.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not heap._is_glibc() or not os.path.exists("/proc/self/statm"),
                    reason="glibc's allocator, measured in /proc")
def test_what_glibc_keeps_of_freed_blocks_is_handed_back() -> None:
    kept = growth_after(CHURN)
    handed_back = growth_after(CHURN + "assert give_back_freed_memory()\n")
    assert handed_back < 16 < kept / 2


def test_elsewhere_nothing_is_done(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_such_name(name: str) -> str:
        raise ValueError(name)

    monkeypatch.setattr(heap.os, "confstr", no_such_name)
    assert heap.give_back_freed_memory() is False
