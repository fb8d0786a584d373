"""Classical image descriptors: HSV colour histogram, Haralick texture, Canny edge layout.

Every image of a pair is resized to the same long side first, so that descriptors of an
original and of its (possibly smaller) generated variant are comparable. Describing many
images (parallel, streamed, cached) is artsim.describe_run's job.
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

from artsim.config import DescribeParams
from artsim.images import read_rgb_array

log = logging.getLogger(__name__)

DESCRIPTOR_NAMES = ("color", "texture", "edges")
SKIPPED_COLUMNS = ["id", "path", "reason", "detail"]
HARALICK_FEATURES = 13


@dataclass(frozen=True)
class Descriptors:
    """The three descriptor vectors of one image (float64, fixed length for given params)."""

    color: np.ndarray
    texture: np.ndarray
    edges: np.ndarray

    @classmethod
    def from_lists(cls, color: Iterable[float], texture: Iterable[float], edges: Iterable[float]) -> "Descriptors":
        return cls(*(np.asarray(list(v), dtype=np.float64) for v in (color, texture, edges)))


@dataclass(frozen=True)
class ImageEntry:
    """One image to describe: its id, role and file location."""

    id: str
    role: str
    path: Path


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


def describe_array(rgb: np.ndarray, params: DescribeParams) -> Descriptors:
    """Describe an HxWx3 uint8 RGB array (already resized to the describing size)."""
    grey = to_grey(rgb)
    return Descriptors(
        color=color_histogram(rgb, params.hsv_bins),
        texture=haralick_texture(grey, params.haralick_levels),
        edges=edge_density_grid(edge_map(grey, params.canny_low, params.canny_high), params.edge_grid),
    )


def describe_file(path: Path, params: DescribeParams) -> Descriptors:
    """Decode, resize to `params.size` on the long side and describe; raises ImageRejected."""
    return describe_array(read_rgb_array(path, long_side=params.size), params)


def manifest_entries(manifest: pd.DataFrame, root: Path, role: str) -> Iterator[ImageEntry]:
    """The images of a manifest (columns id, path relative to `root`) as entries of one role."""
    for image_id, rel_path in zip(manifest["id"], manifest["path"]):
        yield ImageEntry(id=str(image_id), role=role, path=root / str(rel_path))


def descriptor_row(entry: ImageEntry, desc: Descriptors) -> dict:
    return {
        "id": entry.id,
        "role": entry.role,
        "color": desc.color.tolist(),
        "texture": desc.texture.tolist(),
        "edges": desc.edges.tolist(),
    }


def descriptor_table(rows: list[dict]) -> pd.DataFrame:
    columns = ["id", "role", *DESCRIPTOR_NAMES]
    return pd.DataFrame(rows, columns=columns)


def skipped_table(skipped: list[SkippedImage]) -> pd.DataFrame:
    return pd.DataFrame([vars(s) for s in skipped], columns=SKIPPED_COLUMNS)


def read_descriptors(path: Path) -> dict[str, Descriptors]:
    """Descriptors by image id from a descriptors.parquet file."""
    table = pd.read_parquet(path)
    return descriptors_by_id(table)


def descriptors_by_id(table: pd.DataFrame) -> dict[str, Descriptors]:
    return {
        str(image_id): Descriptors.from_lists(color, texture, edges)
        for image_id, color, texture, edges in zip(table["id"], table["color"], table["texture"], table["edges"])
    }
