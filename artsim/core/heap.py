"""Freed memory handed back to the system after a loop that makes and frees large blocks.

glibc's malloc serves a block of at least M_MMAP_THRESHOLD bytes (128 KiB at start) by a mapping of its own, returned
when freed; but each time such a block is freed it raises the threshold to the block's size (up to 32 MiB), and from
then on blocks of that size come from its heap, where a freed one stays resident until the heap's top is free. A loop
that makes and frees tensors of a few MiB (evaluate's head, a call of pairs at a time) then leaves hundreds of MiB
resident that nothing holds, on top of what the next step holds (bench/heap.py measures it). Fixing the threshold
instead would map every large block afresh, and every convolution pays for it (the same bench times a training step).
"""
from __future__ import annotations

import ctypes
import os


def give_back_freed_memory() -> bool:
    """Return the free pages of every malloc arena to the system (glibc's malloc_trim); True where some were.
    False where the C library is not glibc: nothing is done there."""
    if not _is_glibc():
        return False
    return bool(ctypes.CDLL(None).malloc_trim(0))


def _is_glibc() -> bool:
    try:
        return (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc")
    except (ValueError, OSError, AttributeError):  # no such name here (musl, macOS, Windows)
        return False
