"""The CPU kernels a stage computes with are pinned before its libraries load (artsim.core.kernels)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from artsim.core.kernels import (
    ISA_PINS,
    OPT_OUT,
    THREAD_PINS,
    THREADS,
    has_avx2,
    opencv_pins,
    pin_cpu_kernels,
    pinned_threads,
)
from tests.support.helpers import REPO_ROOT

# What a stage's process sees once `stages` is imported: torch's kernels and thread count.
PROBE = ("import stages, json, torch; "
         "print(json.dumps([torch.backends.cpu.get_cpu_capability(), torch.get_num_threads()]))")


def stage_process_sees(**env: str) -> list:
    """[ATen capability, torch threads] in a fresh process started with `env`, as another machine would set it
    (without the pins this session's processes inherit)."""
    pinned = {*ISA_PINS, *THREAD_PINS, "OPENCV_CPU_DISABLE"}
    inherited = {key: value for key, value in os.environ.items() if key not in pinned}
    environ = {**inherited, "PYTHONPATH": str(REPO_ROOT), **env}
    result = subprocess.run([sys.executable, "-c", PROBE], env=environ, cwd=REPO_ROOT, capture_output=True, text=True,
                            check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not has_avx2(), reason="the instruction-set pins apply only where AVX2 runs")
def test_a_stage_overrides_the_kernels_and_threads_a_machine_would_pick() -> None:
    # ATen's portable kernels and one thread stand in for another CPU and core count.
    assert stage_process_sees(ATEN_CPU_CAPABILITY="default", OMP_NUM_THREADS="1", **{OPT_OUT: "0"}) == ["AVX2", THREADS]


def test_the_opt_out_leaves_the_machine_its_own_kernels() -> None:
    assert stage_process_sees(ATEN_CPU_CAPABILITY="default", OMP_NUM_THREADS="1", **{OPT_OUT: "1"}) == ["DEFAULT", 1]


def test_pins_thread_counts_everywhere_and_instruction_sets_only_where_avx2_runs() -> None:
    with_avx2, without = {"OMP_NUM_THREADS": "16", "ATEN_CPU_CAPABILITY": "avx512"}, {"OMP_NUM_THREADS": "16"}
    assert pin_cpu_kernels(with_avx2, avx2=True) == {**THREAD_PINS, **ISA_PINS, **opencv_pins()}
    assert with_avx2["OMP_NUM_THREADS"] == str(THREADS) and with_avx2["ATEN_CPU_CAPABILITY"] == "avx2"
    assert pin_cpu_kernels(without, avx2=False) == THREAD_PINS
    assert "ATEN_CPU_CAPABILITY" not in without  # naming AVX2 kernels on a CPU without them would crash


def test_opencv_is_kept_off_avx512_only_where_the_cpu_has_it() -> None:
    # Naming a group the CPU lacks makes OpenCV print a warning at every import (a stage's, the CLI's).
    assert opencv_pins({"avx2", "fma"}) == {}
    assert opencv_pins({"avx2", "fma", "avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"}) == {
        "OPENCV_CPU_DISABLE": "AVX512-SKX"}


def test_importing_opencv_under_the_pins_prints_nothing() -> None:
    environ = {**os.environ, **THREAD_PINS, **ISA_PINS, **opencv_pins()}
    result = subprocess.run([sys.executable, "-c", "import cv2, numpy"], env=environ, capture_output=True, text=True,
                            check=True)
    assert result.stderr == ""


def test_the_opt_out_changes_nothing() -> None:
    environ = {OPT_OUT: "1", "OMP_NUM_THREADS": "16"}
    assert pin_cpu_kernels(environ, avx2=True) == {}
    assert environ == {OPT_OUT: "1", "OMP_NUM_THREADS": "16"}
    assert pinned_threads(environ) is None and pinned_threads({}) == THREADS


def test_avx2_is_recognised_only_on_x86_64_with_avx2_and_fma() -> None:
    assert has_avx2("x86_64", {"sse2", "avx", "avx2", "fma"})
    assert not has_avx2("x86_64", {"sse2", "avx"})
    assert not has_avx2("aarch64", {"avx2", "fma"})
