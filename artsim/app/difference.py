"""Where on the canvas two images differ, and the comparison picture of `artsim compare --plot` and the
service's /plot.

Per cell of a grid (as the edge descriptor cuts it): the colour difference (CIELAB ΔE of the cells' mean
colours) and the edge-density difference. `write_comparison_plot` draws both images at their own aspect,
those two maps laid over the first image, the verdict in words, and the model's score beside the descriptor
score and its parts, with a line saying where they disagree (artsim.app.plot_words holds the words).
"""
from __future__ import annotations

import textwrap
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import cv2
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.colors import Normalize, PowerNorm
from matplotlib.figure import Figure
from PIL import Image

from artsim.app.plot_words import (
    COLOUR_GLOSS,
    EDGE_GLOSS,
    SCORES_GLOSS,
    plain_name,
    plot_format,
    reading,
    verdict_words,
)
from artsim.core import layout
from artsim.core.grid import cell_means
from artsim.core.images import file_hash, resize_long_side
from artsim.describe.edges import edge_density_grid, edge_map
from artsim.describe.registry import to_grey
from artsim.index.store import Entries
from artsim.ingest.sources.items import UNKNOWN
from artsim.params import DescribeParams

# Fixed scales, so that two pictures read alike. ΔE on a square-root scale: the steps that matter (2, 10)
# stay visible, and unrelated paintings (ΔE 30-60) still differ from cell to cell.
COLOUR_SCALE = PowerNorm(0.5, vmin=0.0, vmax=50.0)
EDGE_SCALE = Normalize(vmin=0.0, vmax=0.25)
LABEL_CHARS = 70
MODEL_COLOUR, DESCRIPTOR_COLOUR, PART_COLOUR = "#1f4e79", "#c55a11", "#f4b183"


@dataclass(frozen=True)
class DifferenceMaps:
    """(grid, grid) arrays: colour ΔE (0 = same mean colour; about 2.3 is just noticeable) and
    edge density difference (0..1, share of pixels that are edges in one and not the other)."""

    color: np.ndarray
    edges: np.ndarray


def _lab(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)


def difference_maps(a: Image.Image, b: Image.Image, params: DescribeParams) -> DifferenceMaps:
    """Both images at the describe size; cells in normalised coordinates, so aspect ratios may differ."""
    arrays = [np.asarray(resize_long_side(image, params.size), dtype=np.uint8) for image in (a, b)]
    grid = params.edge_grid
    colours = [cell_means(_lab(rgb), grid) for rgb in arrays]
    edges = [edge_density_grid(edge_map(to_grey(rgb), params.canny_low, params.canny_high), grid).reshape(grid, grid)
             for rgb in arrays]
    return DifferenceMaps(color=np.linalg.norm(colours[0] - colours[1], axis=2), edges=np.abs(edges[0] - edges[1]))


# --- naming the images ---------------------------------------------------------------------

def image_label(path: Path, workspace: Path | None) -> str:
    """"Title — Artist" when the workspace ingested this very file (the manifest's content hash), else its
    file name."""
    manifest = None if workspace is None else workspace / layout.INGESTED / layout.MANIFEST
    if manifest is None or not manifest.is_file():
        return path.name
    try:
        rows = pd.read_parquet(manifest, columns=["hash", "title", "artist"])
    except (OSError, ValueError, KeyError):  # a damaged or foreign manifest only costs the title
        return path.name
    found = rows[rows["hash"] == file_hash(path)]
    return painting_label(found.iloc[0]["title"], found.iloc[0]["artist"], path.name) if len(found) else path.name


def entry_label(entries: Entries, row: int | None, fallback: str) -> str:
    """An indexed original's "Title — Artist" (the service's b_original), else `fallback`."""
    return fallback if row is None else painting_label(entries.titles[row], entries.artists[row], fallback)


def painting_label(title: Any, artist: Any, fallback: str) -> str:
    """"Title — Artist" from metadata (either may be missing), else `fallback`."""
    known = [str(value) for value in (title, artist) if isinstance(value, str) and value and value != UNKNOWN]
    return " — ".join(known) or fallback


def _shown(label: str) -> str:
    """An outside name as the picture shows it: printable, at most LABEL_CHARS, wrapped, no mathtext ($)."""
    printable = "".join(c for c in label if unicodedata.category(c)[0] != "C")
    short = printable if len(printable) <= LABEL_CHARS else printable[:LABEL_CHARS - 1] + "…"
    return textwrap.fill(short, 40).replace("$", r"\$")


# --- the picture ---------------------------------------------------------------------------

def write_comparison_plot(a: Image.Image, b: Image.Image, names: tuple[str, str], scores: dict,
                          maps: DifferenceMaps, out: Path | BinaryIO) -> None:
    """comparison_figure, in the format `out`'s suffix names (artsim.app.plot_words.PLOT_FORMATS; a stream
    gets PNG)."""
    figure = comparison_figure(a, b, names, scores, maps)
    if isinstance(out, Path):
        out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=90, format=plot_format(out) if isinstance(out, Path) else "png")


def comparison_figure(a: Image.Image, b: Image.Image, names: tuple[str, str], scores: dict,
                      maps: DifferenceMaps) -> Figure:
    """The verdict in words above both images and the two difference maps over the first image, each at the
    images' own aspect; beside them the model's score, the descriptor score and its parts (the weights in
    force) as bars, with a line saying whether and where they disagree. `scores` is compare's payload
    (artsim.app.api.compare_payload); `names` what to call the images (image_label).

    A Figure of its own, not pyplot's global state: the service draws plots in several threads at once.
    """
    figure = Figure(figsize=(14, 10), layout="constrained")
    grid = figure.add_gridspec(2, 3, width_ratios=[1, 1, 1])
    for cell, image, name, which in ((grid[0, 0], a, names[0], "first"), (grid[0, 1], b, names[1], "second")):
        axis = figure.add_subplot(cell)
        axis.imshow(image)
        axis.set_title(f"{which} image\n{_shown(name)}", fontsize=11)
        axis.set_axis_off()
    _overlay(figure, figure.add_subplot(grid[1, 0]), a, maps.color, COLOUR_SCALE,
             "where the colours differ", COLOUR_GLOSS, (0, 2, 10, 25, 50))
    _overlay(figure, figure.add_subplot(grid[1, 1]), a, maps.edges, EDGE_SCALE,
             "where the edges differ", EDGE_GLOSS, (0, 0.1, 0.2))
    _score_bars(figure.add_subplot(grid[:, 2]), scores)
    headline, _, evidence = verdict_words(scores).partition("\n")
    figure.suptitle(f"{headline}\n{textwrap.fill(evidence, 150)}", fontsize=12)
    figure.supxlabel(textwrap.fill(SCORES_GLOSS, 160), fontsize=10)
    return figure


def _overlay(figure: Figure, axis: Axes, image: Image.Image, values: np.ndarray, scale: Normalize,
             title: str, gloss: str, ticks: tuple[float, ...]) -> None:
    """`values` (cells in normalised coordinates) laid over a faded grey copy of `image`, at its aspect."""
    width, height = image.size
    axis.imshow(np.asarray(image.convert("L")), cmap="gray", vmin=-160, vmax=255)  # faded: the map reads on top
    shown = axis.imshow(values, cmap="magma_r", norm=scale, alpha=0.6, interpolation="nearest",
                        extent=(0, width, height, 0))
    axis.set_title(f"{title}\n(drawn over the first image)", fontsize=11)
    axis.set_axis_off()
    bar = figure.colorbar(shown, ax=axis, location="bottom", fraction=0.06, pad=0.02, extend="max", ticks=ticks)
    bar.set_label(textwrap.fill(gloss, 48), fontsize=9)


def _score_bars(axis: Axes, scores: dict) -> None:
    """The model's score, the descriptor score and each part in force (heaviest first), 0..1, with the
    verdict's threshold on the model's bar."""
    weights = {name: w for name, w in scores["weights"].items() if w > 0}
    total = sum(weights.values()) or 1.0
    parts = sorted(weights, key=weights.get, reverse=True)
    labels = ["model score", "descriptor score",
              *[f"{plain_name(n)}  ({weights[n] / total:.0%} of it)" for n in parts]]
    values = [scores["model_score"], scores["descriptor_score"], *[scores["similarities"][n] for n in parts]]
    colours = [MODEL_COLOUR, DESCRIPTOR_COLOUR, *[PART_COLOUR] * len(parts)]
    rows = np.arange(len(values))
    rows[2:] += 1  # a gap between the two scores and the descriptor score's parts
    axis.barh(rows, values, color=colours, height=0.7)
    axis.text(0.01, 2, "the descriptor score's parts, by weight:", va="center", fontsize=10, style="italic")
    for row, value in zip(rows, values):
        axis.text(min(value, 1.0) + 0.01, row, f"{value:.2f}", va="center", fontsize=10)
    threshold = scores.get("threshold")
    if threshold is not None:
        axis.vlines(threshold, -0.5, 0.5, colors="black", linestyles="--")
        axis.text(threshold, -0.55, f"above this: derived\n(right {scores['precision']:.0%} of the time)",
                  ha="center", va="bottom", fontsize=8)
    axis.set_yticks(rows, labels, fontsize=10)
    axis.invert_yaxis()
    axis.set_xlim(0, 1.1)
    axis.set_xticks([0, 0.25, 0.5, 0.75, 1.0], ["0\nunrelated", "0.25", "0.5", "0.75", "1\nthe same"])
    axis.spines[["top", "right"]].set_visible(False)
    line = reading(scores)
    axis.set_title(textwrap.fill(line[:1].upper() + line[1:], 42), fontsize=11, loc="left")
