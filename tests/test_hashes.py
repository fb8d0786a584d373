"""artsim.core.hashes: pHash/dHash as 64-bit integers, their similarity, and the hex form the index stores."""
from __future__ import annotations

import imagehash
import numpy as np
from PIL import Image

from artsim.core.hashes import dhash_bits, hash_hex, hash_similarity, hashes_from_hex, phash_bits
from artsim.core.images import load_rgb
from tests.helpers import SAMPLE_DIR

PAINTING = sorted(SAMPLE_DIR.rglob("*.jpg"))[0]


def test_the_bits_are_imagehash_s_hash_read_row_by_row() -> None:
    image = load_rgb(PAINTING)
    for bits, reference in ((phash_bits(image), imagehash.phash(image)), (dhash_bits(image), imagehash.dhash(image))):
        assert isinstance(bits, np.uint64)
        assert f"{int(bits):064b}" == "".join("1" if b else "0" for b in reference.hash.ravel())


def test_similarity_counts_differing_bits() -> None:
    assert float(hash_similarity(np.uint64(0b0110), np.uint64(0b1011))) == 1 - 3 / 64
    assert float(hash_similarity(np.uint64(0), np.uint64(2**64 - 1))) == 0.0


def test_a_flip_keeps_less_of_the_phash_than_the_image_itself() -> None:
    image = load_rgb(PAINTING)
    flipped = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    assert float(hash_similarity(phash_bits(image), phash_bits(image.copy()))) == 1.0
    assert float(hash_similarity(phash_bits(image), phash_bits(flipped))) < 1.0


def test_hex_round_trips_every_bit_and_a_missing_hash_reads_as_zero() -> None:
    hashes = [np.uint64(0), np.uint64(1), np.uint64(2**63), np.uint64(2**64 - 1)]
    texts = [hash_hex(h) for h in hashes]
    assert all(len(text) == 16 for text in texts)
    np.testing.assert_array_equal(hashes_from_hex([*texts, "", None]), np.array([*hashes, 0, 0], dtype=np.uint64))
