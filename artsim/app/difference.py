"""Where on the canvas two images differ: per cell of a grid (as the edge descriptor cuts it),
the colour difference (CIELAB ΔE of the cells' mean colours) and the edge-density difference.
`write_comparison_plot` shows both images, the scores with their parts and verdict, and those two maps.
"""
from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import cv2
import numpy as np
from PIL import Image

from artsim.app.render import parts_text
from artsim.core.grid import cell_means
from artsim.core.images import resize_long_side
from artsim.describe.edges import edge_density_grid, edge_map
from artsim.describe.registry import to_grey
from artsim.params import DescribeParams


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


def write_comparison_plot(a: Image.Image, b: Image.Image, names: tuple[str, str], scores: dict,
                          maps: DifferenceMaps, out: Path | BinaryIO) -> None:
    """A PNG: the two images side by side, titled with both scores, the score's parts as configured
    (whatever descriptors the weights in force name) and the verdict, above the two difference maps.

    A Figure of its own, not pyplot's global state: the service draws plots in several threads at once.
    """
    from matplotlib.figure import Figure

    figure = Figure(figsize=(9, 8.5))
    axes = figure.subplots(2, 2)
    for axis, image, name in zip(axes[0], (a, b), names):
        axis.imshow(image)
        axis.set_title(Path(name).name[:40], fontsize=9)
        axis.axis("off")
    for axis, values, title, unit in ((axes[1][0], maps.color, "colour difference per cell", "ΔE (CIELAB)"),
                                      (axes[1][1], maps.edges, "edge density difference per cell", "|Δ edge share|")):
        shown = axis.imshow(values, cmap="magma", vmin=0)
        axis.set_title(title, fontsize=9)
        axis.set_xticks([])
        axis.set_yticks([])
        figure.colorbar(shown, ax=axis, fraction=0.046, label=unit)
    # `scores` is compare's payload (artsim.app.api.compare_payload): the parts in force and the verdict.
    parts = parts_text(scores["similarities"], scores["weights"])
    figure.suptitle(f"model score {scores['model_score']:.3f}   descriptor score {scores['descriptor_score']:.3f}\n"
                    f"{textwrap.fill(parts, 110)}\n{textwrap.fill(scores.get('verdict_text', ''), 110)}", fontsize=9)
    figure.tight_layout()
    if isinstance(out, Path):
        out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=80, format="png")
