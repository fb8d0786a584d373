"""Every descriptor (artsim.describe.registry): a similarity in [0, 1], 1 on identical images,
symmetric, the same pair by pair and set against set, and falling as a painting is degraded."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from artsim.core.images import read_rgb_array
from artsim.describe.kernels import TextureStats
from artsim.describe.registry import DESCRIPTORS, describe_array
from artsim.params import DESCRIPTOR_NAMES, DescribeParams

REPO = Path(__file__).resolve().parents[2]
SAMPLE_PATHS = sorted((REPO / "data" / "sample").glob("*/*.jpg"))
PARAMS = DescribeParams()


@pytest.fixture(scope="module")
def images() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    synthetic = [np.full((48, 64, 3), 128, np.uint8),                       # flat: no edge, no texture
                 np.zeros((64, 48, 3), np.uint8),                           # black
                 rng.integers(0, 256, (50, 70, 3), dtype=np.uint8)]         # noise
    return [*(read_rgb_array(p, long_side=PARAMS.size) for p in SAMPLE_PATHS), *synthetic]


@pytest.fixture(scope="module")
def vectors(images) -> dict[str, np.ndarray]:
    """Every candidate's vectors of every image, stacked: name -> (n images, length)."""
    described = [describe_array(image, PARAMS) for image in images]
    return {name: np.stack([d[name] for d in described]) for name in DESCRIPTOR_NAMES}


@pytest.fixture(scope="module")
def stats(vectors) -> TextureStats:
    return TextureStats.fit(vectors["texture"])


def test_the_registry_covers_four_families_with_an_alternative_for_each_required_one():
    assert tuple(DESCRIPTORS) == DESCRIPTOR_NAMES
    families = {name: c.family for name, c in DESCRIPTORS.items()}
    for family in ("color", "texture", "edges"):
        assert sum(f == family for f in families.values()) >= 2, family
    assert sum(f == "structure" for f in families.values()) >= 1


@pytest.mark.parametrize("name", DESCRIPTOR_NAMES)
def test_vectors_have_the_registered_length_and_are_finite(name, vectors):
    assert SAMPLE_PATHS, "data/sample is missing"
    assert vectors[name].shape == (len(SAMPLE_PATHS) + 3, DESCRIPTORS[name].length(PARAMS))
    assert np.isfinite(vectors[name]).all()


@pytest.mark.parametrize("name", DESCRIPTOR_NAMES)
def test_similarity_is_one_on_identical_images_symmetric_and_bounded(name, vectors, stats):
    candidate, v = DESCRIPTORS[name], vectors[name]
    own = candidate.paired(v, v.copy(), stats)
    assert (own == 1.0).all(), f"{name}: identical images must give exactly 1, got {own.min()}"
    matrix = candidate.cross(v, v, stats)
    assert (np.diag(matrix) == 1.0).all()
    np.testing.assert_allclose(matrix, matrix.T, atol=1e-12)
    assert ((matrix >= 0) & (matrix <= 1)).all()
    off_diagonal = matrix[~np.eye(len(v), dtype=bool)]
    assert (off_diagonal < 1).mean() > 0.9, f"{name} cannot tell most different paintings apart"


@pytest.mark.parametrize("name", DESCRIPTOR_NAMES)
def test_pairwise_and_set_against_set_agree(name, vectors, stats):
    candidate, v = DESCRIPTORS[name], vectors[name]
    rng = np.random.default_rng(1)
    first, second = rng.integers(0, len(v), 200), rng.integers(0, len(v), 200)
    matrix = candidate.cross(v, v, stats)
    np.testing.assert_allclose(candidate.paired(v[first], v[second], stats), matrix[first, second], atol=1e-12)


# --- degradations of real paintings ---------------------------------------------------------

def blur(rgb: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(rgb, (0, 0), sigma)


def add_noise(rgb: np.ndarray, std: float) -> np.ndarray:
    return np.clip(rgb + np.random.default_rng(0).normal(0.0, std, rgb.shape), 0, 255).astype(np.uint8)


def shift_hue(rgb: np.ndarray, amount: int) -> np.ndarray:
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
    hsv[..., 0] = (hsv[..., 0].astype(int) + amount) % 180
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def rotate(rgb: np.ndarray, degrees: float) -> np.ndarray:
    height, width = rgb.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), degrees, 1.0)
    return cv2.warpAffine(rgb, matrix, (width, height), borderMode=cv2.BORDER_REFLECT)


def shift(rgb: np.ndarray, fraction: float) -> np.ndarray:
    height, width = rgb.shape[:2]
    matrix = np.float32([[1, 0, fraction * width], [0, 1, fraction * height]])
    return cv2.warpAffine(rgb, matrix, (width, height), borderMode=cv2.BORDER_REFLECT)


# The degradation each candidate is built to notice. (pHash is robust to blur by design; the
# pHash bits move with a rotation instead, by whole bits: steps may be flat, never up.)
DEGRADATIONS = {
    "color": (shift_hue, [3, 7, 12, 18]),
    "lab": (shift_hue, [3, 7, 12, 18]),
    "texture": (add_noise, [5, 10, 20, 40]),
    "lbp": (blur, [0.7, 1.2, 1.8, 2.5]),
    "edges": (blur, [0.7, 1.2, 1.8, 2.5]),
    "orientation": (rotate, [2, 5, 10, 20]),
    "phash": (rotate, [2, 5, 10, 20]),
    "layout": (shift, [0.02, 0.05, 0.1, 0.2]),
}


def test_every_candidate_has_a_degradation():
    assert set(DEGRADATIONS) == set(DESCRIPTOR_NAMES)


@pytest.mark.parametrize("name", DESCRIPTOR_NAMES)
def test_similarity_falls_as_a_painting_is_degraded(name, images, vectors, stats):
    degrade, levels = DEGRADATIONS[name]
    candidate = DESCRIPTORS[name]
    for index, path in enumerate(SAMPLE_PATHS):
        degraded = np.stack([describe_array(degrade(images[index], level), PARAMS, [name])[name] for level in levels])
        original = np.repeat(vectors[name][index:index + 1], len(levels), axis=0)
        values = candidate.paired(original, degraded, stats).tolist()
        assert all(a >= b for a, b in zip(values, values[1:])), f"{path.name} {name} rose: {values}"
        assert values[-1] < values[0], f"{path.name} {name} did not fall: {values}"


def test_layout_of_a_flat_image_matches_only_another_flat_image(vectors, stats):
    # README: layout is max(0, Pearson); a flat image has no correlation with a painting (0), and
    # is the same layout as another flat image (1) -- not 0.5 against everything.
    layout, v = DESCRIPTORS["layout"], vectors["layout"]
    flat_grey, black, noise = len(SAMPLE_PATHS), len(SAMPLE_PATHS) + 1, len(SAMPLE_PATHS) + 2
    assert not v[flat_grey].any() and not v[black].any()
    others = [*range(len(SAMPLE_PATHS)), noise]
    matrix = layout.cross(v, v, stats)
    assert matrix[flat_grey, black] == 1.0
    assert (matrix[flat_grey, others] == 0.0).all() and (matrix[others, black] == 0.0).all()
    paired = layout.paired(np.repeat(v[flat_grey:flat_grey + 1], len(others), 0), v[others], stats)
    assert (paired == 0.0).all()
