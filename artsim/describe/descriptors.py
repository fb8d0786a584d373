"""Image descriptors: the three the default score weighs (HSV colour histogram, Haralick texture,
Canny edge layout), the container of one image's vectors, and descriptors.parquet.

The alternative candidates (CIELAB, LBP, gradient orientation, pHash, layout) are in
artsim.describe.candidate_vectors; artsim.describe.registry is the registry of all of them. Every image of a
pair is resized to the same long side first, so that descriptors of an original and of its
(possibly smaller) generated variant are comparable. Describing many images (parallel,
streamed, cached) is artsim.describe.run's job.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import mahotas
import numpy as np
import pandas as pd

from artsim.params import CANDIDATE_NAMES, DescribeParams
from artsim.core.images import ImageFile, read_rgb_array
from artsim.core.shards import manifest_images

log = logging.getLogger(__name__)

# The three descriptors the default score weighs (and the evaluation reports beside the model).
DESCRIPTOR_NAMES = ("color", "texture", "edges")
SKIPPED_COLUMNS = ["id", "path", "reason", "detail"]
HARALICK_FEATURES = 13


class Descriptors:
    """The descriptor vectors of one image, by candidate name (float64, fixed length for given params).

    `Descriptors(color, texture, edges, lab=..., ...)`: the pipeline holds every registered
    candidate; a caller may hold fewer, and is then compared on those only.
    """

    __slots__ = ("vectors",)

    def __init__(self, color: Iterable[float] | None = None, texture: Iterable[float] | None = None,
                 edges: Iterable[float] | None = None, **others: Iterable[float]) -> None:
        given = {"color": color, "texture": texture, "edges": edges, **others}
        self.vectors: dict[str, np.ndarray] = {
            name: np.asarray(vector, dtype=np.float64) for name, vector in given.items() if vector is not None}

    @classmethod
    def from_lists(cls, color: Iterable[float], texture: Iterable[float], edges: Iterable[float]) -> "Descriptors":
        return cls(*(np.asarray(list(v), dtype=np.float64) for v in (color, texture, edges)))

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


def color_histogram(rgb: np.ndarray, bins: tuple[int, int, int]) -> np.ndarray:
    """Joint H,S,V histogram (OpenCV hue range 0-180), normalised to sum 1 and flattened."""
    hsv = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2HSV)
    hist = cv2.calcHist([hsv], [0, 1, 2], None, list(bins), [0, 180, 0, 256, 0, 256])
    hist = hist.astype(np.float64).ravel()
    return hist / max(hist.sum(), 1.0)


def to_grey(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)


def haralick_texture(grey: np.ndarray, levels: int) -> np.ndarray:
    """The 13 Haralick features averaged over the 4 directions, on `levels` grey levels."""
    quantised = (grey.astype(np.uint16) * levels // 256).astype(np.uint8)
    # Co-occurrences need a neighbour in every direction: a 1-pixel-thin image has none.
    quantised = np.pad(quantised, ((0, max(0, 2 - quantised.shape[0])), (0, max(0, 2 - quantised.shape[1]))), mode="edge")
    # ignore_zeros=False: level 0 is a real grey level, and a uniform image stays computable.
    features = mahotas.features.haralick(quantised, ignore_zeros=False, return_mean=True)
    # Some features are ratios that degenerate (0/0) on flat images; a flat image is not an error.
    return np.nan_to_num(np.asarray(features, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)


def edge_map(grey: np.ndarray, low: float, high: float) -> np.ndarray:
    """Canny edges (bool) after a light blur, so that JPEG and noise speckle do not count as edges."""
    blurred = cv2.GaussianBlur(grey, (5, 5), 1.0)
    return cv2.Canny(blurred, low, high) > 0


def edge_density_grid(edges: np.ndarray, grid: int) -> np.ndarray:
    """Fraction of edge pixels in each cell of a grid x grid partition of normalised coordinates.

    Cells are defined relative to the image size so that the layout of edges is comparable
    between images of different aspect ratio or resolution.
    """
    height, width = edges.shape
    rows = np.arange(height) * grid // height
    cols = np.arange(width) * grid // width
    cell = (rows[:, None] * grid + cols[None, :]).ravel()
    sums = np.bincount(cell, weights=edges.ravel().astype(np.float64), minlength=grid * grid)
    counts = np.bincount(cell, minlength=grid * grid)
    return np.divide(sums, counts, out=np.zeros(grid * grid), where=counts > 0)


def describe_array(rgb: np.ndarray, params: DescribeParams, names: Iterable[str] = CANDIDATE_NAMES) -> Descriptors:
    """Describe an HxWx3 uint8 RGB array (already resized to the describing size) by each named candidate."""
    # Imported here: the registry imports this module's vector functions.
    from artsim.describe.registry import candidate

    grey = to_grey(rgb)
    return Descriptors(**{name: candidate(name).vector(rgb, grey, params) for name in names})


def describe_file(path: Path, params: DescribeParams) -> Descriptors:
    """Decode, resize to `params.size` on the long side and describe; raises ImageRejected."""
    return describe_array(read_rgb_array(path, long_side=params.size), params)


def manifest_entries(manifest: pd.DataFrame, root: Path, role: str) -> Iterator[ImageEntry]:
    """The images of a manifest (in shards or loose files under `root`) as entries of one role."""
    for image_id, image in zip(manifest["id"], manifest_images(manifest, root)):
        yield ImageEntry(id=str(image_id), role=role, path=image)


def descriptor_row(entry: ImageEntry, desc: Descriptors) -> dict:
    return {"id": entry.id, "role": entry.role, **{name: vector.tolist() for name, vector in desc.vectors.items()}}


def descriptor_table(rows: list[dict]) -> pd.DataFrame:
    names = [name for name in CANDIDATE_NAMES if any(name in row for row in rows)] if rows else list(CANDIDATE_NAMES)
    return pd.DataFrame(rows, columns=["id", "role", *names])


def skipped_table(skipped: list[SkippedImage]) -> pd.DataFrame:
    return pd.DataFrame([vars(s) for s in skipped], columns=SKIPPED_COLUMNS)


def read_descriptors(path: Path) -> dict[str, Descriptors]:
    """Descriptors by image id from a descriptors.parquet file (the candidates it has columns for)."""
    table = pd.read_parquet(path)
    return descriptors_by_id(table)


def descriptors_by_id(table: pd.DataFrame) -> dict[str, Descriptors]:
    names = [name for name in CANDIDATE_NAMES if name in table.columns]
    columns = [table[name].to_numpy() for name in names]
    return {
        str(image_id): Descriptors(**{name: column[row] for name, column in zip(names, columns)})
        for row, image_id in enumerate(table["id"])
    }
