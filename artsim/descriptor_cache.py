"""The on-disk cache of descriptors: one .npy per (descriptor family and its params, image content).

Each family (a candidate of artsim.candidates; bump its `version` when its code changes what
it computes) has its own folder named by a digest of what decides its vectors: the family's
own settings, the describing size, and the versions of the libraries that decode and compute
them. Changing `describe.canny_low` therefore names a new edges folder and
leaves colour and texture found; adding images computes only theirs. Entries are keyed by the
sha256 of the image file, so a renamed or re-generated identical image is found again.

Entries are written atomically (temporary name, rename) and checked on read (dtype, shape,
finite values): a damaged one is logged, deleted, counted in `healed` and computed again.
Layout: `<root>/<family>-<digest[:16]>/<image sha256[:2]>/<image sha256>.npy`.
"""
from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import cv2
import mahotas
import numpy as np
import PIL

from artsim.candidates import CANDIDATES, candidate
from artsim.config import DescribeParams
from artsim.vector_files import read_vector, write_vector

log = logging.getLogger(__name__)


def family_params(family: str, params: DescribeParams) -> dict:
    """The params that decide one family's vector (size decides the pixels all of them see)."""
    return {"size": params.size, **candidate(family).settings(params)}


def family_length(family: str, params: DescribeParams) -> int:
    return candidate(family).length(params)


def family_digest(family: str, params: DescribeParams) -> str:
    computed_by = {"opencv": cv2.__version__, "pillow": PIL.__version__,
                   "mahotas": mahotas.__version__ if candidate(family).uses_mahotas else None}
    key = {"family": family, "version": candidate(family).version, "params": family_params(family, params),
           "computed_by": computed_by}
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


class DescriptorCache:
    """Descriptor vectors of single images, one folder per family and params."""

    def __init__(self, root: Path, params: DescribeParams) -> None:
        self.root = Path(root)
        self.folders = {f: self.root / f"{f}-{family_digest(f, params)[:16]}" for f in CANDIDATES}
        self.lengths = {f: family_length(f, params) for f in CANDIDATES}
        self.healed = 0

    def path(self, family: str, image_sha256: str) -> Path:
        return self.folders[family] / image_sha256[:2] / f"{image_sha256}.npy"

    def load(self, family: str, image_sha256: str) -> np.ndarray | None:
        """The stored vector, or None when absent or damaged (a damaged entry is deleted and counted)."""
        path = self.path(family, image_sha256)
        vector, problem = read_vector(path, np.float64, self.lengths[family])
        if problem:
            log.warning("descriptor cache: %s is damaged (%s); computing it again", path, problem)
            self.healed += 1
        return vector

    def save(self, family: str, image_sha256: str, vector: np.ndarray) -> None:
        write_vector(self.path(family, image_sha256), vector, np.float64)
