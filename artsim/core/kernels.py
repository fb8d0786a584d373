"""The CPU kernels every stage computes with, pinned so that one commit gives the same bits on
every x86-64 machine with AVX2 (docs/reproducibility.md; bench/kernels.py measures each lever).

Each numerical library picks its vectorised kernels by the CPU it finds, and the kernels of
two instruction sets (AVX2, AVX-512) or two thread counts sum in different orders: an Intel
Xeon and an AMD EPYC then train different models from the same commit. The libraries read
their choice from the environment once, when they load, so pin_cpu_kernels() must run before
torch, numpy, onnxruntime or OpenCV is imported: stages/__init__.py and tests/conftest.py call it.

ARTSIM_NATIVE_KERNELS=1 leaves every library its own choice (the CPU's fastest kernels, all
cores), for users who want speed over matching bits.
"""
from __future__ import annotations

import os
import platform
import sys
import warnings
from collections.abc import MutableMapping
from pathlib import Path

OPT_OUT = "ARTSIM_NATIVE_KERNELS"

# Threads of every library: the order of a parallel sum follows the thread count, so it is a
# constant, not the machine's core count. Two, because the embedded default runs on a laptop
# and every x86-64 machine has two cores; bench/kernels.py measures what it costs.
THREADS = 2

# Instruction sets above AVX2 (AVX-512 and later) that a library would pick on a newer CPU,
# in each library's own spelling.
_NUMPY_ABOVE_AVX2 = "X86_V4 AVX512_ICL AVX512_SPR"
# OpenCV dispatches one group above AVX2 (its build information: "AVX512_SKX", spelled AVX512-SKX at run
# time), and warns on stderr about naming a group the CPU lacks: it is named only where the CPU has it.
_OPENCV_ABOVE_AVX2 = "AVX512-SKX"
_AVX512_SKX_FLAGS = {"avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"}

ISA_PINS: dict[str, str] = {
    "ATEN_CPU_CAPABILITY": "avx2",              # PyTorch's own vectorised kernels
    "ONEDNN_MAX_CPU_ISA": "AVX2",               # oneDNN: PyTorch's convolutions
    "MKL_CBWR": "COMPATIBLE",                   # MKL (PyTorch's matrix products): one code path on Intel and AMD
    "NPY_DISABLE_CPU_FEATURES": _NUMPY_ABOVE_AVX2,
    "OPENBLAS_CORETYPE": "Haswell",             # numpy/scipy's OpenBLAS: its AVX2 kernels
}
THREAD_PINS: dict[str, str] = {
    "OMP_NUM_THREADS": str(THREADS),            # PyTorch's intra-op pool (OpenMP)
    "MKL_NUM_THREADS": str(THREADS),
    "MKL_DYNAMIC": "FALSE",                     # MKL may not lower the count on its own
    "OPENBLAS_NUM_THREADS": str(THREADS),
}


# The libraries that read the variables when they load.
_READ_AT_LOAD = ("torch", "numpy", "onnxruntime", "cv2")


def _cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return set()
    line = next((line for line in text.splitlines() if line.startswith("flags")), "")
    return set(line.partition(":")[2].split())


def has_avx2(machine: str | None = None, flags: set[str] | None = None) -> bool:
    """Whether the AVX2 kernels can run here: naming them on a CPU without AVX2 would crash."""
    if (machine or platform.machine()).lower() not in ("x86_64", "amd64"):
        return False
    return {"avx2", "fma"} <= (_cpu_flags() if flags is None else flags)


def opencv_pins(flags: set[str] | None = None) -> dict[str, str]:
    """OpenCV kept off its AVX-512 kernels where the CPU has them (elsewhere it cannot pick them)."""
    has_group = _AVX512_SKX_FLAGS <= (_cpu_flags() if flags is None else flags)
    return {"OPENCV_CPU_DISABLE": _OPENCV_ABOVE_AVX2} if has_group else {}


def native_kernels(environ: MutableMapping[str, str] = os.environ) -> bool:
    return environ.get(OPT_OUT, "").strip().lower() in ("1", "true", "yes")


def pin_cpu_kernels(environ: MutableMapping[str, str] = os.environ, avx2: bool | None = None) -> dict[str, str]:
    """Set the variables that decide the kernels (overriding any already set); returns what it set.

    Thread counts are pinned on every machine; instruction sets only where AVX2 runs (x86-64 since
    2013): elsewhere (ARM, older CPUs) the kernels differ anyway and the run is not bit-exact.
    """
    if native_kernels(environ):
        return {}
    isa = {**ISA_PINS, **opencv_pins()} if (has_avx2() if avx2 is None else avx2) else {}
    pins = {**THREAD_PINS, **isa}
    loaded = sorted(name for name in _READ_AT_LOAD if name in sys.modules)
    if environ is os.environ and loaded and any(environ.get(key) != value for key, value in pins.items()):
        warnings.warn(f"{', '.join(loaded)} loaded before the CPU kernels were pinned: this process computes on its "
                      "own kernels, the processes it starts on the pinned ones", RuntimeWarning, stacklevel=2)
    environ.update(pins)
    return pins


def pinned_threads(environ: MutableMapping[str, str] = os.environ) -> int | None:
    """The thread count a library that reads no variable (onnxruntime) must be given; None: its own."""
    return None if native_kernels(environ) else THREADS
