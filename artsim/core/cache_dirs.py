"""Where the caches that outlive stage runs live by default: outside every workspace.

`dvc exp run --queue` and `--temp` run in a fresh copy of the workspace without its git-ignored
files, so a cache inside the workspace would start empty there (an SDXL sweep would make every
variant again). One folder per user instead serves every workspace and experiment:
`$ARTSIM_CACHE` if set (e.g. a shared filesystem for several machines), else the platform's
user cache folder (`~/.cache/artsim` on Linux). Both stores write each entry under a unique
temporary name and rename it, so concurrent experiments and ranks may share them.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from platformdirs import user_cache_dir

CACHE_ENV = "ARTSIM_CACHE"
CacheKind = Literal["variants", "features", "descriptors", "checkpoints"]


def user_cache_root() -> Path:
    """`$ARTSIM_CACHE` when set and not empty, else the platform's user cache folder for artsim."""
    configured = os.environ.get(CACHE_ENV, "").strip()
    if not configured:
        return Path(user_cache_dir("artsim", appauthor=False))
    root = Path(configured).expanduser()
    if not root.is_absolute():
        # Relative to what? Each experiment runs in its own copy of the workspace.
        raise ValueError(f"${CACHE_ENV} must be an absolute path (it serves every workspace), got {configured!r}")
    return root


def default_cache(kind: CacheKind) -> Path:
    """The folder of one cache (`variants`: generate's store, `features`: siamese's frozen-trunk features,
    `descriptors`: describe's per-image descriptors, `checkpoints`: the training stages' last epoch)."""
    return user_cache_root() / kind
