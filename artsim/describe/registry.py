"""The registry of descriptor candidates: what describe computes and score compares.

A candidate is one way of describing one aspect (family) of an image:

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

`color`, `texture` and `edges` are the three the default score weighs; the others are there
for the descriptor study (artsim.score.study) and for `score.weights` to use. Each candidate's
vectors are cached on their own (artsim.describe.cache), keyed by `settings`: adding or
changing one candidate recomputes only it. To add a candidate: write its vector function,
pick (or write) a kernel in artsim.describe.kernels, add a Candidate below and its name to
artsim.params.CANDIDATE_NAMES.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from artsim.describe import candidate_vectors as alt
from artsim.describe import descriptors as base
from artsim.describe import kernels as k
from artsim.params import CANDIDATE_NAMES, DescribeParams
from artsim.describe.descriptors import HARALICK_FEATURES

Family = Literal["color", "texture", "edges", "structure"]
Kernel = Callable[[np.ndarray, np.ndarray, k.TextureStats], np.ndarray]


@dataclass(frozen=True)
class Candidate:
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
_REQUIRED = (
    Candidate(
        "color", "color", "joint HSV histogram, histogram intersection",
        vector=lambda rgb, grey, p: base.color_histogram(rgb, p.hsv_bins),
        length=lambda p: int(np.prod(p.hsv_bins)),
        settings=lambda p: {"hsv_bins": list(p.hsv_bins)},
        paired=_ignoring_stats(k.intersection_paired), cross=_ignoring_stats(k.intersection_cross)),
    Candidate(
        "texture", "texture", "13 Haralick features, exp(-RMS of the z-scored difference)",
        vector=lambda rgb, grey, p: base.haralick_texture(grey, p.haralick_levels),
        length=lambda p: HARALICK_FEATURES,
        settings=lambda p: {"haralick_levels": p.haralick_levels},
        paired=k.texture_paired, cross=k.texture_cross, uses_mahotas=True),
    Candidate(
        "edges", "edges", "Canny edge density per grid cell, generalised Jaccard",
        vector=lambda rgb, grey, p: base.edge_density_grid(base.edge_map(grey, p.canny_low, p.canny_high), p.edge_grid),
        length=lambda p: p.edge_grid * p.edge_grid,
        settings=lambda p: {"canny_low": p.canny_low, "canny_high": p.canny_high, "edge_grid": p.edge_grid},
        paired=_ignoring_stats(k.jaccard_paired), cross=_ignoring_stats(k.jaccard_cross)),
)

_ALTERNATIVES = (
    Candidate(
        "lab", "color", f"mean CIELAB per cell of a {alt.LAB_GRID}x{alt.LAB_GRID} grid, exp(-mean ΔE76 / {k.LAB_DELTA_E_SCALE:g})",
        vector=lambda rgb, grey, p: alt.lab_grid(rgb),
        length=lambda p: alt.LAB_GRID**2 * 3,
        settings=lambda p: {"grid": alt.LAB_GRID, "thumb": alt.LAB_THUMB},
        paired=_ignoring_stats(k.delta_e_paired), cross=_ignoring_stats(k.delta_e_cross)),
    Candidate(
        "lbp", "texture", f"rotation-invariant uniform LBP histograms at radii {list(alt.LBP_RADII)}, histogram intersection",
        vector=lambda rgb, grey, p: alt.lbp_histograms(grey),
        length=lambda p: alt.LBP_BINS * len(alt.LBP_RADII),
        settings=lambda p: {"radii": list(alt.LBP_RADII)},
        paired=_ignoring_stats(k.intersection_paired), cross=_ignoring_stats(k.intersection_cross)),
    Candidate(
        "orientation", "edges",
        f"gradient-orientation histograms ({alt.ORIENTATION_BINS} bins, magnitude-weighted) per cell of a "
        f"{alt.ORIENTATION_GRID}x{alt.ORIENTATION_GRID} grid, histogram intersection",
        vector=lambda rgb, grey, p: alt.orientation_grid(grey),
        length=lambda p: alt.ORIENTATION_GRID**2 * alt.ORIENTATION_BINS,
        settings=lambda p: {"grid": alt.ORIENTATION_GRID, "bins": alt.ORIENTATION_BINS},
        paired=_ignoring_stats(k.intersection_paired), cross=_ignoring_stats(k.intersection_cross)),
    Candidate(
        "phash", "structure", "pHash bits (low 8x8 DCT block of a 32x32 grey image), 1 - Hamming distance / 64",
        vector=lambda rgb, grey, p: alt.phash_bits(grey),
        length=lambda p: alt.PHASH_BLOCK**2,
        settings=lambda p: {"side": alt.PHASH_SIDE, "block": alt.PHASH_BLOCK},
        paired=_ignoring_stats(k.hamming_paired), cross=_ignoring_stats(k.hamming_cross)),
    Candidate(
        "layout", "structure", f"{alt.LAYOUT_SIDE}x{alt.LAYOUT_SIDE} grey thumbnail, max(0, Pearson correlation)",
        vector=lambda rgb, grey, p: alt.layout_thumbnail(grey),
        length=lambda p: alt.LAYOUT_SIDE**2,
        settings=lambda p: {"side": alt.LAYOUT_SIDE},
        paired=_ignoring_stats(k.correlation_paired), cross=_ignoring_stats(k.correlation_cross)),
)

CANDIDATES: dict[str, Candidate] = {c.name: c for c in (*_REQUIRED, *_ALTERNATIVES)}

if tuple(CANDIDATES) != CANDIDATE_NAMES:
    # config.py validates score.weights without importing OpenCV, from its own copy of the names.
    raise ImportError(f"artsim.params.CANDIDATE_NAMES {CANDIDATE_NAMES} must list the registry's {tuple(CANDIDATES)}")


def candidate(name: str) -> Candidate:
    try:
        return CANDIDATES[name]
    except KeyError:
        raise KeyError(f"unknown descriptor candidate {name!r}; known: {', '.join(CANDIDATES)}") from None
