"""Small cached vectors, one .npy file each, checked on every read: a cache entry left torn
by a crash, emptied or edited is noticed, deleted and reported, never used."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from artsim.images import write_atomically


def read_vector(path: Path, dtype: np.dtype, length: int) -> tuple[np.ndarray | None, str | None]:
    """(the vector, None) when `path` holds `length` finite values of `dtype`; (None, None) when
    there is no entry; (None, what is wrong) when the entry is damaged, which is then deleted."""
    try:
        vector = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        return None, None
    except (OSError, ValueError, EOFError) as exc:
        problem = f"not a .npy file: {exc}"
    else:
        problem = _damage(vector, np.dtype(dtype), length)
        if problem is None:
            return vector, None
    path.unlink(missing_ok=True)
    return None, problem


def _damage(vector: np.ndarray, dtype: np.dtype, length: int) -> str | None:
    if vector.dtype != dtype or vector.shape != (length,):
        return f"{vector.dtype} {vector.shape}, not {dtype} ({length},)"
    if not np.isfinite(vector).all():
        return "non-finite values"
    return None


def write_vector(path: Path, vector: np.ndarray, dtype: np.dtype) -> None:
    # No fsync: a torn entry after a power cut is caught by the check on read and recomputed.
    write_atomically(path, lambda handle: np.save(handle, np.asarray(vector, dtype=dtype), allow_pickle=False),
                     durable=False)
