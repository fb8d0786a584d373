"""Running multi-process stages in tests: with a deadline, a short collective timeout, and
every process they started killed (by PID) when they overrun."""
from __future__ import annotations

import os
import subprocess
import time

import psutil
import pytest

from tests.support.helpers import REPO_ROOT

DEADLINE_S = 300  # a healthy run here takes well under a minute
COLLECTIVE_TIMEOUT_S = "60"  # ranks that stop meeting fail after this, naming the stage


def stage_env(collective_timeout_s: str = COLLECTIVE_TIMEOUT_S) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1",
            "ARTSIM_COLLECTIVE_TIMEOUT_S": collective_timeout_s}


def run_to_deadline(command: list[str], cwd: os.PathLike, deadline_s: float = DEADLINE_S,
                    collective_timeout_s: str = COLLECTIVE_TIMEOUT_S) -> subprocess.CompletedProcess:
    """Run `command`; past the deadline, kill it and every process it started (ranks run in
    sessions of their own) and fail the test as a hang."""
    with subprocess.Popen(command, cwd=cwd, env=stage_env(collective_timeout_s), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True) as process:
        try:
            stdout, stderr = process.communicate(timeout=deadline_s)
        except subprocess.TimeoutExpired:
            kill_tree(process.pid)
            stdout, stderr = process.communicate()
            pytest.fail(f"{' '.join(command)} still running after {deadline_s}s (ranks hung?)\n{stderr[-3000:]}")
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def kill_tree(pid: int) -> None:
    """Kill the process `pid` and all its descendants."""
    try:
        root = psutil.Process(pid)
        family = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    for process in family:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(family, timeout=10)


def command_line(process: psutil.Process) -> list[str]:
    try:
        return process.cmdline()
    except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
        return []


def still_running(processes: list[psutil.Process], within_s: float) -> list[psutil.Process]:
    """Those of `processes` still alive after up to `within_s` seconds (zombies count as ended:
    an orphan's new parent may be slow to reap it)."""
    deadline = time.monotonic() + within_s
    while True:
        alive = []
        for process in processes:
            try:
                if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                    alive.append(process)
            except psutil.NoSuchProcess:
                pass
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(0.5)
