"""The alterations derived copies undergo (artsim.core.alterations): what each does, at any size."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from artsim.core.alterations import EVALUATION, MIN_SIDE, centre_crop, greyscale, mirror, recompress, rotate, shrink


def _painting(width: int = 120, height: int = 80, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8))


def test_each_alteration_changes_the_image_as_named() -> None:
    img = _painting()
    assert np.array_equal(np.asarray(mirror(img))[:, ::-1], np.asarray(img))
    cropped = centre_crop(img, 0.70)
    assert cropped.width * cropped.height == pytest.approx(0.70 * img.width * img.height, rel=0.03)
    assert cropped.width / cropped.height == pytest.approx(img.width / img.height, rel=0.03)
    assert shrink(img, 0.5).size == (60, 40)
    grey = np.asarray(greyscale(img))
    assert grey.shape == (80, 120, 3) and np.array_equal(grey[..., 0], grey[..., 2])
    assert rotate(img, 5.0).size == img.size and not np.array_equal(np.asarray(rotate(img, 5.0)), np.asarray(img))
    assert not np.array_equal(np.asarray(recompress(img, 40)), np.asarray(img))


def test_combined_is_mirror_then_crop_then_jpeg() -> None:
    img = _painting()
    combined = np.asarray(EVALUATION["combined"].apply(img)).astype(int)
    expected = np.asarray(recompress(centre_crop(mirror(img), 0.70), 40)).astype(int)
    unmirrored = np.asarray(recompress(centre_crop(img, 0.70), 40)).astype(int)
    assert np.array_equal(combined, expected)
    assert np.abs(combined - unmirrored).mean() > 10  # the mirror is part of it, not only crop and JPEG
    assert combined.shape == np.asarray(centre_crop(img, 0.70)).shape


@pytest.mark.parametrize("name", sorted(EVALUATION))
@pytest.mark.parametrize("size", [(1, 1), (3, 700), (700, 3), (64, 64)])
def test_every_evaluation_alteration_is_deterministic_rgb_at_any_size(name: str, size: tuple[int, int]) -> None:
    img = _painting(*size)
    first, second = EVALUATION[name].apply(img), EVALUATION[name].apply(img)
    assert first.mode == "RGB" and np.array_equal(np.asarray(first), np.asarray(second))
    assert min(first.size) >= min(MIN_SIDE, *size)


@pytest.mark.parametrize(
    "bad", [lambda: centre_crop(_painting(), 0.0), lambda: shrink(_painting(), 1.5), lambda: recompress(_painting(), 0)]
)
def test_out_of_range_settings_are_refused(bad) -> None:
    with pytest.raises(ValueError):
        bad()
