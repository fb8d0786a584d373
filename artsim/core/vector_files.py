"""Small cached vectors, checked on every read: a cache entry left torn by a crash, emptied or
edited is noticed, deleted and reported, never used. One vector per .npy file (read_vector), or
several named vectors in one file of our own small format (read_vectors)."""
from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from artsim.core.images import write_atomically


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


# --- several named vectors in one file -----------------------------------------------------
# Layout: MAGIC | header length (<u4) | header: JSON [[name, length], ...] | the vectors as
# little-endian float64, in header order | crc32 of all that precedes (<u4). Read in one go
# and parsed with plain slicing: np.load of an .npz takes ~10x longer (zipfile), and a read
# checks the checksum and every size before it believes any of it.
MAGIC = b"ARTSVEC1"
_PREFIX = len(MAGIC) + 4


def write_vectors(path: Path, vectors: Mapping[str, np.ndarray]) -> None:
    """Write `vectors` (name -> 1-D float64 values) to one file, atomically (format above)."""
    arrays = {name: np.asarray(vector, dtype="<f8") for name, vector in vectors.items()}
    if any(array.ndim != 1 for array in arrays.values()):
        raise ValueError("write_vectors stores 1-D vectors only")
    header = json.dumps([[name, len(array)] for name, array in arrays.items()]).encode()
    blob = b"".join([MAGIC, struct.pack("<I", len(header)), header, *(a.tobytes() for a in arrays.values())])
    # No fsync, as write_vector: a torn file is caught by the checksum on read and recomputed.
    write_atomically(path, lambda handle: handle.write(blob + struct.pack("<I", zlib.crc32(blob))), durable=False)


def read_vectors(path: Path, lengths: Mapping[str, int]) -> tuple[dict[str, np.ndarray] | None, str | None]:
    """(name -> vector, None) for a whole file of write_vectors whose values are finite and whose
    vectors named in `lengths` have that length; (None, None) when there is no file; (None, what
    is wrong) when it is damaged, which is then deleted."""
    try:
        blob = path.read_bytes()
    except FileNotFoundError:
        return None, None
    except OSError as exc:
        vectors, problem = None, f"unreadable: {exc}"
    else:
        vectors, problem = _parse_vectors(blob, lengths)
    if problem:
        path.unlink(missing_ok=True)
    return vectors, problem


def _parse_vectors(blob: bytes, lengths: Mapping[str, int]) -> tuple[dict[str, np.ndarray] | None, str | None]:
    if len(blob) < _PREFIX + 4 or not blob.startswith(MAGIC):
        return None, "not a vector file (too short or wrong magic)"
    if zlib.crc32(blob[:-4]) != struct.unpack("<I", blob[-4:])[0]:
        return None, "checksum mismatch (torn or altered)"
    (header_length,) = struct.unpack_from("<I", blob, len(MAGIC))
    table = _table(blob[_PREFIX:_PREFIX + header_length])
    if table is None:
        return None, "malformed header"
    total = sum(count for _, count in table)
    if _PREFIX + header_length + 8 * total + 4 != len(blob):
        return None, f"{len(blob)} bytes, not what the header describes"
    values = np.frombuffer(blob, "<f8", total, _PREFIX + header_length).astype(np.float64)
    if not np.isfinite(values).all():
        return None, "non-finite values"
    ends = np.cumsum([count for _, count in table])
    vectors = {name: part for (name, _), part in zip(table, np.split(values, ends[:-1]))}
    wrong = [f"{name} has {len(vectors[name])} values, not {length}"
             for name, length in lengths.items() if name in vectors and len(vectors[name]) != length]
    return (None, "; ".join(wrong)) if wrong else (vectors, None)


def _table(header: bytes) -> list[tuple[str, int]] | None:
    """The header's (name, length) pairs, or None when it is not a list of unique such pairs."""
    try:
        table = json.loads(header)
    except ValueError:
        return None
    if not isinstance(table, list) or not all(
            isinstance(e, list) and len(e) == 2 and isinstance(e[0], str) and type(e[1]) is int and e[1] >= 0
            for e in table):
        return None
    return [(name, count) for name, count in table] if len({name for name, _ in table}) == len(table) else None
