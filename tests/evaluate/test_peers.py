"""Peer similarities (pHash, dHash, SSIM): the properties a similarity must have, on real paintings."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter
from skimage.metrics import structural_similarity as skimage_ssim

from artsim.core.images import load_rgb
from artsim.evaluate import peers
from artsim.evaluate.peers import (
    PEER_NAMES,
    hash_score_blocks,
    hash_similarity,
    image_similarities,
    peer_similarities_of_pairs,
    signatures_of,
    ssim_proxy,
)
from tests.support.helpers import SAMPLE_DIR

PAINTINGS = sorted(SAMPLE_DIR.rglob("*.jpg"))[:3]


@pytest.fixture(scope="module")
def paintings() -> list[Image.Image]:
    return [load_rgb(path) for path in PAINTINGS]


def degraded(image: Image.Image, other: Image.Image, level: int) -> Image.Image:
    """Progressively further from the image, as a variant is: blurred more and blended toward another painting."""
    blurred = image.filter(ImageFilter.GaussianBlur(radius=level))
    return Image.blend(blurred, other.resize(image.size), 0.25 * level)


def test_an_image_is_identical_to_itself(paintings) -> None:
    for image in paintings:
        assert image_similarities(image, image.copy()) == {name: 1.0 for name in PEER_NAMES}


def test_similarities_are_symmetric_and_in_the_unit_interval(paintings) -> None:
    for a, b in [
        (paintings[0], paintings[1]),
        (paintings[1], paintings[2]),
        (paintings[0], degraded(paintings[0], paintings[1], 2)),
    ]:
        forward, backward = image_similarities(a, b), image_similarities(b, a)
        assert forward == pytest.approx(backward, abs=1e-12)
        assert all(0.0 <= value <= 1.0 for value in forward.values())
        assert any(value < 1.0 for value in forward.values())


@pytest.mark.parametrize("name", PEER_NAMES)
def test_similarity_decreases_under_progressive_degradation(paintings, name: str) -> None:
    for image, other in zip(paintings, paintings[1:] + paintings[:1]):
        scores = [image_similarities(image, degraded(image, other, level))[name] for level in (0, 1, 2, 3, 4)]
        assert scores[0] == 1.0
        assert all(later <= earlier for earlier, later in zip(scores, scores[1:])), scores
        assert scores[-1] < scores[0]


def test_hash_similarity_counts_differing_bits() -> None:
    a = np.uint64(0)
    assert float(hash_similarity(a, np.uint64(0b1011))) == 1 - 3 / 64
    assert float(hash_similarity(a, np.uint64(2**64 - 1))) == 0.0
    queries, candidates = np.array([0, 1, 3], dtype=np.uint64), np.array([1, 2, 3, 7], dtype=np.uint64)
    blocks = list(hash_score_blocks(queries, candidates, max_pairs=4))
    assert [start for start, _ in blocks] == [0, 1, 2]  # one row of 4 candidates per block
    np.testing.assert_array_equal(
        np.vstack([b for _, b in blocks]), hash_similarity(queries[:, None], candidates[None, :])
    )


def test_signatures_decode_each_file_once_and_report_the_bad_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8 truncated")
    decoded: list[Path] = []
    from artsim.evaluate import peers

    def counting_load(path, **kwargs):
        decoded.append(Path(path))
        return load_rgb(path, **kwargs)

    monkeypatch.setattr(peers, "load_rgb", counting_load)
    paths = [PAINTINGS[0], PAINTINGS[1], PAINTINGS[0], bad, PAINTINGS[1]]
    signatures = signatures_of(paths, grey_for=[PAINTINGS[0], PAINTINGS[1]])
    assert sorted(decoded) == sorted({*PAINTINGS[:2], bad})
    assert signatures.unreadable == {bad}
    assert signatures.readable(paths).tolist() == [True, True, True, False, True]
    pairs = peer_similarities_of_pairs(signatures, [PAINTINGS[0], PAINTINGS[0]], [PAINTINGS[0], PAINTINGS[1]])
    direct = image_similarities(load_rgb(PAINTINGS[0]), load_rgb(PAINTINGS[1]))
    assert {name: values[0] for name, values in pairs.items()} == {name: 1.0 for name in PEER_NAMES}
    # The reduced-scale decode hardly moves the figures (the sample's long side is at most 512).
    assert {name: values[1] for name, values in pairs.items()} == pytest.approx(direct, abs=0.05)


def test_thumbnails_are_read_where_they_are_kept_in_any_order(monkeypatch) -> None:
    """Evaluate's queries and candidates read the thumbnails in place (no second 16 KB an image, whichever images
    are left out); their SSIM proxies are those of a copy, made a block at a time with the same bits."""
    signatures = signatures_of([*PAINTINGS, PAINTINGS[0]])
    picked = signatures.greys([PAINTINGS[2], PAINTINGS[0]])
    assert picked.array is signatures.grey and len(picked) == 2
    copied = signatures.grey[[signatures.grey_row_of[PAINTINGS[2]], signatures.grey_row_of[PAINTINGS[0]]]]
    assert np.array_equal(picked[1], copied[1]) and np.array_equal(picked[0:2], copied) and copied.any()
    assert np.array_equal(ssim_proxy(picked), ssim_proxy(copied))
    assert len(signatures.greys([])) == 0 and ssim_proxy(signatures.greys([])).shape == (0, peers.PROXY_SIDE ** 2)
    many = np.random.default_rng(3).integers(0, 256, (23, peers.SSIM_SIZE, peers.SSIM_SIZE), dtype=np.uint8)
    whole = ssim_proxy(many)
    monkeypatch.setattr(peers, "PROXY_BLOCK", 5)
    assert np.array_equal(ssim_proxy(many), whole)


@pytest.mark.parametrize("shape", [(128, 128), (64, 96), (7, 7)])
def test_ssim_equals_scikit_images_structural_similarity(shape) -> None:
    """Our SSIM is scikit-image's, its window means taken by OpenCV: equal up to rounding, on unrelated images,
    on a noisy copy, on flat images (no variance: the constants alone keep it finite) and on an image itself."""
    rng = np.random.default_rng(7)
    a = rng.integers(0, 256, shape, dtype=np.uint8)
    noisy = np.clip(a.astype(int) + rng.integers(-40, 41, shape), 0, 255).astype(np.uint8)
    flat, other_flat = np.full(shape, 90, dtype=np.uint8), np.full(shape, 200, dtype=np.uint8)
    for left, right in [(a, rng.integers(0, 256, shape, dtype=np.uint8)), (a, noisy), (flat, other_flat),
                        (a, 255 - a), (flat, a)]:
        expected = skimage_ssim(left, right, data_range=255)
        assert peers.structural_similarity(left, right) == pytest.approx(expected, abs=1e-12)
        assert peers.ssim_similarity(left, right) == pytest.approx((1 + expected) / 2, abs=1e-12)
    assert peers.structural_similarity(a, a) == 1.0
