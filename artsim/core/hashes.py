"""Perceptual hashes of images (pHash, dHash) as 64-bit integers, and their Hamming similarity.

pHash and dHash are `imagehash`'s (the hashing methods imagededup computes). Evaluation compares
them as peers of the model (artsim.evaluate.peers) and the search index keeps each original's
pHash (artsim.index), so they sit here, below both.
"""
from __future__ import annotations

from collections.abc import Sequence

import imagehash
import numpy as np
from PIL import Image

HASH_BITS = 64


def _hash_bits(image_hash: imagehash.ImageHash) -> np.uint64:
    bits = np.asarray(image_hash.hash, dtype=bool).ravel()
    if bits.size != HASH_BITS:
        raise ValueError(f"expected a {HASH_BITS}-bit hash, got {bits.size} bits")
    return np.frombuffer(np.packbits(bits).tobytes(), dtype=">u8")[0].astype(np.uint64)


def phash_bits(image: Image.Image) -> np.uint64:
    """The 64-bit pHash of an image (what the search index keeps per original)."""
    return _hash_bits(imagehash.phash(image.convert("L")))


def dhash_bits(image: Image.Image) -> np.uint64:
    """The 64-bit dHash of an image."""
    return _hash_bits(imagehash.dhash(image.convert("L")))


def hash_similarity(a: np.ndarray | np.uint64, b: np.ndarray | np.uint64) -> np.ndarray:
    """1 - Hamming distance / 64 of 64-bit hashes (uint64), broadcast like a ^ b."""
    distance = np.bitwise_count(np.bitwise_xor(np.asarray(a, dtype=np.uint64), np.asarray(b, dtype=np.uint64)))
    return 1.0 - distance.astype(np.float64) / HASH_BITS


def hash_hex(bits: np.uint64) -> str:
    """A hash as 16 hex digits (how the search index stores it)."""
    return f"{int(bits):016x}"


def hashes_from_hex(texts: Sequence[str | None]) -> np.ndarray:
    """Hashes stored by hash_hex as uint64; a missing one ('' or None) reads as 0."""
    return np.array([int(text, 16) if text else 0 for text in texts], dtype=np.uint64)
