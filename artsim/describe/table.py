"""The per-image tables of describe: one image's vectors (`Descriptors`), the images to describe
(`ImageEntry`, from the manifests), the ones skipped with their reason, and descriptors.parquet.

The vectors themselves are the families' (color, texture, edges, structure); which descriptors
exist is artsim.describe.registry. Column order follows the registry's (artsim.params.DESCRIPTOR_NAMES).
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from artsim.core.images import ImageFile
from artsim.core.shards import manifest_images
from artsim.params import DESCRIPTOR_NAMES

SKIPPED_COLUMNS = ["id", "path", "reason", "detail"]


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


def read_descriptors(path: Path) -> dict[str, Descriptors]:
    """Descriptors by image id from a descriptors.parquet file (the descriptors it has columns for)."""
    return descriptors_by_id(pd.read_parquet(path))


def descriptors_by_id(table: pd.DataFrame) -> dict[str, Descriptors]:
    names = [name for name in DESCRIPTOR_NAMES if name in table.columns]
    columns = [table[name].to_numpy() for name in names]
    return {
        str(image_id): Descriptors(**{name: column[row] for name, column in zip(names, columns)})
        for row, image_id in enumerate(table["id"])
    }
