"""Classical image descriptors: HSV colour histogram, Haralick texture, Canny edge layout.

Every image of a pair is resized to the same long side first, so that descriptors of an
original and of its (possibly smaller) generated variant are comparable.
"""
from __future__ import annotations

import functools
import itertools
import logging
import multiprocessing
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import mahotas
import numpy as np
import pandas as pd
from tqdm import tqdm

from artsim.config import DescribeParams
from artsim.images import ImageRejected, read_rgb_array

log = logging.getLogger(__name__)

DESCRIPTOR_NAMES = ("color", "texture", "edges")
SKIPPED_COLUMNS = ["id", "path", "reason", "detail"]
HARALICK_FEATURES = 13
MIN_IMAGES_PER_WORKER = 200


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


def describe_stream(
    entries: Iterable[ImageEntry], params: DescribeParams, total: int | None = None, workers: int = 1
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Describe images one at a time; returns (descriptor table, skipped table).

    Only one decoded image per worker is held at a time. An image that cannot be decoded
    is recorded in the skipped table with its reason and the stream continues. The result
    does not depend on `workers` (order is kept, each image is described independently).
    """
    if total is not None:
        # Starting a worker costs about a second: not worth it for a few hundred images each.
        workers = min(workers, max(1, total // MIN_IMAGES_PER_WORKER))
    rows: list[dict] = []
    skipped: list[SkippedImage] = []
    for entry, outcome in tqdm(_outcomes(entries, params, workers), total=total, desc="describe", unit="img", mininterval=2.0):
        if isinstance(outcome, SkippedImage):
            log.warning("skipping %s (%s): %s %s", entry.id, entry.path, outcome.reason, outcome.detail)
            skipped.append(outcome)
        else:
            rows.append(descriptor_row(entry, outcome))
    return descriptor_table(rows), skipped_table(skipped)


def _outcomes(
    entries: Iterable[ImageEntry], params: DescribeParams, workers: int
) -> Iterator[tuple[ImageEntry, Descriptors | SkippedImage]]:
    describe = functools.partial(_describe_entry, params=params)
    if workers <= 1:
        yield from map(describe, entries)
        return
    # spawn, not fork: forking a process that already started OpenCV's threads can deadlock.
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=_one_thread) as pool:
        yield from pool.map(describe, entries, chunksize=16)


def _one_thread() -> None:
    # Parallelism comes from the worker processes; OpenCV threads on top would oversubscribe.
    cv2.setNumThreads(1)


def _describe_entry(entry: ImageEntry, params: DescribeParams) -> tuple[ImageEntry, Descriptors | SkippedImage]:
    # The rejection travels back as plain data: exceptions with custom fields do not pickle faithfully.
    try:
        return entry, describe_file(entry.path, params)
    except ImageRejected as exc:
        return entry, SkippedImage(entry.id, str(entry.path), exc.reason, exc.detail)


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


def describe_manifests(
    ingested_dir: Path, generated_dir: Path, params: DescribeParams, workers: int = 1
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Describe every original (data/ingested) and every generated variant (data/generated)."""
    originals = pd.read_parquet(ingested_dir / "manifest.parquet", columns=["id", "path"])
    generated = pd.read_parquet(generated_dir / "manifest.parquet", columns=["id", "path"])
    entries = itertools.chain(
        manifest_entries(originals, ingested_dir, "original"),
        manifest_entries(generated, generated_dir, "generated"),
    )
    return describe_stream(entries, params, total=len(originals) + len(generated), workers=workers)


def write_descriptors(table: pd.DataFrame, skipped: pd.DataFrame, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    table.to_parquet(out_dir / "descriptors.parquet", index=False)
    skipped.to_csv(out_dir / "skipped.csv", index=False)


def read_descriptors(path: Path) -> dict[str, Descriptors]:
    """Descriptors by image id from a descriptors.parquet file."""
    table = pd.read_parquet(path)
    return descriptors_by_id(table)


def descriptors_by_id(table: pd.DataFrame) -> dict[str, Descriptors]:
    return {
        str(image_id): Descriptors.from_lists(color, texture, edges)
        for image_id, color, texture, edges in zip(table["id"], table["color"], table["texture"], table["edges"])
    }
