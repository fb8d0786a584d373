"""Bring an index up to date with its collection, reading only what changed.

Per original, in collection order:
- same id, location, size and mtime as indexed: nothing is read (hash, pHash and, for the same model, the vector
  are kept);
- otherwise its bytes are read and hashed; content the index already holds (a changed mtime, a move,
  a copy) keeps its pHash and vector; only new content is decoded, hashed (pHash) and embedded;
- a new model fingerprint re-embeds every original, keeping the content hashes and pHashes;
- an original the collection no longer has is dropped; one that cannot be read or decoded is kept
  as an entry with its reason (so it is not retried until it changes) and has no vector.
Embeddings are computed in batches and written row by row into a memory-mapped file. An update that finds
the index already current (artsim.index.store.is_current) writes nothing: the compact index, minutes to build at
a million originals, is rebuilt only when the vectors it was built from change (or it does not check out).
"""
from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image
from tqdm import tqdm

from artsim.core.hashes import hash_hex, phash_bits
from artsim.core.images import MAX_FILE_BYTES, ImageFile, ImageRejected, content_hash, load_rgb, read_regular_file
from artsim.core.shards import ShardMember
from artsim.index.collection import Collection, Original
from artsim.index.store import Entries, StoredIndex, is_current, load_index, new_vector_file, save_index

log = logging.getLogger(__name__)

DEFAULT_BATCH = 32


class Embedder(Protocol):
    """The model side of an index: what identifies its embeddings, their length, and the embedding of images."""

    fingerprint: str
    dim: int

    def __call__(self, images: Sequence[Image.Image]) -> np.ndarray: ...


@dataclass
class BuildReport:
    originals: int = 0
    unchanged: int = 0   # not read at all
    hashed: int = 0      # read and hashed (new or changed size/mtime)
    embedded: int = 0
    rebuilt_because: str | None = None  # the old index could not be used
    skipped: dict[str, str] = field(default_factory=dict)  # id -> why it has no vector

    def as_dict(self) -> dict:
        return dict(vars(self))


@dataclass
class _Previous:
    """The old index, looked up by id and by content."""

    index: StoredIndex | None
    same_model: bool

    def __post_init__(self) -> None:
        entries = self.index.entries if self.index else Entries.empty()
        self.entries = entries
        self.row_of_id = {identifier: row for row, identifier in enumerate(entries.ids)}
        self.row_of_sha = {
            sha: row for row, (sha, problem) in enumerate(zip(entries.sha256, entries.problems)) if sha and not problem
        }


def location_of(image: ImageFile, root: Path) -> str:
    """Where an original lies, relative to the collection's root when it is inside it."""
    if isinstance(image, ShardMember):
        return f"{_relative(image.shard, root)}#{image.offset}+{image.length}"
    return _relative(Path(image), root)


def image_at(root: Path, location: str) -> ImageFile:
    """The image a location of location_of names. The manifest is untrusted (edited, copied): a location that
    leads out of `root` ('..', an absolute path) or a malformed shard range is ImageRejected. Checked on the
    names, not through links: a link the collection itself holds is the owner's choice, as when indexing."""
    path_part, shard_mark, extent = location.partition("#")
    path = Path(os.path.normpath(root / path_part))
    if not path.is_relative_to(os.path.normpath(root)):
        raise ImageRejected("outside_collection", f"{location!r} is not inside the collection's folder")
    if not shard_mark:
        return path
    offset, plus, length = extent.partition("+")
    if not (offset.isdigit() and plus and length.isdigit()):
        raise ImageRejected("bad_shard_location", f"{location!r} is not shard#offset+length")
    return ShardMember(path, int(offset), int(length))


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _read(image: ImageFile) -> bytes:
    return image.read_bytes() if isinstance(image, ShardMember) else read_regular_file(Path(image), MAX_FILE_BYTES)


class _Builder:
    def __init__(
        self, folder: Path, collection: Collection, embedder: Embedder, previous: _Previous, batch_size: int
    ) -> None:
        self.collection, self.embedder, self.previous, self.batch_size = collection, embedder, previous, batch_size
        count = len(collection.originals)
        self.vector_file, self.vectors = new_vector_file(folder, count, embedder.dim)
        self.norms = np.zeros(count, dtype=np.float32)
        self.entries = Entries.empty()
        self.pending: list[tuple[int, Image.Image]] = []
        self.report = BuildReport(originals=count, rebuilt_because=None)

    def add(self, row: int, original: Original) -> None:
        # One entry's columns (artsim.index.store.Entries), filled in as the original is looked at.
        entry = {
            "ids": original.id,
            "locations": location_of(original.image, self.collection.root),
            "sha256": "",
            "sizes": -1,
            "mtimes_ns": -1,
            "phash": "",
            "artists": original.artist,
            "titles": original.title,
            "problems": "",
        }
        try:
            entry["sizes"], entry["mtimes_ns"] = original.stat_key()
            source, image = self._content(original, entry)
        except (OSError, ImageRejected) as exc:
            entry["problems"] = exc.reason if isinstance(exc, ImageRejected) else f"unreadable ({exc.strerror or exc})"
            source, image = None, None
        self.entries.append(**entry)
        if entry["problems"]:
            self.report.skipped[original.id] = entry["problems"]
        elif source is not None:
            self.vectors[row], self.norms[row] = self.previous.index.vectors[source], self.previous.index.norms[source]
        else:
            self.pending.append((row, image))
            if len(self.pending) >= self.batch_size:
                self.flush()

    def _content(self, original: Original, entry: dict) -> tuple[int | None, Image.Image | None]:
        """(old row whose vector serves, None) or (None, the decoded image to embed); fills sha256 and phash."""
        old, row = self.previous.entries, self.previous.row_of_id.get(original.id)
        unchanged = row is not None and (old.locations[row], old.sizes[row], old.mtimes_ns[row]) == (
            entry["locations"], entry["sizes"], entry["mtimes_ns"])
        data = None
        if unchanged:
            self.report.unchanged += 1
            if old.problems[row]:
                raise ImageRejected(old.problems[row])
            source = row
        else:
            data = _read(original.image)
            self.report.hashed += 1
            entry["sha256"] = content_hash(data)
            source = self.previous.row_of_sha.get(entry["sha256"])
        if source is not None:
            entry["sha256"], entry["phash"] = old.sha256[source], old.phash[source]
            if self.previous.same_model:
                return source, None
        image = load_rgb(data if data is not None else _read(original.image))
        if not entry["phash"]:
            entry["phash"] = hash_hex(phash_bits(image))
        return None, image

    def flush(self) -> None:
        if not self.pending:
            return
        rows = [row for row, _ in self.pending]
        embeddings = np.asarray(self.embedder([image for _, image in self.pending]), dtype=np.float32)
        norms = np.linalg.norm(embeddings, axis=1)
        self.vectors[rows] = embeddings / np.maximum(norms, 1e-12)[:, None]
        self.norms[rows] = norms
        self.report.embedded += len(rows)
        self.pending.clear()


def update_index(folder: Path, collection: Collection, embedder: Embedder, batch_size: int = DEFAULT_BATCH
                 ) -> tuple[StoredIndex, BuildReport]:
    """The index in `folder` made current with `collection` (created when there is none, rebuilt when damaged)."""
    old, problem = load_index(folder)
    if problem:
        log.warning("index %s cannot be used (%s): rebuilt", folder, problem)
    builder = _Builder(
        folder, collection, embedder, _Previous(old, old is not None and old.model == embedder.fingerprint), batch_size
    )
    builder.report.rebuilt_because = problem
    try:
        for row, original in enumerate(tqdm(collection.originals, desc="index originals", unit="image", disable=None)):
            builder.add(row, original)
        builder.flush()
        current = old is not None and is_current(old, embedder.fingerprint, collection.root, builder.entries)
        if not current:
            save_index(folder, embedder.fingerprint, collection.root, builder.entries, builder.vector_file,
                       builder.vectors, builder.norms, previous=old)
    finally:
        builder.vector_file.unlink(missing_ok=True)
    for identifier, why in builder.report.skipped.items():
        log.warning("original %s has no vector: %s", identifier, why)
    if current:
        log.info("index %s is current: nothing written", folder)
        return old, builder.report
    index, problem = load_index(folder, verify_files=False)
    if index is None:
        raise OSError(f"{folder}: the index just written does not load ({problem})")
    return index, builder.report
