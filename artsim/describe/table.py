"""The per-image tables of describe: one image's vectors (`Descriptors`), the images to describe
(`ImageEntry`, from the manifests), the ones skipped with their reason, and descriptors.parquet.

The vectors themselves are the families' (color, texture, edges, structure); which descriptors
exist is artsim.describe.registry. Column order follows the registry's (artsim.params.DESCRIPTOR_NAMES).
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from artsim.core.images import ImageFile
from artsim.core.shards import manifest_images
from artsim.params import DESCRIPTOR_NAMES

SKIPPED_COLUMNS = ["id", "path", "reason", "detail"]
BAD_DESCRIPTORS = "bad descriptors"  # the reason a row of descriptors.parquet is left out when read

log = logging.getLogger(__name__)


class Descriptors:
    """The descriptor vectors of one image, by descriptor name (float64, fixed length for given params).

    `Descriptors(color, texture, edges, lab=..., ...)`: the pipeline holds every registered
    descriptor; a caller may hold fewer, and is then compared on those only.
    """

    __slots__ = ("vectors",)

    def __init__(self, color: Iterable[float] | None = None, texture: Iterable[float] | None = None,
                 edges: Iterable[float] | None = None, **others: Iterable[float]) -> None:
        given = {"color": color, "texture": texture, "edges": edges, **others}
        self.vectors: dict[str, np.ndarray] = {
            name: np.asarray(vector, dtype=np.float64) for name, vector in given.items() if vector is not None}

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.vectors)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.vectors[name]

    @property
    def color(self) -> np.ndarray:
        return self.vectors["color"]

    @property
    def texture(self) -> np.ndarray:
        return self.vectors["texture"]

    @property
    def edges(self) -> np.ndarray:
        return self.vectors["edges"]

    def __repr__(self) -> str:
        return f"Descriptors({', '.join(f'{n}[{len(v)}]' for n, v in self.vectors.items())})"


@dataclass(frozen=True)
class ImageEntry:
    """One image to describe: its id, role and file location."""

    id: str
    role: str
    path: ImageFile


@dataclass(frozen=True)
class SkippedImage:
    id: str
    path: str
    reason: str
    detail: str = ""


def manifest_entries(manifest: pd.DataFrame, root: Path, role: str) -> Iterator[ImageEntry]:
    """The images of a manifest (in shards or loose files under `root`) as entries of one role."""
    for image_id, image in zip(manifest["id"], manifest_images(manifest, root)):
        yield ImageEntry(id=str(image_id), role=role, path=image)


def descriptor_row(entry: ImageEntry, desc: Descriptors) -> dict:
    """One row of descriptors.parquet: id, role and a list of floats per descriptor."""
    return {"id": entry.id, "role": entry.role, **{name: vector.tolist() for name, vector in desc.vectors.items()}}


def descriptor_table(rows: list[dict]) -> pd.DataFrame:
    names = [name for name in DESCRIPTOR_NAMES if any(name in row for row in rows)] if rows else list(DESCRIPTOR_NAMES)
    return pd.DataFrame(rows, columns=["id", "role", *names])


def skipped_table(skipped: list[SkippedImage]) -> pd.DataFrame:
    return pd.DataFrame([vars(s) for s in skipped], columns=SKIPPED_COLUMNS)


@dataclass(frozen=True)
class DescriptorSet:
    """The descriptors of n images stacked row-wise, by descriptor: name -> (n, vector length) float64;
    with `ids`, the image id of each row (a set read from descriptors.parquet, or selected by id).

    Memory per image is its floats: no object per image (one image's vectors: `image`, row views).
    """

    vectors: dict[str, np.ndarray]
    ids: pd.Index | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.ids is not None and self.vectors and len(self.ids) != len(self):
            raise ValueError(f"{len(self.ids)} ids for {len(self)} rows of descriptors")

    @classmethod
    def stack(cls, descriptors: Sequence[Descriptors], ids: Sequence[str] | None = None) -> "DescriptorSet":
        if not descriptors:
            raise ValueError("DescriptorSet.stack needs at least one image")
        names = [name for name in DESCRIPTOR_NAMES if all(name in d.vectors for d in descriptors)]
        return cls({name: np.stack([d[name] for d in descriptors]) for name in names},
                   None if ids is None else pd.Index(ids, dtype=object))

    @classmethod
    def of(cls, images: Mapping[str, Descriptors]) -> "DescriptorSet":
        """The images of a mapping id -> Descriptors, in its order (empty: no row, no descriptor)."""
        if not images:
            return cls({}, pd.Index([], dtype=object))
        return cls.stack(list(images.values()), ids=[str(i) for i in images])

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.vectors)

    def __len__(self) -> int:
        if not self.vectors:
            return 0 if self.ids is None else len(self.ids)
        return len(next(iter(self.vectors.values())))

    def __getitem__(self, name: str) -> np.ndarray:
        return self.vectors[name]

    def rows(self, start: int, stop: int) -> "DescriptorSet":
        return DescriptorSet({name: v[start:stop] for name, v in self.vectors.items()},
                             None if self.ids is None else self.ids[start:stop])

    def take(self, indices: np.ndarray) -> "DescriptorSet":
        return DescriptorSet({name: v[indices] for name, v in self.vectors.items()},
                             None if self.ids is None else self.ids[indices])

    # --- by image id (a set that has ids) ---

    def _ids(self) -> pd.Index:
        if self.ids is None:
            raise ValueError("these descriptors have no image ids")
        return self.ids

    def described(self, ids: Iterable[str]) -> np.ndarray:
        """For each id, whether it has a row here."""
        return self._ids().get_indexer(pd.Index(list(ids), dtype=object)) >= 0

    def positions(self, ids: Iterable[str]) -> np.ndarray:
        """The row of each id (KeyError naming the first id that has none)."""
        wanted = pd.Index(list(ids), dtype=object)
        rows = self._ids().get_indexer(wanted)
        if (rows < 0).any():
            raise KeyError(f"no descriptors for image {wanted[int(np.argmax(rows < 0))]!r}")
        return rows

    def select(self, ids: Iterable[str]) -> "DescriptorSet":
        """The rows of these ids, in their order (a copy of those rows only)."""
        return self.take(self.positions(ids))

    def rows_of(self, ids: Iterable[str]) -> "DescriptorRows":
        """The rows of these ids, in their order, read where they are (no copy: see DescriptorRows)."""
        return DescriptorRows(self, self.positions(ids))

    def image(self, image_id: str) -> Descriptors:
        """One image's descriptors (views on its rows)."""
        row = int(self.positions([image_id])[0])
        return Descriptors(**{name: v[row] for name, v in self.vectors.items()})


@dataclass(frozen=True)
class DescriptorRows:
    """Rows of a DescriptorSet (`positions` of `source`), read in place: row i is source row positions[i]. What a
    scorer reads of a set of images (the retrieval's queries, its candidates) without a second copy of their
    floats; each read copies only the rows it asks for (one descriptor's, or a few images')."""

    source: DescriptorSet
    positions: np.ndarray

    @property
    def names(self) -> tuple[str, ...]:
        return self.source.names

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.source[name][self.positions]

    def rows(self, start: int, stop: int) -> DescriptorSet:
        return self.source.take(self.positions[start:stop])

    def take(self, indices: np.ndarray) -> DescriptorSet:
        return self.source.take(self.positions[indices])


# --- descriptors.parquet -> one matrix per descriptor --------------------------------------------

def read_descriptors(path: Path, ids: Collection[str] | None = None) -> DescriptorSet:
    """Every image of a descriptors.parquet file (the descriptors it has columns for), or those of `ids` only, one
    float64 matrix per descriptor, read a column at a time; a row that is not whole (a null, a vector of another
    length than the column's, a repeated id) is left out and logged with its reason. A stage that reads a few of the
    file's images passes `ids`: the matrices then hold their rows only, the same floats a whole read holds."""
    images, bad = descriptor_matrices(path, ids)
    for skipped in bad:
        log.warning("%s: image %r left out: %s (%s)", path, skipped.id, skipped.reason, skipped.detail)
    return images


def descriptor_matrices(path: Path, wanted: Collection[str] | None = None
                        ) -> tuple[DescriptorSet, list[SkippedImage]]:
    """The matrices of descriptors.parquet's whole rows (of the images of `wanted` only; None: all), and the rows
    left out (reason BAD_DESCRIPTORS).

    Read a row group of one column at a time, so that what is held beside the matrices is one row group's floats."""
    parquet = pq.ParquetFile(path)
    names = [name for name in DESCRIPTOR_NAMES if name in parquet.schema_arrow.names]
    # The ids are the one Python object per image: the index that finds an image's row.
    ids = pd.Index(parquet.read(columns=["id"])["id"].to_pylist(), dtype=object)
    read = np.ones(len(ids), dtype=bool) if wanted is None else ids.isin(list(wanted))
    problems: dict[int, list[str]] = {}
    for row in np.flatnonzero(ids.isna() & read):
        problems.setdefault(int(row), []).append("no id")
    for row in np.flatnonzero(ids.duplicated() & ~ids.isna() & read):
        problems.setdefault(int(row), []).append("an id given before")
    vectors = {}
    for name in names:
        vectors[name], column_problems = list_matrix(lambda name=name: _row_groups(parquet, name), read)
        for row, problem in column_problems.items():
            problems.setdefault(row, []).append(f"{name}: {problem}")
    if not problems:
        return DescriptorSet(vectors, ids[read]), []
    bad = [SkippedImage(id=str(ids[row]), path=str(path), reason=BAD_DESCRIPTORS, detail="; ".join(problems[row]))
           for row in sorted(problems)]
    whole = read.copy()
    whole[sorted(problems)] = False
    for name in names:  # one matrix at a time, so that a copy of one is all the extra held
        vectors[name] = vectors[name][whole[read]]
    return DescriptorSet(vectors, ids[whole].astype(str)), bad


def _row_groups(parquet: pq.ParquetFile, name: str) -> Iterator[pa.ListArray]:
    for group in range(parquet.num_row_groups):
        for chunk in parquet.read_row_group(group, columns=[name])[name].chunks:
            if len(chunk) and not (pa.types.is_list(chunk.type) or pa.types.is_large_list(chunk.type)):
                raise ValueError(f"descriptors column {name!r} holds {chunk.type}, not lists of floats")
            if len(chunk):
                yield chunk


def list_matrix(chunks: Callable[[], Iterable[pa.ListArray]], read: np.ndarray | None = None
                ) -> tuple[np.ndarray, dict[int, str]]:
    """A list<double> column (its chunks, in order, each time `chunks` is called) as an (n, d) float64
    matrix, d its most common length, and the rows that are not d floats (by row number: what is
    wrong), left zero in the matrix. Two passes: the lengths decide d before any float is copied.
    `read` (a mask of the column's rows) keeps those rows only: the matrix holds them, in order, and
    the problems are theirs; d is still decided by every row, so a row reads the same either way."""
    lengths, nulls, holes = [], [], []
    for chunk in chunks():
        offset = chunk.offsets.to_numpy()
        lengths.append(np.diff(offset))
        nulls.append(chunk.is_null().to_numpy(zero_copy_only=False))
        holes.append(_null_values(chunk.values, offset))
    lengths, nulls, holes = (np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
                             for parts in (lengths, nulls, holes))
    nulls = nulls.astype(bool)
    read = np.ones(len(lengths), dtype=bool) if read is None else np.asarray(read, dtype=bool)
    width = int(np.argmax(np.bincount(lengths[~nulls]))) if (~nulls).any() else 0
    problems = {int(row): f"{holes[row]} null values" for row in np.flatnonzero((holes > 0) & read)}
    problems.update({int(row): f"{lengths[row]} values, not {width}"
                     for row in np.flatnonzero((lengths != width) & read)})
    problems.update({int(row): "no vector" for row in np.flatnonzero(nulls & read)})
    whole = read.copy()
    whole[list(problems)] = False
    matrix_row = np.cumsum(read) - 1  # of each row read
    matrix = np.zeros((int(read.sum()), width))
    start = 0
    for chunk in chunks():
        offset, rows = chunk.offsets.to_numpy(), slice(start, start + len(chunk))
        start += len(chunk)
        floats = chunk.values.to_numpy(zero_copy_only=False)
        if whole[rows].all() and offset[-1] - offset[0] == len(chunk) * width:  # the usual case: one block of floats
            first = matrix_row[rows.start]
            matrix[first:first + len(chunk)] = floats[offset[0]:offset[-1]].reshape(len(chunk), width)
        else:
            kept = np.flatnonzero(whole[rows])
            matrix[matrix_row[rows.start + kept]] = floats[offset[:-1][kept][:, None] + np.arange(width)]
    return matrix, problems


def _null_values(values: pa.Array, offset: np.ndarray) -> np.ndarray:
    """How many null floats each list of a chunk holds."""
    if not values.null_count:
        return np.zeros(len(offset) - 1, dtype=np.int64)
    seen = np.concatenate([[0], np.cumsum(values.is_null().to_numpy(zero_copy_only=False))])
    return seen[offset[1:]] - seen[offset[:-1]]
