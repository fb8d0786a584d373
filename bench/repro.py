"""Budget check for `dvc repro` of the embedded default (venv already built).

Runs in the repository itself: `dvc repro --force` (every stage, from ingest) and then a
no-op `dvc repro`, reporting wall time and the peak resident memory of the largest process
(each stage is its own process). Usage: `.venv/bin/python bench/repro.py`
"""
from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def timed(args: list[str]) -> float:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    start = time.perf_counter()
    subprocess.run(args, cwd=REPO_ROOT, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    full = timed(["dvc", "repro", "--force"])
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    noop = min(timed(["dvc", "repro"]) for _ in range(3))
    print(f"dvc repro --force : {full:7.1f} s   (budget 300 s)")
    print(f"peak RSS, largest process: {peak_mib:7.0f} MiB (budget 4096 MiB)")
    print(f"no-op dvc repro   : {noop:7.2f} s   (budget 3 s, best of 3)")


if __name__ == "__main__":
    main()
