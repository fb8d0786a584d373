"""The index on disk: manifest.json (entries and checksums) beside vectors.npy and norms.npy.

- vectors.npy: (n, dim) float32 unit embeddings, one row per entry, loaded with mmap_mode="r" (a
  search reads the pages it touches, not the whole file); norms.npy: each embedding's length, so the
  model's head still sees the raw embedding (unit * norm).
- ann.faiss (only past artsim.index.ann.EXACT_LIMIT usable originals): the compact approximate index
  (artsim.index.ann.CompactIndex) that proposes the candidates a search re-ranks exactly. Its sha256 is
  checked on every load, before faiss reads a byte of it; a bad one is reported and the index is searched
  exactly (slower, never wrong) until it is rebuilt. Building it takes minutes at a million originals, so its
  record also says what it was built from (the vectors' sha256 and which rows are usable): a save of the same
  vectors keeps it, and an update that changes nothing (is_current) writes nothing at all.
- manifest.json: format version, the model fingerprint, the entries as columns (id, location
  relative to the collection's root, sha256, size, mtime_ns, pHash, artist, title, problem: why an
  original has no vector, "" when it has one), the sha256 of the entries, and of each array file with
  the size and mtime it had when written.

Every file is written under a temporary name and renamed (artsim.core.images.write_atomically), the
manifest last: a crash leaves the old index, or arrays that do not match the manifest's checksums.
Whatever does not check out (missing, truncated, edited, another format) is reported by load_index and
the index is rebuilt, never used.
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from artsim.core.hashes import hashes_from_hex
from artsim.core.images import content_hash, file_hash, write_atomically
from artsim.index.ann import CompactIndex, compact_index, wants_compact

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
VECTORS = "vectors.npy"
NORMS = "norms.npy"
ANN = "ann.faiss"


@dataclass
class Entries:
    """The per-original columns, in row order."""

    ids: list[str]
    locations: list[str]
    sha256: list[str]
    sizes: list[int]
    mtimes_ns: list[int]
    phash: list[str]  # 16 hex digits, "" when unknown
    artists: list[str]
    titles: list[str]
    problems: list[str]

    @classmethod
    def empty(cls) -> "Entries":
        return cls(*([] for _ in fields(cls)))

    def append(self, **values: object) -> None:
        for column in fields(self):
            getattr(self, column.name).append(values[column.name])

    def __len__(self) -> int:
        return len(self.ids)

    def as_json(self) -> dict[str, list]:
        return {column.name: getattr(self, column.name) for column in fields(self)}


@dataclass
class StoredIndex:
    model: str
    root: str  # the collection's root when built: locations are relative to it
    entries: Entries
    vectors: np.ndarray  # (n, dim) float32 unit rows, memory-mapped
    norms: np.ndarray    # (n,) float32
    compact: CompactIndex | None = None  # past EXACT_LIMIT usable originals: what proposes a search's candidates
    compact_problem: str | None = None   # why ann.faiss was not used (searched exactly instead)
    compact_record: dict | None = None   # the manifest's record of ann.faiss, when `compact` was read from it

    @property
    def usable(self) -> np.ndarray:
        return np.array([not problem for problem in self.entries.problems], dtype=bool)

    @property
    def phash_bits(self) -> np.ndarray:
        return hashes_from_hex(self.entries.phash)


def _entries_checksum(entries: dict[str, list]) -> str:
    return content_hash(json.dumps(entries, sort_keys=True, separators=(",", ":")).encode())


def new_vector_file(folder: Path, count: int, dim: int) -> tuple[Path, np.ndarray]:
    """A temporary (count, dim) float32 .npy in `folder`, memory-mapped for writing row by row (memory stays
    flat however big the collection); save_index renames it into place."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f".tmp-{VECTORS}.{os.getpid()}"
    return path, np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(count, dim))


def _file_record(path: Path) -> dict[str, object]:
    status = path.stat()
    return {"sha256": file_hash(path), "size": status.st_size, "mtime_ns": status.st_mtime_ns}


def _file_problem(path: Path, record: dict) -> str | None:
    """None when `path` is the file the manifest recorded. The same size and mtime as when written means
    nobody wrote it since (hashing 800 MB of vectors at each search would cost seconds); anything else is
    hashed, and must match."""
    status = path.stat()
    if (status.st_size, status.st_mtime_ns) == (record["size"], record["mtime_ns"]):
        return None
    return None if file_hash(path) == record["sha256"] else f"{path.name} does not match its checksum"


def is_current(index: StoredIndex, model: str, root: Path, entries: Entries) -> bool:
    """Whether `index`, as load_index read it with its files verified, already is what save_index would write for
    these: the same model, root and entries (an original whose entry is unchanged keeps its vector, so the
    vectors are the same too), and a compact index that loaded when this version wants one, none when not."""
    return (index.model == model and index.root == str(root) and index.entries == entries
            and index.compact_problem is None and (index.compact is not None) == wants_compact(index.usable))


def save_index(
    folder: Path, model: str, root: Path, entries: Entries, vector_file: Path, vectors: np.ndarray, norms: np.ndarray,
    previous: StoredIndex | None = None,
) -> None:
    """Put the index in place: `vector_file` (from new_vector_file, holding `vectors`) is renamed to
    vectors.npy; the norms, the compact index (kept from `previous`, the index load_index read from `folder`,
    when built from the same vectors), then the manifest with every checksum, are written after it."""
    if len(vectors) != len(entries) or len(norms) != len(entries):
        raise ValueError(f"{len(entries)} entries but {len(vectors)} vectors and {len(norms)} norms")
    vectors.flush()
    os.replace(vector_file, folder / VECTORS)
    write_atomically(folder / NORMS, lambda handle: np.save(handle, np.asarray(norms, dtype=np.float32)), durable=False)
    files = {name: _file_record(folder / name) for name in (VECTORS, NORMS)}
    usable = np.array([not problem for problem in entries.problems], dtype=bool)
    if ann_record := _save_compact(folder, vectors, usable, _compact_source(files[VECTORS]["sha256"], usable),
                                   previous):
        files[ANN] = ann_record
    columns = entries.as_json()
    manifest = {
        "format": FORMAT_VERSION,
        "model": model,
        "root": str(root),
        "count": len(entries),
        "dim": int(vectors.shape[1]),
        "files": files,
        "entries_sha256": _entries_checksum(columns),
        "entries": columns,
    }
    write_atomically(folder / MANIFEST, lambda handle: handle.write(json.dumps(manifest).encode()), durable=False)


def _compact_source(vectors_sha256: str, usable: np.ndarray) -> str:
    """What a compact index is built from: the vectors (their file's sha256) and which of their rows are usable."""
    return content_hash(vectors_sha256.encode() + usable.astype(np.uint8).tobytes())


def _save_compact(folder: Path, vectors: np.ndarray, usable: np.ndarray, source: str,
                  previous: StoredIndex | None) -> dict | None:
    """The record of ann.faiss for vectors built from `source`: `previous`'s, file untouched, when it loaded and was
    built from the same source; else built and written anew. None, and no file, when no compact index is wanted."""
    if not wants_compact(usable):
        (folder / ANN).unlink(missing_ok=True)
        return None
    kept = previous.compact_record if previous is not None else None  # set only where its compact index loaded
    if kept is not None and kept.get("built_from") == source:
        return kept
    compact = compact_index(vectors, usable)
    write_atomically(folder / ANN, lambda handle: handle.write(compact.to_bytes().tobytes()), durable=False)
    return {**_file_record(folder / ANN), "built_from": source}


def load_index(folder: Path, verify_files: bool = True) -> tuple[StoredIndex | None, str | None]:
    """(the index, None), (None, why it cannot be used), or (None, None) when there is none yet.

    `verify_files` checks the array files against the manifest (size and mtime, else their sha256: a file
    written since is caught, a flipped byte included); without it only their shapes are checked (a
    truncated or swapped file is still caught).
    """
    if not (folder / MANIFEST).exists():
        return None, None
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        if manifest.get("format") != FORMAT_VERSION:
            return None, f"format {manifest.get('format')!r}, this version reads {FORMAT_VERSION}"
        columns = manifest["entries"]
        if _entries_checksum(columns) != manifest["entries_sha256"]:
            return None, "the manifest's entries do not match their checksum"
        entries = Entries(**{column.name: list(columns[column.name]) for column in fields(Entries)})
        count, dim = int(manifest["count"]), int(manifest["dim"])
        if verify_files:
            if not {VECTORS, NORMS} <= set(manifest["files"]) <= {VECTORS, NORMS, ANN}:
                return None, f"the manifest lists files {sorted(manifest['files'])}"
            for name, record in manifest["files"].items():
                if name == ANN:
                    continue  # always checked by _load_compact
                if problem := _file_problem(folder / name, record):
                    return None, problem
        vectors = np.load(folder / VECTORS, mmap_mode="r", allow_pickle=False)
        norms = np.load(folder / NORMS, allow_pickle=False)
        ann_record = manifest["files"].get(ANN)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        return None, f"{type(exc).__name__}: {exc}"
    if (vectors.shape != (count, dim) or vectors.dtype != np.float32 or norms.shape != (count,)
            or any(len(getattr(entries, f.name)) != count for f in fields(Entries))):
        return None, f"arrays of shape {vectors.shape}/{norms.shape} for {count} entries of dimension {dim}"
    compact, compact_problem = _load_compact(folder, ann_record, count, dim)
    if compact_problem:
        log.warning("index %s: %s is not used (%s): searched exactly until rebuilt", folder, ANN, compact_problem)
    return StoredIndex(str(manifest["model"]), str(manifest["root"]), entries, vectors, norms, compact,
                       compact_problem, ann_record if compact is not None else None), None


def _load_compact(folder: Path, record: dict | None, count: int, dim: int) -> tuple[CompactIndex | None, str | None]:
    """The compact index the manifest lists, read only once its bytes hash to the recorded sha256 (faiss would
    read a damaged file as whatever its bytes say); (None, why) when it cannot be used, (None, None) for none."""
    if record is None:
        return None, None
    try:
        data = (folder / ANN).read_bytes()
        if len(data) != record["size"] or content_hash(data) != record["sha256"]:
            return None, f"{ANN} does not match its checksum (truncated or changed since written)"
        return CompactIndex.from_bytes(np.frombuffer(data, dtype=np.uint8), dim, count), None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return None, f"{type(exc).__name__}: {exc}"
