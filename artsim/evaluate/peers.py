"""Peer similarity measures: what a practitioner would try before training a model.

- pHash and dHash (artsim.core.hashes: `imagehash`'s, the hashing methods imagededup computes):
  64-bit perceptual hashes of the image; similarity = 1 - Hamming distance / 64.
- SSIM (as scikit-image's `structural_similarity` computes it, its default 7 x 7 window) of the two images in
  greyscale, each resized to SSIM_SIZE x SSIM_SIZE (aspect not kept: SSIM compares pixel grids
  of one shape, and a variant keeps its original's aspect anyway); mapped from [-1, 1] to
  [0, 1] as (1 + SSIM) / 2, which keeps every ranking and AUC.

Each image is decoded once into a PeerSignature (both hashes + the small grey image); every
similarity is computed from signatures, so scoring n x m combinations decodes n + m images.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image
from tqdm import tqdm

from artsim.core.hashes import dhash_bits, hash_similarity, phash_bits
from artsim.core.images import ImageFile, ImageRejected, as_image_file, load_rgb

log = logging.getLogger(__name__)

HASH_NAMES = ("phash", "dhash")
PEER_NAMES = (*HASH_NAMES, "ssim")
SSIM_SIZE = 128
# Hashes and SSIM look at 128 px at most: a JPEG is decoded at reduced scale down to this.
DECODE_LONG_SIDE = 2 * SSIM_SIZE
SSIM_WINDOW = 7  # scikit-image's default: a 7 x 7 uniform window
SSIM_K1, SSIM_K2 = 0.01, 0.03
# Side of the coarse thumbnail that shortlists candidates for SSIM (ssim_proxy): 1,024 floats an image.
PROXY_SIDE = 32
PROXY_BLOCK = 4096  # thumbnails made proxies at once


@dataclass(frozen=True)
class PeerSignature:
    """What the peer similarities need of one image: its two hashes and its grey thumbnail."""

    phash: np.uint64
    dhash: np.uint64
    grey: np.ndarray  # (SSIM_SIZE, SSIM_SIZE) uint8


def signature(image: Image.Image) -> PeerSignature:
    grey = image.convert("L")
    thumbnail = np.asarray(grey.resize((SSIM_SIZE, SSIM_SIZE), Image.Resampling.LANCZOS), dtype=np.uint8)
    return PeerSignature(phash=phash_bits(grey), dhash=dhash_bits(grey), grey=thumbnail)


def _window_mean(image: np.ndarray) -> np.ndarray:
    # The border rows it reflects into are cropped from the mean below: no window that counts reaches them.
    return cv2.boxFilter(image, cv2.CV_64F, (SSIM_WINDOW, SSIM_WINDOW), borderType=cv2.BORDER_REFLECT)


def structural_similarity(a: np.ndarray, b: np.ndarray, data_range: float = 255.0) -> float:
    """Mean SSIM of two grey images of one shape, as scikit-image's `structural_similarity(a, b, data_range)`
    computes it (uniform 7 x 7 window, sample covariance, K1 = 0.01, K2 = 0.03, half a window cropped at the
    border): equal to it up to rounding (tested). Its window means are OpenCV's box filter, about five times
    faster than the scipy filter scikit-image calls, which was most of evaluate's time at scale."""
    x, y = a.astype(np.float64), b.astype(np.float64)
    cov_norm = SSIM_WINDOW**2 / (SSIM_WINDOW**2 - 1)
    ux, uy = _window_mean(x), _window_mean(y)
    vx = cov_norm * (_window_mean(x * x) - ux * ux)
    vy = cov_norm * (_window_mean(y * y) - uy * uy)
    vxy = cov_norm * (_window_mean(x * y) - ux * uy)
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    local = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))
    pad = (SSIM_WINDOW - 1) // 2
    return float(local[pad:-pad, pad:-pad].mean(dtype=np.float64))


def ssim_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """(1 + SSIM) / 2 of two grey thumbnails of one shape (uint8)."""
    value = structural_similarity(a, b, data_range=255)
    return float(np.clip((1.0 + value) / 2.0, 0.0, 1.0))


def peer_similarities(a: PeerSignature, b: PeerSignature) -> dict[str, float]:
    return {
        "phash": float(hash_similarity(a.phash, b.phash)),
        "dhash": float(hash_similarity(a.dhash, b.dhash)),
        "ssim": ssim_similarity(a.grey, b.grey),
    }


def image_similarities(a: Image.Image, b: Image.Image) -> dict[str, float]:
    """Every peer similarity of two images."""
    return peer_similarities(signature(a), signature(b))


# --- many images ------------------------------------------------------------------------

@dataclass(frozen=True)
class Thumbnails:
    """Grey thumbnails as rows of an array that holds them (PeerSignatures.grey): thumbnail i is
    array[rows[i]], read in place. Indexed as the (n, SSIM_SIZE, SSIM_SIZE) array they stand for: by a row (a view)
    or a slice (those rows, copied)."""

    array: np.ndarray
    rows: np.ndarray

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int | slice) -> np.ndarray:
        return self.array[self.rows[index]]


@dataclass(frozen=True)
class PeerSignatures:
    """Hashes of distinct image files (each decoded once), grey thumbnails of those asked for,
    and the files that did not decode."""

    phash: np.ndarray  # (n,) uint64
    dhash: np.ndarray  # (n,) uint64
    row_of: dict[ImageFile, int]
    grey: np.ndarray   # (k, SSIM_SIZE, SSIM_SIZE) uint8: 16 KB an image, so only where SSIM is wanted
    grey_row_of: dict[ImageFile, int]
    unreadable: frozenset[ImageFile]

    def rows(self, paths: Iterable[ImageFile | str]) -> np.ndarray:
        return np.array([self.row_of[as_image_file(p)] for p in paths], dtype=np.int64)

    def greys(self, paths: Iterable[ImageFile | str]) -> Thumbnails:
        """The thumbnails of `paths` in their order, read where they are (no second 16 KB an image)."""
        return Thumbnails(self.grey, np.array([self.grey_row_of[as_image_file(p)] for p in paths], dtype=np.int64))

    def readable(self, paths: Iterable[ImageFile | str]) -> np.ndarray:
        return np.array([as_image_file(p) not in self.unreadable for p in paths], dtype=bool)

    def hashes(self, name: str) -> np.ndarray:
        if name not in HASH_NAMES:
            raise ValueError(f"unknown hash {name!r}; known: {', '.join(HASH_NAMES)}")
        return getattr(self, name)


def signatures_of(
    paths: Iterable[ImageFile | str], grey_for: Iterable[ImageFile | str] | None = None
) -> PeerSignatures:
    """The hashes of each distinct file, and the grey thumbnail of those in `grey_for` (None: all).

    A file that does not decode is listed (and logged), never fatal.
    """
    distinct = list(dict.fromkeys(as_image_file(p) for p in paths))
    wanted = set(distinct) if grey_for is None else {as_image_file(p) for p in grey_for}
    grey_paths = [p for p in distinct if p in wanted]
    phash = np.zeros(len(distinct), dtype=np.uint64)
    dhash = np.zeros(len(distinct), dtype=np.uint64)
    grey = np.zeros((len(grey_paths), SSIM_SIZE, SSIM_SIZE), dtype=np.uint8)
    grey_row_of = {p: i for i, p in enumerate(grey_paths)}
    unreadable = set()
    for row, path in enumerate(tqdm(distinct, desc="peer signatures", unit="image", disable=None)):
        try:
            found = signature(load_rgb(path, long_side_at_least=DECODE_LONG_SIDE))
        except ImageRejected as exc:
            log.warning("peer signature of %s: image does not decode (%s)", path, exc.reason)
            unreadable.add(path)
            continue
        phash[row], dhash[row] = found.phash, found.dhash
        if path in grey_row_of:
            grey[grey_row_of[path]] = found.grey
    return PeerSignatures(
        phash, dhash, {p: i for i, p in enumerate(distinct)}, grey, grey_row_of, frozenset(unreadable)
    )


def peer_similarities_of_pairs(signatures: PeerSignatures, left: Sequence[ImageFile | str],
                               right: Sequence[ImageFile | str]) -> dict[str, np.ndarray]:
    """Each peer similarity of (left[i], right[i]) for every i (all files must have signatures)."""
    return {**hash_similarities_of_pairs(signatures, left, right), "ssim": ssim_of_pairs(signatures, left, right)}


def hash_similarities_of_pairs(signatures: PeerSignatures, left: Sequence[ImageFile | str],
                               right: Sequence[ImageFile | str]) -> dict[str, np.ndarray]:
    """The pHash and dHash similarity of (left[i], right[i]) for every i."""
    a, b = signatures.rows(left), signatures.rows(right)
    return {name: hash_similarity(signatures.hashes(name)[a], signatures.hashes(name)[b]) for name in HASH_NAMES}


def ssim_of_pairs(signatures: PeerSignatures, left: Sequence[ImageFile | str],
                  right: Sequence[ImageFile | str]) -> np.ndarray:
    """ssim_similarity of (left[i], right[i]) for every i, each pair's thumbnails looked up in place (no copy of
    every pair's thumbnails at once)."""
    grey, row = signatures.grey, signatures.grey_row_of
    return np.array(
        [ssim_similarity(grey[row[as_image_file(x)]], grey[row[as_image_file(y)]]) for x, y in zip(left, right)],
        dtype=np.float64,
    )


def hash_score_blocks(
    queries: np.ndarray, candidates: np.ndarray, max_pairs: int = 1 << 22
) -> Iterator[tuple[int, np.ndarray]]:
    """hash_similarity of every (query, candidate) as (first row, block of rows) pieces of about `max_pairs` scores."""
    rows = max(1, max_pairs // max(1, len(candidates)))
    for start in range(0, len(queries), rows):
        yield start, hash_similarity(queries[start:start + rows, None], candidates[None, :])


def ssim_scores(queries: np.ndarray | Thumbnails, candidates: np.ndarray | Thumbnails, rows: np.ndarray,
                columns: np.ndarray) -> np.ndarray:
    """ssim_similarity of thumbnail queries[rows[i]] with candidates[columns[i, j]]: an array shaped as columns."""
    return np.array([[ssim_similarity(queries[row], candidates[column]) for column in listed]
                     for row, listed in zip(rows, columns)], dtype=np.float64).reshape(np.shape(columns))


def ssim_proxy(greys: np.ndarray | Thumbnails) -> np.ndarray:
    """A vector per grey thumbnail whose inner products shortlist candidates for SSIM: the thumbnail averaged
    down to PROXY_SIDE x PROXY_SIDE, centred and scaled to unit length (the Pearson correlation of the two
    coarse images, the structure term SSIM measures window by window). PROXY_BLOCK thumbnails at a time: the
    float64 transients (~28 KB a thumbnail) stay bounded however many candidates there are."""
    proxies = np.zeros((len(greys), PROXY_SIDE * PROXY_SIDE), dtype=np.float32)
    for start in range(0, len(greys), PROXY_BLOCK):
        proxies[start:start + PROXY_BLOCK] = _coarse_unit_vectors(np.asarray(greys[start:start + PROXY_BLOCK]))
    return proxies


def _coarse_unit_vectors(greys: np.ndarray) -> np.ndarray:
    cell = SSIM_SIZE // PROXY_SIDE
    coarse = greys.reshape(len(greys), PROXY_SIDE, cell, PROXY_SIDE, cell).mean(axis=(2, 4)).reshape(len(greys), -1)
    centred = coarse - coarse.mean(axis=1, keepdims=True)
    return (centred / np.maximum(np.linalg.norm(centred, axis=1, keepdims=True), 1e-12)).astype(np.float32)
