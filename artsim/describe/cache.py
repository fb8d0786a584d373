"""The on-disk cache of descriptors: one file per image content, holding every descriptor's vector.

Each vector is stored under its descriptor's key, `<name>-<digest[:16]>`, the digest of what
decides it: the descriptor's own settings, the describing size, its `version` (bump it when its
code changes what it computes; see artsim.describe.registry) and the versions of the libraries that
decode and compute it. A vector is used only under exactly the key the run would give it, so
changing `describe.canny_low` recomputes edges and finds the others; adding images computes only
theirs; a descriptor just added to the registry is computed alone. Files are named by the sha256
of the image file, so a renamed or re-generated identical image is found again.

One file per image, not one per (image, descriptor): 8 tiny files an image cost a 4 KiB block
each and 8 opens per image on a warm run. The file is artsim.core.vector_files' checked format
(checksum, sizes, lengths, finite values): a damaged one is logged, deleted, counted in `healed`
and all its vectors computed again. Saving rewrites the file atomically (temporary name, rename)
with the new vectors added and the older-settings entries of those descriptors dropped, so it
does not grow with every setting tried. Concurrent writers of one image (experiments sharing
the cache) each leave a whole file; the last rename wins, and a vector lost that way is
computed again next time.
Layout: `<root>/by-image/<image sha256[:2]>/<image sha256>.vectors`. Folders `<name>-<digest>/`
beside it are the earlier one-.npy-per-vector layout, no longer read.
"""
from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from pathlib import Path

import cv2
import mahotas
import numpy as np
import PIL

from artsim.core.vector_files import read_vectors, write_vectors
from artsim.describe.registry import DESCRIPTORS, descriptor
from artsim.params import DescribeParams

log = logging.getLogger(__name__)


def descriptor_params(name: str, params: DescribeParams) -> dict:
    """The params that decide one descriptor's vector (size decides the pixels all of them see)."""
    return {"size": params.size, **descriptor(name).settings(params)}


def descriptor_digest(name: str, params: DescribeParams) -> str:
    computed_by = {"opencv": cv2.__version__, "pillow": PIL.__version__,
                   "mahotas": mahotas.__version__ if descriptor(name).uses_mahotas else None}
    # "family" is the key's historical name for the descriptor's name: renaming it would change
    # every digest and so throw away every cached vector.
    key = {"family": name, "version": descriptor(name).version, "params": descriptor_params(name, params),
           "computed_by": computed_by}
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


def descriptor_of(key: str) -> str:
    """The descriptor name of an entry key `<name>-<digest>`."""
    return key.rpartition("-")[0]


class DescriptorCache:
    """Descriptor vectors of single images, one file per image, one entry per descriptor and settings."""

    def __init__(self, root: Path, params: DescribeParams) -> None:
        self.folder = Path(root) / "by-image"
        self.keys = {name: f"{name}-{descriptor_digest(name, params)[:16]}" for name in DESCRIPTORS}
        self.lengths = {self.keys[name]: DESCRIPTORS[name].length(params) for name in DESCRIPTORS}
        self.healed = 0

    def path(self, image_sha256: str) -> Path:
        return self.folder / image_sha256[:2] / f"{image_sha256}.vectors"

    def load(self, image_sha256: str) -> dict[str, np.ndarray]:
        """The vectors stored for this image under this run's keys, by descriptor name (none when
        the file is absent or damaged; a damaged one is deleted and counted)."""
        stored = self._read(image_sha256)
        return {name: stored[key] for name, key in self.keys.items() if key in stored}

    def save(self, image_sha256: str, computed: Mapping[str, np.ndarray]) -> None:
        """Add `computed` (descriptor name -> vector) to the image's file, replacing those
        descriptors' entries of other settings and keeping the rest."""
        # Read again just before writing: keeps what a concurrent writer stored since our load.
        kept = {key: vector for key, vector in self._read(image_sha256).items() if descriptor_of(key) not in computed}
        write_vectors(self.path(image_sha256), {**kept, **{self.keys[name]: v for name, v in computed.items()}})

    def _read(self, image_sha256: str) -> dict[str, np.ndarray]:
        path = self.path(image_sha256)
        stored, problem = read_vectors(path, self.lengths)
        if problem:
            log.warning("descriptor cache: %s is damaged (%s); computing its vectors again", path, problem)
            self.healed += 1
        return stored or {}
