"""The registry of descriptors: what describe computes and score compares.

A descriptor is one way of describing one aspect (its family) of an image; each family's
vector functions are in the module of that name:

| name        | family    | vector (per image)                                   | similarity                     |
|-------------|-----------|------------------------------------------------------|--------------------------------|
| color       | color     | joint HSV histogram                                  | histogram intersection         |
| texture     | texture   | 13 Haralick features (mahotas)                       | exp(-RMS z-scored difference)  |
| edges       | edges     | Canny edge density per grid cell                     | generalised Jaccard            |
| lab         | color     | mean CIELAB per cell of a 4x4 grid                   | exp(-mean ΔE76 / 10)           |
| lbp         | texture   | uniform LBP histograms, radius 1 and 2               | histogram intersection         |
| orientation | edges     | gradient-orientation histograms per 4x4 grid cell    | histogram intersection         |
| phash       | structure | pHash bits (low 8x8 DCT of a 32x32 grey image)       | 1 - Hamming distance / 64      |
| layout      | structure | 16x16 grey thumbnail, centred, unit norm             | max(0, Pearson); flat: 1 if both |

The default score weighs seven of them, as the descriptor study's fit does
(artsim.params.DEFAULT_SCORE_WEIGHTS); `color`, `texture` and `edges` alone are the
three-descriptor alternative (artsim.params.CLASSIC_SCORE_WEIGHTS); every candidate is
measured by the descriptor study (artsim.score.study) and can be named in `score.weights`. Each
descriptor's vectors are cached on
their own (artsim.describe.cache), keyed by `settings`: adding or changing one descriptor
recomputes only it. To add a descriptor: write its vector function in its family's module,
pick (or write) a kernel in artsim.describe.kernels, add a Descriptor below and its name to
artsim.params.DESCRIPTOR_NAMES.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from artsim.describe import color, edges, structure, texture
from artsim.describe import kernels as k
from artsim.describe.table import Descriptors
from artsim.params import DESCRIPTOR_NAMES, DescribeParams

Family = Literal["color", "texture", "edges", "structure"]
Kernel = Callable[[np.ndarray, np.ndarray, k.TextureStats], np.ndarray]


@dataclass(frozen=True)
class Descriptor:
    """One descriptor: its per-image vector and the similarity of two vectors, in [0, 1]."""

    name: str
    family: Family
    summary: str
    # (rgb uint8 already resized to describe.size, its grey version, params) -> float64 vector.
    vector: Callable[[np.ndarray, np.ndarray, DescribeParams], np.ndarray]
    length: Callable[[DescribeParams], int]
    # What decides the vector besides the describing size: the key of its entry in an image's cache file.
    settings: Callable[[DescribeParams], dict]
    paired: Kernel
    cross: Kernel
    # Bump when the code changes what `vector` computes, so that cached vectors are not reused.
    version: int = 1
    uses_mahotas: bool = False


def _ignoring_stats(kernel: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> Kernel:
    return lambda a, b, stats: kernel(a, b)


# The functions are looked up on their modules at call time, so that tests can count the calls.
_DEFAULT_WEIGHTED = (
    Descriptor(
        "color",
        "color",
        "joint HSV histogram, histogram intersection",
        vector=lambda rgb, grey, p: color.color_histogram(rgb, p.hsv_bins),
        length=lambda p: int(np.prod(p.hsv_bins)),
        settings=lambda p: {"hsv_bins": list(p.hsv_bins)},
        paired=_ignoring_stats(k.intersection_paired),
        cross=_ignoring_stats(k.intersection_cross),
    ),
    Descriptor(
        "texture",
        "texture",
        "13 Haralick features, exp(-RMS of the z-scored difference)",
        vector=lambda rgb, grey, p: texture.haralick_texture(grey, p.haralick_levels),
        length=lambda p: texture.HARALICK_FEATURES,
        settings=lambda p: {"haralick_levels": p.haralick_levels},
        paired=k.texture_paired,
        cross=k.texture_cross,
        uses_mahotas=True,
    ),
    Descriptor(
        "edges",
        "edges",
        "Canny edge density per grid cell, generalised Jaccard",
        vector=lambda rgb, grey, p: edges.edge_density_grid(
            edges.edge_map(grey, p.canny_low, p.canny_high), p.edge_grid
        ),
        length=lambda p: p.edge_grid * p.edge_grid,
        settings=lambda p: {"canny_low": p.canny_low, "canny_high": p.canny_high, "edge_grid": p.edge_grid},
        paired=_ignoring_stats(k.jaccard_paired),
        cross=_ignoring_stats(k.jaccard_cross),
    ),
)

_ALTERNATIVES = (
    Descriptor(
        "lab",
        "color",
        f"mean CIELAB per cell of a {color.LAB_GRID}x{color.LAB_GRID} grid, exp(-mean ΔE76 / {k.LAB_DELTA_E_SCALE:g})",
        vector=lambda rgb, grey, p: color.lab_grid(rgb),
        length=lambda p: color.LAB_GRID**2 * 3,
        settings=lambda p: {"grid": color.LAB_GRID, "thumb": color.LAB_THUMB},
        paired=_ignoring_stats(k.delta_e_paired),
        cross=_ignoring_stats(k.delta_e_cross),
    ),
    Descriptor(
        "lbp",
        "texture",
        f"rotation-invariant uniform LBP histograms at radii {list(texture.LBP_RADII)}, histogram intersection",
        vector=lambda rgb, grey, p: texture.lbp_histograms(grey),
        length=lambda p: texture.LBP_BINS * len(texture.LBP_RADII),
        settings=lambda p: {"radii": list(texture.LBP_RADII)},
        paired=_ignoring_stats(k.intersection_paired),
        cross=_ignoring_stats(k.intersection_cross),
    ),
    Descriptor(
        "orientation",
        "edges",
        f"gradient-orientation histograms ({edges.ORIENTATION_BINS} bins, magnitude-weighted) per cell of a "
        f"{edges.ORIENTATION_GRID}x{edges.ORIENTATION_GRID} grid, histogram intersection",
        vector=lambda rgb, grey, p: edges.orientation_grid(grey),
        length=lambda p: edges.ORIENTATION_GRID**2 * edges.ORIENTATION_BINS,
        settings=lambda p: {"grid": edges.ORIENTATION_GRID, "bins": edges.ORIENTATION_BINS},
        paired=_ignoring_stats(k.intersection_paired),
        cross=_ignoring_stats(k.intersection_cross),
    ),
    Descriptor(
        "phash",
        "structure",
        "pHash bits (low 8x8 DCT block of a 32x32 grey image), 1 - Hamming distance / 64",
        vector=lambda rgb, grey, p: structure.phash_vector(grey),
        length=lambda p: structure.PHASH_BLOCK**2,
        settings=lambda p: {"side": structure.PHASH_SIDE, "block": structure.PHASH_BLOCK},
        paired=_ignoring_stats(k.hamming_paired),
        cross=_ignoring_stats(k.hamming_cross),
    ),
    Descriptor(
        "layout",
        "structure",
        f"{structure.LAYOUT_SIDE}x{structure.LAYOUT_SIDE} grey thumbnail, max(0, Pearson correlation)",
        vector=lambda rgb, grey, p: structure.layout_thumbnail(grey),
        length=lambda p: structure.LAYOUT_SIDE**2,
        settings=lambda p: {"side": structure.LAYOUT_SIDE},
        paired=_ignoring_stats(k.correlation_paired),
        cross=_ignoring_stats(k.correlation_cross),
    ),
)

DESCRIPTORS: dict[str, Descriptor] = {d.name: d for d in (*_DEFAULT_WEIGHTED, *_ALTERNATIVES)}

if tuple(DESCRIPTORS) != DESCRIPTOR_NAMES:
    # artsim.params validates score.weights without importing OpenCV, from its own copy of the names.
    raise ImportError(
        f"artsim.params.DESCRIPTOR_NAMES {DESCRIPTOR_NAMES} must list the registry's {tuple(DESCRIPTORS)}"
    )


def descriptor(name: str) -> Descriptor:
    try:
        return DESCRIPTORS[name]
    except KeyError:
        raise KeyError(f"unknown descriptor {name!r}; known: {', '.join(DESCRIPTORS)}") from None


def to_grey(rgb: np.ndarray) -> np.ndarray:
    """The grey version every grey-level descriptor sees (OpenCV's luma weights)."""
    return cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)


def describe_array(rgb: np.ndarray, params: DescribeParams, names: Iterable[str] = DESCRIPTOR_NAMES) -> Descriptors:
    """Describe an HxWx3 uint8 RGB array (already resized to the describing size) by each named descriptor."""
    grey = to_grey(rgb)
    return Descriptors(**{name: descriptor(name).vector(rgb, grey, params) for name in names})
